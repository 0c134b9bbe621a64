"""``netguard drift --fix``: the smallest change that turns the actual list into the desired one.

The change works on the *members* that carry the list (set elements, security-group entries,
rules), per direction and family of the drift report:

1. every member that is not inside the desired set is removed (an element that is partly
   EXTRA is removed whole: an ipset, nft set or security group cannot narrow an element);
2. the desired addresses no remaining member (and no other rule) allows are added as the
   minimal list of prefixes.

Members inside the desired set stay untouched, so a clean list gives an empty change.

Targets:

- ``ipset``: ``add SET PREFIX`` then ``del SET ELEMENT`` lines for ``ipset restore -exist``
  (ipset(8) "restore"); additions first, so no desired address is cut while loading. The
  set is the one the ACCEPT rules of the flow match with ``--match-set`` (or the only or
  ``--set``-selected set of an ipset file given alone).
- ``iptables``: when the list is held in an ipset, the same lines as ``ipset``; otherwise an
  ``iptables-restore --noflush`` file (iptables-restore(8)) that deletes (``-D``) each ACCEPT
  rule allowing an EXTRA range, inserts its desired part back, and inserts (``-I``) one rule
  per MISSING prefix before the first ACCEPT rule of the flow (at the top of OUTPUT/INPUT when
  there is none). Load it with ``iptables-restore --noflush`` (``ip6tables-restore`` for
  IPv6: the file says which).
- ``nft``: ``delete element`` then ``add element`` commands for ``nft -f`` (nft(8) "ELEMENTS"),
  applied as one transaction, on the named set the accept rules of the flow look up.
- ``aws-api``: JSON requests ``{"action": "AuthorizeSecurityGroupEgress", "parameters":
  {"GroupId": ..., "IpPermissions": [...]}}`` (EC2 API Reference:
  AuthorizeSecurityGroupEgress/Ingress, RevokeSecurityGroupEgress/Ingress), authorizations
  first (so no desired flow is cut during the change), then revocations. An entry is revoked
  with its exact protocol and ports; additions are ``tcp`` to each port of the flow, in the
  group already holding most of the flow's entries, within the rules-per-group quota
  (:mod:`netguard.aws_quota`; a change that does not fit raises ``RenderError``, exit 2).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from netguard.aws_quota import QUOTA_DOC, SgQuotas
from netguard.drift.addrs import AddrSet
from netguard.drift.sources import Direction, Side
from netguard.errors import InputError, Location, RenderError
from netguard.model.ruleset import Rule

if TYPE_CHECKING:
    from netguard.drift.core import Comparison, DriftReport

__all__ = ["Member", "plan_members", "render_fix"]

DEFAULT_QUOTAS = SgQuotas(60, 5, 1000)


@dataclass(frozen=True)
class Member:
    """One element of a list carrier: its text as stored and its interval."""

    text: str
    family: int
    first: int
    last: int


def _one(family: int, first: int, last: int) -> AddrSet:
    if family == 4:
        return AddrSet.from_intervals(
            np.array([first], dtype=np.int64), np.array([last], dtype=np.int64)
        )
    return AddrSet.from_intervals(v6=[(first, last)])


def _union(family: int, members: Iterable[Member]) -> AddrSet:
    ms = list(members)
    if family == 4:
        return AddrSet.from_intervals(
            np.array([m.first for m in ms], dtype=np.int64),
            np.array([m.last for m in ms], dtype=np.int64),
        )
    return AddrSet.from_intervals(v6=[(m.first, m.last) for m in ms])


def plan_members(
    members: list[Member], desired: AddrSet, others: AddrSet, family: int
) -> tuple[list[Member], list[str]]:
    """``(remove, add)``: members not inside ``desired``, and the prefixes of ``desired`` that
    neither the kept members nor ``others`` (addresses allowed by something else) cover."""
    remove: list[Member] = []
    kept: list[Member] = []
    for m in members:
        if _one(family, m.first, m.last).difference(desired).is_empty():
            kept.append(m)
        else:
            remove.append(m)
    need = desired.difference(_union(family, kept)).difference(others)
    return remove, need.prefixes(family)


def _prefix_text(text: str) -> str:
    """``/32`` and ``/128`` written as bare addresses (what ipset and nft list)."""
    net = ipaddress.ip_network(text)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


# --- ipset / iptables --------------------------------------------------------------------------


def _flag(direction: Direction) -> str:
    return "src" if direction is Direction.INGRESS else "dst"


def _ipset_target(side: Side, comp: Comparison, chosen: list[str]) -> str | None:
    fam = comp.family
    names = [n for n, f in side.ipset_names.items() if f == fam]
    if chosen:
        names = [n for n in names if n in chosen]
    if side.rulesets:
        used: list[str] = []
        for rs in side.rulesets:
            if rs.family != fam:
                continue
            for chain in rs.chains.values():
                for rule in chain.rules:
                    if rule.action.kind.value != "ACCEPT":
                        continue
                    m = re.search(r"--match-set\s+(\S+)\s+(\S+)", rule.text)
                    if m and m.group(1) in names and _flag(comp.direction) in m.group(2):
                        used.append(m.group(1))
        names = list(dict.fromkeys(used))
    if len(names) > 1:
        raise InputError.at(
            Location("--fix"),
            f"several IPv{fam} sets may hold the {comp.direction.value} list "
            f"({', '.join(names)}): choose one with --set",
        )
    return names[0] if names else None


def _ipset_lines(report: DriftReport, chosen: list[str]) -> list[str] | None:
    lines: list[str] = []
    found = False
    for comp in report.comparisons:
        name = _ipset_target(report.actual, comp, chosen)
        if name is None:
            if comp.drift:
                return None
            continue
        found = True
        members = [
            Member(e.text.split()[2], e.family, e.first, e.last)
            for e in report.actual.ipset_elements
            if e.set_name == name
        ]
        all_members = _union(comp.family, members)
        others = comp.actual.difference(all_members)
        remove, add = plan_members(members, comp.desired, others, comp.family)
        if not remove and not add:
            continue
        lines.append(f"# {comp.direction.value} IPv{comp.family}: set {name}")
        # Additions first: a hash:net set holds overlapping prefixes, so no desired address
        # is ever missing while the change is loaded (ipset restore is not one transaction).
        lines.extend(f"add {name} {_prefix_text(p)}" for p in add)
        lines.extend(f"del {name} {m.text}" for m in remove)
        for text, culprits in comp.culprits.items():
            for c in culprits:
                if "--match-set" not in c.what and c.what.startswith("-A "):
                    lines.append(
                        f"# {text} is also allowed by a rule outside the set [{c.location}]: "
                        f"{c.what}"
                    )
    return lines if found or not any(c.drift for c in report.comparisons) else None


def _iptables_rules(report: DriftReport) -> str:
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for comp in report.comparisons:
        if not comp.drift:
            continue
        fam = comp.family
        flag = "-s" if comp.direction is Direction.INGRESS else "-d"
        deleted: dict[str, str] = {}  # rule text -> chain name
        rule_by_text: dict[str, Rule] = {}
        first_accept: tuple[str, int] | None = None
        for rs in report.actual.rulesets:
            if rs.family != fam:
                continue
            for ch in rs.chains.values():
                for r in ch.rules:
                    rule_by_text[r.text] = r
        for culprits in comp.culprits.values():
            for c in culprits:
                found = rule_by_text.get(c.what)
                if found is None or not found.text.startswith("-A "):
                    continue
                deleted[found.text] = found.chain
                if first_accept is None:
                    first_accept = (found.chain, found.position)
        out = by_family[fam]
        out.append(f"# {comp.direction.value} IPv{fam} ({comp.flow})")
        for text in deleted:
            out.append("-D " + text[3:])
        # Re-insert the desired part of each deleted rule, in its place.
        for rule_text, chain_name in deleted.items():
            rule = rule_by_text[rule_text]
            keep = _rule_addresses(rule, comp).intersection(comp.desired)
            m = re.search(rf"(?:^|\s){flag}\s+(\S+)", rule_text)
            if m is None:
                continue
            spec = rule_text[3 + len(chain_name) + 1 :]  # after "-A CHAIN "
            for p in keep.prefixes(fam):
                new = (" " + spec).replace(m.group(0), f" {flag} {p}", 1).strip()
                out.append(f"-I {chain_name} {rule.position} {new}")
        if comp.missing.is_empty():
            continue
        chain, pos = first_accept or (
            ("OUTPUT", 1) if comp.direction is Direction.EGRESS else ("INPUT", 1)
        )
        ports = sorted({int(p.split("/")[1].split()[0]) for p in comp.flow.split(", ")})
        for p in comp.missing.prefixes(fam):
            for port in ports:
                out.append(
                    f"-I {chain} {pos} {flag} {p} -p tcp -m tcp --dport {port} -m conntrack "
                    '--ctstate NEW -m comment --comment "netguard-drift-fix" -j ACCEPT'
                )
    result: list[str] = []
    for fam, lines in by_family.items():
        if not lines:
            continue
        tool = "iptables-restore" if fam == 4 else "ip6tables-restore"
        result.append(f"# IPv{fam}: load with {tool} --noflush")
        result.append("*filter")
        result.extend(lines)
        result.append("COMMIT")
    return "\n".join(result) + ("\n" if result else "")


def _rule_addresses(rule: Rule, comp: Comparison) -> AddrSet:
    """Addresses of the rule's own address condition for the direction (or everything)."""
    ams = rule.match.destinations if comp.direction is Direction.EGRESS else rule.match.sources
    out: AddrSet | None = None
    for am in ams:
        s = AddrSet.from_prefix_set(am.addresses).family(comp.family)
        if am.negated:
            s = _universe(comp.family).difference(s)
        out = s if out is None else out.intersection(s)
    return out if out is not None else _universe(comp.family)


