"""``netguard probe``: pre-deployment connectivity probes (DNS, TCP, TLS 1.3, certificates,
HTTP, egress filtering), per endpoint and per resolved address.

Modules: :mod:`.model` (results), :mod:`.wire` (TLS records read off the wire), :mod:`.conn`
(connect, handshake, refusal), :mod:`.certs` (certificate checks), :mod:`.dns`, :mod:`.run`
(orchestration, exit code) and :mod:`.report` (text, JSON, JUnit).
"""

from __future__ import annotations

from netguard.probe.model import Check, ProbeReport, Status, Target
from netguard.probe.run import ProbeOptions, run_probe

__all__ = ["Check", "ProbeOptions", "ProbeReport", "Status", "Target", "run_probe"]
