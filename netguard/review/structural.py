"""Structural diff: what was edited, matched by meaning-preserving identity, not by line.

Vocabulary: an *end* is OLD or NEW. Rule sets of the two ends are paired by (format, address
family, order among those). Within a pair:

- chains are matched by name; a chain only in OLD and one only in NEW with the same rule
  identities in the same order is a *rename* (jumps to it are compared under the new name);
  a base chain whose policy, hook or priority changed is a *policy* change;
- a rule's *identity* is its text without counters (``[p:b]``, ``-c P B``, nft ``counter
  packets P bytes B``), without its comment, its nft handle, its ``-A CHAIN`` and its AWS
  description (and the names shown after prefix-list and group ids). Rules of a chain are
  aligned by identity (``difflib.SequenceMatcher``): a rule whose identity is on both sides
  but out of order is *moved*; one whose identity is on both sides with another comment is
  *modified* (comment); what remains in a replaced stretch is paired in order as *modified*,
  the rest is *added* or *removed*.

Not analysed: the readers model the filter table (iptables) and the filter chains of the
ip, ip6 and inet families (nft). The other iptables tables and nft tables and nat/route
chains can still drop or rewrite packets, so their content (counters, handles and comments
left out) is compared too; a difference is listed and leaves the semantic verdict "not
proven" (:class:`StructuralDiff`).

Named sets (ipsets, nft sets, AWS managed prefix lists) are compared by name (id): added,
removed, renamed (prefix lists: same id, other name), members added/removed, type changed.
Security groups are compared by GroupId: added, removed, renamed.

:class:`PairDiff` also lists the rules whose *match changed although their text did not* (an
ipset or prefix list they use changed members): the semantic layer needs them, the report
lists them under the set change.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from netguard.check import ConfigFormat
from netguard.model.ruleset import ActionKind, Chain, Rule, RuleSet
from netguard.review.load import MaterialisedEnd, SetInfo, iptables_tables

__all__ = [
    "ChainChange",
    "GroupChange",
    "PairDiff",
    "RuleChange",
    "RuleView",
    "SetChange",
    "StructuralDiff",
    "pair_rulesets",
    "rule_identity",
    "structural_diff",
]


@dataclass(frozen=True)
class RuleView:
    """A rule as the report shows it: ``chain``, 1-based ``position``, ``text`` as written,
    ``where`` (``part:line``), ``comment``."""

    chain: str
    position: int
    text: str
    where: str
    comment: str | None = None


@dataclass(frozen=True)
class RuleChange:
    """``kind``: added, removed, moved, modified. ``old``/``new``: the rule at each end
    (None where absent). ``detail`` says what changed (``comment``, ``position 3 -> 1``, ...)."""

    kind: str
    chain: str
    old: RuleView | None
    new: RuleView | None
    detail: str = ""


@dataclass(frozen=True)
class ChainChange:
    """``kind``: added, removed, renamed, policy. ``detail`` e.g. ``policy ACCEPT -> DROP``."""

    kind: str
    old_name: str | None
    new_name: str | None
    detail: str = ""


@dataclass(frozen=True)
class SetChange:
    """``kind``: added, removed, renamed, members, type. ``set_kind``: ipset, nft-set,
    prefix-list. Member lists are sorted strings as written."""

    kind: str
    set_kind: str
    old_title: str | None
    new_title: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class GroupChange:
    """An AWS security group ``added``, ``removed`` or ``renamed`` (same GroupId)."""

    kind: str
    group_id: str
    old_name: str | None
    new_name: str | None


@dataclass
class PairDiff:
    """The structural diff of one pair of rule sets (see the module docstring).

    ``old``/``new`` may be None when the rule set exists at one end only. ``changed_old`` and
    ``changed_new`` hold the rules (chain, position) whose matches bound where packets can be
    treated differently (not those whose comment alone changed); ``whole`` is True when a
    base chain changed, so any packet can.
    """

    label: str
    format: str
    family: int
    old: RuleSet | None
    new: RuleSet | None
    chains: list[ChainChange] = field(default_factory=list)
    rules: list[RuleChange] = field(default_factory=list)
    match_changed: list[tuple[RuleView, RuleView]] = field(default_factory=list)
    changed_old: set[tuple[str, int]] = field(default_factory=set)
    changed_new: set[tuple[str, int]] = field(default_factory=set)
    whole: bool = False

    @property
    def changed(self) -> bool:
        """True when anything about the pair changed (structure or resolved matches)."""
        return bool(self.chains or self.rules or self.match_changed or self.whole)


@dataclass
class StructuralDiff:
    """Every pair's diff, the set changes and the security-group changes; ``unanalysed``
    names the parts the readers do not analyse (iptables nat/mangle/raw/security tables; nft
    tables of other families, chains of type nat or route) that differ between the ends:
    the semantic diff cannot speak for them (module docstring, "Not analysed")."""

    pairs: list[PairDiff]
    sets: list[SetChange]
    groups: list[GroupChange]
    unanalysed: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of changes by kind: chains, rules (by added/removed/moved/modified), sets,
        groups."""
        out = {"chains": 0, "added": 0, "removed": 0, "moved": 0, "modified": 0}
        for p in self.pairs:
            out["chains"] += len(p.chains)
            for r in p.rules:
                out[r.kind] += 1
        out["sets"] = len(self.sets)
        out["groups"] = len(self.groups)
        out["unanalysed"] = len(self.unanalysed)
        return out

    @property
    def empty(self) -> bool:
        """True when nothing changed structurally."""
        return not (
            self.sets or self.groups or self.unanalysed or any(p.changed for p in self.pairs)
        )


