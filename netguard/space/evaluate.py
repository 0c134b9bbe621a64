"""Evaluate a RuleSet at one hook: exact first-match semantics over header spaces, and the
concrete path of one packet (``trace``, for ``netguard explain``).

Semantics (iptables(8), nft(8)):

- the base chains on the hook run in priority order; a packet is accepted at the hook only if
  every base chain accepts it; a packet denied by one base chain never reaches the next;
- in a chain, rules are tried in order; the first matching rule with a terminating action
  decides: ACCEPT accepts (in this base chain), DROP and REJECT deny;
- JUMP calls the target chain: RETURN there, or falling off its end, continues after the jump;
- GOTO transfers without pushing a return point: RETURN (or the end) in the target returns to
  whatever the current chain would have returned to;
- RETURN or falling off the end of a base chain applies its policy (``None``: ACCEPT, as
  netfilter does);
- LOG and CONTINUE do not terminate;
- jump loops, jumps to missing chains and jumps to base chains are invalid input
  (:class:`~netguard.errors.InputError` naming the rule).

Unmodeled conditions and targets (``Approx``): each rule gets a lower bound (the packets that
surely match: empty when an unmodeled condition is present) and an upper bound (the packets
that may match: the modeled conditions alone). The walk is nondeterministic: at each rule the
packets in the upper bound may take the action and those outside the lower bound may go on,
so the packets in between take both paths. An UNMODELED target (QUEUE, ...) may accept and may
deny. This yields, in one pass, *may-accept* (accepted under some reading of the unmodeled
parts) and *may-deny*. With MAY, ``accepted`` is may-accept (a sound over-approximation: an
ACCEPT rule with unmodeled conditions counts as matching, a DROP/REJECT rule never hides an
accept, and RETURN/JUMP/GOTO are followed both ways); with MUST, ``accepted`` is the packets
that are not may-deny (a sound under-approximation). EXACT refuses unmodeled parts
(:class:`~netguard.space.engine.UnmodeledError`, listing every one on the hook).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from netguard.cidr import PrefixSet
from netguard.errors import InputError, Location
from netguard.model.ruleset import (
    ActionKind,
    Chain,
    Hook,
    InterfaceMatch,
    Match,
    Rule,
    RuleSet,
)
from netguard.space._bdd import Node
from netguard.space.engine import Approx, Engine, HeaderSpace, UnmodeledError
from netguard.space.index import Box, RuleIndex
from netguard.space.packet import PORT_PROTOCOLS, Packet

__all__ = [
    "POLICY",
    "Evaluation",
    "RuleKey",
    "RuleSpaces",
    "Shadowing",
    "Slicer",
    "TraceStep",
    "evaluate",
    "match_packet",
    "trace",
]

#: ``RuleKey.position`` of a chain's policy (rule positions are 1-based).
POLICY = 0

_VERDICTS = (ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT, ActionKind.UNMODELED)
_CALLS = (ActionKind.JUMP, ActionKind.GOTO)


@dataclass(frozen=True, order=True)
class RuleKey:
    """Identifies a rule by chain and 1-based position; position 0 (:data:`POLICY`) is the
    chain's policy."""

    chain: str
    position: int

    @property
    def is_policy(self) -> bool:
        """True for the key of a chain's policy."""
        return self.position == POLICY

    def __str__(self) -> str:
        return f"{self.chain} policy" if self.is_policy else f"{self.chain} rule {self.position}"


