"""The AWS security-group plan: one target-independent data model that all three AWS renderers
(CloudFormation, Terraform, EC2 API) serialise, so that they cannot disagree.

:func:`plan_security_groups` turns a :class:`~netguard.model.policy.Policy` into an
:class:`AwsPlan`: security groups by *role*, each with ingress and egress :class:`SgRule`
entries (one protocol, one port range, one peer: a CIDR, a prefix list, a group of the plan or
an existing group id), optional customer-managed prefix lists, and for privatelink the
interface VPC endpoint.

Roles per mode (vendor guide 5.1):

- public-https: ``app`` (egress to the vendor API, DNS, exceptions; webhook ingress).
- vpn: ``app`` (the same, reached through the tunnel) and ``vpn-gateway`` (IKE UDP 500, NAT-T
  UDP 4500 and ESP, IP protocol 50, to and from the VPN peers) for a customer-run VPN appliance.
- privatelink: ``endpoint`` (ingress TCP 443 from the application CIDRs, the listed application
  security groups and the ``app`` group; no egress) and ``app`` (egress TCP 443 to the endpoint
  group by reference, DNS, exceptions; webhook ingress).

A security group matches only the remote address (the source of inbound, the destination of
outbound traffic); it cannot restrict the local address. A webhook rule's receiver addresses are
therefore not expressible: the rule's description and the group's notes say so, and the group
must be attached only to the receivers' network interfaces.

Quotas (AWS "Amazon VPC quotas", "Security group rules" / "Security group size"): every
``CIDR x port range x protocol`` is one rule, counted per direction and per address family.
When a role's entries do not fit one group they are packed into numbered groups
(``<prefix>-<deployment>-app-1``, ``-2``, ...) that are all attached to the same interfaces
(:mod:`netguard.aws_quota`). With ``aws.prefix_lists`` an address list whose CIDRs would not fit
one group by themselves becomes a customer-managed prefix list per family ("Group CIDR blocks
using managed prefix lists"), each reference weighing its max-entries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from netguard.aws_quota import PREFIX_LIST_MAX_ENTRIES, Item, SgQuotas, pack
from netguard.errors import RenderError
from netguard.model.policy import AddressSet, Direction, Policy, PolicyRule, Protocol
from netguard.render.base import escape_aws_description

ROLE_APP = "app"
ROLE_VPN_GATEWAY = "vpn-gateway"
ROLE_ENDPOINT = "endpoint"

_ROLES_BY_MODE = {
    "public-https": (ROLE_APP,),
    "vpn": (ROLE_APP, ROLE_VPN_GATEWAY),
    "privatelink": (ROLE_ENDPOINT, ROLE_APP),
}
_VPN_GATEWAY_RULE_IDS = frozenset(
    f"{d}-{k}" for d in ("egress", "ingress") for k in ("ike", "nat-t", "esp")
)
ENDPOINT_RULE_ID = "endpoint-https-in"

_ROLE_DESCRIPTIONS = {
    ROLE_APP: "application hosts - HTTPS to the {vendor} API, DNS, webhook callbacks in",
    ROLE_VPN_GATEWAY: "VPN appliance - IKE, NAT-T and ESP with the {vendor} VPN peers only",
    ROLE_ENDPOINT: "interface VPC endpoint to {vendor} - HTTPS in from the applications only",
}


class PeerKind(StrEnum):
    """What the remote side of an :class:`SgRule` is."""

    CIDR_IPV4 = "cidr-ipv4"
    CIDR_IPV6 = "cidr-ipv6"
    PREFIX_LIST = "prefix-list"
    GROUP = "group"
    """A security group of this plan, by its key (``app``, ``endpoint-1``)."""
    GROUP_ID = "group-id"
    """An existing security group, by its ``sg-`` id."""


@dataclass(frozen=True)
class SgRule:
    """One security-group rule: an AWS ``IpPermission`` with exactly one peer.

    ``ip_protocol`` is the EC2 ``IpProtocol``: ``"tcp"``, ``"udp"``, ``"icmp"``, ``"icmpv6"``,
    ``"50"`` (ESP) or ``"-1"`` (all). ``from_port``/``to_port`` are the port range for TCP and
    UDP, ``-1``/``-1`` (every type and code) for ICMP, and ``None`` for protocols without ports
    and for ICMPv6, where an omitted range means every type and code (EC2 API Reference,
    ``IpPermission`` and ``AuthorizeSecurityGroupIngress``). ``peer`` is a CIDR, a prefix-list
    key, a group key or an ``sg-`` id according to ``peer_kind``. ``description`` is already
    restricted to the characters AWS accepts and starts with ``rule_id``. ``source`` names the
    address list the entry came from (empty for group references).
    """

    rule_id: str
    direction: Direction
    ip_protocol: str
    from_port: int | None
    to_port: int | None
    peer_kind: PeerKind
    peer: str
    description: str
    source: str = ""

    @property
    def family(self) -> int | None:
        """4 or 6 for a CIDR peer; ``None`` for references (their family is the target's)."""
        if self.peer_kind == PeerKind.CIDR_IPV4:
            return 4
        if self.peer_kind == PeerKind.CIDR_IPV6:
            return 6
        return None

    @property
    def has_ports(self) -> bool:
        """True when ``from_port``/``to_port`` are given (TCP, UDP, ICMP for IPv4)."""
        return self.from_port is not None


DEFAULT_EGRESS_PLACEHOLDER = SgRule(
    rule_id="default-deny-egress",
    direction=Direction.EGRESS,
    ip_protocol="-1",
    from_port=None,
    to_port=None,
    peer_kind=PeerKind.CIDR_IPV4,
    peer="127.0.0.1/32",
    description=(
        "default-deny-egress: this group permits no egress; a loopback-only rule replaces "
        "the default allow-all egress rule"
    ),
)
"""The rule CloudFormation needs so that a group without egress rules loses AWS's default
allow-all egress rule ("AWS::EC2::SecurityGroup", property SecurityGroupEgress: the default
rule is removed only when egress rules are specified; to remove it, limit egress to
127.0.0.1/32)."""


@dataclass(frozen=True)
class SecurityGroup:
    """One security group of the plan.

    ``key`` is the role, numbered when the role needed several groups (``app``, or ``app-1``,
    ``app-2``); ``name`` is ``<aws.group_name_prefix>-<deployment>-<key>``. ``notes`` are
    plain-ASCII remarks that targets print as comments or metadata.
    """

    key: str
    role: str
    name: str
    description: str
    ingress: tuple[SgRule, ...]
    egress: tuple[SgRule, ...]
    notes: tuple[str, ...] = ()

    def rules(self) -> tuple[SgRule, ...]:
        """Ingress then egress rules."""
        return self.ingress + self.egress


@dataclass(frozen=True)
class PrefixList:
    """A customer-managed prefix list of one family; ``max_entries`` equals the entry count."""

    key: str
    name: str
    family: int
    entries: tuple[str, ...]

    @property
    def max_entries(self) -> int:
        """MaxEntries: what each reference counts against a group's rules quota."""
        return len(self.entries)

    @property
    def address_family(self) -> str:
        """``"IPv4"`` or ``"IPv6"`` (EC2 ``CreateManagedPrefixList`` AddressFamily)."""
        return f"IPv{self.family}"


@dataclass(frozen=True)
class VpcEndpointPlan:
    """The interface VPC endpoint of privatelink mode; ``security_group_keys`` are plan keys;
    ``name`` (its Name tag) is ``<aws.group_name_prefix>-<deployment>-vendor-endpoint``."""

    name: str
    service_name: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_keys: tuple[str, ...]
    private_dns: bool


@dataclass(frozen=True)
class AwsPlan:
    """Everything the AWS targets print: groups in declaration order, prefix lists, endpoint.

    ``description`` is the profile's description restricted to the AWS description characters
    (ASCII: a JSON escape of a character outside the BMP would not read back the same as YAML).

    Group order is fixed per mode (privatelink: endpoint groups first, then application
    groups); targets declare resources in this order, and a rule that references a group
    declared after its own group is a *forward reference* (:meth:`is_forward_reference`),
    which targets declaring rules inline must emit separately to avoid a dependency cycle.
    """

    deployment: str
    mode: str
    description: str
    vendor_name: str
    vpc_id: str
    region: str
    families: tuple[int, ...]
    groups: tuple[SecurityGroup, ...]
    prefix_lists: tuple[PrefixList, ...] = ()
    endpoint: VpcEndpointPlan | None = None
    notes: tuple[str, ...] = field(default=())

    def group(self, key: str) -> SecurityGroup:
        """The group with ``key``. Raises ``KeyError`` for an unknown key."""
        for g in self.groups:
            if g.key == key:
                return g
        raise KeyError(key)

    def prefix_list(self, key: str) -> PrefixList:
        """The prefix list with ``key``. Raises ``KeyError`` for an unknown key."""
        for p in self.prefix_lists:
            if p.key == key:
                return p
        raise KeyError(key)

    def is_forward_reference(self, group: SecurityGroup, rule: SgRule) -> bool:
        """True when ``rule`` (of ``group``) references a plan group declared after ``group``."""
        if rule.peer_kind != PeerKind.GROUP:
            return False
        keys = [g.key for g in self.groups]
        return keys.index(rule.peer) > keys.index(group.key)

    def group_keys(self, role: str) -> tuple[str, ...]:
        """Keys of the groups of one role, in order."""
        return tuple(g.key for g in self.groups if g.role == role)


# --- building entries -------------------------------------------------------------------------


def _rule_text(rule: PolicyRule) -> str:
    text = f"{rule.id}: {rule.description or rule.id}"
    if rule.exception is not None:
        text += f" (expires {rule.exception.expires})"
    if rule.local is not None:
        text += " - the receiver address is not enforced by a security group"
    return escape_aws_description(text)


def _port_specs(rule: PolicyRule, family: int) -> Iterator[tuple[str, int | None, int | None]]:
    """(IpProtocol, FromPort, ToPort) per port range of a rule (EC2 ``IpPermission``)."""
    if rule.protocol == Protocol.ESP:
        yield "50", None, None
    elif rule.protocol == Protocol.ICMP and family == 4:
        yield "icmp", -1, -1
    elif rule.protocol == Protocol.ICMP:
        # "For icmpv6, the port range is optional; if you omit the port range, traffic for all
        # types and codes is allowed" (EC2 API Reference, AuthorizeSecurityGroupIngress).
        yield "icmpv6", None, None
    elif not rule.ports:
        yield rule.protocol.value, 0, 65535
    else:
        for p in rule.ports:
            yield rule.protocol.value, p.first, p.last


def _cidr_kind(family: int) -> PeerKind:
    return PeerKind.CIDR_IPV4 if family == 4 else PeerKind.CIDR_IPV6


def _role_of(policy: Policy, rule: PolicyRule) -> str:
    if policy.mode == "vpn" and rule.id in _VPN_GATEWAY_RULE_IDS:
        return ROLE_VPN_GATEWAY
    return ROLE_APP


class _Builder:
    """Collects candidate entries per role, then converts, de-duplicates and packs them."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.roles = _ROLES_BY_MODE[policy.mode]
        self.entries: dict[str, list[SgRule]] = {r: [] for r in self.roles}
        self.notes: dict[str, list[str]] = {r: [] for r in self.roles}
        self.sets: dict[str, AddressSet] = {s.name: s for s in policy.address_sets}
        self.prefix_lists: dict[str, PrefixList] = {}
        if ROLE_VPN_GATEWAY in self.notes:
            self.notes[ROLE_VPN_GATEWAY].append(
                "attach to the network interface of the customer-run VPN appliance only"
            )
        self.quotas = SgQuotas(
            policy.aws.rules_per_group,
            policy.aws.groups_per_interface,
            policy.aws.max_rules_times_groups,
        )

    def add_policy_rules(self) -> None:
        """One candidate entry per rule x family x prefix x port range, by role."""
        policy = self.policy
        for rule in policy.rules:
            role = _role_of(policy, rule)
            text = _rule_text(rule)
            if policy.mode == "privatelink" and rule.id == "egress-vendor-api":
                # The endpoint's addresses are those of its network interfaces: reference its
                # group instead of the endpoint subnets (guide 5.1 'AWS PrivateLink').
                for proto, lo, hi in _port_specs(rule, 4):
                    self.entries[role].append(
                        SgRule(
                            rule.id,
                            rule.direction,
                            proto,
                            lo,
                            hi,
                            PeerKind.GROUP,
                            ROLE_ENDPOINT,
                            text,
                        )
                    )
                self.notes[role].append(
                    f"{rule.id}: reaches the vendor only through the interface endpoint, by "
                    "reference to the endpoint security group"
                )
                continue
            for family in rule.families(policy.families):
                for prefix in rule.peer.for_family(family):
                    for proto, lo, hi in _port_specs(rule, family):
                        self.entries[role].append(
                            SgRule(
                                rule.id,
                                rule.direction,
                                proto,
                                lo,
                                hi,
                                _cidr_kind(family),
                                str(prefix),
                                text,
                                rule.peer.name,
                            )
                        )
            if rule.local is not None and rule.families(policy.families):
                receivers = ", ".join(
                    str(p) for v in rule.families(policy.families) for p in rule.local.for_family(v)
                )
                self.notes[role].append(
                    f"{rule.id}: a security group cannot match the destination address; attach "
                    f"this group only to the network interfaces of the receivers {receivers}"
                )

    def add_endpoint_rules(self) -> None:
        """privatelink: the endpoint group's ingress (application CIDRs, groups, app group)."""
        pl = self.policy.privatelink
        if pl is None:
            return
        self.sets.setdefault(pl.application_cidrs.name, pl.application_cidrs)
        role = ROLE_ENDPOINT
        for family in self.policy.families:
            for prefix in pl.application_cidrs.for_family(family):
                self.entries[role].append(
                    SgRule(
                        ENDPOINT_RULE_ID,
                        Direction.INGRESS,
                        "tcp",
                        443,
                        443,
                        _cidr_kind(family),
                        str(prefix),
                        f"{ENDPOINT_RULE_ID}: HTTPS to the vendor endpoint from the "
                        "application CIDRs",
                        pl.application_cidrs.name,
                    )
                )
        for group_id in pl.application_security_groups:
            self.entries[role].append(
                SgRule(
                    ENDPOINT_RULE_ID,
                    Direction.INGRESS,
                    "tcp",
                    443,
                    443,
                    PeerKind.GROUP_ID,
                    group_id,
                    escape_aws_description(
                        f"{ENDPOINT_RULE_ID}: HTTPS to the vendor endpoint from application "
                        f"security group {group_id}"
                    ),
                )
            )
        self.entries[role].append(
            SgRule(
                ENDPOINT_RULE_ID,
                Direction.INGRESS,
                "tcp",
                443,
                443,
                PeerKind.GROUP,
                ROLE_APP,
                f"{ENDPOINT_RULE_ID}: HTTPS to the vendor endpoint from the netguard "
                "application group",
            )
        )
        self.notes[role].append(
            "attached to the interface endpoint's network interfaces only; permits no egress"
        )

    def _prefix_list(self, source: str, family: int) -> PrefixList:
        """The prefix list of one address list and family; RenderError over 1,000 entries."""
        key = f"{source}-ipv{family}"
        if key not in self.prefix_lists:
            prefixes = self.sets[source].for_family(family)
            if len(prefixes) > PREFIX_LIST_MAX_ENTRIES:
                raise RenderError(
                    f"aws: address list {source} has {len(prefixes)} IPv{family} prefixes, more "
                    f"than the {PREFIX_LIST_MAX_ENTRIES} entries a customer-managed prefix list "
                    "may hold (Amazon VPC quotas, Customer-managed prefix lists)"
                )
            name = f"{self.policy.aws.group_name_prefix}-{self.policy.name}-{key}"
            self.prefix_lists[key] = PrefixList(key, name, family, tuple(str(p) for p in prefixes))
        return self.prefix_lists[key]

    def use_prefix_lists(self, role: str) -> None:
        """Move every address list whose CIDR entries alone exceed one group into a prefix list."""
        entries = self.entries[role]
        counts = Counter((e.direction, e.source, e.family) for e in entries if e.family is not None)
        convert = {k for k, n in counts.items() if n > self.quotas.rules_per_group}
        if not convert:
            return
        out: list[SgRule] = []
        for e in entries:
            if e.family is None or (e.direction, e.source, e.family) not in convert:
                out.append(e)
                continue
            plist = self._prefix_list(e.source, e.family)
            out.append(
                SgRule(
                    e.rule_id,
                    e.direction,
                    e.ip_protocol,
                    e.from_port,
                    e.to_port,
                    PeerKind.PREFIX_LIST,
                    plist.key,
                    e.description,
                    e.source,
                )
            )
        self.entries[role] = out

    def dedupe(self, role: str) -> None:
        """Drop entries identical to an earlier one (AWS refuses duplicate rules)."""
        seen: dict[tuple[object, ...], SgRule] = {}
        out: list[SgRule] = []
        for e in self.entries[role]:
            key = (e.direction, e.ip_protocol, e.from_port, e.to_port, e.peer_kind, e.peer)
            kept = seen.get(key)
            if kept is None:
                seen[key] = e
                out.append(e)
            elif kept.rule_id != e.rule_id:
                self.notes[role].append(
                    f"{e.rule_id}: {e.ip_protocol} to/from {e.peer} is already permitted by "
                    f"{kept.rule_id}"
                )
        self.entries[role] = out
        self.notes[role] = list(dict.fromkeys(self.notes[role]))

    def item(self, e: SgRule) -> Item:
        """How one entry counts against a group ('Security group rules', Security group size)."""
        d = e.direction.value
        if e.peer_kind == PeerKind.PREFIX_LIST:
            plist = self.prefix_lists[e.peer]
            return Item(
                (((d, plist.family), plist.max_entries),),
                f"prefix list {plist.name} (address list {e.source}, {plist.max_entries} "
                f"IPv{plist.family} prefixes)",
                "prefix list",
            )
        if e.family is None:
            return Item((((d, 4), 1), ((d, 6), 1)), "security group references", "reference")
        size = len(self.sets[e.source].for_family(e.family)) if e.source in self.sets else 1
        return Item(
            (((d, e.family), 1),),
            f"address list {e.source} ({size} IPv{e.family} prefixes)",
        )


_LAST_PLAN: list[tuple[Policy, AwsPlan]] = []


def plan_security_groups(policy: Policy) -> AwsPlan:
    """The plan for ``policy``, computed once per Policy object (the three AWS targets of one
    run share it; policies are immutable, so the cached plan cannot go stale)."""
    if _LAST_PLAN and _LAST_PLAN[0][0] is policy:
        return _LAST_PLAN[0][1]
    plan = _plan_security_groups(policy)
    _LAST_PLAN[:] = [(policy, plan)]
    return plan


def _plan_security_groups(policy: Policy) -> AwsPlan:
    """Turn a Policy into the security groups, prefix lists and endpoint the AWS targets print.

    Only families in ``policy.families`` get rules, and a rule whose address set is empty in a
    family gets no rule there (never ``0.0.0.0/0``). The result is deterministic: the same
    policy gives an equal plan.

    Raises :class:`~netguard.errors.RenderError` when a role's rules cannot fit in the groups
    one network interface may take, or a prefix list would exceed its quota (messages name the
    address list, its size and the quota; AWS "Amazon VPC quotas").
    """
    b = _Builder(policy)
    b.add_policy_rules()
    b.add_endpoint_rules()
    packed: dict[str, list[list[SgRule]]] = {}
    for role in b.roles:
        if policy.aws.prefix_lists:
            b.use_prefix_lists(role)
        b.dedupe(role)
        entries = b.entries[role]
        bins = pack([b.item(e) for e in entries], b.quotas, f"{role} ({policy.name})")
        packed[role] = [[entries[i] for i in members] for members in bins] or [[]]
    keys: dict[str, list[str]] = {
        role: [role] if len(bins) == 1 else [f"{role}-{i}" for i in range(1, len(bins) + 1)]
        for role, bins in packed.items()
    }

    def resolve(e: SgRule) -> SgRule:
        if e.peer_kind != PeerKind.GROUP:
            return e
        # Every group of a role attaches to the same interfaces: the first stands for the role.
        return replace(e, peer=keys[e.peer][0])

    prefix = policy.aws.group_name_prefix
    groups: list[SecurityGroup] = []
    for role in b.roles:
        split = len(packed[role]) > 1
        for key, members in zip(keys[role], packed[role], strict=True):
            description = f"netguard {policy.name}: " + _ROLE_DESCRIPTIONS[role].format(
                vendor=policy.vendor_name
            )
            notes = list(b.notes[role])
            if split:
                description += f" (one of several {prefix}-{policy.name}-{role}-N groups)"
                notes.insert(
                    0,
                    (
                        f"one of {len(packed[role])} groups of role {role}: attach every "
                        f"{prefix}-{policy.name}-{role}-N group to the same network interfaces"
                    ),
                )
            groups.append(
                SecurityGroup(
                    key=key,
                    role=role,
                    name=f"{prefix}-{policy.name}-{key}",
                    description=escape_aws_description(description),
                    ingress=tuple(resolve(e) for e in members if e.direction == Direction.INGRESS),
                    egress=tuple(resolve(e) for e in members if e.direction == Direction.EGRESS),
                    notes=tuple(notes),
                )
            )
    endpoint = None
    if policy.privatelink is not None:
        pl = policy.privatelink
        endpoint = VpcEndpointPlan(
            f"{prefix}-{policy.name}-vendor-endpoint",
            pl.service_name,
            policy.aws.vpc_id,
            pl.subnet_ids,
            tuple(keys[ROLE_ENDPOINT]),
            pl.private_dns,
        )
    used = {e.peer for g in groups for e in g.rules() if e.peer_kind == PeerKind.PREFIX_LIST}
    plan_notes = [
        "each CIDR x port range x protocol is one security-group rule; AWS counts rules per "
        "direction and per address family (Amazon VPC quotas)",
        "references to a group of this deployment name the first group of its role: all groups "
        "of a role are attached together",
    ]
    if policy.mode == "vpn":
        plan_notes.append(
            "vpn: the app groups see the traffic inside the tunnel; the vpn-gateway group goes on "
            "the customer-run VPN appliance"
        )
    return AwsPlan(
        deployment=policy.name,
        mode=policy.mode,
        description=escape_aws_description(policy.description),
        vendor_name=policy.vendor_name,
        vpc_id=policy.aws.vpc_id,
        region=policy.aws.region,
        families=policy.families,
        groups=tuple(groups),
        prefix_lists=tuple(b.prefix_lists[k] for k in sorted(b.prefix_lists) if k in used),
        endpoint=endpoint,
        notes=tuple(plan_notes),
    )
