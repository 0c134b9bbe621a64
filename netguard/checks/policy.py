"""Compliance: does a deployed rule set allow only what the profile's Policy permits?

Allowed space, per address family and hook, built with the packet-space engine
(:func:`allowed_space`):

- OUTPUT: the Policy's egress rules in force (peer = destination; protocol; destination ports;
  through the tunnel: ``ipsec`` set, or the output interface when the profile names a tunnel
  interface);
- INPUT: the ingress rules in force (peer = source, local = destination when given; likewise);
- always, on every hook: conntrack state ESTABLISHED or RELATED (replies of tracked
  connections);
- INPUT: input interface ``lo``; OUTPUT: output interface ``lo`` (loopback);
- IPv6, INPUT and OUTPUT: ICMPv6 neighbour discovery (types 133-136) and MLD (130, 131, 132,
  143), which IPv6 needs to work at all; netguard's own rules accept them with a hop-limit
  match that readers keep as unmodeled;
- FORWARD: nothing else (a host firewall).

A Policy flow is allowed in every conntrack state: the profile constrains who may talk to
whom on which port, not the state; a rule that omits ``--ctstate NEW`` (AWS security groups,
hand-written rules) therefore does not go beyond policy.

Rules in force: the Policy's rules, except named exceptions whose expiry date is before the
``as_of`` date: an expired exception's flow is *not* allowed, so traffic a configuration still
permits for it is a violation (NG101/NG102, mentioning the exception), and the expiry itself is
finding NG301 (made by ``netguard.check``). An exception in force is part of the allowed space:
it suppresses the findings its flow would otherwise raise, until it expires.

Violations (:func:`check_ruleset`), for each hook and each rule (or base-chain policy) that
may accept: ``extra`` = the packets it decides (and the hook accepts in the end) minus
``allowed``, from the ``Approx.MAY`` evaluation (every packet that may be accepted under some
reading of what the reader could not model: conservative). Each rule is evaluated in its own
slice of the header space (``Slicer.for_rule``), exactly, so the cost follows the rules that
overlap it. A non-empty ``extra`` is split into header-space rectangles (at most
:data:`MAX_RECTANGLES` per rule; when the description is truncated, one more finding covers
the rest), one finding per rectangle naming the rule, with an example packet
(``HeaderSpace.example``). At most :data:`MAX_RULES` rules per hook are described so; the
further rules that go beyond policy are named together in one more finding.
Codes: NG101 (OUTPUT), NG102 (INPUT), NG103 (FORWARD), all high.

NG104: a base chain whose policy is ACCEPT (or unset) and that packets may reach; high when
some of them are beyond policy, medium otherwise (the profile asks that policies deny). With
several base chains on the hook only the packets the hook accepts in the end count, and a
policy ACCEPT reached only by packets within policy is no finding when another of those
chains has a denying policy (the hook as a whole then denies by default).

NG110 (medium): a flow the profile permits, in state NEW, that the configuration *must* deny
(``Approx.MUST``), or the replies of such a flow (state ESTABLISHED, addresses and ports
swapped, on the other hook) likewise: the integration would break.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from netguard.model.policy import Direction, Policy, PolicyRule, Protocol, Through
from netguard.model.ruleset import (
    PROTO_ESP,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    ActionKind,
    CtState,
    Hook,
    RuleSet,
)
from netguard.space import POLICY, Engine, Evaluation, HeaderSpace, RuleKey

from .findings import KINDS, Finding, Kind, RuleRef, Severity, fingerprint

__all__ = [
    "MAX_RECTANGLES",
    "MAX_RULES",
    "ND_MLD_TYPES",
    "Allowed",
    "allowed_space",
    "check_ruleset",
    "flow_space",
    "rule_ref",
    "rules_in_force",
    "unfiltered_findings",
]

#: At most this many violation findings per accepting rule (one per header-space rectangle of
#: what it accepts beyond policy); the rest of the rule's excess is one more finding.
MAX_RECTANGLES = 8

#: Accepting rules described one by one per hook and rule set, in line order; the accepting
#: rules past them that also go beyond policy are named together in one more finding (each
#: description costs a rectangle cover of that rule's excess).
MAX_RULES = 25

#: ICMPv6 types always allowed: neighbour discovery (RFC 4861) and MLD (RFC 2710, 3810).
ND_MLD_TYPES = ((130, 136), (143, 143))

_HOOK_DIRECTION = {Hook.OUTPUT: Direction.EGRESS, Hook.INPUT: Direction.INGRESS}
_KIND_BY_HOOK = {Hook.OUTPUT: "NG101", Hook.INPUT: "NG102", Hook.FORWARD: "NG103"}


def _protocol_number(protocol: Protocol, family: int) -> int:
    return {
        Protocol.TCP: PROTO_TCP,
        Protocol.UDP: PROTO_UDP,
        Protocol.ESP: PROTO_ESP,
        Protocol.ICMP: PROTO_ICMP if family == 4 else PROTO_ICMPV6,
    }[protocol]


def rules_in_force(
    policy: Policy, as_of: str
) -> tuple[tuple[PolicyRule, ...], tuple[PolicyRule, ...]]:
    """Split the Policy's rules into ``(in_force, expired)``; an exception is expired when its
    expiry date (ISO) is before ``as_of`` (ISO), the day of expiry still counting."""
    in_force: list[PolicyRule] = []
    expired: list[PolicyRule] = []
    for rule in policy.rules:
        if rule.exception is not None and rule.exception.expires < as_of:
            expired.append(rule)
        else:
            in_force.append(rule)
    return tuple(in_force), tuple(expired)


def flow_space(
    engine: Engine,
    policy: Policy,
    rule: PolicyRule,
    family: int,
    *,
    ct_states: Iterable[CtState] | None = None,
    reply: bool = False,
    any_local: bool = False,
) -> HeaderSpace:
    """The packets of ``rule``'s flow in ``family`` (empty when the rule does not exist in
    that family), in ``ct_states`` (None: any). ``reply``: the answers instead (addresses
    and ports swapped), which travel the other way. ``any_local``: leave the local address
    and the tunnel constraint open (a security group has no destination for ingress, nor
    source for egress, and cannot match IPsec processing or an interface: it applies to the
    interfaces it is attached to, and the route decides what goes through the tunnel;
    Amazon VPC User Guide, "Security group rules")."""
    if family not in rule.families(policy.families):
        return engine.none()
    egress = rule.direction == Direction.EGRESS
    peer = rule.peer.prefixes
    local = rule.local.prefixes if rule.local is not None and not any_local else None
    remote_is_dst = egress != reply
    ports = [(p.first, p.last) for p in rule.ports] if rule.protocol.has_ports else None
    ipsec: bool | None = None
    in_if: list[str | None] | None = None
    out_if: list[str | None] | None = None
    if rule.through == Through.TUNNEL and not any_local:
        leaving = egress != reply
        if policy.tunnel_interface:
            if leaving:
                out_if = [policy.tunnel_interface]
            else:
                in_if = [policy.tunnel_interface]
        else:
            ipsec = True
    return engine.space(
        family=family,
        protocols=[_protocol_number(rule.protocol, family)],
        dst=peer if remote_is_dst else local,
        src=local if remote_is_dst else peer,
        dport=None if reply else ports,
        sport=ports if reply else None,
        ct_states=ct_states,
        in_interfaces=in_if,
        out_interfaces=out_if,
        ipsec=ipsec,
    )


@dataclass(frozen=True)
class Allowed:
    """The allowed space of one family and hook, and the part of it that comes from expired
    exceptions (``expired``: exception name -> the space it would have allowed)."""

    space: HeaderSpace
    expired: Mapping[str, HeaderSpace]


def allowed_space(
    engine: Engine,
    policy: Policy,
    family: int,
    hook: Hook,
    as_of: str,
    *,
    any_local: bool = False,
) -> Allowed:
    """What the profile permits at ``hook`` in ``family`` (see the module docstring);
    ``any_local`` as for :func:`flow_space` (security groups).

    The engine must know the interfaces ``lo`` and the profile's tunnel interface (build it
    with ``Engine.for_rulesets(..., interfaces=["lo", ...])``).
    """
    space = engine.space(family=family, ct_states=[CtState.ESTABLISHED, CtState.RELATED])
    if hook is Hook.INPUT:
        space = space | engine.space(family=family, in_interfaces=["lo"])
    elif hook is Hook.OUTPUT:
        space = space | engine.space(family=family, out_interfaces=["lo"])
    if family == 6 and hook in (Hook.INPUT, Hook.OUTPUT):
        space = space | engine.space(
            family=6, protocols=[PROTO_ICMPV6], icmp_type=list(ND_MLD_TYPES)
        )
    expired_spaces: dict[str, HeaderSpace] = {}
    direction = _HOOK_DIRECTION.get(hook)
    if direction is not None:
        in_force, expired = rules_in_force(policy, as_of)
        for rule in in_force:
            if rule.direction == direction:
                space = space | flow_space(engine, policy, rule, family, any_local=any_local)
        for rule in expired:
            if rule.direction == direction and rule.exception is not None:
                flow = flow_space(engine, policy, rule, family, any_local=any_local)
                if flow:
                    expired_spaces[rule.exception.name] = flow
    return Allowed(space, expired_spaces)


def rule_ref(ruleset: RuleSet, key: RuleKey) -> RuleRef:
    """Evidence for a rule or (position 0) a chain policy of ``ruleset``."""
    chain = ruleset.chains[key.chain]
    if key.is_policy:
        policy = chain.policy or ActionKind.ACCEPT
        loc = chain.location
        return RuleRef(
            source=str(loc.path) if loc is not None else ruleset.source,
            line=loc.line if loc is not None else 0,
            chain=chain.name,
            position=POLICY,
            text=f"chain {chain.name} policy {policy.value}",
            verdict=policy.value,
        )
    rule = chain.rules[key.position - 1]
    return RuleRef(
        source=str(rule.location.path),
        line=rule.location.line,
        chain=chain.name,
        position=rule.position,
        text=rule.text,
        verdict=rule.action.kind.value,
        comment=rule.comment,
    )


def _rule_name(ref: RuleRef) -> str:
    """``ng-egress rule 6`` or ``the policy of OUTPUT``."""
    if ref.position == POLICY:
        return f"the policy of {ref.chain}"
    return f"{ref.chain} rule {ref.position}"


def _accepting(ruleset: RuleSet, key: RuleKey) -> bool:
    chain = ruleset.chains[key.chain]
    if key.is_policy:
        return chain.policy in (None, ActionKind.ACCEPT)
    kind = chain.rules[key.position - 1].action.kind
    return kind in (ActionKind.ACCEPT, ActionKind.UNMODELED)


def _deciders(ev: Evaluation, space: HeaderSpace, *, accepting: bool) -> tuple[RuleKey, ...]:
    """Rules (and policies) whose decided space meets ``space`` with an accepting
    (``accepting``) or denying verdict, in line order. ``ev`` may be restricted to a set
    holding ``space`` (only the rules its walk visited can meet it)."""
    items = ev.decided_by.visited()
    return tuple(
        sorted(
            (
                k
                for k, s in items
                if _accepting(ev.ruleset, k) == accepting and not s.isdisjoint(space)
            ),
            key=lambda k: _line_key(ev.ruleset, k),
        )
    )


def _line_key(ruleset: RuleSet, key: RuleKey) -> tuple[int, str, int]:
    chain = ruleset.chains[key.chain]
    if key.is_policy:
        return (chain.location.line if chain.location is not None else 0, key.chain, 0)
    return (chain.rules[key.position - 1].location.line, key.chain, key.position)


def _family_text(family: int) -> str:
    return f"IPv{family}"


def _unmodeled_note(ev: Evaluation, keys: Sequence[RuleKey]) -> str:
    texts: list[str] = []
    for k in keys:
        if k.is_policy:
            continue
        rule = ev.ruleset.chains[k.chain].rules[k.position - 1]
        texts.extend(rule.match.unmodeled)
        if rule.action.kind is ActionKind.UNMODELED:
            texts.append(f"target {rule.action.text}")
    if not texts:
        return ""
    return (
        " (may: depends on conditions netguard cannot model, assumed to match: "
        + "; ".join(dict.fromkeys(texts))
        + ")"
    )


def _accepting_keys(ev: Evaluation) -> list[RuleKey]:
    """The rules and base-chain policies that may accept and decide some packet, in line
    order."""
    items = ev.decided_by.visited()
    keys = [k for k, s in items if _accepting(ev.ruleset, k) and not s.is_empty()]
    return sorted(keys, key=lambda k: _line_key(ev.ruleset, k))


def _violations(ev: Evaluation, allowed: Allowed, family: int) -> list[Finding]:
    hook = ev.hook
    kind = KINDS[_KIND_BY_HOOK[hook]]
    what = {Hook.OUTPUT: "egress", Hook.INPUT: "ingress", Hook.FORWARD: "forwarded"}[hook]
    ruleset = ev.ruleset
    if not ruleset.base_chains(hook):
        # Another rule set of the family may filter the hook: see unfiltered_findings.
        return []
    several = len(ruleset.base_chains(hook)) > 1
    out: list[Finding] = []
    more: list[tuple[RuleKey, HeaderSpace]] = []
    for key in _accepting_keys(ev):
        decided = ev.decided_by[key]
        if several:  # accepted in the end: by every base chain on the hook
            decided = decided & ev.accepted
        extra = decided - allowed.space
        if extra.is_empty():
            continue
        if len({f.rules[0] for f in out}) >= MAX_RULES:
            more.append((key, extra))
            continue
        ref = rule_ref(ruleset, key)
        pieces: list[tuple[HeaderSpace, str]] = []
        covered = ev.engine.none()
        for rect in extra.rectangles(MAX_RECTANGLES):
            piece = ev.engine.rectangle(rect) & extra
            if piece.is_empty():  # pragma: no cover - rectangles lie inside the set
                continue
            pieces.append((piece, str(rect)))
            covered = covered | piece
        rest = extra - covered
        if not rest.is_empty():
            pieces.append((rest, "further packets (description truncated)"))
        named = f"{_rule_name(ref)} ({ref.where})"
        remediation = f"remove or narrow {named}: accept only what the profile permits"
        if hook is Hook.FORWARD:
            remediation += "; a host firewall forwards nothing but replies (FORWARD policy DROP)"
        note = _unmodeled_note(ev, (key,))
        for piece, desc in pieces:
            example = piece.example()
            msg = (
                f"{_family_text(family)} {hook.value.upper()} may accept {what} traffic beyond "
                f"policy: {desc}"
            )
            expired = [
                name for name, s in sorted(allowed.expired.items()) if not s.isdisjoint(piece)
            ]
            if expired:
                msg += f" (permitted only by expired exception {', '.join(expired)})"
            out.append(
                Finding(
                    kind=kind,
                    severity=kind.severity,
                    check=kind.check,
                    message=msg + note,
                    remediation=remediation,
                    fingerprint=fingerprint(kind.code, str(family), hook.value, desc, ref.text),
                    family=family,
                    hook=hook.value,
                    example=str(example) if example is not None else None,
                    space=desc,
                    rules=(ref,),
                )
            )
    if more:
        out.append(_more_violations(ev, kind, what, family, more))
    return out


def unfiltered_findings(
    engine: Engine, policy: Policy, family: int, hook: Hook, as_of: str
) -> list[Finding]:
    """The finding for a hook that no given rule set of ``family`` filters (no base chain on
    it in any of them): netfilter accepts every packet there, so everything beyond what the
    profile allows gets through (NG101-NG103, naming no rule)."""
    kind = KINDS[_KIND_BY_HOOK[hook]]
    what = {Hook.OUTPUT: "egress", Hook.INPUT: "ingress", Hook.FORWARD: "forwarded"}[hook]
    allowed = allowed_space(engine, policy, family, hook, as_of)
    extra = engine.all(family) - allowed.space
    if extra.is_empty():  # pragma: no cover - a profile never allows every packet
        return []
    example = extra.example()
    return [
        Finding(
            kind=kind,
            severity=kind.severity,
            check=kind.check,
            message=(
                f"{_family_text(family)} {hook.value.upper()} is not filtered at all (no base "
                f"chain on the hook in any configuration given): it accepts every {what} "
                "packet, beyond policy"
            ),
            remediation=(
                f"add a base chain on the {hook.value} hook with policy DROP that accepts only "
                "what the profile permits (netguard generate writes one)"
            ),
            fingerprint=fingerprint(kind.code, str(family), hook.value, "unfiltered"),
            family=family,
            hook=hook.value,
            example=str(example) if example is not None else None,
            space="any (no base chain)",
            rules=(),
        )
    ]


def _more_violations(
    ev: Evaluation,
    kind: Kind,
    what: str,
    family: int,
    more: list[tuple[RuleKey, HeaderSpace]],
) -> Finding:
    """One finding for the accepting rules past :data:`MAX_RULES`: each named, with the
    first one's example packet."""
    hook = ev.hook
    refs = tuple(rule_ref(ev.ruleset, k) for k, _ in more)
    example = more[0][1].example()
    n = len(refs)
    return Finding(
        kind=kind,
        severity=kind.severity,
        check=kind.check,
        message=(
            f"{_family_text(family)} {hook.value.upper()}: {n} more rule{'s' if n != 1 else ''} "
            f"may accept {what} traffic beyond policy (not described one by one; the example "
            f"is from {_rule_name(refs[0])})"
        ),
        remediation="remove or narrow each of these rules: accept only what the profile permits",
        fingerprint=fingerprint(
            kind.code, str(family), hook.value, "more", *(r.text for r in refs)
        ),
        family=family,
        hook=hook.value,
        example=str(example) if example is not None else None,
        space="further rules (description truncated)",
        rules=refs,
    )


