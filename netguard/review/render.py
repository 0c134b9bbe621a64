"""Render the review document (:mod:`netguard.review.document`) as text, Markdown, HTML or JSON.

Every format shows the same content in the same order: summary, semantic changes, structural
changes, compliance at both ends, expiring exceptions, sign-off. HTML is one self-contained
file (inline CSS, no script, no external resource; ``@media print`` rules for paper), made
from ``netguard/review/templates/review.html.j2`` with Jinja autoescaping, so no configuration
text can inject markup. Markdown escapes table cells and puts rule text in code spans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from netguard.review.document import drift_lines

__all__ = ["FORMATS", "render_document"]

FORMATS = ("text", "markdown", "html", "json")
_TEMPLATES = Path(__file__).resolve().parent / "templates"


# Characters that would not show as themselves: C0 and C1 controls (a carriage return or a
# line feed starts a new Markdown table row or a new terminal line, ESC starts a terminal
# control sequence), DEL, the Unicode line and paragraph separators and the bidirectional
# formatting characters (which reorder what is shown: Unicode TR9, CVE-2021-42574). Tab stays.
_INVISIBLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape_invisible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> Any:
    """``value`` (a document or any part of it) with every string's invisible characters
    (``_INVISIBLE``: controls, line separators, bidi overrides) written as ``\\xNN`` or
    ``\\uNNNN``, so configuration text (rule comments, chain and set names) cannot start a
    line, a table row or a terminal sequence, or reorder what a reviewer reads. The text,
    Markdown and HTML forms are rendered from it; JSON keeps the exact strings."""
    if isinstance(value, str):
        return _INVISIBLE.sub(_escape_invisible, value)
    if isinstance(value, dict):
        return {k: visible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible(v) for v in value]
    return value


def _verdict(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = []
    if "compliant" in s:
        parts.append("COMPLIANT" if s["compliant"] else "NOT COMPLIANT")
    unproven = s.get("unproven", 0)
    unanalysed = s.get("unanalysed_changed", [])
    if s["semantic_change"]:
        parts.append(
            f"what the network allows CHANGED: {s['newly_permitted']} newly permitted, "
            f"{s['newly_denied']} newly denied flow group(s)"
        )
    elif unproven or unanalysed:
        parts.append("what the network allows is NOT PROVEN unchanged")
    else:
        parts.append("what the network allows is UNCHANGED (proven)")
    if unproven:
        parts.append(
            f"{unproven} flow group(s) possibly changed (conditions netguard does not model)"
        )
    if unanalysed:
        parts.append(f"changed where netguard does not analyse: {', '.join(unanalysed)}")
    return "; ".join(parts)


_CAVEAT = (
    "This covers the rules netguard analyses only: parts it does not analyse changed too "
    "(listed under structural changes), so no verdict here is a proof for them."
)

#: The flow lists of a hook in the order shown: document key, label, truncation flag.
_FLOW_KINDS = (
    ("permitted", "newly permitted", "truncated_permitted"),
    ("denied", "newly denied", "truncated_denied"),
    ("unproven_permitted", "possibly permitted (not proven)", "truncated_unproven"),
    ("unproven_denied", "possibly denied (not proven)", "truncated_unproven"),
)


def _drift_summary(s: dict[str, Any]) -> str:
    state = "DRIFT at the new end" if s["drift"] else "none at the new end"
    return f"{state}; {s['drift_appeared']} range(s) appeared, {s['drift_went_away']} went away"


def _loud(label: str) -> str:
    """``newly permitted`` -> ``newly PERMITTED`` (the text form's emphasis)."""
    first, verb, *rest = label.split(" ", 2)
    return " ".join([first, verb.upper(), *rest])


def _flow_rows(h: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(key, label, flow)`` for every flow of hook ``h``, in the order shown."""
    return [(key, label, fc) for key, label, _ in _FLOW_KINDS for fc in h.get(key, [])]


def _structural_counts(s: dict[str, Any]) -> str:
    c = s["structural"]
    return (
        f"{c['added']} rules added, {c['removed']} removed, {c['moved']} moved, "
        f"{c['modified']} modified; {c['chains']} chain, {c['sets']} set and "
        f"{c['groups']} security-group changes"
    )


def _rule_line(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    return f"{r['chain']} rule {r['position']}: {r['text']} [{r['where']}]"


# --- text -----------------------------------------------------------------------------------


def render_text(doc: dict[str, Any]) -> str:
    """Plain text for a terminal or a ticket."""
    out: list[str] = []
    w = out.append
    title = "Firewall review" if doc["kind"] == "review" else "Firewall diff"
    w(f"{title}: {doc['old']['label']} -> {doc['new']['label']}")
    w(
        f"review date {doc['review_date']}; generated {doc['generated_at']} by netguard "
        f"{doc['netguard_version']}"
    )
    if doc.get("deployment"):
        w(f"deployment: {doc['deployment']}")
    w("")
    w("SUMMARY")
    w(f"  {_verdict(doc)}")
    s = doc["summary"]
    w(f"  structural: {_structural_counts(s)}")
    if "compliant" in s:
        f = s["findings"]
        w(
            f"  compliance: {s['violations_appeared']} finding(s) appeared, "
            f"{s['violations_resolved']} went away; now high {f['high']}, medium "
            f"{f['medium']}, low {f['low']}, info {f['info']}"
        )
        w(f"  allowlist drift: {_drift_summary(s)}")
        w(f"  exceptions expiring before the next review: {s['exceptions_expiring']}")
    w("")
    w("SEMANTIC CHANGES (what the network allows)")
    sem = doc["semantic"]
    if not sem["hooks"]:
        w("  none: no packet is treated differently (proof: the difference sets are empty)")
    if doc["structural"].get("unanalysed"):
        w(f"  {_CAVEAT}")
    for h in sem["hooks"]:
        w(f"  {h['ruleset']} {h['hook']}:")
        shown: set[str] = set()
        for key, label, trunc in _FLOW_KINDS:
            for fc in h.get(key, []):
                w(f"    {_loud(label)}: {fc['space']}")
                w(f"      example: {fc['example']}")
                for r in fc["old_rules"]:
                    w(f"      old: {r}")
                for r in fc["new_rules"]:
                    w(f"      new: {r}")
            if h.get(trunc) and trunc not in shown and h.get(key):
                shown.add(trunc)
                w(f"    ... more {label.split(' (')[0]} flows than shown")
    if sem["unchanged"]:
        w(f"  unchanged (proven): {', '.join(sem['unchanged'])}")
    w("")
    w("STRUCTURAL CHANGES")
    st = doc["structural"]
    if not (st["rulesets"] or st["sets"] or st["security_groups"] or st.get("unanalysed")):
        w("  none")
    for p in st["rulesets"]:
        w(f"  {p['ruleset']}:")
        for c in p["chains"]:
            name = c["new_name"] or c["old_name"]
            if c["kind"] == "renamed":
                w(f"    chain renamed: {c['old_name']} -> {c['new_name']}")
            else:
                w(f"    chain {c['kind']}: {name}{' (' + c['detail'] + ')' if c['detail'] else ''}")
        for r in p["rules"]:
            detail = f" ({r['detail']})" if r["detail"] else ""
            w(f"    rule {r['kind']}{detail}:")
            if r["old"] is not None:
                w(f"      old: {_rule_line(r['old'])}")
            if r["new"] is not None:
                w(f"      new: {_rule_line(r['new'])}")
        for a in p["set_affected_rules"]:
            w(f"    rule affected by a set change: {_rule_line(a['new'])}")
    for sc in st["sets"]:
        w(f"  {_set_line(sc)}")
    for g in st["security_groups"]:
        w(f"  {_group_line(g)}")
    for u in st.get("unanalysed", []):
        w(f"  {u}")
    if "compliance" in doc:
        c = doc["compliance"]
        w("")
        w(f"COMPLIANCE against {c['deployment']} ({c['mode']}), as of {c['as_of']}")
        w(
            f"  old: {'compliant' if c['old']['compliant'] else 'NOT compliant'}; "
            f"new: {'compliant' if c['new']['compliant'] else 'NOT compliant'}"
        )
        for key, label in (("appeared", "appeared"), ("resolved", "went away")):
            for f in c[key]:
                w(f"  {label}: {f['code']} {f['severity']}: {f['message']}")
                if f["example"]:
                    w(f"    example: {f['example']}")
                for r in f["rules"]:
                    w(f"    rule: {r}")
        w(f"  persisting: {len(c['persisting'])} finding(s)")
        for f in c["persisting"]:
            w(f"    {f['code']} {f['severity']}: {f['message']}")
        w("")
        w("ALLOWLIST DRIFT against the profile (netguard drift)")
        for line in drift_lines(doc["drift"]):
            w(f"  {line}")
        e = doc["exceptions"]
        w("")
        w(f"EXCEPTIONS EXPIRING BEFORE THE NEXT REVIEW (until {e['until']})")
        if not e["items"]:
            w("  none")
        for x in e["items"]:
            w(f"  {_exception_line(x)}")
        w("")
        w("SIGN-OFF")
        so = doc["signoff"]
        w(f"  reviewer: {so['reviewer'] or '_' * 30}")
        w(f"  date:     {'_' * 30}")
        w("  decision: [ ] approved  [ ] approved with actions  [ ] rejected")
        w(f"  notes:    {'_' * 50}")
    if doc["notes"]:
        w("")
        w("NOTES")
        for n in doc["notes"]:
            w(f"  {n}")
    w("")
    w("SNAPSHOTS")
    for end in ("old", "new"):
        info = doc[end]
        w(f"  {end}: {info['label']} {_provenance(info)}")
        for part in info["parts"]:
            w(f"    {part['name']} ({part['format']}) sha256 {part['sha256']}")
    return "\n".join(out) + "\n"


def _provenance(info: dict[str, Any]) -> str:
    """``taken T from SOURCE (HOST)`` for a snapshot; for a configuration file given as an
    end, that it is one and when it was read (it says nothing of when it was in force)."""
    if info.get("plain"):
        return f"(a configuration file, not a snapshot; read {info['taken_at']})"
    who = info["host"] or info["account"] or "-"
    return f"taken {info['taken_at']} from {info['source']} ({who})"


def _set_line(sc: dict[str, Any]) -> str:
    title = sc["new_title"] or sc["old_title"]
    kind = sc["set_kind"]
    if sc["kind"] == "renamed":
        return f"{kind} renamed: {sc['old_title']} -> {sc['new_title']}"
    if sc["kind"] == "members":
        parts = []
        if sc["added"]:
            parts.append("added " + ", ".join(sc["added"]))
        if sc["removed"]:
            parts.append("removed " + ", ".join(sc["removed"]))
        return f"{kind} {title} members: {'; '.join(parts)}"
    if sc["kind"] == "type":
        return f"{kind} {title} type: {sc['detail']}"
    n = len(sc["added"] or sc["removed"])
    return f"{kind} {sc['kind']}: {title} ({n} members)"


def _group_line(g: dict[str, Any]) -> str:
    if g["kind"] == "renamed":
        return f"security group {g['group_id']} renamed: {g['old_name']} -> {g['new_name']}"
    return f"security group {g['kind']}: {g['group_id']} ({g['new_name'] or g['old_name']})"


def _exception_line(x: dict[str, Any]) -> str:
    days = x["days_left"]
    when = f"expired {-days} days ago" if days < 0 else f"expires in {days} days"
    ticket = f", ticket {x['ticket']}" if x["ticket"] else ""
    return (
        f"{x['name']}: {x['expires']} ({when}){ticket}: {x['reason']} [{x['flow']}; {x['where']}]"
    )


# --- Markdown -------------------------------------------------------------------------------


def _md(text: object) -> str:
    """Escape text for a Markdown paragraph or table cell."""
    s = str(text)
    for ch in "\\`*_{}[]<>()#+!|~&":
        s = s.replace(ch, "\\" + ch)
    return s.replace("\n", " ")


def _code(text: object) -> str:
    s = str(text).replace("\n", " ")
    fence = "`"
    while fence in s:
        fence += "`"
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}".replace("|", "\\|")


def render_markdown(doc: dict[str, Any]) -> str:
    """GitHub-flavoured Markdown (tables; rule text in code spans)."""
    out: list[str] = []
    w = out.append
    title = "Firewall review" if doc["kind"] == "review" else "Firewall diff"
    w(f"# {title}: {_md(doc['old']['label'])} → {_md(doc['new']['label'])}")
    w("")
    w(
        f"Review date {doc['review_date']}, generated {_md(doc['generated_at'])} by netguard "
        f"{_md(doc['netguard_version'])}."
    )
    if doc.get("deployment"):
        w(f"Deployment: {_code(doc['deployment'])}.")
    w("")
    w("## Summary")
    w("")
    w(f"**{_md(_verdict(doc))}**")
    w("")
    s = doc["summary"]
    w(f"- Structural: {_md(_structural_counts(s))}")
    if "compliant" in s:
        f = s["findings"]
        w(
            f"- Compliance: {s['violations_appeared']} finding(s) appeared, "
            f"{s['violations_resolved']} went away; now high {f['high']}, medium {f['medium']}, "
            f"low {f['low']}, info {f['info']}"
        )
        w(f"- Allowlist drift: {_drift_summary(s)}")
        w(f"- Exceptions expiring before the next review: {s['exceptions_expiring']}")
    w("")
    w("## Semantic changes")
    w("")
    sem = doc["semantic"]
    if not sem["hooks"]:
        w("None: no packet is treated differently (the difference sets are empty).")
        w("")
    if doc["structural"].get("unanalysed"):
        w(f"**{_md(_CAVEAT)}**")
        w("")
    for h in sem["hooks"]:
        w(f"### {_md(h['ruleset'])} {h['hook']}")
        w("")
        w("| change | flows | example | old rules | new rules |")
        w("|---|---|---|---|---|")
        for _, label, fc in _flow_rows(h):
            w(
                f"| {_md(label)} | {_code(fc['space'])} | {_code(fc['example'])} | "
                f"{'<br>'.join(_code(r) for r in fc['old_rules'])} | "
                f"{'<br>'.join(_code(r) for r in fc['new_rules'])} |"
            )
        for key in ("permitted", "denied", "unproven"):
            if h.get(f"truncated_{key}"):
                w(f"\nMore {key.replace('unproven', 'not proven')} flows than shown.")
        w("")
    if sem["unchanged"]:
        w(f"Unchanged (proven): {_md(', '.join(sem['unchanged']))}.")
        w("")
    w("## Structural changes")
    w("")
    st = doc["structural"]
    if not (st["rulesets"] or st["sets"] or st["security_groups"] or st.get("unanalysed")):
        w("None.")
        w("")
    for p in st["rulesets"]:
        w(f"### {_md(p['ruleset'])}")
        w("")
        w("| change | chain | old | new |")
        w("|---|---|---|---|")
        for c in p["chains"]:
            w(
                f"| chain {c['kind']} | {_code(c['old_name'] or c['new_name'])} | "
                f"{_code(c['old_name'] or '-')} | {_code(c['new_name'] or '-')} "
                f"{_md(c['detail'])} |"
            )
        for r in p["rules"]:
            kind = r["kind"] + (f" ({_md(r['detail'])})" if r["detail"] else "")
            w(
                f"| {kind} | {_code(r['chain'])} | "
                f"{_code(_rule_line(r['old'])) if r['old'] else '-'} | "
                f"{_code(_rule_line(r['new'])) if r['new'] else '-'} |"
            )
        for a in p["set_affected_rules"]:
            w(
                f"| set changed | {_code(a['new']['chain'])} | {_code(_rule_line(a['old']))} | "
                f"{_code(_rule_line(a['new']))} |"
            )
        w("")
    for sc in st["sets"]:
        w(f"- {_md(_set_line(sc))}")
    for g in st["security_groups"]:
        w(f"- {_md(_group_line(g))}")
    for u in st.get("unanalysed", []):
        w(f"- {_md(u)}")
    if st["sets"] or st["security_groups"] or st.get("unanalysed"):
        w("")
    if "compliance" in doc:
        c = doc["compliance"]
        w("## Compliance")
        w("")
        w(
            f"Against {_md(c['deployment'])} ({_md(c['mode'])}) as of {c['as_of']}: old "
            f"{'compliant' if c['old']['compliant'] else '**not compliant**'}, new "
            f"{'compliant' if c['new']['compliant'] else '**not compliant**'}."
        )
        w("")
        w("| status | code | severity | finding | example |")
        w("|---|---|---|---|---|")
        for key, label in (
            ("appeared", "appeared"),
            ("resolved", "went away"),
            ("persisting", "persisting"),
        ):
            for f in c[key]:
                w(
                    f"| {label} | {f['code']} | {f['severity']} | {_md(f['message'])} | "
                    f"{_code(f['example']) if f['example'] else ''} |"
                )
        w("")
        w("## Allowlist drift")
        w("")
        for line in drift_lines(doc["drift"]):
            w(f"- {_md(line.strip())}")
        w("")
        e = doc["exceptions"]
        w("## Exceptions expiring before the next review")
        w("")
        if not e["items"]:
            w(f"None until {e['until']}.")
        for x in e["items"]:
            w(f"- {_md(_exception_line(x))}")
        w("")
        so = doc["signoff"]
        w("## Sign-off")
        w("")
        w("| | |")
        w("|---|---|")
        w(f"| Reviewer | {_md(so['reviewer'])} |")
        w("| Date | |")
        w("| Decision | ☐ approved ☐ approved with actions ☐ rejected |")
        w("| Notes | |")
        w("")
    if doc["notes"]:
        w("## Notes")
        w("")
        for n in doc["notes"]:
            w(f"- {_md(n)}")
        w("")
    w("## Snapshots")
    w("")
    for end in ("old", "new"):
        info = doc[end]
        w(f"- {end}: {_md(info['label'])}, {_md(_provenance(info))}")
        for part in info["parts"]:
            w(f"  - {_code(part['name'])} ({part['format']}) sha256 {_code(part['sha256'])}")
    return "\n".join(out) + "\n"


# --- HTML and JSON --------------------------------------------------------------------------


def render_html(doc: dict[str, Any]) -> str:
    """One self-contained HTML5 page (module docstring)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("review.html.j2")
    return template.render(
        doc=doc,
        verdict=_verdict(doc),
        structural_counts=_structural_counts(doc["summary"]),
        caveat=_CAVEAT,
        rule_line=_rule_line,
        set_line=_set_line,
        group_line=_group_line,
        exception_line=_exception_line,
        drift_lines=drift_lines,
        drift_summary=_drift_summary,
        flow_rows=_flow_rows,
        provenance=_provenance,
    )


def render_json(doc: dict[str, Any]) -> str:
    """The document as indented JSON with a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "html": render_html,
    "json": render_json,
}


def render_document(doc: dict[str, Any], fmt: str) -> str:
    """``doc`` in format ``fmt`` (one of :data:`FORMATS`; ``KeyError`` otherwise). The
    text, Markdown and HTML forms show invisible characters escaped (:func:`visible`)."""
    render = _RENDERERS[fmt]
    return render(doc if fmt == "json" else visible(doc))
