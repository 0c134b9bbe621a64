"""The review document: one JSON-shaped dict every format is rendered from.

``build_document`` joins the layers (:mod:`netguard.review.structural`,
:mod:`netguard.review.semantic`) and, for ``netguard review``, compliance at both ends
(``netguard check``'s :func:`~netguard.check.build_report` on each end, findings compared by
code, family, hook and the packets concerned, see ``_finding_key``), the profile's exceptions
that expire before the next review (within :data:`NEXT_REVIEW_DAYS` of the review date: the
guide asks for quarterly reviews) and a sign-off block. The JSON form carries
``"version": DOCUMENT_VERSION``.

Top-level keys: ``kind`` ("diff" or "review"), ``version``, ``generated_at``, ``review_date``,
``old``/``new`` (snapshot descriptions), ``summary``, ``semantic``, ``structural``, and for a
review ``deployment``, ``compliance``, ``exceptions``, ``signoff``. ``summary`` has
``semantic_change`` (flows newly permitted or denied), ``unproven`` (flow groups possibly
changed through unmodeled conditions), ``unanalysed_changed`` (parts not analysed that
differ) and ``proven_unchanged``, true exactly when ``netguard diff`` exits 0.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from netguard import __version__
from netguard.check import CheckOptions, build_report
from netguard.checks import CheckReport, Finding
from netguard.review.load import MaterialisedEnd
from netguard.review.semantic import SemanticDiff
from netguard.review.snapshot import Snapshot
from netguard.review.structural import StructuralDiff

__all__ = [
    "DOCUMENT_VERSION",
    "NEXT_REVIEW_DAYS",
    "build_document",
    "compliance_section",
    "expiring_exceptions",
]

DOCUMENT_VERSION = 1
#: Exceptions expiring within this many days of the review date are listed (a quarter,
#: rounded up: the longest three consecutive months have 92 days).
NEXT_REVIEW_DAYS = 92


def _snapshot_info(snap: Snapshot) -> dict[str, Any]:
    return {
        "label": snap.label,
        "path": str(snap.path) if snap.path is not None else None,
        # A configuration file, not a snapshot: ``taken_at`` is when it was read.
        "plain": snap.plain,
        "taken_at": snap.taken_at,
        "source": snap.source,
        "host": snap.host,
        "account": snap.account,
        "region": snap.region,
        "netguard_version": snap.netguard_version,
        "commands": [" ".join(c.argv) for c in snap.commands],
        "parts": [{"name": p.name, "format": p.format, "sha256": p.sha256} for p in snap.parts],
    }


def _rule(view: Any) -> dict[str, Any] | None:
    return asdict(view) if view is not None else None


def _structural(diff: StructuralDiff) -> dict[str, Any]:
    pairs = []
    for p in diff.pairs:
        if not (p.chains or p.rules or p.match_changed):
            continue
        pairs.append(
            {
                "ruleset": p.label,
                "family": p.family,
                "format": p.format,
                "chains": [asdict(c) for c in p.chains],
                "rules": [
                    {
                        "kind": r.kind,
                        "chain": r.chain,
                        "detail": r.detail,
                        "old": _rule(r.old),
                        "new": _rule(r.new),
                    }
                    for r in p.rules
                ],
                "set_affected_rules": [
                    {"old": _rule(a), "new": _rule(b)} for a, b in p.match_changed
                ],
            }
        )
    return {
        "counts": diff.counts,
        "rulesets": pairs,
        "sets": [asdict(s) for s in diff.sets],
        "security_groups": [asdict(g) for g in diff.groups],
        "unanalysed": list(diff.unanalysed),
    }


def _semantic(sem: SemanticDiff) -> dict[str, Any]:
    return {
        "changed": sem.changed,
        "hooks": [
            {
                "ruleset": h.label,
                "family": h.family,
                "hook": h.hook,
                "region": h.region,
                "permitted": [asdict(f) for f in h.permitted],
                "denied": [asdict(f) for f in h.denied],
                "truncated_permitted": h.truncated_permitted,
                "truncated_denied": h.truncated_denied,
                "unproven_permitted": [asdict(f) for f in h.unproven_permitted],
                "unproven_denied": [asdict(f) for f in h.unproven_denied],
                "truncated_unproven": h.truncated_unproven,
            }
            for h in sem.hooks
        ],
        "proven": not sem.unproven,
        "unchanged": list(sem.unchanged),
    }


def _finding(f: Finding, end: MaterialisedEnd) -> dict[str, Any]:
    prefix = str(end.directory) + "/"
    return {
        "code": f.code,
        "severity": f.severity.value,
        "title": f.kind.title,
        "message": f.message.replace(prefix, ""),
        "family": f.family,
        "hook": f.hook,
        "example": f.example,
        "space": f.space,
        "rules": [
            f"{r.chain} rule {r.position}: {r.text} [{end.display(r.source)}:{r.line}]"
            if r.position
            else f"{r.chain} policy {r.verdict} [{end.display(r.source)}:{r.line}]"
            for r in f.rules
        ],
        "fingerprint": f.fingerprint,
    }


_PLACE = re.compile(r"\S+:\d+")


def _finding_key(f: Finding, end: MaterialisedEnd) -> tuple[object, ...]:
    """What identifies a finding across ends: its code, family, hook and the packets it is
    about (``space``) or else its message without file:line places. (``Finding.fingerprint``
    includes the rule text as written, counters and comment included, so it changes when
    only counters do.)"""
    if f.space:
        return (f.code, f.family, f.hook, f.space)
    message = f.message.replace(str(end.directory) + "/", "")
    return (f.code, f.family, f.hook, _PLACE.sub("", message))


def compliance_section(
    deployment: Path, old: MaterialisedEnd, new: MaterialisedEnd, review_date: dt.date
) -> tuple[dict[str, Any], CheckReport, CheckReport]:
    """``netguard check`` on both ends against ``deployment`` as of ``review_date``; the
    findings that appeared (in NEW only), went away (OLD only) and persist (both), by
    code, family, hook and the packets concerned. Raises what ``build_report`` raises (exit 2/3)."""
    reports = []
    for end in (old, new):
        options = CheckOptions(deployment=deployment, configs=end.paths, as_of=review_date)
        reports.append(build_report(options))
    rep_old, rep_new = reports
    key_old = {_finding_key(f, old): f for f in rep_old.findings}
    key_new = {_finding_key(f, new): f for f in rep_new.findings}
    appeared = [_finding(f, new) for k, f in key_new.items() if k not in key_old]
    resolved = [_finding(f, old) for k, f in key_old.items() if k not in key_new]
    persisting = [_finding(f, new) for k, f in key_new.items() if k in key_old]
    section = {
        "deployment": rep_new.deployment,
        "mode": rep_new.mode,
        "as_of": rep_new.as_of,
        "old": {"compliant": rep_old.compliant, "counts": rep_old.counts()},
        "new": {"compliant": rep_new.compliant, "counts": rep_new.counts()},
        "appeared": appeared,
        "resolved": resolved,
        "persisting": persisting,
    }
    return section, rep_old, rep_new


_FAMILY = {4: "IPv4", 6: "IPv6"}


def drift_section(
    deployment: Path, old: MaterialisedEnd, new: MaterialisedEnd, review_date: dt.date
) -> dict[str, Any]:
    """Allowlist drift (``netguard drift``) of both ends against ``deployment``: per end,
    each compared direction and family with its EXTRA and MISSING prefixes (or why drift
    could not be computed for that end), and the EXTRA/MISSING prefixes that appeared (in
    NEW only) or went away (OLD only)."""
    from netguard.drift.core import DriftOptions, build_drift
    from netguard.errors import NetguardError

    ends: dict[str, dict[str, Any]] = {}
    for name, end in (("old", old), ("new", new)):
        options = DriftOptions(
            deployment=deployment, actual=[str(p) for p in end.paths], as_of=review_date
        )
        try:
            report = build_drift(options)
        except NetguardError as exc:  # e.g. nothing comparable in that end
            ends[name] = {"error": str(exc).replace(str(end.directory) + "/", ""), "rows": []}
            continue
        rows = [
            {
                "direction": str(c.direction),
                "family": c.family,
                "flow": c.flow,
                "extra": c.extra.prefixes(c.family),
                "missing": c.missing.prefixes(c.family),
            }
            for c in report.comparisons
        ]
        ends[name] = {"error": None, "drift": report.drift, "rows": rows}

    def entries(name: str) -> set[tuple[str, str, int, str]]:
        return {
            (kind, row["direction"], row["family"], prefix)
            for row in ends[name]["rows"]
            for kind in ("extra", "missing")
            for prefix in row[kind]
        }

    def listed(items: set[tuple[str, str, int, str]]) -> list[dict[str, Any]]:
        return [
            {"kind": k.upper(), "direction": d, "family": f, "prefix": p}
            for k, d, f, p in sorted(items)
        ]

    a, b = entries("old"), entries("new")
    return {
        "old": ends["old"],
        "new": ends["new"],
        "appeared": listed(b - a),
        "went_away": listed(a - b),
    }


def drift_lines(section: dict[str, Any]) -> list[str]:
    """The drift section as plain lines (for text and Markdown)."""
    out: list[str] = []
    for name in ("old", "new"):
        end = section[name]
        if end["error"]:
            out.append(f"{name}: not computed: {end['error']}")
            continue
        state = "DRIFT" if end["drift"] else "no drift"
        out.append(f"{name}: {state}")
        for row in end["rows"]:
            for kind in ("extra", "missing"):
                if row[kind]:
                    out.append(
                        f"  {kind.upper()} {row['direction']} {_FAMILY[row['family']]} "
                        f"({row['flow']}): {', '.join(row[kind])}"
                    )
    for key, label in (("appeared", "appeared"), ("went_away", "went away")):
        for e in section[key]:
            out.append(
                f"{label}: {e['kind']} {e['direction']} {_FAMILY[e['family']]} {e['prefix']}"
            )
    return out


def expiring_exceptions(deployment: Path, review_date: dt.date) -> list[dict[str, Any]]:
    """The profile's exceptions whose ``expires`` is at most :data:`NEXT_REVIEW_DAYS` days
    after ``review_date`` (already expired ones included), earliest first, each with
    ``days_left`` (negative once expired)."""
    from netguard.profiles import load_deployment

    loaded = load_deployment(deployment, allow_expired=True)
    horizon = review_date + dt.timedelta(days=NEXT_REVIEW_DAYS)
    out = []
    for index, exc in enumerate(loaded.profile.exceptions):
        if exc.expires > horizon:
            continue
        loc = loaded.source.locate(("exceptions", index, "expires"))
        out.append(
            {
                "name": exc.name,
                "expires": exc.expires.isoformat(),
                "days_left": (exc.expires - review_date).days,
                "reason": exc.reason,
                "ticket": exc.ticket,
                "where": f"{loc.path}:{loc.line}",
                "flow": f"{exc.direction} {exc.protocol} to "
                + ", ".join(str(p) for p in exc.peers),
            }
        )
    return sorted(out, key=lambda e: (e["expires"], e["name"]))


def build_document(
    *,
    kind: str,
    old: MaterialisedEnd,
    new: MaterialisedEnd,
    structural: StructuralDiff,
    semantic: SemanticDiff,
    review_date: dt.date,
    deployment: Path | None = None,
    reviewer: str | None = None,
    next_review_days: int = NEXT_REVIEW_DAYS,
) -> dict[str, Any]:
    """The document (module docstring). With ``deployment`` (``kind`` "review") the
    compliance, exception and sign-off sections are added. Raises what the check raises."""
    permitted = sum(len(h.permitted) for h in semantic.hooks)
    denied = sum(len(h.denied) for h in semantic.hooks)
    unproven = sum(len(h.unproven_permitted) + len(h.unproven_denied) for h in semantic.hooks)
    doc: dict[str, Any] = {
        "kind": kind,
        "version": DOCUMENT_VERSION,
        "netguard_version": __version__,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "review_date": review_date.isoformat(),
        "old": _snapshot_info(old.snapshot),
        "new": _snapshot_info(new.snapshot),
        "notes": sorted(set(old.notes) | set(new.notes)),
    }
    summary: dict[str, Any] = {
        "semantic_change": semantic.changed,
        "newly_permitted": permitted,
        "newly_denied": denied,
        "unproven": unproven,
        "unanalysed_changed": list(structural.unanalysed),
        # What ``netguard diff``'s exit code says: 0 exactly when this is true.
        "proven_unchanged": not (semantic.changed or unproven or structural.unanalysed),
        "structural": structural.counts,
        "structural_change": not structural.empty,
    }
    if deployment is not None:
        section, _, rep_new = compliance_section(deployment, old, new, review_date)
        exceptions = expiring_exceptions(deployment, review_date)
        drift = drift_section(deployment, old, new, review_date)
        doc["deployment"] = str(deployment)
        doc["compliance"] = section
        doc["drift"] = drift
        doc["exceptions"] = {
            "horizon_days": next_review_days,
            "until": (review_date + dt.timedelta(days=next_review_days)).isoformat(),
            "items": exceptions,
        }
        doc["signoff"] = {"reviewer": reviewer or "", "date": "", "decision": "", "notes": ""}
        summary.update(
            compliant=rep_new.compliant,
            violations_appeared=len(section["appeared"]),
            violations_resolved=len(section["resolved"]),
            findings=rep_new.counts(),
            exceptions_expiring=len(exceptions),
            drift=bool(drift["new"].get("drift")),
            drift_appeared=len(drift["appeared"]),
            drift_went_away=len(drift["went_away"]),
        )
    doc["summary"] = summary
    doc["semantic"] = _semantic(semantic)
    doc["structural"] = _structural(structural)
    return doc