@dataclass(frozen=True)
class Shadowing:
    """A rule that no packet both reaches and matches, and the earlier rules of its chain
    that take the packets it would match (empty when no such packet enters the chain, or
    the match is empty by itself)."""

    rule: RuleKey
    covered_by: tuple[RuleKey, ...]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The outcome of :func:`evaluate` at one hook.

    ``accepted``/``denied`` partition the packets of the rule set's family. ``uncertain``
    holds the packets whose verdict depends on unmodeled parts (empty with EXACT).

    Per rule (:class:`RuleKey`): ``reached`` are the packets that (may) reach it, summed over
    every call of its chain; ``matched`` = reached ∩ its match (the upper bound with MAY and
    MUST); ``consumed`` the packets whose walk through the rule's chain ends at it (decided,
    returned, or taken by a GOTO or a jump that did not return). :meth:`match_space` gives a
    rule's match wherever the packets are. ``decided_by`` maps each verdict rule (ACCEPT,
    DROP, REJECT, UNMODELED target) and each base chain policy to the packets whose verdict in
    that base chain it gave; a rule inside a jumped-to chain is credited, not the jump. With
    one base chain and EXACT these sets partition the family; with MAY/MUST a packet may be
    credited to every rule that could decide it. ``entered`` maps chain names to the packets
    that enter them.
    """

    ruleset: RuleSet
    hook: Hook
    approx: Approx
    engine: Engine
    totals: _Totals = field(repr=False)
    decided_by: RuleSpaces
    reached: Mapping[RuleKey, HeaderSpace]
    matched: RuleSpaces
    consumed: RuleSpaces
    entered: Mapping[str, HeaderSpace]
    rules: Mapping[RuleKey, Rule] = field(repr=False)
    entry: HeaderSpace | None = None
    slicer: Slicer | None = field(default=None, repr=False)
    _match_cache: dict[RuleKey, HeaderSpace] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def accepted(self) -> HeaderSpace:
        """The packets the hook accepts (may accept with MAY, must with MUST)."""
        return self.totals.get()[0]

    @property
    def denied(self) -> HeaderSpace:
        """The packets the hook denies: the rest of the evaluated packets."""
        return self.totals.get()[1]

    @property
    def uncertain(self) -> HeaderSpace:
        """The packets whose verdict depends on unmodeled parts (empty with EXACT)."""
        return self.totals.get()[2]

    def match_space(self, key: RuleKey) -> HeaderSpace:
        """The packets of the rule set's family that rule ``key``'s match selects (unmodeled
        conditions counted as true)."""
        got = self._match_cache.get(key)
        if got is None:
            got = self.engine.match(self.rules[key].match, self.ruleset.family, Approx.MAY)
            self._match_cache[key] = got
        return got

    def restrict(self, entry: HeaderSpace, within: RuleKey | None = None) -> Evaluation:
        """The same evaluation restricted to the packets of ``entry`` (walked anew: cheap
        when ``entry`` is small; every set is this evaluation's set intersected with
        ``entry``). ``within``: a rule whose match holds ``entry``; then only the rules
        whose boxes meet that rule's box are walked (:class:`RuleIndex`)."""
        slicer = self.slicer or Slicer(self.ruleset, self.hook, self.engine, self.approx)
        if self.entry is not None:
            entry = entry & self.entry
        if within is None or within.is_policy:
            return slicer.evaluate(entry)
        return slicer.evaluate(entry, slicer.index.box(within.chain, within.position))

    def accepts(self, packet: Packet) -> bool:
        """True when ``packet`` is in ``accepted``."""
        return packet in self.accepted

    def deciding_rules(self, packet: Packet) -> tuple[RuleKey, ...]:
        """The rules (and policies) credited with ``packet``'s verdict, in key order."""
        return tuple(sorted(k for k, s in self.decided_by.items() if packet in s))

    def shadowed(self) -> list[Shadowing]:
        """Rules that never match a packet reaching them, in key order, each with
        :meth:`covering`."""
        return [
            Shadowing(key, self.covering(key))
            for key in sorted(self.rules)
            if self.matched[key].is_empty()
        ]

    def covering(self, key: RuleKey) -> tuple[RuleKey, ...]:
        """The earlier rules of ``key``'s chain that take packets ``key`` would match, in
        order: following the packets of its match that enter the chain, each rule that
        consumes some of them, until none are left (empty when none enter the chain)."""
        entered = self.entered.get(key.chain)
        if entered is None:
            return ()
        left = self.match_space(key) & entered
        consumed = self.consumed
        earlier = sorted(  # only the rules the walk visited can take packets
            k.position
            for k, _ in consumed.visited()
            if k.chain == key.chain and k.position < key.position
        )
        out: list[RuleKey] = []
        for position in earlier:
            if left.is_empty():
                break
            k = RuleKey(key.chain, position)
            taken = left & consumed[k]
            if not taken.is_empty():
                out.append(k)
                left = left - taken
        return tuple(out)


# --- structure checks -------------------------------------------------------------------------


def _where(ruleset: RuleSet, chain: Chain) -> Location:
    return chain.location or Location(ruleset.source)


