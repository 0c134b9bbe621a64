"""Findings of ``netguard check``: what was found, how bad it is, and the evidence.

A :class:`Finding` has a stable code per kind (``NG101`` ...; the code names the *kind* of
problem, never a running number, so it is the same in every run), a severity, a message, an
example packet, the rules that cause it (text and ``file:line``), a remediation hint and a
``fingerprint``: the sha256 of the kind, the rule texts (not their line numbers, so inserting
a rule above does not change it) and the header-space description, used as SARIF
``partialFingerprints`` to follow one finding across runs.

Kinds (:data:`KINDS`):

======  ===========================  ==========  =========  ======================================
code    name                         check       severity   meaning
======  ===========================  ==========  =========  ======================================
NG101   egress-beyond-policy         egress      high       OUTPUT may accept packets the profile
                                                            does not permit
NG102   ingress-beyond-policy        ingress     high       INPUT likewise
NG103   forward-accepts              forward     high       FORWARD may accept new traffic
NG104   chain-policy-accepts         policies    high/med.  a base chain's ACCEPT policy is reached
NG105   family-not-checked           policies    medium     the profile enables a family that no
                                                            configuration given covers
NG110   required-flow-blocked        egress or   medium     a flow the profile permits (or its
                                     ingress                replies) is surely denied
NG201   shadowed-rule                anomalies   low        never matches; earlier rules of another
                                                            verdict take its packets
NG202   redundant-rule               anomalies   low        never matches; earlier rules give the
                                                            same verdict anyway
NG301   expired-exception            exceptions  medium     a named exception is past its expiry
NG401   unmodeled-condition          anomalies   info       a condition or target the reader could
                                                            not model (treated conservatively)
======  ===========================  ==========  =========  ======================================

Severity order: high, medium, low, info. A report is *compliant* iff it has no finding of
severity high or medium (:attr:`CheckReport.compliant`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "CHECKS",
    "FORMAT_VERSION",
    "KINDS",
    "CheckReport",
    "ConfigInfo",
    "ExceptionRef",
    "Finding",
    "Kind",
    "RuleRef",
    "Severity",
    "fingerprint",
]

#: Format version of the JSON report (schema/findings.schema.json); bump on incompatible change.
FORMAT_VERSION = 1

#: The checks a report is organised by (JUnit test cases), in report order.
CHECKS = ("egress", "ingress", "forward", "policies", "anomalies", "exceptions")


class Severity(StrEnum):
    """How bad a finding is; ``rank`` 0 is the worst."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for high ... 3 for info (sort key)."""
        return list(Severity).index(self)

    @property
    def blocking(self) -> bool:
        """True when a finding of this severity makes the configuration non-compliant."""
        return self in (Severity.HIGH, Severity.MEDIUM)


@dataclass(frozen=True)
class Kind:
    """A kind of finding: stable ``code`` (``NG101``), ``name`` (slug), the ``check`` it
    belongs to by default, default ``severity``, a one-line ``title`` and ``help`` text."""

    code: str
    name: str
    check: str
    severity: Severity
    title: str
    help: str


KINDS: dict[str, Kind] = {
    k.code: k
    for k in (
        Kind(
            "NG101",
            "egress-beyond-policy",
            "egress",
            Severity.HIGH,
            "Egress beyond policy",
            "The OUTPUT hook may accept packets that the deployment profile does not permit "
            "(only TCP to the vendor's destinations, DNS to the named resolvers, VPN control "
            "traffic to the peers and named exceptions). Remove or narrow the rules named.",
        ),
        Kind(
            "NG102",
            "ingress-beyond-policy",
            "ingress",
            Severity.HIGH,
            "Ingress beyond policy",
            "The INPUT hook may accept packets other than the vendor's webhook callbacks to the "
            "receivers (and VPN control traffic from the peers). Remove or narrow the rules.",
        ),
        Kind(
            "NG103",
            "forward-accepts",
            "forward",
            Severity.HIGH,
            "Forwarded traffic accepted",
            "A host firewall forwards nothing but replies of tracked connections; the FORWARD "
            "hook may accept other packets.",
        ),
        Kind(
            "NG104",
            "chain-policy-accepts",
            "policies",
            Severity.HIGH,
            "Base chain policy accepts",
            "Packets reach the ACCEPT policy of a base chain. Set the policy to DROP, or end the "
            "chain with a rule that drops everything.",
        ),
        Kind(
            "NG105",
            "family-not-checked",
            "policies",
            Severity.MEDIUM,
            "Address family not checked",
            "The profile enables this address family but no configuration of it was given, so "
            "nothing is proven about it: give its rules too (ip6tables-save for IPv6), or "
            "leave the family out of the profile.",
        ),
        Kind(
            "NG110",
            "required-flow-blocked",
            "egress",
            Severity.MEDIUM,
            "Permitted flow blocked",
            "A flow the profile permits (or the replies to it) is denied by the configuration: "
            "the integration would break.",
        ),
        Kind(
            "NG201",
            "shadowed-rule",
            "anomalies",
            Severity.LOW,
            "Shadowed rule",
            "The rule can never match: earlier rules, at least one with another verdict, take "
            "every packet it would match. It does not do what it says.",
        ),
        Kind(
            "NG202",
            "redundant-rule",
            "anomalies",
            Severity.LOW,
            "Redundant rule",
            "The rule can never match: earlier rules take every packet it would match and "
            "give them the same verdict. It can be removed.",
        ),
        Kind(
            "NG301",
            "expired-exception",
            "exceptions",
            Severity.MEDIUM,
            "Expired exception",
            "A named exception of the profile is past its expiry date: its flow is no longer "
            "permitted. Renew it with a new expiry, or remove it and the rules implementing it.",
        ),
        Kind(
            "NG401",
            "unmodeled-condition",
            "anomalies",
            Severity.INFO,
            "Unmodeled condition",
            "A condition, target or table the reader could not model. The check treats it "
            "conservatively (as possibly matching an ACCEPT, never hiding one).",
        ),
    )
}


