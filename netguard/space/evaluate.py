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

from collections.abc import Iterable, Mapping
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
from netguard.space.packet import PORT_PROTOCOLS, Packet

__all__ = [
    "POLICY",
    "Evaluation",
    "RuleKey",
    "Shadowing",
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
    accepted: HeaderSpace
    denied: HeaderSpace
    uncertain: HeaderSpace
    decided_by: Mapping[RuleKey, HeaderSpace]
    reached: Mapping[RuleKey, HeaderSpace]
    matched: Mapping[RuleKey, HeaderSpace]
    consumed: Mapping[RuleKey, HeaderSpace]
    entered: Mapping[str, HeaderSpace]
    rules: Mapping[RuleKey, Rule] = field(repr=False)
    _match_cache: dict[RuleKey, HeaderSpace] = field(
        default_factory=dict, repr=False, compare=False
    )

    def match_space(self, key: RuleKey) -> HeaderSpace:
        """The packets of the rule set's family that rule ``key``'s match selects (unmodeled
        conditions counted as true)."""
        got = self._match_cache.get(key)
        if got is None:
            got = self.engine.match(self.rules[key].match, self.ruleset.family, Approx.MAY)
            self._match_cache[key] = got
        return got

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
        chain = self.ruleset.chains[key.chain]
        entered = self.entered.get(key.chain)
        if entered is None:
            return ()
        left = self.match_space(key) & entered
        out: list[RuleKey] = []
        for rule in chain.rules:
            if left.is_empty() or rule.position == key.position:
                break
            k = RuleKey(key.chain, rule.position)
            taken = left & self.consumed[k]
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


class _Walker:
    def __init__(self, ruleset: RuleSet, engine: Engine) -> None:
        self.ruleset = ruleset
        self.engine = engine
        b = engine.bdd
        self.false = b.false
        self.bounds: dict[Match, tuple[Node, Node]] = {}
        self.reached: dict[RuleKey, Node] = {}
        self.matched: dict[RuleKey, Node] = {}
        self.consumed: dict[RuleKey, Node] = {}
        self.decided: dict[RuleKey, Node] = {}
        self.entered: dict[str, Node] = {}
        self.accept = b.false
        self.deny = b.false

    def _bounds(self, match: Match) -> tuple[Node, Node]:
        got = self.bounds.get(match)
        if got is None:
            upper = self.engine.match_node(match, self.ruleset.family)
            got = (self.false if match.unmodeled else upper, upper)
            self.bounds[match] = got
        return got

    def _add(self, table: dict[RuleKey, Node], key: RuleKey, node: Node) -> None:
        prev = table.get(key)
        table[key] = node if prev is None else prev | node

    def walk(self, chain: Chain, entry: Node) -> Node:
        """Run ``entry`` through ``chain``; return the packets that (may) return from it."""
        false = self.false
        self.entered[chain.name] = self.entered.get(chain.name, false) | entry
        cur = entry
        returned = false
        for rule in chain.rules:
            key = RuleKey(chain.name, rule.position)
            kind = rule.action.kind
            self._add(self.reached, key, cur)
            lower, upper = self._bounds(rule.match)
            if kind in _VERDICTS:
                self._add(self.decided, key, false)
            if cur == false:
                self._add(self.matched, key, false)
                continue
            hit = cur & upper
            self._add(self.matched, key, hit)
            if hit == false or kind in (ActionKind.LOG, ActionKind.CONTINUE):
                continue
            rest = cur & ~lower
            consumed = hit
            if kind is ActionKind.ACCEPT:
                self.accept = self.accept | hit
                self._add(self.decided, key, hit)
            elif kind in (ActionKind.DROP, ActionKind.REJECT):
                self.deny = self.deny | hit
                self._add(self.decided, key, hit)
            elif kind is ActionKind.UNMODELED:
                self.accept = self.accept | hit
                self.deny = self.deny | hit
                self._add(self.decided, key, hit)
            elif kind is ActionKind.RETURN:
                returned = returned | hit
            else:
                assert rule.action.chain is not None
                back = self.walk(self.ruleset.chains[rule.action.chain], hit)
                if kind is ActionKind.JUMP:
                    rest = rest | back
                    consumed = hit & ~back
                else:
                    returned = returned | back
            self._add(self.consumed, key, consumed)
            cur = rest
        return returned | cur


def evaluate(
    ruleset: RuleSet,
    hook: Hook,
    engine: Engine | None = None,
    approx: Approx = Approx.EXACT,
) -> Evaluation:
    """Evaluate ``ruleset`` at ``hook`` over every packet of its family (see the module
    docstring for the semantics and for ``approx``).

    ``engine`` defaults to ``Engine.for_rulesets(ruleset)``; a given engine must know every
    interface the rule set names (``ValueError`` otherwise). Raises ``InputError`` for loops
    or bad jump targets and, with EXACT, ``UnmodeledError``. A hook without base chains
    accepts everything.
    """
    if engine is None:
        engine = Engine.for_rulesets(ruleset)
    _check_interfaces(ruleset, engine)
    _check_structure(ruleset)
    if approx is Approx.EXACT:
        _check_modeled(ruleset, hook)
    b = engine.bdd
    w = _Walker(ruleset, engine)
    universe = engine.all(ruleset.family).node
    current = universe
    may_deny = b.false
    for base in ruleset.base_chains(hook):
        w.accept = w.deny = b.false
        back = w.walk(base, current)
        key = RuleKey(base.name, POLICY)
        w._add(w.decided, key, back)
        if base.policy is ActionKind.DROP:
            w.deny = w.deny | back
        else:
            w.accept = w.accept | back
        may_deny = may_deny | w.deny
        current = w.accept
    may_accept = current
    if approx is Approx.MUST:
        accepted, denied = universe & ~may_deny, may_deny
    else:
        accepted, denied = may_accept, universe & ~may_accept
    rules = {
        RuleKey(chain.name, rule.position): rule
        for chain in ruleset.chains.values()
        for rule in chain.rules
    }

    def wrap(table: Mapping[RuleKey, Node]) -> dict[RuleKey, HeaderSpace]:
        return {k: HeaderSpace(engine, v) for k, v in table.items()}

    for key, rule in rules.items():  # rules no packet enters
        w.reached.setdefault(key, b.false)
        w.matched.setdefault(key, b.false)
        w.consumed.setdefault(key, b.false)
        if rule.action.kind in _VERDICTS:
            w.decided.setdefault(key, b.false)
    return Evaluation(
        ruleset=ruleset,
        hook=hook,
        approx=approx,
        engine=engine,
        accepted=HeaderSpace(engine, accepted),
        denied=HeaderSpace(engine, denied),
        uncertain=HeaderSpace(engine, may_accept & may_deny),
        decided_by=wrap(w.decided),
        reached=wrap(w.reached),
        matched=wrap(w.matched),
        consumed=wrap(w.consumed),
        entered={k: HeaderSpace(engine, v) for k, v in w.entered.items()},
        rules=rules,
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