def _universe(family: int) -> AddrSet:
    return _one(family, 0, (1 << (32 if family == 4 else 128)) - 1)


# --- nft ------------------------------------------------------------------------------------------


def _nft_elem_text(item: Any) -> str | None:
    if isinstance(item, dict) and "elem" in item:
        return _nft_elem_text(item["elem"].get("val"))
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "prefix" in item:
        return f"{item['prefix']['addr']}/{item['prefix']['len']}"
    if isinstance(item, dict) and "range" in item:
        a, b = item["range"]
        return f"{a}-{b}"
    return None


def _interval(text: str) -> tuple[int, int, int]:
    if "-" in text and "/" not in text:
        a, b = text.split("-", 1)
        x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
        return x.version, int(x), int(y)
    net = ipaddress.ip_network(text, strict=False)
    first = int(net.network_address)
    return net.version, first, first + net.num_addresses - 1


def _nft_lines(report: DriftReport, chosen: list[str]) -> list[str]:
    sets: dict[str, tuple[str, str, str, list[Member]]] = {}  # name -> family, table, type
    for _, doc in report.actual.nft_docs:
        for obj in doc.get("nftables", []):
            s = obj.get("set") if isinstance(obj, dict) else None
            if not isinstance(s, dict) or s.get("type") not in ("ipv4_addr", "ipv6_addr"):
                continue
            members: list[Member] = []
            for item in s.get("elem") or []:
                text = _nft_elem_text(item)
                if text is None:
                    continue
                fam, first, last = _interval(text)
                members.append(Member(text, fam, first, last))
            sets[s["name"]] = (s["family"], s["table"], s["type"], members)
    lines: list[str] = []
    for comp in report.comparisons:
        fam = comp.family
        want_type = "ipv4_addr" if fam == 4 else "ipv6_addr"
        flag = "saddr" if comp.direction is Direction.INGRESS else "daddr"
        used: list[str] = []
        for rs in report.actual.rulesets:
            if rs.family != fam:
                continue
            for chain in rs.chains.values():
                for rule in chain.rules:
                    if rule.action.kind.value != "ACCEPT":
                        continue
                    for m in re.finditer(rf"{flag} @(\S+)", rule.text):
                        if m.group(1) in sets and sets[m.group(1)][2] == want_type:
                            used.append(m.group(1))
        names = [n for n in dict.fromkeys(used) if not chosen or n in chosen]
        if not names:
            if comp.drift:
                raise InputError.at(
                    Location("--fix nft"),
                    f"no named nft set holds the {comp.direction.value} IPv{fam} list: "
                    "nothing to change element by element",
                )
            continue
        if len(names) > 1:
            raise InputError.at(
                Location("--fix nft"),
                f"several sets may hold the list ({', '.join(names)}): choose one with --set",
            )
        family, table, _, members = sets[names[0]]
        others = comp.actual.difference(_union(fam, members))
        remove, add = plan_members(members, comp.desired, others, fam)
        if remove:
            elems = ", ".join(m.text for m in remove)
            lines.append(f"delete element {family} {table} {names[0]} {{ {elems} }}")
        if add:
            elems = ", ".join(_prefix_text(p) for p in add)
            lines.append(f"add element {family} {table} {names[0]} {{ {elems} }}")
    return lines