def _policy_accepts(ev: Evaluation, allowed: Allowed, family: int, hook: Hook) -> list[Finding]:
    out: list[Finding] = []
    kind = KINDS["NG104"]
    chains = ev.ruleset.base_chains(hook)
    for chain in chains:
        if chain.policy not in (None, ActionKind.ACCEPT):
            continue
        reaching = ev.decided_by.get(RuleKey(chain.name, POLICY))
        if reaching is None or reaching.is_empty():
            continue
        if len(chains) > 1:
            # Several base chains on the hook: a packet passes only if every one accepts it
            # (nft(8), "BASE CHAIN"), so this policy lets through only what the others accept
            # too; when another base chain's policy denies, the hook's default is to deny.
            reaching = reaching & ev.accepted
            if reaching.is_empty():
                continue
            if not (reaching - allowed.space) and any(
                c.policy not in (None, ActionKind.ACCEPT) for c in chains
            ):
                continue
        beyond = reaching - allowed.space
        severity = Severity.HIGH if beyond else Severity.MEDIUM
        example = (beyond or reaching).example()
        ref = rule_ref(ev.ruleset, RuleKey(chain.name, POLICY))
        what = "including packets beyond policy" if beyond else "all of them within policy"
        out.append(
            Finding(
                kind=kind,
                severity=severity,
                check=kind.check,
                message=(
                    f"{_family_text(family)} base chain {chain.name} ({hook.value}) has policy "
                    f"ACCEPT and packets reach it, {what}"
                ),
                remediation=(
                    f"set the policy of {chain.name} to DROP ({ref.where}) or end the chain "
                    "with a rule that drops everything"
                ),
                fingerprint=fingerprint(kind.code, str(family), hook.value, chain.name),
                family=family,
                hook=hook.value,
                example=str(example) if example is not None else None,
                rules=(ref,),
            )
        )
    return out


