"""JUnit XML report of ``netguard check``, for CI dashboards.

One ``<testsuite>`` named after the deployment, one ``<testcase>`` per check (egress,
ingress, forward, policies, anomalies, exceptions; :data:`~netguard.checks.findings.CHECKS`).
A test case fails (one ``<failure>``, ``type`` the codes, text listing every finding) when
the check has findings of severity high, medium or low; info findings go to its
``<system-out>``. The XML is built with ``xml.etree.ElementTree`` (escaping by the library;
control characters, which XML 1.0 cannot hold, by :func:`netguard.report.escape.printable`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from netguard.checks.findings import CHECKS, CheckReport, Finding, Severity
from netguard.report.escape import printable

__all__ = ["render"]


def _finding_text(f: Finding) -> str:
    lines = [f"{f.code} [{f.severity.value}] {f.message}"]
    if f.example:
        lines.append(f"  example: {f.example}")
    if f.source is not None:
        lines.append(f"  at: {f.source}:{f.line}")
    lines.extend(f"  rule: {r.where}  {r.text}" for r in f.rules)
    lines.append(f"  fix: {f.remediation}")
    # XML 1.0 cannot hold most control characters, which rule texts may contain.
    return "\n".join(printable(line) for line in lines)


def render(report: CheckReport) -> str:
    """The JUnit XML document (UTF-8 declaration, newline at the end)."""
    failures = 0
    cases: list[ET.Element] = []
    classname = printable(f"netguard.check.{report.deployment}")
    for check in CHECKS:
        case = ET.Element("testcase", {"classname": classname, "name": check, "time": "0"})
        found = report.for_check(check)
        failing = [f for f in found if f.severity is not Severity.INFO]
        info = [f for f in found if f.severity is Severity.INFO]
        if failing:
            failures += 1
            codes = sorted({f.code for f in failing})
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": f"{len(failing)} finding{'s' if len(failing) != 1 else ''} "
                    f"({', '.join(codes)})",
                    "type": " ".join(codes),
                },
            )
            failure.text = "\n\n".join(_finding_text(f) for f in failing)
        if info:
            out = ET.SubElement(case, "system-out")
            out.text = "\n\n".join(_finding_text(f) for f in info)
        cases.append(case)
    attrs = {
        "name": printable(f"netguard check: {report.deployment}"),
        "tests": str(len(CHECKS)),
        "failures": str(failures),
        "errors": "0",
        "skipped": "0",
    }
    suites = ET.Element("testsuites", attrs)
    suite = ET.SubElement(suites, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("deployment", report.deployment),
        ("mode", report.mode),
        ("as_of", report.as_of),
        ("compliant", str(report.compliant).lower()),
    ):
        ET.SubElement(props, "property", {"name": name, "value": printable(value)})
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
