"""Reports of ``netguard probe``: text for people, JSON for programs, JUnit XML for CI.

All three render the same :class:`~netguard.probe.model.ProbeReport`:

- text: a verdict line, then per endpoint its DNS line and per address one line per check
  (``STATUS name: message``), then the egress table and the notes;
- json: ``{"schema_version": 1, "tool": "netguard probe", "source", "verdict", "counts",
  "settings", "targets": [{"name", "host", "port", "sni", "checks": [...], "addresses":
  [{"address", "checks": [...]}]}], "egress": [...], "notes"}``; each check is
  ``{"name", "status", "message", "warning", "evidence"}``; the JSON Schema is
  ``netguard/probe/report.schema.json`` (shipped in the package);
- junit: one ``<testsuite>`` per endpoint (and one for egress), one ``<testcase>`` per check
  and address; FAIL is ``<failure>``, ERROR ``<error>``, UNTESTABLE ``<skipped>``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from netguard.errors import EXIT_FINDINGS, EXIT_OK
from netguard.probe.model import SCHEMA_VERSION, Check, ProbeReport, Status

__all__ = ["render", "safe_text"]


def safe_text(text: str) -> str:
    """``text`` with every control, format, surrogate, private-use, unassigned or line/paragraph
    separator character (Unicode general categories C*, Zl, Zp) written as a ``\\xNN`` /
    ``\\uNNNN`` escape.

    Servers choose certificate subjects, subjectAltNames and HTTP status lines, which end up in
    messages: raw, an ESC sequence would drive the reader's terminal and a NUL or other C0
    character makes the JUnit file ill-formed XML (XML 1.0 section 2.2 "Char"). JSON escapes
    them itself (RFC 8259 section 7), so the JSON report keeps the raw text.
    """
    if text.isprintable():  # the common case: nothing to escape
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _verdict(report: ProbeReport) -> str:
    code = report.exit_code()
    return {EXIT_OK: "PASS", EXIT_FINDINGS: "FAIL"}.get(code, "ERROR")


def _check_json(c: Check) -> dict[str, Any]:
    return {
        "name": c.name,
        "status": c.status.value,
        "message": c.message,
        "warning": c.warning,
        "evidence": c.evidence,
    }


def render_json(report: ProbeReport) -> str:
    """The JSON document (see the module docstring), newline-terminated."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": "netguard probe",
        "source": report.source,
        "verdict": _verdict(report),
        "exit_code": report.exit_code(),
        "counts": report.counts(),
        "settings": report.settings,
        "targets": [
            {
                "name": t.target.name,
                "host": t.target.host,
                "port": t.target.port,
                "sni": t.target.sni,
                "min_tls": t.target.min_tls,
                "checks": [_check_json(c) for c in t.checks],
                "addresses": [
                    {"address": a.address, "checks": [_check_json(c) for c in a.checks]}
                    for a in t.addresses
                ],
            }
            for t in report.targets
        ],
        "egress": [
            {
                "target": e.target,
                "address": e.address,
                "ports": [
                    {
                        "port": p.port,
                        "state": p.state,
                        "allowed": p.allowed,
                        "detail": p.detail,
                        "connect_ms": p.connect_ms,
                    }
                    for p in e.ports
                ],
                "checks": [_check_json(c) for c in e.checks],
            }
            for e in report.egress
        ],
        "notes": list(report.notes),
    }
    return json.dumps(doc, indent=2, default=str) + "\n"


def _line(c: Check, indent: str) -> str:
    warn = " (warning)" if c.warning else ""
    return f"{indent}{c.status.value:<10} {c.name}: {c.message}{warn}"


def render_text(report: ProbeReport) -> str:
    """The text report (see the module docstring)."""
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items())
    lines = [f"{_verdict(report)}: {report.source}: {counts}"]
    for t in report.targets:
        sni = t.target.sni or "(no SNI)"
        lines.append("")
        lines.append(
            f"{t.target.name}: {t.target.host} port {t.target.port}, SNI {sni}, "
            f"TLS {t.target.min_tls}+ required"
        )
        lines.extend(_line(c, "  ") for c in t.checks)
        for a in t.addresses:
            lines.append(f"  {a.address}")
            lines.extend(_line(c, "    ") for c in a.checks)
    for e in report.egress:
        lines.append("")
        by = f", allowed by {e.allowed_by}" if e.allowed_by else ""
        lines.append(f"egress to {e.target} ({e.address or 'unresolved'}){by}:")
        for p in e.ports:
            allowed = "allowed" if p.allowed else "not allowed"
            lines.append(f"  {p.port:>5}/tcp {p.state:<9} {allowed:<12} {p.detail}")
        lines.extend(_line(c, "  ") for c in e.checks)
    if report.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(safe_text(line) for line in lines) + "\n"


def _case(classname: str, name: str, c: Check) -> ET.Element:
    attrs = {"classname": safe_text(classname), "name": safe_text(name), "time": "0"}
    case = ET.Element("testcase", attrs)
    message = safe_text(c.message)
    # json.dumps escapes every control character itself (ensure_ascii)
    text = f"{c.status.value} {c.name}: {message}\n" + json.dumps(c.evidence, indent=2, default=str)
    if c.status is Status.FAIL:
        ET.SubElement(case, "failure", {"message": message, "type": c.name}).text = text
    elif c.status is Status.ERROR:
        ET.SubElement(case, "error", {"message": message, "type": c.name}).text = text
    elif c.status is Status.UNTESTABLE:
        ET.SubElement(case, "skipped", {"message": message})
    else:
        ET.SubElement(case, "system-out").text = text
    return case


def render_junit(report: ProbeReport) -> str:
    """The JUnit XML document (see the module docstring)."""
    suites = ET.Element("testsuites", {"name": safe_text(f"netguard probe: {report.source}")})
    groups: list[tuple[str, list[tuple[str, Check]]]] = []
    for t in report.targets:
        groups.append(
            (t.target.name, [(f"{a or t.target.host} {c.name}", c) for a, c in t.all_checks()])
        )
    for e in report.egress:
        groups.append((f"egress {e.target}", [(c.name, c) for c in e.checks]))
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name, checks in groups:
        counts = {
            "tests": len(checks),
            "failures": sum(c.status is Status.FAIL for _, c in checks),
            "errors": sum(c.status is Status.ERROR for _, c in checks),
            "skipped": sum(c.status is Status.UNTESTABLE for _, c in checks),
        }
        for k, v in counts.items():
            total[k] += v
        suite = ET.SubElement(
            suites,
            "testsuite",
            {"name": safe_text(name), **{k: str(v) for k, v in counts.items()}},
        )
        suite.extend(_case(f"netguard.probe.{name}", n, c) for n, c in checks)
    for k, v in total.items():
        suites.set(k, str(v))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def render(report: ProbeReport, fmt: str) -> str:
    """``report`` in ``fmt`` (``text``, ``json`` or ``junit``)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "junit":
        return render_junit(report)
    return render_text(report)
