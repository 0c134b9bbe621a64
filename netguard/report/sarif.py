"""SARIF 2.1.0 report of ``netguard check`` (OASIS Static Analysis Results Interchange Format).

One run; ``runs[0].tool.driver.rules`` lists every finding kind (``id`` = code such as
``NG101``, ``name``, short and full description, help, default level); each result has
``ruleId``/``ruleIndex``, ``level`` (high -> error, medium -> warning, low and info -> note),
``message.text`` (message, example packet, remediation), ``locations`` (the first rule, or the
finding's own place; the deployment file when there is none) with ``artifactLocation.uri`` and
``region.startLine``, ``relatedLocations`` for further rules, ``partialFingerprints``
(``netguardFingerprint/v1``) and ``properties`` (severity, check, example, remediation).
URIs: relative paths as given (POSIX separators, percent-encoded), absolute paths as
``file://`` URIs.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from netguard import __version__
from netguard.checks.findings import KINDS, CheckReport, Finding, Severity

__all__ = ["LEVELS", "render"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

#: SARIF level of each severity.
LEVELS = {
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _uri(path: str) -> str:
    """A URI reference for ``path`` (RFC 3986): absolute paths as ``file://`` URIs, relative
    ones percent-encoded (a space, ``#``, ``?``, ``%`` or ``:`` would otherwise make another
    or an invalid reference)."""
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(PurePath(path).as_posix(), safe="/")


def _location(path: str, line: int, message: str | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(path)}}
    if line > 0:
        physical["region"] = {"startLine": line}
    out: dict[str, Any] = {"physicalLocation": physical}
    if message:
        out["message"] = {"text": message}
    return out


def _result(f: Finding, index: dict[str, int], deployment_file: str) -> dict[str, Any]:
    text = f.message
    if f.example:
        text += f". Example packet: {f.example}"
    text += f". Fix: {f.remediation}"
    if f.source is not None:
        primary = _location(f.source, f.line)
        related = list(f.rules)
    elif f.rules:
        primary = _location(f.rules[0].source, f.rules[0].line)
        related = list(f.rules[1:])
    else:
        primary = _location(deployment_file, 0)
        related = []
    result: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": index[f.code],
        "level": LEVELS[f.severity],
        "message": {"text": text},
        "locations": [primary],
    }
    if related:
        result["relatedLocations"] = [
            {"id": i + 1, **_location(r.source, r.line, r.text)} for i, r in enumerate(related)
        ]
    result["partialFingerprints"] = {"netguardFingerprint/v1": f.fingerprint}
    result["properties"] = {
        "severity": f.severity.value,
        "check": f.check,
        "example": f.example,
        "remediation": f.remediation,
    }
    return result


def render(report: CheckReport) -> str:
    """The SARIF log as JSON text (indent 2, newline at the end)."""
    codes = sorted(KINDS)
    index = {code: i for i, code in enumerate(codes)}
    rules = [
        {
            "id": k.code,
            "name": k.name,
            "shortDescription": {"text": k.title},
            "fullDescription": {"text": k.help},
            "help": {"text": k.help},
            "defaultConfiguration": {"level": LEVELS[k.severity]},
            "properties": {"tags": ["security", "firewall", k.check], "severity": k.severity.value},
        }
        for k in (KINDS[c] for c in codes)
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "netguard",
                        "version": __version__,
                        "informationUri": "https://github.com/netguard/netguard",
                        "rules": rules,
                    }
                },
                "invocations": [{"executionSuccessful": True}],
                "results": [_result(f, index, report.deployment_file) for f in report.findings],
                "properties": {
                    "deployment": report.deployment,
                    "mode": report.mode,
                    "asOf": report.as_of,
                    "compliant": report.compliant,
                },
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