# --- identity -------------------------------------------------------------------------------

_COUNTER_TOKEN = re.compile(r"\[\d+:\d+\]")
_NFT_HANDLE = re.compile(r"\s*#\s*handle\s+\d+\s*$")
# A statement, not part of a name: ``counter`` after a space or at the start, followed by a
# space or the end (``jump counterchain``, ``@counter_set`` stay as they are).
_NFT_COUNTER = re.compile(r"(?<!\S)counter(?:\s+packets\s+\d+\s+bytes\s+\d+)?(?!\S)")
_NFT_COMMENT = re.compile(r'(?<!\S)comment\s+"(?:[^"\\]|\\.)*"')
_AWS_DESCRIPTION = re.compile(r'\s*\("(?:[^"\\]|\\.)*"\)\s*$')
_AWS_REF_NAME = re.compile(r"\b((?:pl|sg)-[0-9a-f]+) \([^()]*\)")
_JUMP_OPTS = ("-j", "--jump", "-g", "--goto")


def _iptables_identity(text: str, rename: dict[str, str]) -> str:
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if i == 0 and _COUNTER_TOKEN.fullmatch(w):
            i += 1
            continue
        if w in ("-A", "--append") and not out:
            i += 2
            continue
        if w in ("-c", "--set-counters") and i + 2 < len(words):
            i += 3
            continue
        if w == "-m" and i + 1 < len(words) and words[i + 1] == "comment":
            i += 2
            continue
        if w == "--comment":
            i += 2
            continue
        if w in _JUMP_OPTS and i + 1 < len(words):
            out.extend((w, rename.get(words[i + 1], words[i + 1])))
            i += 2
            continue
        out.append(w)
        i += 1
    return " ".join(out)


def _nft_identity(text: str, rename: dict[str, str]) -> str:
    text = _NFT_HANDLE.sub("", text)
    text = _NFT_COUNTER.sub("", text)
    text = _NFT_COMMENT.sub("", text)
    for old, new in rename.items():
        short_old, short_new = old.rsplit("/", 1)[-1], new.rsplit("/", 1)[-1]
        text = re.sub(rf"\b(jump|goto)\s+{re.escape(short_old)}\b", rf"\1 {short_new}", text)
    return " ".join(text.split())


def rule_identity(rule: Rule, fmt: str, rename: dict[str, str] | None = None) -> str:
    """The normalised identity of ``rule`` (module docstring) for configuration format
    ``fmt`` (a :class:`~netguard.check.ConfigFormat` value); ``rename`` maps OLD chain names
    to NEW ones for jump and goto targets."""
    rename = rename or {}
    if fmt == ConfigFormat.IPTABLES.value:
        return _iptables_identity(rule.text, rename)
    if fmt == ConfigFormat.NFT_JSON.value:
        return _nft_identity(rule.text, rename)
    if fmt == ConfigFormat.AWS_SG.value:
        # The names after prefix-list and group ids are looked up, not part of the rule.
        return _AWS_REF_NAME.sub(r"\1", _AWS_DESCRIPTION.sub("", rule.text)).strip()
    return " ".join(rule.text.split())