@dataclass(frozen=True)
class RuleRef:
    """Evidence: one rule (or chain policy, ``position`` 0) as written, with its place.

    ``source`` is the file as given on the command line, ``line`` 1-based (0 unknown),
    ``verdict`` the action (ACCEPT, DROP, JUMP, ..., or the policy).
    """

    source: str
    line: int
    chain: str
    position: int
    text: str
    verdict: str
    comment: str | None = None

    @property
    def where(self) -> str:
        """``file:line`` (just ``file`` when the line is unknown)."""
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(frozen=True)
class ExceptionRef:
    """A named exception of the profile: name, reason, expiry (ISO date), ticket, and where
    its ``expires`` is written (``source``, ``line``)."""

    name: str
    reason: str
    expires: str
    ticket: str
    source: str
    line: int


@dataclass(frozen=True)
class Finding:
    """One finding (see the module docstring for kinds and severities).

    ``check`` is the check it belongs to (one of :data:`CHECKS`); ``family`` (4/6) and
    ``hook`` (input/output/forward) when it concerns one; ``example`` a packet in
    ``netguard explain`` syntax; ``space`` the header-space rectangle it describes; ``rules``
    the evidence; ``source``/``line`` the primary location when there is no rule (an expired
    exception's line in the deployment file, a reader note).
    """

    kind: Kind
    severity: Severity
    check: str
    message: str
    remediation: str
    fingerprint: str
    family: int | None = None
    hook: str | None = None
    example: str | None = None
    space: str | None = None
    rules: tuple[RuleRef, ...] = ()
    source: str | None = None
    line: int = 0
    exception: ExceptionRef | None = None

    @property
    def code(self) -> str:
        """The kind's stable code, e.g. ``NG101``."""
        return self.kind.code

    @property
    def location(self) -> tuple[str, int] | None:
        """Primary ``(file, line)``: the explicit one, else the first rule's, else None."""
        if self.source is not None:
            return self.source, self.line
        if self.rules:
            return self.rules[0].source, self.rules[0].line
        return None

    def sort_key(self) -> tuple[object, ...]:
        """Severity, code, location, message: the order of every report."""
        loc = self.location or ("", 0)
        return (self.severity.rank, self.code, loc[0], loc[1], self.message, self.fingerprint)


@dataclass(frozen=True)
class ConfigInfo:
    """One configuration file read: ``path`` as given, detected ``format`` and the address
    families of the rule sets it gave (empty for ipset files and AWS side files)."""

    path: str
    format: str
    families: tuple[int, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``netguard check``: the deployment (``deployment`` name, ``mode``,
    ``deployment_file``), the date exceptions were checked against (``as_of``, ISO), the
    configuration files, the findings (sorted) and run-level ``notes``."""

    deployment: str
    mode: str
    deployment_file: str
    as_of: str
    configs: tuple[ConfigInfo, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def compliant(self) -> bool:
        """True when no finding has severity high or medium."""
        return not any(f.severity.blocking for f in self.findings)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity, every severity present (``{"high": 0, ...}``)."""
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def for_check(self, check: str) -> tuple[Finding, ...]:
        """The findings of one check."""
        return tuple(f for f in self.findings if f.check == check)


def fingerprint(*parts: str) -> str:
    """sha256 (hex) of the parts joined by U+001F: stable identity of a finding."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
