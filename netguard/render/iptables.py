"""iptables target: iptables-restore files for IPv4 and IPv6, plus an ``ipset restore`` file.

Layout of each family's filter table (iptables(8), iptables-extensions(8)):

- policies DROP on INPUT, FORWARD and OUTPUT;
- INPUT/OUTPUT: loopback, conntrack ESTABLISHED,RELATED, (IPv6) neighbour discovery with hop
  limit 255 and multicast listener discovery with hop limit 1 (RFC 4890 section 4.4.1), then
  the ``ng-ingress`` / ``ng-egress`` chain, then ``ng-drop``;
- ``ng-egress`` / ``ng-ingress``: one rule per permitted flow and prefix, ``--ctstate NEW``,
  each commented with its profile rule id;
- ``ng-drop``: rate-limited LOG (guide 5.2 "log all traffic"), then DROP.

An address list longer than ``iptables.ipset_threshold`` is matched through a ``hash:net`` ipset
(ipset(8)), one per family, with ``maxelem`` sized to fit. The ipset file first creates every
live set (kept if it exists), then builds every replacement in a temporary set, and only then
swaps them all in: a failure while filling leaves every live set untouched, and each swap is
atomic. A family the profile does not enable still gets a file: DROP policies
with loopback only, so turning IPv6 off never leaves it unfiltered.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from netguard.cidr import Prefix
from netguard.model.policy import AddressSet, Direction, Policy, PolicyRule, Protocol, Through
from netguard.render.base import Renderer, Safe, Target, register

# maxelem of every set: a fixed ceiling, because `ipset restore -exist` refuses to re-create an
# existing set with a different maxelem, so a size that followed the list would break the reload
# of a list that grew across a boundary. Hash sets allocate by content, not by maxelem
# (ipset(8) "hash:net"), so the ceiling costs no memory. Larger lists get the next power of two.
IPSET_MAXELEM = 1 << 20
_EMPTY = Safe("")
MULTIPORT_MAX = 15  # iptables-extensions(8) multiport: up to 15 ports, a range counts as two


@dataclass(frozen=True)
class IptRule:
    """One ``-A`` line: every field is a Safe token or empty."""

    chain: Safe
    target: Safe
    comment: Safe
    protocol: Safe = _EMPTY
    source: Safe = _EMPTY
    destination: Safe = _EMPTY
    in_interface: Safe = _EMPTY
    out_interface: Safe = _EMPTY
    source_set: Safe = _EMPTY
    destination_set: Safe = _EMPTY
    dport: Safe = _EMPTY
    dports: Safe = _EMPTY
    icmp: Safe = _EMPTY
    ipsec_dir: Safe = _EMPTY
    ctstate: Safe = _EMPTY


@dataclass(frozen=True)
class IpSet:
    """One ``hash:net`` set of one family."""

    name: Safe
    temp_name: Safe
    family: Safe
    hashsize: int
    maxelem: int
    members: tuple[Safe, ...]


def ipset_name(set_name: str, version: int, temp: bool = False) -> str:
    """ipset name for an AddressSet: ``ng4-vendor-api`` (at most 31 characters, ipset(8))."""
    name = f"ng{version}{'t' if temp else ''}-{set_name}"
    if len(name) > 31:
        raise ValueError(f"ipset name {name!r} is longer than 31 characters")
    return name


def _pow2_at_least(n: int) -> int:
    size = 1
    while size < n:
        size <<= 1
    return size


def _port_groups(rule: PolicyRule) -> list[tuple[Safe, Safe]]:
    """(dport, dports) pairs: a single port/range uses --dport, lists use multiport chunks."""
    if not rule.ports:
        return [(Safe(""), Safe(""))]
    if len(rule.ports) == 1:
        p = rule.ports[0]
        return [(Safe(str(p.first) if p.first == p.last else f"{p.first}:{p.last}"), Safe(""))]
    groups: list[tuple[Safe, Safe]] = []
    chunk: list[str] = []
    weight = 0
    for p in rule.ports:
        w = 1 if p.first == p.last else 2
        if weight + w > MULTIPORT_MAX:
            groups.append((Safe(""), Safe(",".join(chunk))))
            chunk, weight = [], 0
        chunk.append(str(p.first) if p.first == p.last else f"{p.first}:{p.last}")
        weight += w
    groups.append((Safe(""), Safe(",".join(chunk))))
    return groups


class _FamilyBuilder:
    def __init__(self, policy: Policy, version: int) -> None:
        self.policy = policy
        self.version = version
        self.sets: dict[str, IpSet] = {}

    def _address_matches(self, aset: AddressSet | None) -> list[tuple[Safe, Safe]]:
        """(cidr, set_name) alternatives for one side; [("", "")] means any address."""
        if aset is None:
            return [(Safe(""), Safe(""))]
        prefixes: tuple[Prefix, ...] = aset.for_family(self.version)
        if len(prefixes) > self.policy.ipset_threshold:
            name = ipset_name(aset.name, self.version)
            if name not in self.sets:
                count = len(prefixes)
                self.sets[name] = IpSet(
                    Safe(name),
                    Safe(ipset_name(aset.name, self.version, temp=True)),
                    Safe("inet" if self.version == 4 else "inet6"),
                    max(1024, _pow2_at_least(count // 4)),
                    max(IPSET_MAXELEM, _pow2_at_least(count)),
                    tuple(Safe(str(p)) for p in prefixes),
                )
            return [(Safe(""), Safe(name))]
        return [(Safe(str(p)), Safe("")) for p in prefixes]

    def rules(self, rule: PolicyRule) -> list[IptRule]:
        egress = rule.direction == Direction.EGRESS
        chain = Safe("ng-egress" if egress else "ng-ingress")
        target = Safe("ng-accept" if self.policy.log.log_accepted else "ACCEPT")
        proto = rule.protocol.value
        if rule.protocol == Protocol.ICMP:
            proto = "icmp" if self.version == 4 else "ipv6-icmp"
        in_if = out_if = ipsec_dir = _EMPTY
        if rule.through == Through.TUNNEL:
            if self.policy.tunnel_interface:
                iface = Safe(self.policy.tunnel_interface)
                out_if, in_if = (iface, Safe("")) if egress else (Safe(""), iface)
            else:
                ipsec_dir = Safe("out" if egress else "in")
        peers = self._address_matches(rule.peer)
        locals_ = self._address_matches(rule.local)
        out: list[IptRule] = []
        for peer_cidr, peer_set in peers:
            for local_cidr, local_set in locals_:
                for dport, dports in _port_groups(rule):
                    src, dst = (local_cidr, peer_cidr) if egress else (peer_cidr, local_cidr)
                    src_set, dst_set = (local_set, peer_set) if egress else (peer_set, local_set)
                    out.append(
                        IptRule(
                            chain=chain,
                            target=target,
                            comment=Safe(rule.id),
                            protocol=Safe(proto),
                            source=src,
                            destination=dst,
                            source_set=src_set,
                            destination_set=dst_set,
                            in_interface=in_if,
                            out_interface=out_if,
                            dport=dport,
                            dports=dports,
                            ipsec_dir=ipsec_dir,
                            ctstate=Safe("NEW"),
                        )
                    )
        return out


@register
class IptablesRenderer(Renderer):
    """Renders ``iptables/rules.v4``, ``iptables/rules.v6`` and ``iptables/ipset.restore``."""

    target = Target.IPTABLES

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        files: dict[str, str] = {}
        all_sets: list[IpSet] = []
        for version in (4, 6):
            builder = _FamilyBuilder(policy, version)
            rules: list[IptRule] = []
            if version in policy.families:
                for rule in policy.rules:
                    if version in rule.families((version,)):
                        rules.extend(builder.rules(rule))
            all_sets.extend(builder.sets[k] for k in sorted(builder.sets))
            files[f"iptables/rules.v{version}"] = env.get_template("iptables/rules.j2").render(
                policy=_header(policy),
                version=version,
                enabled=version in policy.families,
                rules=rules,
                uses_ipset=bool(builder.sets),
                log=policy.log,
                log_prefix=Safe('"' + policy.log.prefix + '"'),
                accept_prefix=Safe('"' + policy.log.accept_prefix + '"'),
            )
        files["iptables/ipset.restore"] = env.get_template("iptables/ipset.j2").render(
            policy=_header(policy), sets=all_sets
        )
        return files


@dataclass(frozen=True)
class Header:
    """Escaped identification of a policy for file headers."""

    name: Safe
    mode: Safe
    digest: Safe
    description: Safe


def _header(policy: Policy) -> Header:
    from netguard.render.base import escape_line_comment

    return Header(
        Safe(policy.name),
        Safe(policy.mode),
        Safe(policy.source_digest),
        escape_line_comment(policy.description),
    )