# --- pairing --------------------------------------------------------------------------------

_FORMAT_TITLES = {
    ConfigFormat.IPTABLES.value: "iptables",
    ConfigFormat.NFT_JSON.value: "nftables",
    ConfigFormat.AWS_SG.value: "security groups",
}


def pair_rulesets(
    old: MaterialisedEnd, new: MaterialisedEnd
) -> list[tuple[str, str, int, RuleSet | None, RuleSet | None]]:
    """Pairs ``(label, format, family, old, new)`` by (format, family, order); a family with
    one unpaired rule set at each end in different formats pairs those two."""

    def keyed(end: MaterialisedEnd) -> dict[tuple[str, int, int], RuleSet]:
        seen: dict[tuple[str, int], int] = defaultdict(int)
        out: dict[tuple[str, int, int], RuleSet] = {}
        for rs, fmt in zip(end.configs.rulesets, end.configs.formats, strict=True):
            n = seen[(fmt.value, rs.family)]
            seen[(fmt.value, rs.family)] += 1
            out[(fmt.value, rs.family, n)] = rs
        return out

    a, b = keyed(old), keyed(new)
    pairs: list[tuple[str, str, int, RuleSet | None, RuleSet | None]] = []
    # A family read from another format at each end (iptables replaced by nftables, say):
    # compare those two rule sets with each other, not each with nothing.
    for family in sorted({k[1] for k in (*a, *b)}):
        only_a = [k for k in a if k not in b and k[1] == family]
        only_b = [k for k in b if k not in a and k[1] == family]
        if len(only_a) == 1 and len(only_b) == 1:
            ka, kb = only_a[0], only_b[0]
            title = (
                f"{_FORMAT_TITLES.get(ka[0], ka[0])} -> {_FORMAT_TITLES.get(kb[0], kb[0])} "
                f"IPv{family}"
            )
            pairs.append((title, kb[0], family, a.pop(ka), b.pop(kb)))
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2])):
        fmt, family, n = key
        rs = a.get(key) or b.get(key)
        assert rs is not None
        end = old if key in a else new
        title = f"{_FORMAT_TITLES.get(fmt, fmt)} IPv{family}"
        if n:
            title += f" ({end.display(rs.source)})"
        pairs.append((title, fmt, family, a.get(key), b.get(key)))
    return pairs


def _view(end: MaterialisedEnd, rule: Rule) -> RuleView:
    return RuleView(rule.chain, rule.position, rule.text, end.where(rule.location), rule.comment)


def _chain_signature(chain: Chain, fmt: str) -> tuple[str, ...]:
    return tuple(rule_identity(r, fmt) for r in chain.rules)


def _base_detail(a: Chain, b: Chain) -> str:
    parts = []
    if a.hook != b.hook:
        parts.append(f"hook {a.hook or 'none'} -> {b.hook or 'none'}")
    if (a.policy or ActionKind.ACCEPT) != (b.policy or ActionKind.ACCEPT) and (a.hook or b.hook):
        parts.append(
            f"policy {(a.policy or ActionKind.ACCEPT).value} -> "
            f"{(b.policy or ActionKind.ACCEPT).value}"
        )
    if a.priority != b.priority and (a.hook or b.hook):
        parts.append(f"priority {a.priority} -> {b.priority}")
    return ", ".join(parts)


