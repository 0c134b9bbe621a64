"""Reports of ``netguard check``: text, JSON (against the published schema), SARIF 2.1.0 and
JUnit XML, on a compliant configuration and on a mutated one.

The SARIF 2.1.0 JSON schema is not available offline, so the required structure is checked
key by key against the OASIS specification (sarif-v2.1.0, sections 3.13 sarifLog, 3.14 run,
3.18-3.19 tool/toolComponent, 3.27 result, 3.28 location, 3.29 physicalLocation, 3.30 region).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from netguard.check import CheckOptions, build_report, run_check
from netguard.checks import KINDS, CheckReport
from netguard.cli import main
from netguard.report import FORMATS, render

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "examples" / "public-https" / "deployment.yaml"
SCHEMA = json.loads((ROOT / "schema" / "findings.schema.json").read_text())
SSH = "-A ng-egress -p tcp -m tcp --dport 22 -j ACCEPT"


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated public-https rules.v4 (``good``) and one with an SSH accept added (``bad``,
    the rule on line 27)."""
    base = tmp_path_factory.mktemp("rep")
    result = _cli("generate", PUBLIC, "-o", base, "-t", "iptables")
    assert result.exit_code == 0, result.output
    good = base / "iptables" / "rules.v4"
    bad = base / "bad.v4"
    text = good.read_text()
    bad.write_text(text.replace("-A ng-drop -m limit", SSH + "\n-A ng-drop -m limit", 1))
    return {"good": good, "bad": bad, "v6": base / "iptables" / "rules.v6"}


def _report(*paths: Path) -> CheckReport:
    return build_report(CheckOptions(deployment=PUBLIC, configs=paths))


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["good", "bad"])
def test_json_validates_against_the_schema(configs: dict[str, Path], which: str) -> None:
    result = _cli(
        "check", PUBLIC, "--config", configs[which], "--config", configs["v6"], "--format", "json"
    )
    assert result.exit_code == (0 if which == "good" else 1)
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["format"] == "netguard-check" and doc["format_version"] == 1
    assert list(doc)[:6] == [
        "format",
        "format_version",
        "generator",
        "deployment",
        "as_of",
        "compliant",
    ]
    assert doc["deployment"] == {"name": "acme-prod", "mode": "public-https", "file": str(PUBLIC)}
    assert doc["compliant"] is (which == "good")
    # The summary goes to stderr, the report alone to stdout.
    assert result.stderr.startswith("COMPLIANT" if which == "good" else "NOT COMPLIANT")


def test_schema_knows_every_kind_and_family_not_checked_validates(
    configs: dict[str, Path],
) -> None:
    # Regression: NG105 (family-not-checked) was missing from the schema's kind enum, so the
    # JSON report of an IPv4-only check of a dual-stack profile did not validate.
    item = SCHEMA["properties"]["findings"]["items"]["properties"]
    for kind in KINDS.values():
        assert kind.name in item["kind"]["enum"], kind.code
        assert kind.check in item["check"]["enum"], kind.code
    result = _cli("check", PUBLIC, "--config", configs["good"], "--format", "json")
    assert result.exit_code == 1  # the profile enables IPv6 and no IPv6 rules are given
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert [(f["id"], f["kind"], f["family"]) for f in doc["findings"] if f["id"] == "NG105"] == [
        ("NG105", "family-not-checked", 6)
    ]


def test_json_finding_fields(configs: dict[str, Path]) -> None:
    doc = json.loads(render(_report(configs["bad"]), "json"))
    (f,) = [f for f in doc["findings"] if f["id"] == "NG101"]
    assert f["kind"] == "egress-beyond-policy" and f["severity"] == "high"
    assert f["check"] == "egress" and f["family"] == 4 and f["hook"] == "output"
    assert f["example"] == "tcp 192.0.2.10:40000 -> 198.51.100.5:22 (NEW)"
    assert f["location"] == {"file": str(configs["bad"]), "line": 27}
    assert [(r["line"], r["text"], r["verdict"]) for r in f["rules"]] == [(27, SSH, "ACCEPT")]
    assert re.fullmatch(r"[0-9a-f]{64}", f["fingerprint"])


def test_json_is_stable_and_exit_code_does_not_depend_on_format(configs: dict[str, Path]) -> None:
    runs = [_cli("check", PUBLIC, "--config", configs["bad"], "--format", fmt) for fmt in FORMATS]
    assert [r.exit_code for r in runs] == [1, 1, 1, 1]
    again = _cli("check", PUBLIC, "--config", configs["bad"], "--format", "json")
    assert again.stdout == runs[1].stdout


def test_fingerprint_ignores_line_numbers(tmp_path: Path, configs: dict[str, Path]) -> None:
    shifted = tmp_path / "shifted.v4"
    shifted.write_text("# one more comment line\n" + configs["bad"].read_text())
    a = next(f for f in _report(configs["bad"]).findings if f.code == "NG101")
    b = next(f for f in _report(shifted).findings if f.code == "NG101")
    assert a.rules[0].line + 1 == b.rules[0].line
    assert a.fingerprint == b.fingerprint


# --- text ---------------------------------------------------------------------------------------


