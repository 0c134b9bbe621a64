"""``netguard drift --fix``: the smallest change that turns the actual list into the desired one.

The change works on the *members* that carry the list (set elements, security-group entries,
rules), per direction and family of the drift report:

1. every member that is not inside the desired set is removed (an element that is partly
   EXTRA is removed whole: an ipset, nft set or security group cannot narrow an element);
2. the desired addresses no remaining member (and no other rule) allows are added as the
   minimal list of prefixes.

Members inside the desired set stay untouched, so a clean list gives an empty change. When
part of EXTRA is allowed by something the target does not change (a rule with its own address
next to the set, a prefix-list reference, a chain policy ACCEPT), the change is refused
(:class:`InputError`, exit 2, naming what allows it) rather than printed incomplete; with
``iptables`` the rules are rewritten instead of the set.

Targets:

- ``ipset``: ``add SET PREFIX`` then ``del SET ELEMENT`` lines for ``ipset restore -exist``
  (ipset(8) "restore"); additions first, so no desired address is cut while loading. The
  set is the one the ACCEPT rules of the flow match with ``--match-set`` (or the only or
  ``--set``-selected set of an ipset file given alone).
- ``iptables``: when the list is held in an ipset, the same lines as ``ipset``; otherwise an
  ``iptables-restore --noflush`` file (iptables-restore(8)) that deletes (``-D CHAIN N``,
  bottom up, so every number is right when applied) each ACCEPT rule allowing an EXTRA range
  and its identical copies, inserts its desired part back in its place, and inserts (``-I``)
  one rule per MISSING prefix and flow port at the top of OUTPUT (egress) or INPUT (ingress,
  to the receiver's addresses), ahead of any rule that would drop it. Load it with
  ``iptables-restore --noflush`` (``ip6tables-restore`` for IPv6: the file says which).
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
from dataclasses import replace as dc_replace
from typing import TYPE_CHECKING, Any

import numpy as np

from netguard.aws_quota import QUOTA_DOC, SgQuotas
from netguard.drift.addrs import AddrSet
from netguard.drift.core import Comparison
from netguard.drift.sources import Direction, Side, allowed_addresses
from netguard.errors import InputError, Location, RenderError
from netguard.model.ruleset import Rule, RuleSet

if TYPE_CHECKING:
    from netguard.drift.core import DriftReport

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
    members: list[Member],
    desired: AddrSet,
    others: AddrSet,
    family: int,
    *,
    overlap: bool = False,
) -> tuple[list[Member], list[str]]:
    """``(remove, add)``: members not inside ``desired``, and prefixes to add so that the kept
    members, ``others`` (addresses allowed by something else) and the additions cover
    exactly ``desired``.

    The additions are the prefixes of what is still uncovered. When the carrier holds
    overlapping entries (``overlap``: an ipset ``hash:net``, a security group; not an nft
    interval set, which refuses them), the aggregated prefixes of ``desired`` not already
    covered are used instead when that is fewer entries: a kept ``/32`` inside a missing
    ``/25`` would otherwise split it into seven pieces (and use up AWS rule quota).
    """
    remove: list[Member] = []
    kept: list[Member] = []
    for m in members:
        if _one(family, m.first, m.last).difference(desired).is_empty():
            kept.append(m)
        else:
            remove.append(m)
    have = _union(family, kept).union(others)
    add = desired.difference(have).prefixes(family)
    if overlap and add:
        whole = [
            p
            for p in desired.prefixes(family)
            if not AddrSet.from_prefixes([p]).difference(have).is_empty()
        ]
        if len(whole) < len(add):
            add = whole
    return remove, add


def _refuse_partial(comp: Comparison, others: AddrSet, target: str, carrier: str) -> None:
    """Raise :class:`InputError` when part of EXTRA is allowed by something other than the
    members ``target`` changes (``others``: a rule with its own address, a prefix-list or
    group reference): the change would leave that drift in place while looking complete."""
    left = comp.extra.intersection(others)
    if left.is_empty():
        return
    fam = comp.family
    shown = left.prefixes(fam)
    whats = [
        f"{c.what} [{c.location}]"
        for c in comp.accepting
        if not c.addrs.family(fam).intersection(left).is_empty()
    ]
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    raise InputError.at(
        Location(f"--fix {target}"),
        f"EXTRA {', '.join(shown[:3])}{more} ({comp.direction.value} IPv{fam}) is allowed "
        f"outside the {carrier}"
        + (f", by {'; '.join(dict.fromkeys(whats))}" if whats else "")
        + f": --fix {target} cannot remove it; change that by hand",
    )


def _prefix_text(text: str) -> str:
    """``/32`` and ``/128`` written as bare addresses (what ipset and nft list)."""
    net = ipaddress.ip_network(text)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


# --- ipset / iptables --------------------------------------------------------------------------


def _flag(direction: Direction) -> str:
    return "src" if direction is Direction.INGRESS else "dst"


def _flow_accept_rules(side: Side, comp: Comparison) -> list[Rule]:
    """The ACCEPT rules of ``comp``'s family that accept some packet of its flow (the
    engine's attribution); when none does (an empty set, say), every ACCEPT rule of the
    family. A set looked up only by rules of other flows (DNS on port 53, the webhook
    receivers' own addresses) is thereby not taken for the list."""
    accepting = {c.what for c in comp.accepting}
    rules = [
        rule
        for rs in side.rulesets
        if rs.family == comp.family
        for chain in rs.chains.values()
        for rule in chain.rules
        if rule.action.kind.value == "ACCEPT"
    ]
    flow_rules = [r for r in rules if r.text in accepting]
    return flow_rules or rules


def _ipset_target(side: Side, comp: Comparison, chosen: list[str]) -> str | None:
    fam = comp.family
    names = [n for n, f in side.ipset_names.items() if f == fam]
    if chosen:
        names = [n for n in names if n in chosen]
    if side.rulesets:
        used: list[str] = []
        for rule in _flow_accept_rules(side, comp):
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


def _ipset_lines(report: DriftReport, chosen: list[str], target: str) -> list[str] | None:
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
        if target == "iptables" and not comp.extra.intersection(others).is_empty():
            return None  # EXTRA from rules outside the set too: change the rules instead
        _refuse_partial(comp, others, target, f"set {name}")
        remove, add = plan_members(members, comp.desired, others, comp.family, overlap=True)
        if not remove and not add:
            continue
        lines.append(f"# {comp.direction.value} IPv{comp.family}: set {name}")
        # Additions first: a hash:net set holds overlapping prefixes, so no desired address
        # is ever missing while the change is loaded (ipset restore is not one transaction).
        lines.extend(f"add {name} {_prefix_text(p)}" for p in add)
        lines.extend(f"del {name} {m.text}" for m in remove)
    return lines if found or not any(c.drift for c in report.comparisons) else None


def _iptables_rules(report: DriftReport) -> str:
    """The ``iptables-restore --noflush`` change (module docstring).

    Per chain, the rules to replace are handled from the bottom up and deleted by number, so
    every position written is the position at the time it is applied (a rule deleted higher
    up would otherwise shift the ones below it; an insertion past the end is refused by
    iptables-restore). Identical copies of a replaced rule are deleted too (they would take
    over). MISSING prefixes are inserted at the top of OUTPUT (egress) or INPUT (ingress),
    ahead of any rule that drops them.

    Raises :class:`InputError` when the actual side holds no iptables-save rules.
    """
    if report.drift and "iptables-save" not in report.actual.ruleset_kinds:
        raise InputError.at(
            Location("--fix iptables"),
            "no iptables-save rules among the actual sources: nothing to delete or insert "
            "(for a plain list, allowlist or feed there is no rule to change)",
        )
    by_family: dict[int, list[str]] = {4: [], 6: []}
    for comp in report.comparisons:
        if not comp.drift or comp.spec is None:
            continue
        fam = comp.family
        flag = "-s" if comp.direction is Direction.INGRESS else "-d"
        chains: dict[tuple[str, str], list[Rule]] = {}  # (source, chain) -> rules in order
        by_text: dict[str, list[tuple[str, str]]] = {}  # rule text -> where it is
        for rs in report.actual.rulesets:
            if rs.family != fam:
                continue
            for ch in rs.chains.values():
                rules = list(ch.rules)
                chains[(rs.source, ch.name)] = rules
                for r in rules:
                    if r.text.startswith("-A "):
                        by_text.setdefault(r.text, []).append((rs.source, ch.name))
        doomed = _doomed_rules(report, comp, by_text)
        out = by_family[fam]
        out.append(f"# {comp.direction.value} IPv{fam} ({comp.flow})")
        for (_, chain_name), rules in chains.items():
            hits = sorted(((r.position, r) for r in rules if r.text in doomed), key=lambda h: h[0])
            seen: set[str] = set()
            first_of: dict[int, bool] = {}
            for pos, r in hits:
                first_of[pos] = r.text not in seen
                seen.add(r.text)
            for pos, r in reversed(hits):
                out.append(f"# was: {r.text}")
                out.append(f"-D {chain_name} {pos}")
                if not first_of[pos]:
                    continue  # an identical copy: its place is taken by the first one's
                keep = _rule_addresses(r, comp).intersection(comp.desired)
                spec = r.text[3 + len(chain_name) + 1 :]  # after "-A CHAIN "
                for i, p in enumerate(keep.prefixes(fam)):
                    out.append(f"-I {chain_name} {pos + i} {_with_address(spec, flag, p)}")
        if comp.missing.is_empty():
            continue
        chain = "OUTPUT" if comp.direction is Direction.EGRESS else "INPUT"
        local_flag = "-s" if comp.direction is Direction.EGRESS else "-d"
        for p in comp.missing.prefixes(fam):
            for unit in comp.spec.units:
                locals_ = unit.local.prefixes(fam) if unit.local is not None else [None]
                for local in locals_:
                    to = f" {local_flag} {local}" if local is not None else ""
                    out.append(
                        f"-I {chain} 1 {flag} {p}{to} -p tcp -m tcp --dport {unit.port} "
                        '-m conntrack --ctstate NEW -m comment --comment "netguard-drift-fix" '
                        "-j ACCEPT"
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


def _doomed_rules(report: DriftReport, comp: Comparison, by_text: dict[str, Any]) -> set[str]:
    """Texts of the iptables rules to replace so that nothing EXTRA is accepted any more.

    The rules that accept EXTRA first; then the rule set is evaluated again without them
    (the packet-space engine), because a rule they shadowed (``-d 198.51.100.0/24`` below
    ``-d 198.51.100.0/23``) accepts the same addresses once they are gone; its accepting
    rules join, until no EXTRA is left (the desired parts put back cannot add EXTRA).

    Raises :class:`InputError` when EXTRA is accepted by something that is not a rule of an
    iptables-save file (a chain policy ACCEPT): the change would leave it in place.
    """
    fam = comp.family
    doomed: set[str] = set()
    for culprits in comp.culprits.values():
        doomed.update(c.what for c in culprits if c.what in by_text)
    if comp.spec is None:
        return doomed
    for _ in range(32):
        rulesets = [_without(rs, doomed) for rs in report.actual.rulesets if rs.family == fam]
        allowed = allowed_addresses(rulesets, comp.spec, fam, comp.interfaces)
        if allowed is None:
            return doomed
        left = allowed.may.family(fam).difference(comp.desired)
        if left.is_empty():
            return doomed
        more = {
            c.what
            for c in allowed.culprits
            if c.what in by_text and not c.addrs.family(fam).intersection(left).is_empty()
        }
        if not more - doomed:
            pending = Comparison(
                comp.direction, fam, comp.flow, comp.desired, comp.actual, left, AddrSet(),
                accepting=allowed.culprits,
            )  # fmt: skip
            _refuse_partial(pending, left, "iptables", "rules of the iptables-save files")
            return doomed
        doomed |= more
    return doomed


def _without(rs: RuleSet, texts: set[str]) -> RuleSet:
    """``rs`` without the rules whose text is in ``texts`` (positions renumbered)."""
    chains = {}
    for name, ch in rs.chains.items():
        kept = [r for r in ch.rules if r.text not in texts]
        rules = tuple(dc_replace(r, position=i) for i, r in enumerate(kept, 1))
        chains[name] = dc_replace(ch, rules=rules)
    return dc_replace(rs, chains=chains)


def _with_address(spec: str, flag: str, prefix: str) -> str:
    """``spec`` (a rule after ``-A CHAIN``) matching only ``prefix`` for ``flag`` (``-d`` or
    ``-s``). iptables(8) takes one ``-d`` per rule: ``-d X`` and ``! -d X`` are replaced by
    ``-d PREFIX`` (``prefix`` lies inside the rule's own addresses, negation included, so
    nothing is lost), and a rule without one gets ``-d PREFIX`` in front."""
    words = spec.split(" ")
    for i, w in enumerate(words[:-1]):
        if w in (flag, "--destination" if flag == "-d" else "--source"):
            start = i - 1 if i > 0 and words[i - 1] == "!" else i
            return " ".join([*words[:start], flag, prefix, *words[i + 2 :]])
    return f"{flag} {prefix} {spec}"


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
    """``delete element`` / ``add element`` commands (module docstring). Sets are told apart
    by family, table and name: ``table ip filter`` and ``table ip6 filter`` may both have a
    set ``allow``, and a rule looks up the set of its own table (nft(8) SETS)."""
    # (family table, name) -> (type, members)
    sets: dict[tuple[str, str], tuple[str, list[Member]]] = {}
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
            sets[(f"{s['family']} {s['table']}", s["name"])] = (s["type"], members)
    lines: list[str] = []
    for comp in report.comparisons:
        fam = comp.family
        want_type = "ipv4_addr" if fam == 4 else "ipv6_addr"
        flag = "saddr" if comp.direction is Direction.INGRESS else "daddr"
        used: list[tuple[str, str]] = []
        for rule in _flow_accept_rules(report.actual, comp):
            table = rule.chain.rsplit("/", 1)[0]  # "inet netguard/output" -> "inet netguard"
            for m in re.finditer(rf"{flag} @(\S+)", rule.text):
                key = (table, m.group(1))
                if key in sets and sets[key][0] == want_type:
                    used.append(key)
        keys = [k for k in dict.fromkeys(used) if not chosen or k[1] in chosen]
        if not keys:
            if comp.drift:
                raise InputError.at(
                    Location("--fix nft"),
                    f"no named nft set holds the {comp.direction.value} IPv{fam} list: "
                    "nothing to change element by element",
                )
            continue
        if len(keys) > 1:
            raise InputError.at(
                Location("--fix nft"),
                "several sets may hold the list "
                f"({', '.join(f'{t} {n}' for t, n in keys)}): choose one with --set",
            )
        (table, name), (_, members) = keys[0], sets[keys[0]]
        others = comp.actual.difference(_union(fam, members))
        _refuse_partial(comp, others, "nft", f"set {table} {name}")
        remove, add = plan_members(members, comp.desired, others, fam)
        if remove:
            elems = ", ".join(m.text for m in remove)
            lines.append(f"delete element {table} {name} {{ {elems} }}")
        if add:
            elems = ", ".join(_prefix_text(p) for p in add)
            lines.append(f"add element {table} {name} {{ {elems} }}")
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
        ports = list(comp.ports)
        if not ports:
            continue  # a netguard allowlist or plain list: no security group entry to change
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
        _refuse_partial(comp, others, "aws-api", "CIDR entries of the security groups")
        remove, add = plan_members(members, comp.desired, others, fam, overlap=True)
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
        lines = _ipset_lines(report, chosen, target)
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