def _diff_pair(
    label: str,
    fmt: str,
    family: int,
    old: RuleSet | None,
    new: RuleSet | None,
    old_end: MaterialisedEnd,
    new_end: MaterialisedEnd,
) -> PairDiff:
    diff = PairDiff(label, fmt, family, old, new)
    a_chains = old.chains if old is not None else {}
    b_chains = new.chains if new is not None else {}
    only_a = [n for n in a_chains if n not in b_chains]
    only_b = [n for n in b_chains if n not in a_chains]
    rename: dict[str, str] = {}
    sig_b: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for n in only_b:
        if b_chains[n].hook is None:
            sig_b[_chain_signature(b_chains[n], fmt)].append(n)
    for n in only_a:
        if a_chains[n].hook is not None:
            continue
        cands = sig_b.get(_chain_signature(a_chains[n], fmt))
        if cands:
            rename[n] = cands.pop(0)
    for n in only_a:
        if n in rename:
            diff.chains.append(ChainChange("renamed", n, rename[n]))
        else:
            chain = a_chains[n]
            diff.chains.append(ChainChange("removed", n, None, f"{len(chain.rules)} rules"))
            for r in chain.rules:
                diff.changed_old.add((n, r.position))
            if chain.hook is not None:
                diff.whole = True
    renamed_to = set(rename.values())
    for n in only_b:
        if n in renamed_to:
            continue
        chain = b_chains[n]
        diff.chains.append(ChainChange("added", None, n, f"{len(chain.rules)} rules"))
        for r in chain.rules:
            diff.changed_new.add((n, r.position))
        if chain.hook is not None:
            diff.whole = True
    for n in a_chains:
        if n in b_chains:
            detail = _base_detail(a_chains[n], b_chains[n])
            if detail:
                diff.chains.append(ChainChange("policy", n, n, detail))
                diff.whole = True
            _diff_rules(diff, a_chains[n], b_chains[n], fmt, rename, old_end, new_end)
        elif n in rename:
            _diff_rules(diff, a_chains[n], b_chains[rename[n]], fmt, rename, old_end, new_end)
    return diff


