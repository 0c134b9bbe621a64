"""Rule anomalies: rules that can never match, and what the reader could not model.

A rule is *unreachable* when, at every hook whose packets enter its chain, no packet both
reaches it and matches it (``Evaluation.matched`` empty, from the ``Approx.MAY`` evaluation,
so a rule is never called unreachable because of an unmodeled condition before it). Its
covering rules are ``Evaluation.covering``: the earlier rules of its chain that take the
packets it would match, in order. Classification, by the packets ``S`` the rule would match
on entering its chain:

- an ACCEPT rule is *redundant* (NG202) when every packet of ``S`` is accepted anyway
  (surely: ``Approx.MUST``), otherwise *shadowed* (NG201);
- a DROP/REJECT rule is redundant when no packet of ``S`` may be accepted, otherwise shadowed;
- a jump or goto counts as the verdict of the chains it calls when every verdict rule there
  (recursively) has the same one (a jump to ``ng-drop`` is a deny); any other rule (a mixed
  jump, return, log) that can never match is reported as NG202.

Covering rules named in a finding: at most :data:`MAX_COVERING`, in order, always including
one whose verdict differs from the unreachable rule's when there is one. A rule whose match
is empty by itself, or that no packet entering its chain could match, is NG202 with no
covering rules. Chains no base chain reaches are not examined.

NG401 (info): every condition or target a reader kept as unmodeled, one finding per file and
condition text naming every rule that has it, and every reader :class:`Note` (other tables,
unresolved sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from netguard.model.ruleset import ActionKind, Hook, RuleSet
from netguard.space import Evaluation, HeaderSpace, RuleKey

from .findings import KINDS, Finding, RuleRef, fingerprint
from .policy import rule_ref

__all__ = ["MAX_COVERING", "find_anomalies", "unmodeled_findings"]

#: At most this many covering rules are named per finding.
MAX_COVERING = 5

_ACCEPT = "accept"
_DENY = "deny"


def _verdict_class(kind: ActionKind) -> str:
    if kind is ActionKind.ACCEPT:
        return _ACCEPT
    if kind in (ActionKind.DROP, ActionKind.REJECT):
        return _DENY
    return kind.value.lower()


def _rule_class(ruleset: RuleSet, chain: str, position: int) -> str:
    """The verdict class of a rule; for a jump or goto, that of the chains it calls when
    every verdict rule there (recursively) is of one class (``ng-drop``: deny)."""
    rule = ruleset.chains[chain].rules[position - 1]
    if rule.action.kind not in (ActionKind.JUMP, ActionKind.GOTO) or rule.action.chain is None:
        return _verdict_class(rule.action.kind)
    seen: set[str] = set()
    classes: set[str] = set()
    todo = [rule.action.chain]
    while todo:
        name = todo.pop()
        if name in seen or name not in ruleset.chains:
            continue
        seen.add(name)
        for r in ruleset.chains[name].rules:
            if r.action.kind in (ActionKind.JUMP, ActionKind.GOTO) and r.action.chain:
                todo.append(r.action.chain)
            elif r.action.kind in (ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT):
                classes.add(_verdict_class(r.action.kind))
            elif r.action.kind is ActionKind.UNMODELED:
                classes.add("unmodeled")
    return classes.pop() if len(classes) == 1 else rule.action.kind.value.lower()


def _named(keys: tuple[RuleKey, ...], ruleset: RuleSet, own: str) -> tuple[RuleKey, ...]:
    """At most MAX_COVERING keys, keeping one of another verdict class than ``own``."""
    if len(keys) <= MAX_COVERING:
        return keys
    shown = list(keys[:MAX_COVERING])

    def cls(k: RuleKey) -> str:
        return _rule_class(ruleset, k.chain, k.position)

    if all(cls(k) == own for k in shown):
        other = next((k for k in keys if cls(k) != own), None)
        if other is not None:
            shown[-1] = other
    return tuple(shown)


def find_anomalies(
    ruleset: RuleSet, may: Mapping[Hook, Evaluation], must: Mapping[Hook, Evaluation]
) -> list[Finding]:
    """NG201/NG202 findings of ``ruleset`` from its evaluations at every hook (``may`` with
    ``Approx.MAY``, ``must`` with ``Approx.MUST``, same engine)."""
    out: list[Finding] = []
    for chain in ruleset.chains.values():
        for rule in chain.rules:
            key = RuleKey(chain.name, rule.position)
            hooks = [
                h
                for h, ev in may.items()
                if (entered := ev.entered.get(chain.name)) is not None and not entered.is_empty()
            ]
            if not hooks or any(not may[h].matched[key].is_empty() for h in hooks):
                continue
            out.append(_finding(ruleset, key, hooks, may, must))
    return out


def _finding(
    ruleset: RuleSet,
    key: RuleKey,
    hooks: list[Hook],
    may: Mapping[Hook, Evaluation],
    must: Mapping[Hook, Evaluation],
) -> Finding:
    rule = ruleset.chains[key.chain].rules[key.position - 1]
    own = _rule_class(ruleset, key.chain, key.position)
    first = may[hooks[0]]
    would: dict[Hook, HeaderSpace] = {
        h: may[h].match_space(key) & may[h].entered[key.chain] for h in hooks
    }
    covering: tuple[RuleKey, ...] = ()
    for h in hooks:
        covering = may[h].covering(key)
        if covering:
            break
    # Each question concerns the packets of the rule's match alone: a walk restricted to
    # them (and to the rules that overlap it) answers it without the hook's whole verdict.
    if own == _ACCEPT:
        same = all(would[h] <= must[h].restrict(would[h], key).accepted for h in hooks)
    elif own == _DENY:
        same = all(would[h].isdisjoint(may[h].restrict(would[h], key).accepted) for h in hooks)
    else:
        same = True
    ref = rule_ref(ruleset, key)
    if not covering:
        kind = KINDS["NG202"]
        if first.match_space(key).is_empty():
            why = "its conditions contradict each other (it matches no packet)"
        else:
            why = f"no packet entering chain {key.chain} matches it"
        msg = f"{key.chain} rule {key.position} can never match: {why}"
        named: tuple[RuleKey, ...] = ()
        remediation = f"remove or correct the rule ({ref.where})"
    else:
        kind = KINDS["NG202"] if same else KINDS["NG201"]
        named = _named(covering, ruleset, own)
        who = ", ".join(
            f"{k.chain} rule {k.position} ({rule_ref(ruleset, k).where})" for k in named
        )
        label, verb = ("rule", "takes") if len(covering) == 1 else ("rules", "take")
        first_ref = rule_ref(ruleset, covering[0])
        more = f" and {len(covering) - len(named)} more" if len(covering) > len(named) else ""
        if kind.code == "NG201":
            msg = (
                f"{key.chain} rule {key.position} ({rule.action.kind.value}) is shadowed: "
                f"earlier {label} {who}{more} {verb} every packet it would match, "
                "and not all with its verdict"
            )
            remediation = (
                f"move the rule above {covering[0].chain} rule {covering[0].position} "
                f"({first_ref.where}) if its verdict is intended, or remove it"
            )
        else:
            msg = (
                f"{key.chain} rule {key.position} ({rule.action.kind.value}) is redundant: "
                f"earlier {label} {who}{more} {verb} every packet it would match"
            )
            remediation = f"remove the rule ({ref.where})"
    example = next((s.example() for s in would.values() if s), None)
    refs: tuple[RuleRef, ...] = (ref, *(rule_ref(ruleset, k) for k in named))
    return Finding(
        kind=kind,
        severity=kind.severity,
        check=kind.check,
        message=msg,
        remediation=remediation,
        fingerprint=fingerprint(kind.code, key.chain, rule.text, *(r.text for r in refs[1:])),
        family=ruleset.family,
        hook=None,
        example=str(example) if example is not None else None,
        rules=refs,
    )


def unmodeled_findings(ruleset: RuleSet) -> list[Finding]:
    """NG401 findings: unmodeled conditions and targets (grouped by text) and reader notes."""
    kind = KINDS["NG401"]
    groups: dict[str, list[RuleRef]] = {}
    for chain in ruleset.chains.values():
        for rule in chain.rules:
            texts = list(rule.match.unmodeled)
            if rule.action.kind is ActionKind.UNMODELED:
                texts.append(f"target {rule.action.text or 'UNMODELED'}")
            for text in texts:
                groups.setdefault(text, []).append(
                    rule_ref(ruleset, RuleKey(chain.name, rule.position))
                )
    out: list[Finding] = []
    for text, refs in sorted(groups.items()):
        n = len(refs)
        out.append(
            Finding(
                kind=kind,
                severity=kind.severity,
                check=kind.check,
                message=(
                    f"IPv{ruleset.family} condition not modeled: {text!r} in {n} "
                    f"rule{'s' if n != 1 else ''}; assumed to match where that may accept"
                ),
                remediation=(
                    "nothing to do if the rule is intended; netguard checks it conservatively"
                ),
                fingerprint=fingerprint(kind.code, Path(ruleset.source).name, text),
                family=ruleset.family,
                rules=tuple(refs),
            )
        )
    for note in ruleset.notes:
        out.append(
            Finding(
                kind=kind,
                severity=kind.severity,
                check=kind.check,
                message=f"IPv{ruleset.family}: {note.message}",
                remediation="nothing to do if intended; this part is not checked exactly",
                fingerprint=fingerprint(kind.code, Path(ruleset.source).name, note.message),
                family=ruleset.family,
                source=str(note.location.path),
                line=note.location.line,
            )
        )
    return out