def _blocked(
    must: Mapping[Hook, Evaluation],
    policy: Policy,
    ruleset: RuleSet,
    as_of: str,
) -> list[Finding]:
    family = ruleset.family
    in_force, _ = rules_in_force(policy, as_of)
    kind = KINDS["NG110"]
    out: list[Finding] = []
    for rule in in_force:
        if family not in rule.families(policy.families):
            continue
        egress = rule.direction == Direction.EGRESS
        forward_hook, reply_hook = (
            (Hook.OUTPUT, Hook.INPUT) if egress else (Hook.INPUT, Hook.OUTPUT)
        )
        for hook, reply in ((forward_hook, False), (reply_hook, True)):
            whole = must.get(hook)
            if whole is None:
                continue
            state = CtState.ESTABLISHED if reply else CtState.NEW
            need = flow_space(whole.engine, policy, rule, family, ct_states=[state], reply=reply)
            ev = whole.restrict(need)  # the flow's packets alone: a small walk
            missing = need - ev.accepted
            if missing.is_empty():
                continue
            keys = _deciders(ev, missing, accepting=False)
            refs = tuple(rule_ref(ruleset, k) for k in keys)
            example = missing.example()
            what = "replies to the flow" if reply else "the flow"
            msg = (
                f"{_family_text(family)} {hook.value.upper()} denies {what} of profile rule "
                f"{rule.id} ({rule.description or rule.protocol.value})"
            )
            named = ", ".join(f"{_rule_name(r)} ({r.where})" for r in refs)
            out.append(
                Finding(
                    kind=kind,
                    severity=kind.severity,
                    check="egress" if egress else "ingress",
                    message=msg,
                    remediation=(
                        f"accept {what} of {rule.id} before {named}"
                        if named
                        else f"accept {what} of {rule.id}"
                    ),
                    fingerprint=fingerprint(
                        kind.code, str(family), hook.value, rule.id, str(reply)
                    ),
                    family=family,
                    hook=hook.value,
                    example=str(example) if example is not None else None,
                    rules=refs,
                )
            )
    return out