def test_text_summary_first_and_no_color_off_a_tty(configs: dict[str, Path]) -> None:
    result = _cli("check", PUBLIC, "--config", configs["bad"], "--config", configs["v6"])
    lines = result.stdout.splitlines()
    assert lines[0].startswith("NOT COMPLIANT: acme-prod (public-https): 1 high, 0 medium")
    assert "\x1b[" not in result.stdout
    text = result.stdout
    assert text.index("HIGH (1)") < text.index("INFO (")
    assert "example: tcp 192.0.2.10:40000 -> 198.51.100.5:22 (NEW)" in text
    assert f"rule: {configs['bad']}:27  {SSH}" in text


def test_text_color_only_when_asked(
    configs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _report(configs["bad"])
    assert "\x1b[" in render(report, "text", color=True)

    class Tty:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, s: str) -> int:
            self.parts.append(s)
            return len(s)

        def flush(self) -> None:
            pass

    out, err = Tty(), Tty()
    monkeypatch.setenv("NO_COLOR", "1")
    run_check(CheckOptions(PUBLIC, [configs["bad"]]), out, err)  # type: ignore[arg-type]
    assert "\x1b[" not in "".join(out.parts)
    monkeypatch.delenv("NO_COLOR")
    out = Tty()
    run_check(CheckOptions(PUBLIC, [configs["bad"]]), out, err)  # type: ignore[arg-type]
    assert "\x1b[" in "".join(out.parts)


def test_control_characters_of_rules_are_escaped(tmp_path: Path, configs: dict[str, Path]) -> None:
    """A rule comment holding ESC and BEL (possible in iptables-save: the comment match takes
    any string) reaches neither the terminal nor the XML raw (regression: the text report and
    explain printed them, so "\x1b[2K" could erase the finding's line; JUnit was not
    well-formed XML)."""
    comment = "x\x1b[2K\rCOMPLIANT\x07"
    path = tmp_path / "ctl.v4"
    rule = f'{SSH} -m comment --comment "{comment}"\n'
    path.write_text(
        configs["good"].read_text().replace("-A ng-drop -m limit", rule + "-A ng-drop -m limit")
    )
    want = "x\\x1b[2K\\x0dCOMPLIANT\\x07"  # the characters written as escapes
    text = _cli("check", PUBLIC, "--config", path)
    assert text.exit_code == 1
    assert want in text.stdout and "\x1b" not in text.stdout and "\r" not in text.stdout
    junit = _cli("check", PUBLIC, "--config", path, "--format", "junit")
    root = ET.fromstring(junit.stdout)  # noqa: S314 - our own output, parsed in a test
    assert want in "".join(root.itertext())
    packet = "tcp 192.0.2.10:40000 -> 198.51.100.5:22"
    explain = _cli("explain", "--config", path, "--packet", packet)
    assert explain.exit_code == 0
    assert want in explain.stdout and "\x1b" not in explain.stdout


# --- SARIF --------------------------------------------------------------------------------------


def test_sarif_structure(configs: dict[str, Path]) -> None:
    result = _cli("check", PUBLIC, "--config", configs["bad"], "--format", "sarif")
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    assert "sarif-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "netguard"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == sorted(KINDS)
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    assert run["results"]
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note", "none")
        assert res["message"]["text"]
        for loc in res["locations"]:
            phys = loc["physicalLocation"]
            assert phys["artifactLocation"]["uri"]
            if "region" in phys:
                assert phys["region"]["startLine"] >= 1
        assert re.fullmatch(r"[0-9a-f]{64}", res["partialFingerprints"]["netguardFingerprint/v1"])
    (ssh,) = [r for r in run["results"] if r["ruleId"] == "NG101"]
    assert ssh["level"] == "error"
    phys = ssh["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == configs["bad"].as_uri()
    assert phys["region"]["startLine"] == 27
    assert "198.51.100.5:22" in ssh["message"]["text"]


def test_sarif_relative_uris_are_percent_encoded(
    tmp_path: Path, configs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path with a space and a '#' is a URI reference only percent-encoded
    (RFC 3986 section 2; regression: "my rules#1.v4" made a reference whose '#1.v4' was a
    fragment)."""
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "my rules#1.v4").write_text(configs["bad"].read_text())
    monkeypatch.chdir(tmp_path)
    result = _cli("check", PUBLIC, "--config", "sub dir/my rules#1.v4", "--format", "sarif")
    assert result.exit_code == 1
    (ssh,) = [r for r in json.loads(result.stdout)["runs"][0]["results"] if r["ruleId"] == "NG101"]
    uri = ssh["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "sub%20dir/my%20rules%231.v4"


# --- JUnit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["good", "bad"])
def test_junit(configs: dict[str, Path], which: str) -> None:
    v6 = configs["v6"]
    result = _cli("check", PUBLIC, "--config", configs[which], "--config", v6, "--format", "junit")
    root = ET.fromstring(result.stdout)  # noqa: S314 - our own output, parsed in a test
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["egress", "ingress", "forward", "policies", "anomalies", "exceptions"]
    failed = sorted(name for name, c in cases.items() if c.find("failure") is not None)
    if which == "good":
        assert failed == [] and suite.get("failures") == "0"
        # Unmodeled conditions (info) are reported, but do not fail.
        out = cases["anomalies"].find("system-out")
        assert out is not None and "NG401" in (out.text or "")
    else:
        assert failed == ["egress"] and suite.get("failures") == "1"
        failure = cases["egress"].find("failure")
        assert failure is not None and failure.get("type") == "NG101"
        assert f"{configs['bad']}:27" in (failure.text or "")


def test_render_unknown_format(configs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        render(_report(configs["good"]), "html")