# --- AWS ------------------------------------------------------------------------------------------


@dataclass
class _SgEntry:
    group: str
    direction: Direction
    permission: dict[str, Any]  # IpProtocol, FromPort, ToPort
    member: Member
    key: str  # CidrIp or CidrIpv6


def _covers(perm: dict[str, Any], port: int) -> bool:
    proto = str(perm.get("IpProtocol", ""))
    if proto in ("-1", "all"):
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = perm.get("FromPort", -1), perm.get("ToPort", -1)
    if lo in (-1, None):
        return True
    return bool(int(lo) <= port <= int(hi))


def _sg_entries(side: Side, ports: list[int]) -> tuple[list[_SgEntry], list[str]]:
    entries: list[_SgEntry] = []
    groups: list[str] = []
    for _, doc in side.sg_docs:
        data = doc.get("SecurityGroups", doc) if isinstance(doc, dict) else doc
        for g in data or []:
            gid = g.get("GroupId")
            groups.append(gid)
            for key, direction in (
                ("IpPermissions", Direction.INGRESS),
                ("IpPermissionsEgress", Direction.EGRESS),
            ):
                for perm in g.get(key) or []:
                    if not any(_covers(perm, p) for p in ports):
                        continue
                    head = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
                    for rk, ck in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")):
                        for r in perm.get(rk) or []:
                            fam, first, last = _interval(r[ck])
                            entries.append(
                                _SgEntry(gid, direction, head, Member(r[ck], fam, first, last), ck)
                            )
    return entries, groups


