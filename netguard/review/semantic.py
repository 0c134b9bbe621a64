"""Semantic diff: the flows newly permitted and newly denied at each hook, as a proof.

For each pair of rule sets (:mod:`netguard.review.structural`) and each hook, OLD and NEW are
evaluated with one shared :class:`~netguard.space.Engine` (``Engine.for_rulesets(old, new)``)
under ``Approx.MAY`` (unmodeled conditions counted as possibly matching, as ``netguard check``
does), and::

    newly permitted = (NEW.accepted - OLD.accepted) ∩ R
    newly denied    = (OLD.accepted - NEW.accepted) ∩ R

Unmodeled conditions (``-m owner``, ``-m string``, a set with timeouts, ...) and targets make
each end's ``accepted`` an upper bound (MAY) and ``accepted - uncertain`` a lower bound (the
MUST reading, :mod:`netguard.space.evaluate`). Two different unmodeled conditions are both
"may match" under MAY, so the difference above can be empty while the network changed
(``--uid-owner 1000`` edited to ``--uid-owner 0``). So the verdict is checked against the
bounds: what NEW may accept and OLD surely did not, and what OLD may have accepted and NEW
surely does not::

    possibly permitted = (NEW.accepted - (OLD.accepted - OLD.uncertain)) ∩ R - newly permitted
    possibly denied    = (OLD.accepted - (NEW.accepted - NEW.uncertain)) ∩ R - newly denied

All four empty is a proof that what the hook lets through is unchanged; the possibly
permitted/denied flows are listed as *not proven* and count as a change for the exit code
(so a change touching a rule with unmodeled conditions is "not proven", never "unchanged",
unless only its comment changed).

``R``, the *change region*, is the union of the match spaces (``engine.match(rule.match,
family, Approx.MAY)``) of every rule the structural diff names at either end (added,
removed, moved, modified other than in its comment, or whose match or action changed with a
set or a renamed chain). A packet outside R matches, in each chain, the same rules in
the same relative order at both ends (the unchanged rules keep their order and matches), so it
takes the same path and gets the same verdict: the differences lie inside R. When a base chain
changed (added, removed, policy, hook, priority) R is every packet. Both ends are evaluated
with ``evaluate(..., entry=R)``, which walks only R's packets (every set of the result is the
whole evaluation's intersected with R), so the work follows the change, not the rule set.

Each difference is described by at most ``limit`` rectangles (``HeaderSpace.rectangles``);
each rectangle has one example packet (``HeaderSpace.example``, which prefers natural
packets) and the rules credited with that packet's verdict at each end
(``Evaluation.deciding_rules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netguard.check import ConfigFormat
from netguard.model.ruleset import ActionKind, Hook, RuleSet
from netguard.review.load import MaterialisedEnd
from netguard.review.structural import PairDiff
from netguard.space import POLICY, Approx, Engine, Evaluation, HeaderSpace, RuleKey, evaluate

__all__ = [
    "FlowChange",
    "HookDiff",
    "SemanticDiff",
    "change_region",
    "diff_pair_semantics",
    "semantic_diff",
]


@dataclass(frozen=True)
class FlowChange:
    """One rectangle of newly permitted (``direction`` "permitted") or newly denied flows
    (or, not proven, "possibly permitted"/"possibly denied"):
    ``space`` as text (e.g. ``ipv4 tcp dst 198.51.100.0/24 dport 443``), one ``example``
    packet in ``netguard explain`` syntax, and the rules deciding it at each end
    (``chain rule N: text [part:line]`` or ``chain C policy P``)."""

    direction: str
    space: str
    example: str
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]


@dataclass(frozen=True)
class HookDiff:
    """The semantic diff of one rule-set pair at one hook. ``truncated_*`` is True when more
    rectangles than shown are needed; ``region`` says how R was formed."""

    label: str
    family: int
    hook: str
    permitted: tuple[FlowChange, ...]
    denied: tuple[FlowChange, ...]
    truncated_permitted: bool = False
    truncated_denied: bool = False
    region: str = ""
    unproven_permitted: tuple[FlowChange, ...] = ()
    unproven_denied: tuple[FlowChange, ...] = ()
    truncated_unproven: bool = False

    @property
    def changed(self) -> bool:
        """True when some flow is newly permitted or newly denied."""
        return bool(self.permitted or self.denied)

    @property
    def proven(self) -> bool:
        """False when unmodeled conditions leave some flows possibly permitted or denied
        (module docstring): then "unchanged" cannot be claimed for them."""
        return not (self.unproven_permitted or self.unproven_denied)


@dataclass(frozen=True)
class SemanticDiff:
    """Every pair's hook diffs; ``proven`` lists ``label hook`` checked and found unchanged."""

    hooks: tuple[HookDiff, ...]
    unchanged: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when what the network allows changed somewhere."""
        return any(h.changed for h in self.hooks)

    @property
    def unproven(self) -> bool:
        """True when some hook has flows that may have changed (unmodeled conditions)."""
        return any(not h.proven for h in self.hooks)


def change_region(engine: Engine, diff: PairDiff, family: int) -> tuple[HeaderSpace, str]:
    """R for ``diff`` (module docstring) and a description of it."""
    if diff.whole or diff.old is None or diff.new is None:
        return engine.all(family), "every packet (a base chain or the rule set changed)"
    region = engine.none()
    count = 0
    for rs, keys in ((diff.old, diff.changed_old), (diff.new, diff.changed_new)):
        for chain, position in keys:
            rule = rs.chains[chain].rules[position - 1]
            region = region | engine.match(rule.match, family, Approx.MAY)
            count += 1
    return region, f"the matches of {count} changed rules"


def _empty_like(family: int, source: str) -> RuleSet:
    return RuleSet(family=family, chains={}, source=source)


def _hooks(diff: PairDiff) -> list[Hook]:
    out = []
    for hook in Hook:
        sides = [rs for rs in (diff.old, diff.new) if rs is not None]
        if not any(rs.base_chains(hook) for rs in sides):
            # No base chain at either end: both accept everything (netfilter), or, for
            # security groups, there is no such hook (forward).
            continue
        out.append(hook)
    return out


def _deciders(
    ev: Evaluation, rs: RuleSet, packet: Any, where: Callable[[Any], str]
) -> tuple[str, ...]:
    # Evaluation.deciding_rules tests the packet against every rule's set; with a change
    # region most sets are empty, so skip those and build the packet's set once.
    point = ev.engine.packet(packet)
    keys = sorted(
        k for k, s in ev.decided_by.items() if not s.is_empty() and not s.isdisjoint(point)
    )
    out = [_key_text(rs, key, where) for key in keys]
    if not out and not rs.base_chains(ev.hook):
        out.append("no base chain on this hook: accepted")
    return tuple(out)


def _key_text(rs: RuleSet, key: RuleKey, where: Callable[[Any], str]) -> str:
    chain = rs.chains[key.chain]
    if key.position == POLICY:
        policy = (chain.policy or ActionKind.ACCEPT).value
        return f"{key.chain} policy {policy} [{where(chain.location)}]"
    rule = chain.rules[key.position - 1]
    return f"{key.chain} rule {key.position}: {rule.text} [{where(rule.location)}]"


@dataclass
class _Slice:
    """Both ends evaluated on one set of packets (R, or every packet)."""

    space: HeaderSpace
    old: Evaluation
    new: Evaluation


def _slices(
    diff: PairDiff,
    old: RuleSet,
    new: RuleSet,
    hook: Hook,
    engine: Engine,
    region: HeaderSpace | None,
) -> list[_Slice]:
    """Both ends evaluated with ``entry=region`` (``None``: every packet).

    One evaluation over R rather than one per changed rule's match (each walking only the
    rules whose boxes meet it, ``Slicer.evaluate(entry, box)``): on bench/bench_review.py's
    random rule sets the per-rule slices were slower (33 s against 21 s for 10,000 rules),
    the boxes of wide changed rules meeting most rules.
    """
    everything = engine.all(diff.family)
    space = everything if region is None else region
    entry = None if region is None else region
    return [
        _Slice(
            space,
            evaluate(old, hook, engine, Approx.MAY, entry=entry),
            evaluate(new, hook, engine, Approx.MAY, entry=entry),
        )
    ]


def _describe(
    space: HeaderSpace,
    direction: str,
    limit: int,
    slices: list[_Slice],
    old: tuple[RuleSet, MaterialisedEnd],
    new: tuple[RuleSet, MaterialisedEnd],
    engine: Engine,
) -> tuple[tuple[FlowChange, ...], bool]:
    if space.is_empty():
        return (), False
    rects = space.rectangles(limit)
    out: list[FlowChange] = []
    for rect in rects:
        part = engine.rectangle(rect) & space
        packet = part.example() or space.example()
        if packet is None:  # pragma: no cover - a rectangle of a non-empty set is non-empty
            continue
        # The evaluations of a slice holding the packet know which rules decide it.
        where = next(s for s in slices if packet in s.space)
        out.append(
            FlowChange(
                direction=direction,
                space=str(rect),
                example=str(packet),
                old_rules=_deciders(where.old, old[0], packet, old[1].where),
                new_rules=_deciders(where.new, new[0], packet, new[1].where),
            )
        )
    return tuple(out), rects.truncated


def diff_pair_semantics(
    diff: PairDiff,
    old_end: MaterialisedEnd,
    new_end: MaterialisedEnd,
    *,
    limit: int = 8,
    restrict: bool = True,
) -> tuple[list[HookDiff], list[str]]:
    """The hook diffs of one pair and the ``label hook`` names proven unchanged.

    ``restrict`` False evaluates each end once over every packet instead of over R's parts;
    the answer is the same (module docstring), which tests use to check the region (the
    possibly changed flows are taken inside R either way). Raises
    ``InputError`` (exit 2) for rule sets the engine refuses (jump loops, missing chains).
    """
    hooks: list[HookDiff] = []
    unchanged: list[str] = []
    if not diff.changed:
        # Same rules, same order, same matches, same chains: the same function of packets.
        return [], [f"{diff.label} {h.value}" for h in _hooks(diff)]
    old = diff.old or _empty_like(diff.family, "(absent)")
    new = diff.new or _empty_like(diff.family, "(absent)")
    engine = Engine.for_rulesets(old, new)
    region: HeaderSpace | None = None
    # Outside R both ends walk the same rules with the same (even unmodeled) conditions, so
    # nothing there is "possibly" changed either: the bounds are compared inside R only,
    # whichever set of packets is evaluated.
    r, how = change_region(engine, diff, diff.family)
    if restrict:
        region = None if r.is_all(diff.family) else r
    else:
        how = "every packet"
    for hook in _hooks(diff):
        slices = _slices(diff, old, new, hook, engine, region)
        permitted = engine.none()
        denied = engine.none()
        maybe_permitted = engine.none()
        maybe_denied = engine.none()
        for sl in slices:
            permitted = permitted | (sl.new.accepted - sl.old.accepted)
            denied = denied | (sl.old.accepted - sl.new.accepted)
            old_unsure, new_unsure = sl.old.uncertain, sl.new.uncertain
            if not (old_unsure.is_empty() and new_unsure.is_empty()):
                surely_old = sl.old.accepted - old_unsure
                surely_new = sl.new.accepted - new_unsure
                maybe_permitted = maybe_permitted | (sl.new.accepted - surely_old)
                maybe_denied = maybe_denied | (sl.old.accepted - surely_new)
        maybe_permitted = (maybe_permitted & r) - permitted
        maybe_denied = (maybe_denied & r) - denied
        if (
            permitted.is_empty()
            and denied.is_empty()
            and maybe_permitted.is_empty()
            and maybe_denied.is_empty()
        ):
            unchanged.append(f"{diff.label} {hook.value}")
            continue
        sides_old = (old, old_end)
        sides_new = (new, new_end)
        perm, perm_trunc = _describe(
            permitted, "permitted", limit, slices, sides_old, sides_new, engine
        )
        den, den_trunc = _describe(denied, "denied", limit, slices, sides_old, sides_new, engine)
        may_perm, may_perm_trunc = _describe(
            maybe_permitted, "possibly permitted", limit, slices, sides_old, sides_new, engine
        )
        may_den, may_den_trunc = _describe(
            maybe_denied, "possibly denied", limit, slices, sides_old, sides_new, engine
        )
        hooks.append(
            HookDiff(
                label=diff.label,
                family=diff.family,
                hook=hook.value,
                permitted=perm,
                denied=den,
                truncated_permitted=perm_trunc,
                truncated_denied=den_trunc,
                region=how,
                unproven_permitted=may_perm,
                unproven_denied=may_den,
                truncated_unproven=may_perm_trunc or may_den_trunc,
            )
        )
    return hooks, unchanged


def semantic_diff(
    pairs: list[PairDiff],
    old_end: MaterialisedEnd,
    new_end: MaterialisedEnd,
    *,
    limit: int = 8,
    restrict: bool = True,
) -> SemanticDiff:
    """The semantic diff of every pair (module docstring)."""
    hooks: list[HookDiff] = []
    unchanged: list[str] = []
    for diff in pairs:
        if diff.format not in (
            ConfigFormat.IPTABLES.value,
            ConfigFormat.NFT_JSON.value,
            ConfigFormat.AWS_SG.value,
        ):
            continue
        h, u = diff_pair_semantics(diff, old_end, new_end, limit=limit, restrict=restrict)
        hooks.extend(h)
        unchanged.extend(u)
    return SemanticDiff(tuple(hooks), tuple(unchanged))
