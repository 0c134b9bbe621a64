"""Checks of deployed configurations against a profile (``netguard check``).

- :mod:`netguard.checks.findings`: the Finding model (kinds NG101 ... NG401, severities,
  evidence, fingerprints) and the CheckReport;
- :mod:`netguard.checks.policy`: compliance, the allowed space of a Policy per hook and the
  violations, blocked flows and accepting chain policies of a rule set;
- :mod:`netguard.checks.anomalies`: shadowed and redundant rules, unmodeled conditions.

``netguard.check`` loads the inputs and runs these; ``netguard.report`` prints the report.
"""

from netguard.checks.anomalies import find_anomalies, unmodeled_findings
from netguard.checks.findings import (
    CHECKS,
    FORMAT_VERSION,
    KINDS,
    CheckReport,
    ConfigInfo,
    ExceptionRef,
    Finding,
    Kind,
    RuleRef,
    Severity,
    fingerprint,
)
from netguard.checks.policy import allowed_space, check_ruleset, rules_in_force

__all__ = [
    "CHECKS",
    "FORMAT_VERSION",
    "KINDS",
    "CheckReport",
    "ConfigInfo",
    "ExceptionRef",
    "Finding",
    "Kind",
    "RuleRef",
    "Severity",
    "allowed_space",
    "check_ruleset",
    "find_anomalies",
    "fingerprint",
    "rules_in_force",
    "unmodeled_findings",
]
