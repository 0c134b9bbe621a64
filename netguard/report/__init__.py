"""Reporters of ``netguard check``: one module per format, each ``render(report) -> str``.

- :mod:`netguard.report.text`: for people (summary line first, findings by severity);
- :mod:`netguard.report.json`: the published format (``schema/findings.schema.json``,
  ``format_version``);
- :mod:`netguard.report.sarif`: SARIF 2.1.0 for code-scanning tools;
- :mod:`netguard.report.junit`: JUnit XML, one test case per check, for CI dashboards.
"""

from __future__ import annotations

from netguard.checks.findings import CheckReport

__all__ = ["FORMATS", "render"]

#: Report formats, the first the default.
FORMATS = ("text", "json", "sarif", "junit")


def render(report: CheckReport, fmt: str, *, color: bool = False) -> str:
    """``report`` in format ``fmt`` (one of :data:`FORMATS`); ``color`` applies to text only.

    Raises ``ValueError`` for an unknown format.
    """
    if fmt == "text":
        from netguard.report import text

        return text.render(report, color=color)
    if fmt == "json":
        from netguard.report import json as json_report

        return json_report.render(report)
    if fmt == "sarif":
        from netguard.report import sarif

        return sarif.render(report)
    if fmt == "junit":
        from netguard.report import junit

        return junit.render(report)
    raise ValueError(f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}")
