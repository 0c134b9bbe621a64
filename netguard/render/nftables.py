"""nftables target: one ``nft -f`` file holding the whole ``inet netguard`` table.

Source: nft(8) of nftables 1.0.6 (section names below are the man page's). The file
``nftables/netguard.nft`` is one transaction ("INPUT FILE FORMATS"; ``nft -f`` commits all
commands of a file atomically or none):

1. ``table inet netguard`` (= ``add table``, TABLES: no error if it exists), then
   ``delete table inet netguard``, then the full ``table inet netguard { ... }`` definition.
   The first line makes the delete valid on an empty ruleset; the delete drops every set, chain
   and rule of the previous load, so a reload replaces the table atomically and is idempotent.
   Other tables (other tools' rules) are never touched. nft 1.0.8 added ``destroy table``;
   the add-then-delete idiom works on older versions too.
2. Named sets (SETS), ``type ipv4_addr`` / ``type ipv6_addr`` with ``flags interval``, one per
   AddressSet and family that an emitted rule uses, named ``<name with '-' as '_'>_v4`` /
   ``_v6``. Elements are the exactly aggregated prefixes (netguard.cidr), sorted, one per line
   with a trailing comma each, so a one-prefix change is a one-line diff. A set is written only
   when a rule uses it, hence never empty.
3. Base chains ``input``, ``output``, ``forward`` (CHAINS: ``type filter hook ... priority
   filter; policy drop;``). input/output: loopback (META EXPRESSIONS ``iif``/``oif``),
   ``ct state established,related`` (CONNTRACK EXPRESSIONS; qualified with ``meta nfproto``
   when only one family is enabled, so a disabled family gets loopback only, as in the
   iptables target), IPv6 neighbour discovery with ``ip6 hoplimit 255`` (RFC 4890 section
   4.4.1; only when IPv6 is enabled), the policy rules (``ct state new``, ``comment "<rule
   id>"``, RULES), a rate-limited log (LIMIT STATEMENT, LOG STATEMENT), and an explicit
   ``drop`` (VERDICT STATEMENT) so the chain fails closed even if its policy is changed.
   forward: log and drop only.

A rule exists in a family only when ``PolicyRule.families`` says so: an empty peer (or local)
set never becomes "any address". Egress rules sit in ``output`` (peer = ``daddr``, local =
``saddr``), ingress rules in ``input`` (peer = ``saddr``, local = ``daddr``). Rules inside the
VPN tunnel match ``oifname``/``iifname`` of ``vpn.tunnel_interface`` when it is set; otherwise
the IPsec processing of the packet: ``rt ipsec exists`` on output ("outgoing packet will be
encapsulated/encrypted by ipsec", ROUTING EXPRESSIONS) and ``meta ipsec exists`` on input
("true if packet was ipsec encrypted", META EXPRESSIONS), the equivalents of iptables
``-m policy --dir out|in --pol ipsec``. (nft(8) IPSEC EXPRESSIONS notes that with an
xfrm_interface the output hook sees plain packets without IPsec info: set
``tunnel_interface`` in that setup.)

Logging accepted flows (``logging.log_accepted``): each policy rule's verdict becomes
``jump log_accept``; the regular chain ``log_accept`` logs through one rate limit (level info)
and then accepts. A ``limit`` in the rule itself would be a match, and over the rate it would
turn an accept into a drop; the separate chain logs at most ``rate_per_minute`` accepted flows
in total and never changes a verdict (the iptables target's ``ng-accept`` chain does the same).
Drops are logged per base chain at level warn (each chain's ``limit`` has its own bucket).

Every printed token is a :class:`Safe` string built here from validated values (rule ids and set
names are re-checked against nft's identifier rules and raise ``RenderError`` otherwise;
prefixes come from ``ipaddress`` objects) or an int. Free text (descriptions, exception reasons,
log prefixes) reaches the template as plain ``str`` and can only be printed through the
``comment`` filter (``#`` lines) or ``nft_string``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2

from netguard.errors import RenderError
from netguard.model.policy import (
    AddressSet,
    Direction,
    ExceptionInfo,
    Policy,
    PolicyRule,
    Protocol,
    Through,
)
from netguard.render.base import Renderer, Safe, Target, register

NFT_FILE = "nftables/netguard.nft"
TEMPLATE = "nftables/netguard.nft.j2"

# nft(8) INPUT FILE FORMATS: an identifier starts with a letter, then letters, digits, '/', '\',
# '_' and '.'; we allow the safe subset. The kernel limits set names to 255 bytes
# (NFT_NAME_MAXLEN 256 with the NUL); nft 1.0.6 refuses a rule comment over 128 bytes.
_SET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
# Linux interface names: at most 15 bytes (IFNAMSIZ 16); the schema allows this alphabet.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def set_name(address_set: str, version: int) -> str:
    """nft set name for one family of an AddressSet: ``vendor-api``, 4 -> ``vendor_api_v4``.

    ``address_set`` is an AddressSet slug, ``version`` 4 or 6. Raises ``RenderError`` when the
    result is not a plain nft identifier (nft(8) INPUT FILE FORMATS, "Identifiers").
    """
    if version not in (4, 6):
        raise RenderError(f"unknown address family {version!r}")
    name = f"{address_set.replace('-', '_')}_v{version}"
    if not _SET_NAME.fullmatch(name):
        raise RenderError(f"address set name {address_set!r} cannot be an nft set name")
    return name


@dataclass(frozen=True)
class NftSet:
    """One named interval set of one family (nft(8) SETS).

    ``name`` is an nft identifier, ``type`` ``ipv4_addr`` or ``ipv6_addr``, ``elements`` the
    aggregated prefixes in address order (never empty), ``source`` the AddressSet slug.
    """

    name: Safe
    type: Safe
    elements: tuple[Safe, ...]
    source: Safe


@dataclass(frozen=True)
class NftRule:
    """One policy rule in one family; every printed field is Safe (empty: not matched).

    ``family`` is the payload protocol ``ip``/``ip6``; ``peer_field``/``local_field`` are
    ``saddr``/``daddr`` with ``*_set`` the set names (``local_set`` empty: any local address).
    ``protocol`` (``tcp``/``udp``) goes with ``ports`` (``443`` or ``1000-2000``, each one
    element of a ``dport`` match); ``l4proto`` (``esp``, ``icmp``, ``ipv6-icmp``) is used for
    protocols without ports. ``ifname_key``/``ifname`` (``oifname``, ``"vti0"``) or
    ``ipsec_key`` (``rt`` on output, ``meta`` on input) restrict a rule to the VPN tunnel.
    ``description`` and ``exception`` are free text for ``#`` comment lines only, printed
    above the rule's first family (``annotate``).
    """

    id: Safe
    family: Safe
    peer_field: Safe
    peer_set: Safe
    local_field: Safe
    local_set: Safe
    protocol: Safe
    ports: tuple[Safe, ...]
    l4proto: Safe
    ifname_key: Safe
    ifname: Safe
    ipsec_key: Safe
    description: str
    exception: ExceptionInfo | None
    annotate: bool = True


@dataclass(frozen=True)
class NftChain:
    """A filter base chain with policy drop: ``name`` is also its hook (``input``/``output``);
    ``loopback_key`` is ``iif`` or ``oif``; ``rules`` in policy order."""

    name: Safe
    loopback_key: Safe
    rules: tuple[NftRule, ...]


@dataclass(frozen=True)
class NftHeader:
    """Identification of the policy for the file header; plain text, printed in ``#`` lines
    through the ``comment`` filter only."""

    name: str
    mode: str
    description: str


class _Builder:
    """Turns PolicyRules into NftRules of one policy, collecting the sets they use."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.sets: dict[str, NftSet] = {}
        self._set_sources: dict[str, AddressSet] = {}

    def use_set(self, aset: AddressSet, version: int) -> Safe:
        """Name of the set holding ``aset``'s prefixes of ``version``, created on first use.

        Raises ``RenderError`` if two different AddressSets map to one nft set name, or if the
        family holds no prefix (a rule must never reach here for an empty family).
        """
        name = set_name(aset.name, version)
        known = self._set_sources.get(name)
        if known is not None:
            if known != aset:
                raise RenderError(
                    f"address sets {known.name!r} and {aset.name!r} differ but share the nft "
                    f"set name {name!r}"
                )
            return Safe(name)
        prefixes = aset.for_family(version)
        if not prefixes:
            raise RenderError(f"address set {aset.name!r} has no IPv{version} prefix")
        self._set_sources[name] = aset
        self.sets[name] = NftSet(
            name=Safe(name),
            type=Safe("ipv4_addr" if version == 4 else "ipv6_addr"),
            elements=tuple(Safe(str(p)) for p in prefixes),
            source=Safe(aset.name),
        )
        return Safe(name)

    def rule(self, rule: PolicyRule, version: int, annotate: bool = True) -> NftRule:
        """The nft rule for ``rule`` in family ``version`` (which must be in its families);
        ``annotate``: print the description comment above it."""
        if not _RULE_ID.fullmatch(rule.id):
            raise RenderError(f"rule id {rule.id!r} cannot be an nft rule comment")
        egress = rule.direction == Direction.EGRESS
        peer_field, local_field = ("daddr", "saddr") if egress else ("saddr", "daddr")
        protocol = l4proto = Safe("")
        ports: tuple[Safe, ...] = ()
        if rule.protocol.has_ports:
            if not rule.ports:
                raise RenderError(f"rule {rule.id!r}: {rule.protocol} rule without ports")
            protocol = Safe(rule.protocol.value)
            ports = tuple(Safe(str(p)) for p in rule.ports)
        elif rule.protocol == Protocol.ICMP:
            l4proto = Safe("icmp" if version == 4 else "ipv6-icmp")
        elif rule.protocol == Protocol.ESP:
            l4proto = Safe("esp")
        else:  # pragma: no cover - a new Protocol member must be handled explicitly
            raise RenderError(f"rule {rule.id!r}: protocol {rule.protocol} is not supported")
        ifname_key = ifname = ipsec_key = Safe("")
        if rule.through == Through.TUNNEL:
            iface = self.policy.tunnel_interface
            if iface:
                if not _IFNAME.fullmatch(iface):
                    raise RenderError(f"tunnel interface {iface!r} is not an interface name")
                ifname_key = Safe("oifname" if egress else "iifname")
                ifname = Safe(f'"{iface}"')
            else:
                ipsec_key = Safe("rt" if egress else "meta")
        local_set = Safe("")
        if rule.local is not None:
            local_set = self.use_set(rule.local, version)
        return NftRule(
            id=Safe(rule.id),
            family=Safe("ip" if version == 4 else "ip6"),
            peer_field=Safe(peer_field),
            peer_set=self.use_set(rule.peer, version),
            local_field=Safe(local_field),
            local_set=local_set,
            protocol=protocol,
            ports=ports,
            l4proto=l4proto,
            ifname_key=ifname_key,
            ifname=ifname,
            ipsec_key=ipsec_key,
            description=rule.description,
            exception=rule.exception,
            annotate=annotate,
        )