def _aws_requests(report: DriftReport, quotas: SgQuotas) -> list[dict[str, Any]]:
    if report.drift and not report.actual.sg_docs:
        raise InputError.at(
            Location("--fix aws-api"),
            "no security group among the actual sources (describe-security-groups JSON or "
            "aws:REGION): nothing to authorize or revoke",
        )
    authorize: dict[tuple[str, Direction], list[dict[str, Any]]] = {}
    revoke: dict[tuple[str, Direction], list[dict[str, Any]]] = {}
    for comp in report.comparisons:
        if comp.direction is Direction.ADDRESSES:
            continue
        ports = sorted({int(p.split("/")[1].split()[0]) for p in comp.flow.split(", ")})
        entries, groups = _sg_entries(report.actual, ports)
        fam = comp.family
        mine = [e for e in entries if e.direction is comp.direction and e.member.family == fam]
        if not groups:
            if comp.drift:
                raise InputError.at(
                    Location("--fix aws-api"),
                    "no security group among the actual sources (describe-security-groups "
                    "JSON or aws:REGION)",
                )
            continue
        members = [e.member for e in mine]
        others = comp.actual.difference(_union(fam, members))
        remove, add = plan_members(members, comp.desired, others, fam)
        removed = {id(m) for m in remove}
        ck = "CidrIp" if fam == 4 else "CidrIpv6"
        rk = "IpRanges" if fam == 4 else "Ipv6Ranges"
        for e in mine:
            if id(e.member) in removed:
                perm = dict(e.permission)
                perm[rk] = [{ck: e.member.text}]
                revoke.setdefault((e.group, comp.direction), []).append(perm)
        if not add:
            continue
        counts: dict[str, int] = dict.fromkeys(groups, 0)
        for e in entries:
            if e.direction is comp.direction and e.member.family == fam:
                counts[e.group] = counts.get(e.group, 0) + (id(e.member) not in removed)
        # The group already holding most of the flow's entries, then the others, first fit.
        order = sorted(groups, key=lambda g: -sum(1 for e in mine if e.group == g))
        pending = [(p, port) for p in add for port in ports]
        for gid in order:
            room = quotas.rules_per_group - counts.get(gid, 0)
            take, pending = pending[: max(room, 0)], pending[max(room, 0) :]
            for prefix, port in take:
                authorize.setdefault((gid, comp.direction), []).append(
                    {
                        "IpProtocol": "tcp",
                        "FromPort": port,
                        "ToPort": port,
                        rk: [{ck: prefix, "Description": "netguard drift fix"}],
                    }
                )
            if not pending:
                break
        if pending:
            raise RenderError(
                f"aws: adding {len(add)} {comp.direction.value} IPv{fam} prefix(es) exceeds "
                f"{quotas.rules_per_group} rules per group in every group "
                f"({', '.join(groups)}); {QUOTA_DOC}"
            )
    requests: list[dict[str, Any]] = []
    for (gid, direction), perms in authorize.items():
        action = "AuthorizeSecurityGroup" + (
            "Egress" if direction is Direction.EGRESS else "Ingress"
        )
        requests.append({"action": action, "parameters": {"GroupId": gid, "IpPermissions": perms}})
    for (gid, direction), perms in revoke.items():
        action = "RevokeSecurityGroup" + ("Egress" if direction is Direction.EGRESS else "Ingress")
        requests.append({"action": action, "parameters": {"GroupId": gid, "IpPermissions": perms}})
    return requests


