"""Policy: the permitted flows a profile asks for, independent of any firewall syntax.

Vocabulary: a *flow* is (direction, protocol, peer prefixes, local prefixes, destination ports).
For egress the *peer* is the destination; for ingress the peer is the source. Everything not
permitted by a rule is denied: a Policy is default-deny by construction. An empty address set
for a family means the rule does not exist in that family; it never means "any address".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from netguard.cidr import Prefix, PrefixSet


class Direction(StrEnum):
    """Traffic direction relative to the protected host or network."""

    EGRESS = "egress"
    INGRESS = "ingress"


class Protocol(StrEnum):
    """IP protocol of a flow (IANA protocol numbers: tcp 6, udp 17, icmp 1/58, esp 50)."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ESP = "esp"

    @property
    def has_ports(self) -> bool:
        """True for protocols with port numbers."""
        return self in (Protocol.TCP, Protocol.UDP)


class Through(StrEnum):
    """Path constraint of a rule: anywhere, or only inside the IPsec tunnel (VPN mode)."""

    ANY = "any"
    TUNNEL = "tunnel"


@dataclass(frozen=True)
class PortRange:
    """Inclusive destination port range, 1-65535."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(f"invalid port range {self.first}-{self.last}")

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class AddressSet:
    """A named, exactly aggregated set of prefixes (IPv4 and IPv6).

    ``name`` is a slug (lowercase letters, digits, '-', at most 27 characters) that targets
    use for ipset, nft set and prefix-list names.
    """

    name: str
    prefixes: PrefixSet

    def for_family(self, version: int) -> tuple[Prefix, ...]:
        """Aggregated prefixes of one family (4 or 6)."""
        return self.prefixes.prefixes(version)


@dataclass(frozen=True)
class PolicyRule:
    """One permitted flow.

    ``id`` is stable across runs and unique in the policy (the profile rule id printed in every
    target's comment). ``peer`` is the remote side; ``local`` the protected side (``None``: any
    local address). ``ports`` are destination ports (empty for ESP and ICMP).
    """

    id: str
    direction: Direction
    protocol: Protocol
    peer: AddressSet
    ports: tuple[PortRange, ...] = ()
    local: AddressSet | None = None
    through: Through = Through.ANY
    description: str = ""
    exception: ExceptionInfo | None = None

    def families(self, enabled: tuple[int, ...]) -> tuple[int, ...]:
        """Families (4, 6) in which this rule exists: the peer set and, if given, the local set
        both have prefixes of that family."""
        out = []
        for v in enabled:
            if not self.peer.for_family(v):
                continue
            if self.local is not None and not self.local.for_family(v):
                continue
            out.append(v)
        return tuple(out)


@dataclass(frozen=True)
class ExceptionInfo:
    """Why an exception rule exists and until when (ISO date)."""

    name: str
    reason: str
    expires: str
    ticket: str = ""


@dataclass(frozen=True)
class LogSpec:
    """Logging of dropped and accepted packets (guide 5.2 'Log all traffic')."""

    enabled: bool
    prefix: str
    accept_prefix: str
    rate_per_minute: int
    burst: int
    log_accepted: bool


@dataclass(frozen=True)
class Endpoint:
    """A vendor endpoint (for allowlists and probes)."""

    name: str
    host: str
    port: int


@dataclass(frozen=True)
class AwsSpec:
    """AWS target settings: VPC, region, naming, quotas (AWS 'Amazon VPC quotas')."""

    vpc_id: str
    region: str
    group_name_prefix: str
    rules_per_group: int
    groups_per_interface: int
    max_rules_times_groups: int
    prefix_lists: bool


@dataclass(frozen=True)
class PrivateLinkSpec:
    """Interface VPC endpoint settings."""

    service_name: str
    endpoint_subnets: AddressSet
    subnet_ids: tuple[str, ...]
    application_cidrs: AddressSet
    application_security_groups: tuple[str, ...]
    private_dns: bool


@dataclass(frozen=True)
class Policy:
    """Everything a target needs: ordered rules plus allowlists and target settings.

    ``families`` holds 4 and/or 6. ``allowlists`` maps a list name to an AddressSet:
    ``customer-inbound`` (what the customer lets in), ``vendor-inbound`` (what the vendor must
    let in: the customer's egress addresses, guide 5.3) and ``egress-destinations``.
    """

    name: str
    mode: str
    description: str
    vendor_name: str
    families: tuple[int, ...]
    rules: tuple[PolicyRule, ...]
    log: LogSpec
    tls_min_version: str
    endpoints: tuple[Endpoint, ...]
    allowlists: dict[str, AddressSet]
    ipset_threshold: int
    aws: AwsSpec
    privatelink: PrivateLinkSpec | None = None
    tunnel_interface: str | None = None
    source_digest: str = ""
    address_sets: tuple[AddressSet, ...] = field(default=())

    def rules_for(self, direction: Direction) -> tuple[PolicyRule, ...]:
        """Rules of one direction, in policy order."""
        return tuple(r for r in self.rules if r.direction == direction)