def build_rules(policy: Policy) -> tuple[list[NftRule], list[NftRule], list[NftSet]]:
    """``(output_rules, input_rules, sets)`` for a policy, in policy order, families 4 then 6.

    A rule appears once per family in ``rule.families(policy.families)``; sets are sorted by
    name and hold only families some rule uses. Raises ``RenderError`` (see :class:`_Builder`).
    """
    builder = _Builder(policy)
    output: list[NftRule] = []
    input_: list[NftRule] = []
    for rule in policy.rules:
        for i, version in enumerate(rule.families(policy.families)):
            nft_rule = builder.rule(rule, version, annotate=i == 0)
            (output if rule.direction == Direction.EGRESS else input_).append(nft_rule)
    return output, input_, [builder.sets[k] for k in sorted(builder.sets)]


@register
class NftablesRenderer(Renderer):
    """Renders ``nftables/netguard.nft``: the ``inet netguard`` table, loadable with ``nft -f``.

    Raises ``RenderError`` when a rule id, set name or tunnel interface cannot be written as
    nft syntax; template errors surface through ``render_targets``.
    """

    target = Target.NFTABLES

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        """Return ``{"nftables/netguard.nft": text}`` for ``policy`` (no I/O)."""
        output, input_, sets = build_rules(policy)
        both = 4 in policy.families and 6 in policy.families
        if both:
            established_family = Safe("")
        elif 4 in policy.families:
            established_family = Safe("ipv4")
        elif 6 in policy.families:
            established_family = Safe("ipv6")
        else:
            raise RenderError("the policy enables no address family")
        text = env.get_template(TEMPLATE).render(
            policy=NftHeader(policy.name, policy.mode, policy.description),
            sets=sets,
            chains=[
                NftChain(Safe("input"), Safe("iif"), tuple(input_)),
                NftChain(Safe("output"), Safe("oif"), tuple(output)),
            ],
            ipv6=6 in policy.families,
            established_family=established_family,
            log=policy.log,
        )
        return {NFT_FILE: text}