def render_fix(report: DriftReport, target: str, set_names: Iterable[str] = ()) -> str:
    """The change for ``target`` (``ipset``, ``iptables``, ``nft``, ``aws-api``) as text.

    Raises :class:`InputError` (exit 2) when the actual side has no carrier the target can
    change (no set, no security group), :class:`RenderError` (exit 2) past AWS quotas.
    """
    chosen = list(set_names)
    if target in ("ipset", "iptables"):
        lines = _ipset_lines(report, chosen)
        if lines is not None:
            head = "# netguard drift --fix: load with ipset restore -exist"
            return "\n".join([head, *lines]) + "\n"
        if target == "ipset":
            raise InputError.at(
                Location("--fix ipset"),
                "the list is not held in an ipset (no --match-set rule or set file): "
                "use --fix iptables",
            )
        return _iptables_rules(report)
    if target == "nft":
        lines = _nft_lines(report, chosen)
        return "\n".join(["# netguard drift --fix: apply with nft -f", *lines]) + "\n"
    quotas = report.quotas or DEFAULT_QUOTAS
    doc = {
        "format": "netguard-drift-fix",
        "version": 1,
        "target": "aws-api",
        "requests": _aws_requests(report, quotas),
    }
    return json.dumps(doc, indent=2) + "\n"
