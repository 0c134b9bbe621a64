"""netguard: turn a SaaS vendor's network security guide into firewall configuration, and prove it.

Layers: ``profiles`` (load and validate deployment YAML) -> ``model`` (Profile, Policy) ->
``render`` (one module per target). Only ``cli`` imports click.
"""

__version__ = "0.1.0"
