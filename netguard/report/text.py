"""Text report of ``netguard check``, for people.

Shape: a summary line first (``COMPLIANT`` or ``NOT COMPLIANT``, deployment, counts per
severity, the configurations read), then the findings grouped by severity (high first), each
with its code and kind, message, example packet, the rules as ``file:line  text`` and a
remediation hint, then the notes. Colour (ANSI bold/red/yellow) only when ``color`` is True;
the caller decides (a TTY and no ``NO_COLOR``). Control characters of rule texts, comments
and file names are escaped (:func:`netguard.report.escape.printable`).
"""

from __future__ import annotations

from netguard.checks.findings import CheckReport, Finding, Severity
from netguard.report.escape import printable

__all__ = ["render", "summary_line"]

_COLORS = {
    Severity.HIGH: "\x1b[1;31m",
    Severity.MEDIUM: "\x1b[33m",
    Severity.LOW: "\x1b[36m",
    Severity.INFO: "\x1b[2m",
}
_RESET = "\x1b[0m"


def summary_line(report: CheckReport) -> str:
    """One line: verdict, deployment, counts per severity and the configurations."""
    verdict = "COMPLIANT" if report.compliant else "NOT COMPLIANT"
    counts = ", ".join(f"{n} {sev}" for sev, n in report.counts().items())
    configs = ", ".join(
        f"{c.path} ({c.format}{''.join(' IPv' + str(f) for f in c.families)})"
        for c in report.configs
    )
    return printable(
        f"{verdict}: {report.deployment} ({report.mode}): {counts}; configs: {configs}"
    )


def _finding(f: Finding) -> list[str]:
    scope = " ".join(x for x in (f"IPv{f.family}" if f.family else "", f.hook or "", f.check) if x)
    lines = [f"  {f.code} {f.kind.name} [{scope}]", f"    {f.message}"]
    if f.example:
        lines.append(f"    example: {f.example}")
    if f.source is not None:
        lines.append(f"    at: {f.source}:{f.line}" if f.line else f"    at: {f.source}")
    for r in f.rules:
        lines.append(f"    rule: {r.where}  {r.text}")
    lines.append(f"    fix: {f.remediation}")
    # Rule texts and file names come from the configurations: no control character of
    # theirs reaches the terminal (netguard.report.escape).
    return [printable(line) for line in lines]


def render(report: CheckReport, *, color: bool = False) -> str:
    """The text report (module docstring); ends with a newline."""

    def paint(sev: Severity, text: str) -> str:
        return f"{_COLORS[sev]}{text}{_RESET}" if color else text

    head = summary_line(report)
    if color:
        head = paint(Severity.INFO if report.compliant else Severity.HIGH, head)
    lines = [head]
    for sev in Severity:
        group = [f for f in report.findings if f.severity is sev]
        if not group:
            continue
        lines.append("")
        lines.append(paint(sev, f"{sev.value.upper()} ({len(group)})"))
        for f in group:
            lines.extend(_finding(f))
    if report.notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(printable(f"  - {n}") for n in report.notes)
    return "\n".join(lines) + "\n"