def _check_structure(ruleset: RuleSet) -> None:
    """Every JUMP/GOTO names an existing user chain and no chain can reach itself."""
    problems: list[tuple[Location, str]] = []
    for chain in ruleset.chains.values():
        if chain.hook is not None and chain.policy not in (
            None,
            ActionKind.ACCEPT,
            ActionKind.DROP,
        ):
            problems.append(
                (
                    _where(ruleset, chain),
                    f"base chain {chain.name} has policy {chain.policy}; expected ACCEPT or DROP",
                )
            )
        for rule in chain.rules:
            if rule.action.kind not in _CALLS:
                continue
            target = rule.action.chain
            if target is None or target not in ruleset.chains:
                problems.append(
                    (rule.location, f"{rule.action.kind} to undefined chain {target!r}")
                )
            elif ruleset.chains[target].hook is not None:
                problems.append(
                    (rule.location, f"{rule.action.kind} to base chain {target!r} is not allowed")
                )
    if problems:
        raise InputError(problems)
    # Cycle detection (depth-first, white/grey/black).
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for rule in ruleset.chains[name].rules:
            if rule.action.kind not in _CALLS or rule.action.chain is None:
                continue
            target = rule.action.chain
            if state.get(target) == 1:
                loop = " -> ".join([*path[path.index(target) :], name, target])
                raise InputError.at(rule.location, f"chain loop: {loop}")
            if state.get(target, 0) == 0:
                visit(target, [*path, name])
        state[name] = 2

    for name in sorted(ruleset.chains):
        if state.get(name, 0) == 0:
            visit(name, [])


