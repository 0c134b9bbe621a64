"""JSON report of ``netguard check``: the published, versioned format.

Schema: ``schema/findings.schema.json`` (``format`` ``"netguard-check"``, ``format_version``
:data:`~netguard.checks.findings.FORMAT_VERSION`). Keys appear in a fixed order (the order
below), lists in report order, so equal reports give byte-equal output::

    {"format", "format_version", "generator", "deployment": {"name", "mode", "file"},
     "as_of", "compliant", "summary": {"high", "medium", "low", "info"},
     "configs": [{"path", "format", "families"}],
     "findings": [{"id", "kind", "check", "severity", "message", "family", "hook",
                   "example", "space", "location": {"file", "line"} | null,
                   "rules": [{"file", "line", "chain", "position", "text", "verdict",
                              "comment"}],
                   "exception": {"name", "reason", "expires", "ticket", "file", "line"} | null,
                   "remediation", "fingerprint"}],
     "notes": [str]}
"""

from __future__ import annotations

import json
from typing import Any

from netguard import __version__
from netguard.checks.findings import FORMAT_VERSION, CheckReport, Finding

__all__ = ["finding_dict", "render", "report_dict"]


def finding_dict(f: Finding) -> dict[str, Any]:
    """One finding as a JSON object (key order as in the module docstring)."""
    loc = f.location
    exc = f.exception
    return {
        "id": f.code,
        "kind": f.kind.name,
        "check": f.check,
        "severity": f.severity.value,
        "message": f.message,
        "family": f.family,
        "hook": f.hook,
        "example": f.example,
        "space": f.space,
        "location": {"file": loc[0], "line": loc[1]} if loc is not None else None,
        "rules": [
            {
                "file": r.source,
                "line": r.line,
                "chain": r.chain,
                "position": r.position,
                "text": r.text,
                "verdict": r.verdict,
                "comment": r.comment,
            }
            for r in f.rules
        ],
        "exception": (
            {
                "name": exc.name,
                "reason": exc.reason,
                "expires": exc.expires,
                "ticket": exc.ticket,
                "file": exc.source,
                "line": exc.line,
            }
            if exc is not None
            else None
        ),
        "remediation": f.remediation,
        "fingerprint": f.fingerprint,
    }


def report_dict(report: CheckReport) -> dict[str, Any]:
    """The whole report as a JSON object."""
    return {
        "format": "netguard-check",
        "format_version": FORMAT_VERSION,
        "generator": f"netguard {__version__}",
        "deployment": {
            "name": report.deployment,
            "mode": report.mode,
            "file": report.deployment_file,
        },
        "as_of": report.as_of,
        "compliant": report.compliant,
        "summary": report.counts(),
        "configs": [
            {"path": c.path, "format": c.format, "families": list(c.families)}
            for c in report.configs
        ],
        "findings": [finding_dict(f) for f in report.findings],
        "notes": list(report.notes),
    }


def render(report: CheckReport) -> str:
    """The JSON text, indented by 2, ending with a newline."""
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"
