"""Result objects of ``netguard probe``: frozen dataclasses, no I/O.

Vocabulary: a *target* is one endpoint to probe (host or IP literal, port, SNI name); each
target resolves to *addresses*; every *check* on a target or address has a :class:`Status`
and evidence. A failed check is data, never an exception: one endpoint's failure never aborts
another's probe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from netguard.errors import EXIT_FINDINGS, EXIT_OK, EXIT_OPERATIONAL

__all__ = [
    "SCHEMA_VERSION",
    "AddressResult",
    "Check",
    "EgressPort",
    "EgressResult",
    "ProbeReport",
    "Status",
    "Target",
    "TargetResult",
]

#: Version of the JSON report's shape (``schema_version`` field).
SCHEMA_VERSION = 1


class Status(StrEnum):
    """Verdict of one check.

    PASS: the evidence shows the requirement holds. FAIL: the evidence shows it does not.
    UNTESTABLE: this host cannot ask the question (e.g. the local TLS library cannot offer
    TLS 1.0), or an earlier step gave nothing to check. ERROR: the question was asked but no
    evidence came back either way (timeout, reset, local error); never counted as a PASS.
    """

    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    UNTESTABLE = "UNTESTABLE"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Check:
    """One check: ``name`` (dotted, stable, e.g. ``tls.version``), ``status``, a one-line
    ``message``, structured ``evidence`` (JSON-serialisable values) and ``warning`` (a PASS
    that deserves attention, e.g. a certificate close to expiry)."""

    name: str
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    warning: bool = False


@dataclass(frozen=True)
class Target:
    """An endpoint to probe: ``host`` (DNS name or IP literal), TCP ``port``, ``sni`` (the
    server name sent and matched; ``None`` for an IP literal given without ``--sni``) and the
    ``name`` it has in the profile (or ``host:port``)."""

    name: str
    host: str
    port: int
    sni: str | None
    min_tls: str = "1.3"


@dataclass(frozen=True)
class AddressResult:
    """Every check made against one resolved ``address`` of a target."""

    address: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class TargetResult:
    """A target's name-level checks (DNS) and its per-address results."""

    target: Target
    checks: tuple[Check, ...]
    addresses: tuple[AddressResult, ...]

    def all_checks(self) -> Iterator[tuple[str | None, Check]]:
        """Every check as ``(address or None, check)``, name-level first."""
        for c in self.checks:
            yield None, c
        for a in self.addresses:
            for c in a.checks:
                yield a.address, c


@dataclass(frozen=True)
class EgressPort:
    """One port of an egress probe: ``state`` is ``open`` (connected), ``closed`` (a reset
    came back: the filter let the SYN through) or ``filtered`` (timeout, ICMP unreachable or
    a local filter refusal); ``allowed`` says whether the profile (or ``--allow``) permits it."""

    port: int
    state: str
    allowed: bool
    detail: str
    connect_ms: float | None


@dataclass(frozen=True)
class EgressResult:
    """An egress (or, run from a vantage point, ingress) probe of ``target``: one
    :class:`EgressPort` and one :class:`Check` per port (FAIL when a port that is not allowed
    got through); ``allowed_ports`` and ``allowed_by`` say which ports were allowed and why."""

    target: str
    address: str
    ports: tuple[EgressPort, ...]
    checks: tuple[Check, ...]
    allowed_ports: tuple[int, ...] | None = ()  # None: every port is allowed to this address
    allowed_by: str = ""  # where the allowed ports come from (--allow, profile rule ids)


@dataclass(frozen=True)
class ProbeReport:
    """The whole run: endpoint results, egress results, settings and notes."""

    source: str
    targets: tuple[TargetResult, ...]
    egress: tuple[EgressResult, ...]
    settings: dict[str, Any]
    notes: tuple[str, ...] = ()

    def checks(self) -> Iterable[Check]:
        """Every check of the run."""
        for t in self.targets:
            for _, c in t.all_checks():
                yield c
        for e in self.egress:
            yield from e.checks

    def counts(self) -> dict[str, int]:
        """Number of checks per status, every status present (``PASS``, ``FAIL``, ...)."""
        out = {s.value: 0 for s in Status}
        for c in self.checks():
            out[c.status.value] += 1
        return out

    def exit_code(self) -> int:
        """1 when any check FAILs; else 3 when any check is an ERROR (a probe could not be
        carried out, so the run proves nothing there); else 0. UNTESTABLE does not change the
        code (it is listed in every format)."""
        statuses = {c.status for c in self.checks()}
        if Status.FAIL in statuses:
            return EXIT_FINDINGS
        if Status.ERROR in statuses:
            return EXIT_OPERATIONAL
        return EXIT_OK
