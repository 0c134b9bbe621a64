"""Renderers: one module per target behind a registry keyed by :class:`Target`.

A new target is one module with a ``Renderer`` subclass decorated by ``@register``, one enum
member, one template folder under ``templates/`` and one golden folder under ``tests/golden``.
"""

# Importing the modules fills the registry.
from netguard.render import allowlist, aws, iptables, nftables  # noqa: F401
from netguard.render.base import RENDERERS, Renderer, Target, register, render_targets

__all__ = ["RENDERERS", "Renderer", "Target", "register", "render_targets"]