def _diff_rules(
    diff: PairDiff,
    a: Chain,
    b: Chain,
    fmt: str,
    rename: dict[str, str],
    old_end: MaterialisedEnd,
    new_end: MaterialisedEnd,
) -> None:
    ids_a = [rule_identity(r, fmt, rename) for r in a.rules]
    ids_b = [rule_identity(r, fmt) for r in b.rules]
    matcher = difflib.SequenceMatcher(None, ids_a, ids_b, autojunk=False)
    pairs: list[tuple[int, int]] = []
    blocks: list[tuple[list[int], list[int]]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
        else:
            blocks.append((list(range(i1, i2)), list(range(j1, j2))))
    # Moved: an identity deleted in one place and inserted in another.
    inserted: dict[str, list[int]] = defaultdict(list)
    for _, js in blocks:
        for j in js:
            inserted[ids_b[j]].append(j)
    moved: dict[int, int] = {}
    for is_, _ in blocks:
        for i in is_:
            if inserted.get(ids_a[i]):
                moved[i] = inserted[ids_a[i]].pop(0)
    moved_new = set(moved.values())
    chain_name = b.name
    for i, j in pairs:
        ra, rb = a.rules[i], b.rules[j]
        if not _same_action(ra, rb, rename):
            # Same identity, other verdict or target: the identity normalised away something
            # that matters (e.g. a chain name looking like a counter). Never hide it.
            _record(diff, "modified", chain_name, ra, rb, old_end, new_end, "action")
            continue
        if ra.comment != rb.comment:
            # Same identity, match and action: the rule does the same to every packet, so it
            # is no part of the change region (a comment edit proves "no semantic change"
            # even on a rule with conditions netguard does not model).
            _record(diff, "modified", chain_name, ra, rb, old_end, new_end, "comment", region=False)
        if ra.match != rb.match:
            diff.match_changed.append((_view(old_end, ra), _view(new_end, rb)))
            diff.changed_old.add((a.name, ra.position))
            diff.changed_new.add((b.name, rb.position))
    order_free = _order_free(a) and _order_free(b)
    for i, j in sorted(moved.items()):
        ra, rb = a.rules[i], b.rules[j]
        detail = f"position {ra.position} -> {rb.position}"
        if ra.comment != rb.comment:
            detail += ", comment"
        # In a chain whose rules all give one verdict, order cannot matter: a move of a rule
        # that is otherwise the same changes nothing (security groups are such sets).
        same = order_free and ra.match == rb.match and _same_action(ra, rb, rename)
        _record(diff, "moved", chain_name, ra, rb, old_end, new_end, detail, region=not same)
    for is_, js in blocks:
        left = [i for i in is_ if i not in moved]
        right = [j for j in js if j not in moved_new]
        for i, j in zip(left, right, strict=False):
            _record(diff, "modified", chain_name, a.rules[i], b.rules[j], old_end, new_end)
        for i in left[len(right) :]:
            _record(diff, "removed", chain_name, a.rules[i], None, old_end, new_end)
        for j in right[len(left) :]:
            _record(diff, "added", chain_name, None, b.rules[j], old_end, new_end)


def _order_free(chain: Chain) -> bool:
    """True when the order of ``chain``'s rules cannot change any packet's verdict: every
    rule ends in the same verdict (all ACCEPT, all DROP or all REJECT) or only logs. The
    first match and any match then give the same outcome (iptables(8) "TARGETS"; AWS
    security group rules are such an unordered set of allows)."""
    kinds = {r.action.kind for r in chain.rules} - {ActionKind.LOG}
    return len(kinds) <= 1 and kinds <= {ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT}


def _same_action(ra: Rule, rb: Rule, rename: dict[str, str]) -> bool:
    """True when the two rules do the same to a packet they match: same verdict kind and,
    for a jump or goto, the same target chain (OLD names mapped through ``rename``)."""
    a, b = ra.action, rb.action
    target = rename.get(a.chain, a.chain) if a.chain is not None else None
    return a.kind == b.kind and target == b.chain


def _record(
    diff: PairDiff,
    kind: str,
    chain: str,
    ra: Rule | None,
    rb: Rule | None,
    old_end: MaterialisedEnd,
    new_end: MaterialisedEnd,
    detail: str = "",
    *,
    region: bool = True,
) -> None:
    if region and ra is not None:
        diff.changed_old.add((ra.chain, ra.position))
    if region and rb is not None:
        diff.changed_new.add((rb.chain, rb.position))
    diff.rules.append(
        RuleChange(
            kind,
            chain,
            _view(old_end, ra) if ra is not None else None,
            _view(new_end, rb) if rb is not None else None,
            detail,
        )
    )


def _diff_sets(a: dict[str, SetInfo], b: dict[str, SetInfo]) -> list[SetChange]:
    out: list[SetChange] = []
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    by_content: dict[tuple[str, tuple[str, ...], str], list[str]] = defaultdict(list)
    for k in only_b:
        by_content[(b[k].kind, b[k].members, b[k].spec)].append(k)
    renamed: dict[str, str] = {}
    for k in only_a:
        cands = by_content.get((a[k].kind, a[k].members, a[k].spec))
        if cands:
            renamed[k] = cands.pop(0)
    for k in sorted(only_a):
        s = a[k]
        if k in renamed:
            out.append(SetChange("renamed", s.kind, s.title, b[renamed[k]].title))
        else:
            out.append(SetChange("removed", s.kind, s.title, None, removed=s.members))
    for k in sorted(only_b):
        if k in renamed.values():
            continue
        s = b[k]
        out.append(SetChange("added", s.kind, None, s.title, added=s.members))
    for k in sorted(set(a) & set(b)):
        sa, sb = a[k], b[k]
        if sa.title != sb.title:
            out.append(SetChange("renamed", sa.kind, sa.title, sb.title))
        if sa.spec != sb.spec:
            out.append(
                SetChange("type", sa.kind, sa.title, sb.title, detail=f"{sa.spec} -> {sb.spec}")
            )
        if sa.members != sb.members:
            ma, mb = set(sa.members), set(sb.members)
            out.append(
                SetChange(
                    "members",
                    sa.kind,
                    sa.title,
                    sb.title,
                    added=tuple(sorted(mb - ma)),
                    removed=tuple(sorted(ma - mb)),
                )
            )
    return out


def _diff_groups(a: dict[str, str], b: dict[str, str]) -> list[GroupChange]:
    out: list[GroupChange] = []
    for gid in sorted(set(a) | set(b)):
        if gid not in b:
            out.append(GroupChange("removed", gid, a[gid], None))
        elif gid not in a:
            out.append(GroupChange("added", gid, None, b[gid]))
        elif a[gid] != b[gid]:
            out.append(GroupChange("renamed", gid, a[gid], b[gid]))
    return out


# --- what the readers do not analyse -----------------------------------------------------------

_IPT_TABLE = re.compile(r"^\*(\S+)\s*$")
_IPT_CHAIN_COUNTERS = re.compile(r"^(:\S+\s+\S+)\s+\[\d+:\d+\]\s*$")
_NFT_ANALYSED_FAMILIES = ("ip", "ip6", "inet")


def _iptables_unanalysed(text: str, out: dict[str, list[str]]) -> None:
    """Lines of the tables other than ``filter`` (iptables-save(8)), counters and comments
    left out, into ``out["iptables table NAME"]``."""
    table: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _IPT_TABLE.match(line)
        if m:
            table = m.group(1)
            continue
        if line == "COMMIT":
            table = None
            continue
        if table is None or table == "filter":
            continue
        chain = _IPT_CHAIN_COUNTERS.match(line)
        if chain:
            line = chain.group(1)
        elif not line.startswith(":"):
            line = _iptables_identity(line, {}) + " @" + _chain_of(line)
        out.setdefault(f"iptables table {table}", []).append(line)


def _chain_of(line: str) -> str:
    words = line.split()
    for i, w in enumerate(words[:-1]):
        if w in ("-A", "--append"):
            return words[i + 1]
    return ""


def _nft_state_free(value: Any) -> Any:
    """``value`` without handles, counter values and element expiry (libnftables-json(5))."""
    if isinstance(value, dict):
        return {
            k: (None if k == "counter" else _nft_state_free(v))
            for k, v in value.items()
            if k not in ("handle", "expires")
        }
    if isinstance(value, list):
        return [_nft_state_free(v) for v in value]
    return value


def _nft_unanalysed(text: str, out: dict[str, list[str]], skip: dict[str, set[str]]) -> None:
    """Tables of families other than ip/ip6/inet and chains of type nat or route, with
    their rules and sets, into ``out`` (nft(8) "ADDRESS FAMILIES", "CHAINS"); the tables in
    ``skip`` (iptables-nft's, compared from the iptables-save parts) are left out."""
    try:
        doc: Any = json.loads(text)
    except (ValueError, RecursionError):
        return
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return
    chains: dict[tuple[object, object, object], str] = {}
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, body),) = item.items()
        if not isinstance(body, dict):
            continue
        family = body.get("family")
        if not isinstance(family, str):  # metainfo and other objects of no table
            continue
        table = body.get("name") if kind == "table" else body.get("table")
        if table in skip.get(family, set()):
            continue
        key: str | None = None
        if family not in _NFT_ANALYSED_FAMILIES:
            key = f"nft table {family} {table}"
        elif kind == "chain" and body.get("type") not in (None, "filter"):
            key = f"nft chain {family} {table}/{body.get('name')} (type {body.get('type')})"
            chains[(family, table, body.get("name"))] = key
        elif kind == "rule":
            key = chains.get((family, table, body.get("chain")))
        if key is not None:
            entry = json.dumps({kind: _nft_state_free(body)}, sort_keys=True)
            out.setdefault(key, []).append(entry)


def _unanalysed(end: MaterialisedEnd) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    skip = iptables_tables(end.snapshot.parts)
    for part in end.snapshot.parts:
        if part.format == ConfigFormat.IPTABLES.value:
            _iptables_unanalysed(part.text, out)
        elif part.format == ConfigFormat.NFT_JSON.value:
            _nft_unanalysed(part.text, out, skip)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _diff_unanalysed(old: MaterialisedEnd, new: MaterialisedEnd) -> list[str]:
    a, b = _unanalysed(old), _unanalysed(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(f"{key} removed (not analysed)")
        elif key not in a:
            out.append(f"{key} added (not analysed)")
        elif a[key] != b[key]:
            out.append(f"{key} changed (not analysed)")
    return out


def structural_diff(old: MaterialisedEnd, new: MaterialisedEnd) -> StructuralDiff:
    """The structural diff of two read ends (module docstring)."""
    pairs = [
        _diff_pair(label, fmt, family, a, b, old, new)
        for label, fmt, family, a, b in pair_rulesets(old, new)
    ]
    return StructuralDiff(
        pairs=pairs,
        sets=_diff_sets(old.sets, new.sets),
        groups=_diff_groups(old.groups, new.groups),
        unanalysed=_diff_unanalysed(old, new),
    )