def _reachable_rules(ruleset: RuleSet, hook: Hook) -> Iterable[Rule]:
    seen: set[str] = set()
    todo = [c.name for c in ruleset.base_chains(hook)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for rule in ruleset.chains[name].rules:
            yield rule
            if rule.action.kind in _CALLS and rule.action.chain is not None:
                todo.append(rule.action.chain)


def _check_modeled(ruleset: RuleSet, hook: Hook) -> None:
    found: list[tuple[str, str]] = []
    for rule in _reachable_rules(ruleset, hook):
        for text in rule.match.unmodeled:
            found.append((str(rule.location), text))
        if rule.action.kind is ActionKind.UNMODELED:
            found.append((str(rule.location), f"target {rule.action.text or 'UNMODELED'}"))
    if found:
        raise UnmodeledError(found)


def _check_interfaces(ruleset: RuleSet, engine: Engine) -> None:
    missing = sorted(
        {
            im.name + ("+" if im.wildcard else "")
            for chain in ruleset.chains.values()
            for rule in chain.rules
            for im in rule.match.in_interfaces + rule.match.out_interfaces
            if not engine.universe.covers(im)
        }
    )
    if missing:
        raise ValueError(
            f"the engine's interface universe lacks {missing}; "
            "build it with Engine.for_rulesets(ruleset)"
        )


# --- the walk ---------------------------------------------------------------------------------


#: The walk keeps the packets still undecided in a chain as ``base - local``: ``base`` a
#: (possibly large) set fixed for a block of rules, ``local`` the (small) union of what the
#: block's rules took. Each rule then costs operations on small sets only; ``base`` is
#: rebuilt once ``local`` grows past this many BDD nodes. Rebuilding after every rule (the
#: plain walk) makes each rule cost time in proportion to the whole undecided set: quadratic
#: in the number of rules.
_BLOCK_NODES = 4096


def _match_bounds(
    engine: Engine, family: int, match: Match, cache: dict[Match, tuple[Node, Node]]
) -> tuple[Node, Node]:
    """``(lower, upper)`` of ``match`` (module docstring: the lower bound is empty when an
    unmodeled condition is present), cached in ``cache``."""
    got = cache.get(match)
    if got is None:
        upper = engine.match_node(match, family)
        got = cache[match] = (engine.bdd.false if match.unmodeled else upper, upper)
    return got


class _Walker:
    def __init__(
        self,
        ruleset: RuleSet,
        engine: Engine,
        index: RuleIndex | None = None,
        bounds: dict[Match, tuple[Node, Node]] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.engine = engine
        self.index = index
        b = engine.bdd
        self.false = b.false
        self.bounds: dict[Match, tuple[Node, Node]] = {} if bounds is None else bounds
        self.reached: dict[RuleKey, list[tuple[Node, Node]]] = {}
        self.matched: dict[RuleKey, Node] = {}
        self.consumed: dict[RuleKey, Node] = {}
        self.decided: dict[RuleKey, Node] = {}
        self.entered: dict[str, Node] = {}
        self.accept = b.false
        self.deny = b.false
        #: Whether to build the accept/deny unions while walking (needed between base
        #: chains); otherwise they are derived from ``decided`` when asked for.
        self.gather = True

    def _bounds(self, match: Match) -> tuple[Node, Node]:
        return _match_bounds(self.engine, self.ruleset.family, match, self.bounds)

    def _add(self, table: dict[RuleKey, Node], key: RuleKey, node: Node) -> None:
        prev = table.get(key)
        table[key] = node if prev is None else prev | node

    def walk(self, chain: Chain, entry: Node, box: Box | None = None) -> Node:
        """Run ``entry`` through ``chain``; return the packets that (may) return from it.

        With an index and ``box`` (a box holding every packet of ``entry``), only the rules
        whose box meets ``box`` are visited: the others match nothing of ``entry``; the
        undecided packets, a subset of the small ``entry``, are updated after each rule.
        Otherwise the undecided packets before each rule are ``base - local`` (see
        ``_BLOCK_NODES``);
        the verdicts of a block are gathered in ``accept``/``deny`` and merged into the
        walker's totals when the block ends."""
        false = self.false
        self.entered[chain.name] = self.entered.get(chain.name, false) | entry
        base = entry
        local = false
        accept = deny = returned = false
        index = self.index
        gather = self.gather
        rules = chain.rules if index is None or box is None else index.select(chain.name, box)
        for rule in rules:
            key = RuleKey(chain.name, rule.position)
            kind = rule.action.kind
            self.reached.setdefault(key, []).append((base, local))
            lower, upper = self._bounds(rule.match)
            if kind in _VERDICTS:
                self._add(self.decided, key, false)
            if base == false:
                self._add(self.matched, key, false)
                continue
            hit = base & (upper & ~local) if local != false else base & upper
            self._add(self.matched, key, hit)
            if hit == false or kind in (ActionKind.LOG, ActionKind.CONTINUE):
                continue
            taken = lower
            consumed = hit
            if kind is ActionKind.ACCEPT:
                if gather:
                    accept = accept | hit
                self._add(self.decided, key, hit)
            elif kind in (ActionKind.DROP, ActionKind.REJECT):
                if gather:
                    deny = deny | hit
                self._add(self.decided, key, hit)
            elif kind is ActionKind.UNMODELED:
                if gather:
                    accept = accept | hit
                    deny = deny | hit
                self._add(self.decided, key, hit)
            elif kind is ActionKind.RETURN:
                returned = returned | hit
            else:
                assert rule.action.chain is not None
                inner = None
                if index is not None and box is not None:
                    inner = box & index.box(chain.name, rule.position)
                back = self.walk(self.ruleset.chains[rule.action.chain], hit, inner)
                if kind is ActionKind.JUMP:
                    # back lies inside hit, so inside base - local: taking lower - back
                    # leaves exactly (undecided - lower) | back.
                    taken = lower & ~back
                    consumed = hit & ~back
                else:
                    returned = returned | back
            self._add(self.consumed, key, consumed)
            if taken == false:
                continue
            if box is not None:  # a slice: the undecided packets are few, update them
                base = base & ~taken
            else:
                local = local | taken
                if local.dag_size > _BLOCK_NODES:
                    base, local = base & ~local, false
                    if gather:
                        self.accept, self.deny = self.accept | accept, self.deny | deny
                        accept = deny = false
        if gather:
            self.accept, self.deny = self.accept | accept, self.deny | deny
        return returned | (base & ~local)


def _union(nodes: list[Node], false: Node) -> Node:
    """The union of ``nodes``, pairwise (balanced): far cheaper than adding them one by one
    to a growing set."""
    if not nodes:
        return false
    while len(nodes) > 1:
        nodes = [
            nodes[i] | nodes[i + 1] if i + 1 < len(nodes) else nodes[i]
            for i in range(0, len(nodes), 2)
        ]
    return nodes[0]


class _Totals:
    """``accepted``/``denied``/``uncertain`` of an evaluation, built on first use.

    Either given (``may_accept``/``may_deny``) or, for one base chain, derived from the
    decided sets in ``pending``: ``(packets, policy_drops, action kind)`` per rule or policy
    (kind None for the policy): ACCEPT and an accepting policy may accept, DROP, REJECT and a
    DROP policy may deny, an UNMODELED target both."""

    def __init__(self, engine: Engine, approx: Approx, start: Node) -> None:
        self.engine = engine
        self.approx = approx
        self.start = start
        self.may_accept: Node | None = None
        self.may_deny: Node | None = None
        self.pending: list[tuple[Node, bool, ActionKind | None]] = []
        self._done: tuple[HeaderSpace, HeaderSpace, HeaderSpace] | None = None

    def get(self) -> tuple[HeaderSpace, HeaderSpace, HeaderSpace]:
        """``(accepted, denied, uncertain)``."""
        if self._done is None:
            false = self.engine.bdd.false
            if self.may_accept is None or self.may_deny is None:
                acc: list[Node] = []
                den: list[Node] = []
                for node, policy_drops, kind in self.pending:
                    if kind is None:
                        (den if policy_drops else acc).append(node)
                    elif kind is ActionKind.ACCEPT:
                        acc.append(node)
                    elif kind in (ActionKind.DROP, ActionKind.REJECT):
                        den.append(node)
                    elif kind is ActionKind.UNMODELED:
                        acc.append(node)
                        den.append(node)
                self.may_accept, self.may_deny = _union(acc, false), _union(den, false)
                self.pending = []
            may_accept, may_deny = self.may_accept, self.may_deny
            if self.approx is Approx.MUST:
                accepted, denied = self.start & ~may_deny, may_deny
            else:
                accepted, denied = may_accept, self.start & ~may_accept
            e = self.engine
            self._done = (
                HeaderSpace(e, accepted),
                HeaderSpace(e, denied),
                HeaderSpace(e, may_accept & may_deny),
            )
        return self._done


class RuleSpaces(Mapping[RuleKey, HeaderSpace]):
    """A table of an :class:`Evaluation` (``decided_by``, ``matched``, ``consumed``). Rule key
    -> packets: the walk's sets for the keys it visited, the empty set for the
    other ``keys`` (a restricted walk visits only the rules that meet its entry)."""

    def __init__(
        self, engine: Engine, nodes: Mapping[RuleKey, Node], keys: Collection[RuleKey]
    ) -> None:
        self._engine = engine
        self._nodes = nodes
        self._keys = keys
        self._none = engine.none()

    def __getitem__(self, key: RuleKey) -> HeaderSpace:
        node = self._nodes.get(key)
        if node is not None:
            return HeaderSpace(self._engine, node)
        if key in self._keys:
            return self._none
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._nodes or key in self._keys

    def __iter__(self) -> Iterator[RuleKey]:
        yield from self._nodes
        for key in self._keys:
            if key not in self._nodes:
                yield key

    def __len__(self) -> int:
        return len(self._keys) + sum(1 for k in self._nodes if k not in self._keys)

    def visited(self) -> Iterator[tuple[RuleKey, HeaderSpace]]:
        """The keys the walk visited and their (possibly empty) sets: every key whose set
        may be non-empty."""
        for key, node in self._nodes.items():
            yield key, HeaderSpace(self._engine, node)


class _Reached(Mapping[RuleKey, HeaderSpace]):
    """``Evaluation.reached``, computed on first use: each rule's packets are kept as the
    ``(base, local)`` pairs of the walk (``base - local`` per call of its chain)."""

    def __init__(
        self,
        engine: Engine,
        parts: dict[RuleKey, list[tuple[Node, Node]]],
        keys: Collection[RuleKey],
    ) -> None:
        self._engine = engine
        self._parts = parts
        self._keys = keys
        self._done: dict[RuleKey, HeaderSpace] = {}

    def __getitem__(self, key: RuleKey) -> HeaderSpace:
        got = self._done.get(key)
        if got is None:
            if key not in self._keys:
                raise KeyError(key)
            node = self._engine.bdd.false
            for base, local in self._parts.get(key, ()):
                node = node | (base & ~local)
            got = self._done[key] = HeaderSpace(self._engine, node)
        return got

    def __iter__(self) -> Iterator[RuleKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def evaluate(
    ruleset: RuleSet,
    hook: Hook,
    engine: Engine | None = None,
    approx: Approx = Approx.EXACT,
    entry: HeaderSpace | None = None,
) -> Evaluation:
    """Evaluate ``ruleset`` at ``hook`` over every packet of its family (see the module
    docstring for the semantics and for ``approx``), or only over the packets of ``entry``.

    ``engine`` defaults to ``Engine.for_rulesets(ruleset)``; a given engine must know every
    interface the rule set names (``ValueError`` otherwise). Raises ``InputError`` for loops
    or bad jump targets and, with EXACT, ``UnmodeledError``. A hook without base chains
    accepts everything.

    With ``entry``, every set of the result is the whole evaluation's set intersected with
    ``entry`` (the walk is the same for each packet, whatever the others do): ``accepted``
    and ``denied`` partition ``entry``'s packets of the family. A small entry is cheap to
    evaluate; :class:`Slicer` evaluates many such slices of one rule set.
    """
    if engine is None:
        engine = Engine.for_rulesets(ruleset)
    if entry is not None and entry.engine is not engine:
        raise ValueError("entry comes from another engine")
    return Slicer(ruleset, hook, engine, approx).evaluate(entry)


class Slicer:
    """Evaluations of one rule set at one hook restricted to parts of the header space.

    The rule set's structure (and, with EXACT, that nothing is unmodeled) is checked once,
    at construction (errors as for :func:`evaluate`). :meth:`evaluate` gives the
    evaluation restricted to a set (``None``: every packet); :meth:`for_rule` the one
    restricted to a rule's own match, where only the rules whose boxes meet that match are
    walked (:class:`~netguard.space.index.RuleIndex`): exact, and in proportion to the
    rules that overlap it rather than to the whole rule set. Everything a check needs to
    know about one rule (the packets it decides, whether any packet reaches and matches it,
    which earlier rules take its packets) lies inside its match, so a check of every rule
    costs the sum of those overlaps instead of operations on the whole rule set's BDD,
    which grows faster than linearly with random rules.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        hook: Hook,
        engine: Engine,
        approx: Approx = Approx.EXACT,
        index: RuleIndex | None = None,
    ) -> None:
        _check_interfaces(ruleset, engine)
        _check_structure(ruleset)
        if approx is Approx.EXACT:
            _check_modeled(ruleset, hook)
        self.ruleset = ruleset
        self.hook = hook
        self.engine = engine
        self.approx = approx
        self._index = index
        self.rules: dict[RuleKey, Rule] = {
            RuleKey(chain.name, rule.position): rule
            for chain in ruleset.chains.values()
            for rule in chain.rules
        }
        self._verdict_keys = frozenset(
            k for k, r in self.rules.items() if r.action.kind in _VERDICTS
        ) | {RuleKey(c.name, POLICY) for c in ruleset.base_chains(hook)}
        self._bounds: dict[Match, tuple[Node, Node]] = {}
        self._universe = engine.all(ruleset.family)

    @property
    def exact(self) -> bool:
        """True when nothing unmodeled can decide a packet at this hook (every unmodeled
        condition sits on a LOG or CONTINUE rule): the MAY and MUST evaluations agree."""
        for rule in _reachable_rules(self.ruleset, self.hook):
            if rule.action.kind is ActionKind.UNMODELED:
                return False
            if rule.match.unmodeled and rule.action.kind not in (
                ActionKind.LOG,
                ActionKind.CONTINUE,
            ):
                return False
        return True

    @property
    def index(self) -> RuleIndex:
        """The rule boxes (built on first use)."""
        if self._index is None:
            self._index = RuleIndex(self.ruleset)
        return self._index

    def reachable(self) -> list[RuleKey]:
        """Keys of the rules in the chains the hook's base chains reach, in key order."""
        return sorted(
            {
                RuleKey(r.chain, r.position)
                for r in _reachable_rules(self.ruleset, self.hook)
                if r.chain in self.ruleset.chains
            }
        )

    def for_rule(self, key: RuleKey) -> Evaluation:
        """The evaluation restricted to the packets rule ``key``'s match may select."""
        match = self.rules[key].match
        _, upper = _match_bounds(self.engine, self.ruleset.family, match, self._bounds)
        entry = HeaderSpace(self.engine, upper & self._universe.node)
        return self.evaluate(entry, self.index.box(key.chain, key.position))

    def evaluate(self, entry: HeaderSpace | None = None, box: Box | None = None) -> Evaluation:
        """The evaluation restricted to ``entry`` (``None``: every packet of the family).
        ``box``, when given, must hold every packet of ``entry``: only rules meeting it are
        walked."""
        engine, ruleset = self.engine, self.ruleset
        b = engine.bdd
        w = _Walker(ruleset, engine, self._index if box is not None else None, self._bounds)
        universe = self._universe.node
        current = universe if entry is None else universe & entry.node
        start = current
        bases = ruleset.base_chains(self.hook)
        # With one base chain the verdict unions follow from the decided sets, when (and
        # if) they are asked for; between base chains the accepted packets are the entry
        # of the next one, so they are gathered while walking.
        w.gather = len(bases) > 1
        may_deny = b.false
        for base in bases:
            w.accept = w.deny = b.false
            back = w.walk(base, current, box)
            key = RuleKey(base.name, POLICY)
            w._add(w.decided, key, back)
            if base.policy is ActionKind.DROP:
                w.deny = w.deny | back
            else:
                w.accept = w.accept | back
            may_deny = may_deny | w.deny
            current = w.accept
        totals = _Totals(engine, self.approx, start)
        if w.gather or not bases:
            totals.may_accept, totals.may_deny = current, may_deny
        else:
            base = bases[0]
            totals.pending = [
                (w.decided[k], k.is_policy and base.policy is ActionKind.DROP, kind)
                for k in w.decided
                for kind in [None if k.is_policy else self.rules[k].action.kind]
            ]
        keys = self.rules.keys()
        return Evaluation(
            ruleset=ruleset,
            hook=self.hook,
            approx=self.approx,
            engine=engine,
            totals=totals,
            decided_by=RuleSpaces(engine, w.decided, self._verdict_keys),
            reached=_Reached(engine, w.reached, keys),
            matched=RuleSpaces(engine, w.matched, keys),
            consumed=RuleSpaces(engine, w.consumed, keys),
            entered={k: HeaderSpace(engine, v) for k, v in w.entered.items()},
            rules=self.rules,
            entry=None if entry is None else HeaderSpace(engine, start),
            slicer=self,
        )


# --- one concrete packet ----------------------------------------------------------------------


def _in_set(addresses: PrefixSet, address: int, family: int) -> bool:
    intervals = addresses.v4_intervals if family == 4 else addresses.v6_intervals
    return any(lo <= address <= hi for lo, hi in intervals)


def _iface_hit(im: InterfaceMatch, name: str | None) -> bool:
    if im.wildcard:
        return im.name == "" or (name is not None and name.startswith(im.name))
    return name == im.name


def match_packet(match: Match, packet: Packet) -> bool:
    """Whether ``packet`` satisfies the modeled conditions of ``match`` (the same semantics
    as :meth:`Engine.match`; ``match.unmodeled`` is not looked at)."""
    p = packet
    if match.protocols is not None and (p.protocol in match.protocols) == match.protocols_negated:
        return False
    for ams, addr in ((match.sources, p.src), (match.destinations, p.dst)):
        for am in ams:
            if _in_set(am.addresses, int(addr), p.family) == am.negated:
                return False
    for pms, port in ((match.source_ports, p.sport), (match.destination_ports, p.dport)):
        for pm in pms:
            if p.protocol not in PORT_PROTOCOLS:
                return False
            if any(lo <= port <= hi for lo, hi in pm.ranges) == pm.negated:
                return False
    for im in match.icmp:
        if not p.is_icmp:
            return False
        hit = (im.type is None or p.icmp_type == im.type) and (
            im.code_first <= p.icmp_code <= im.code_last
        )
        if hit == im.negated:
            return False
    if match.ct_states is not None and (p.ct_state in match.ct_states) == match.ct_states_negated:
        return False
    for ims, name in (
        (match.in_interfaces, p.in_interface),
        (match.out_interfaces, p.out_interface),
    ):
        for iface in ims:
            if _iface_hit(iface, name) == iface.negated:
                return False
    return match.ipsec is None or match.ipsec == p.ipsec


@dataclass(frozen=True)
class TraceStep:
    """One step of a packet's path.

    ``position`` is the rule's position, or 0 for a step that is not a rule (a policy, the
    end of a user chain). ``matched`` is None for such steps. ``assumed`` lists unmodeled
    conditions or targets whose outcome was assumed (see :func:`trace`). ``verdict`` is set
    when the step decided the packet in its base chain; the last step carries the final
    verdict at the hook.
    """

    chain: str
    position: int
    text: str
    location: Location | None
    matched: bool | None
    assumed: tuple[str, ...] = ()
    verdict: ActionKind | None = None

    def __str__(self) -> str:
        where = f" [{self.location}]" if self.location is not None else ""
        what = f"{self.chain} rule {self.position}: " if self.position else f"{self.chain}: "
        state = "" if self.matched is None else (" -> matched" if self.matched else " -> no match")
        assumed = f" (assumed: {'; '.join(self.assumed)})" if self.assumed else ""
        verdict = f" => {self.verdict}" if self.verdict is not None else ""
        return f"{what}{self.text}{where}{state}{assumed}{verdict}"


def _assume(kind: ActionKind, approx: Approx) -> bool:
    """How an unknown condition resolves in a trace: MAY lets the packet through (ACCEPT and
    calls match, DROP/REJECT/RETURN do not), MUST the other way round."""
    if approx is Approx.MAY:
        return kind not in (ActionKind.DROP, ActionKind.REJECT, ActionKind.RETURN)
    return kind is not ActionKind.ACCEPT and kind is not ActionKind.RETURN


def trace(
    ruleset: RuleSet, hook: Hook, packet: Packet, approx: Approx = Approx.MAY
) -> list[TraceStep]:
    """The path of ``packet`` through the chains on ``hook``: one step per rule tried (with
    whether it matched), one per return from a user chain, one per applied policy; the last
    step carries the final verdict.

    Unmodeled conditions: EXACT raises ``UnmodeledError``; MAY assumes the outcome that lets
    the packet through (a matching ACCEPT, JUMP, GOTO or LOG; a non-matching DROP, REJECT or
    RETURN) and treats an UNMODELED target as ACCEPT; MUST assumes the opposite and treats it
    as DROP. Those choices are listed in ``TraceStep.assumed``; with MAY or MUST the path is
    one plausible path, and ``evaluate`` gives the complete answer. Raises ``ValueError``
    when the packet's family differs from the rule set's.
    """
    if packet.family != ruleset.family:
        raise ValueError(f"packet is IPv{packet.family} but the rule set is IPv{ruleset.family}")
    _check_structure(ruleset)
    steps: list[TraceStep] = []
    bases = ruleset.base_chains(hook)
    if not bases:
        steps.append(
            TraceStep(
                "", POLICY, f"no base chain on hook {hook}", None, None, (), ActionKind.ACCEPT
            )
        )
        return steps
    for base in bases:
        verdict = _trace_base(ruleset, base, packet, approx, steps)
        if verdict is not ActionKind.ACCEPT:
            break
    return steps


@dataclass
class _Frame:
    chain: Chain
    index: int = 0


def _trace_base(
    ruleset: RuleSet, base: Chain, packet: Packet, approx: Approx, steps: list[TraceStep]
) -> ActionKind:
    policy = base.policy or ActionKind.ACCEPT

    def apply_policy() -> ActionKind:
        steps.append(
            TraceStep(base.name, POLICY, f"policy {policy}", base.location, None, (), policy)
        )
        return policy

    stack: list[_Frame] = [_Frame(base)]
    while True:
        frame = stack[-1]
        chain = frame.chain
        index = frame.index
        if index >= len(chain.rules):
            stack.pop()
            if not stack:
                return apply_policy()
            steps.append(
                TraceStep(
                    chain.name,
                    POLICY,
                    f"end of chain {chain.name}: return to {stack[-1].chain.name}",
                    chain.location,
                    None,
                )
            )
            continue
        rule = chain.rules[index]
        frame.index = index + 1
        kind = rule.action.kind
        matched = match_packet(rule.match, packet)
        assumed: tuple[str, ...] = ()
        if matched and rule.match.unmodeled:
            if approx is Approx.EXACT:
                raise UnmodeledError([(str(rule.location), t) for t in rule.match.unmodeled])
            matched = _assume(kind, approx)
            assumed = rule.match.unmodeled
        verdict: ActionKind | None = None
        if matched:
            if kind in (ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT):
                verdict = kind
            elif kind is ActionKind.UNMODELED:
                target = f"target {rule.action.text or 'UNMODELED'}"
                if approx is Approx.EXACT:
                    raise UnmodeledError([(str(rule.location), target)])
                verdict = ActionKind.ACCEPT if approx is Approx.MAY else ActionKind.DROP
                assumed = (*assumed, target)
        steps.append(
            TraceStep(
                chain.name, rule.position, rule.text, rule.location, matched, assumed, verdict
            )
        )
        if not matched:
            continue
        if verdict is not None:
            return verdict
        if kind is ActionKind.RETURN:
            stack.pop()
            if not stack:
                return apply_policy()
        elif kind in _CALLS:
            assert rule.action.chain is not None
            target_chain = ruleset.chains[rule.action.chain]
            if kind is ActionKind.JUMP:
                stack.append(_Frame(target_chain))
            else:
                stack[-1] = _Frame(target_chain)