def check_ruleset(
    ruleset: RuleSet,
    policy: Policy,
    may: Mapping[Hook, Evaluation],
    must: Mapping[Hook, Evaluation],
    as_of: str,
    *,
    any_local: bool = False,
) -> list[Finding]:
    """Compliance findings (NG101-NG104, NG110) of one rule set against ``policy``.
    ``any_local``: the rule set is security groups, which cannot name the local address nor
    the tunnel: the profile's local addresses (webhook receivers) and its tunnel constraint
    (IPsec or the tunnel interface) are not required of it.

    ``may``/``must``: the evaluations of ``ruleset`` at the hooks to check (a hook missing is
    not checked) with ``Approx.MAY`` and ``Approx.MUST`` (the same object for both is fine
    when nothing unmodeled decides a packet: ``Slicer.exact``), from one engine that knows
    ``lo`` and the tunnel interface. ``as_of``: ISO date against which exceptions expire.
    """
    family = ruleset.family
    out: list[Finding] = []
    for hook in (Hook.OUTPUT, Hook.INPUT, Hook.FORWARD):
        ev = may.get(hook)
        if ev is None:
            continue
        allowed = allowed_space(ev.engine, policy, family, hook, as_of, any_local=any_local)
        out.extend(_violations(ev, allowed, family))
        out.extend(_policy_accepts(ev, allowed, family, hook))
    out.extend(_blocked(must, policy, ruleset, as_of))
    return out
