"""Profile validation: every valid example passes, every invalid one fails with its location.

Each file in tests/profiles/invalid/ starts with ``# expect: LINE:COL: message`` lines written by
hand; the test requires each of them among the errors, with exit code 2 and no traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from netguard.cli import main
from netguard.errors import ProfileError
from netguard.profiles import json_schema, list_base_profiles, load_deployment

HERE = Path(__file__).parent
VALID = sorted((HERE / "profiles" / "valid").glob("*.yaml"))
INVALID = sorted((HERE / "profiles" / "invalid").glob("*.yaml"))
AS_OF = "2026-06-01"


def _expectations(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"# expect: (.*)$", line)
        if m:
            out.append(m.group(1))
    return out


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_profiles_pass(path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(path), "--as-of", AS_OF])
    assert result.exit_code == 0, result.stderr
    assert "valid" in result.stderr


def test_invalid_examples_exist() -> None:
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_profiles_fail_with_location(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' line"
    result = CliRunner().invoke(main, ["validate", str(path), "--as-of", AS_OF])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr + result.stdout
    for want in expected:
        assert f"error: {path}:{want}" in result.stderr, (want, result.stderr)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_generate_refuses_invalid_and_writes_nothing(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["generate", str(path), "-o", str(out), "--as-of", AS_OF])
    assert result.exit_code == 2
    assert not out.exists()


def test_expiry_is_checked_against_as_of() -> None:
    path = HERE / "profiles" / "valid" / "public-https.yaml"  # exception expires 2027-06-30
    load_deployment(path, as_of=dt.date(2027, 6, 30))  # the expiry day itself is still valid
    with pytest.raises(ProfileError) as info:
        load_deployment(path, as_of=dt.date(2027, 7, 1))
    [(loc, msg)] = info.value.problems
    assert (loc.line, loc.column) == (41, 14)
    assert msg.startswith("exception expired on 2027-06-30")


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: file not found" in result.stderr


def test_all_problems_reported_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "extends: public-https\n"
        "name: many\n"
        "vendor:\n"
        "  endpoints: [{name: api, host: api.vendor.example, port: 0}]\n"
        "  api_ranges: [198.51.100.1/24]\n"
        "  webhook_ranges: [203.0.113.0/24]\n"
        "customer:\n"
        "  egress_addresses: [192.0.2.1/32]\n"
        "  webhook_receivers: [{name: hooks, addresses: [192.0.2.2/32], ports: [443]}]\n"
        "colour: blue\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as info:
        load_deployment(path)
    where = [(p[0].line, p[0].column) for p in info.value.problems]
    assert where == [(4, 59), (5, 16), (10, 1)]


def test_schema_file_is_current() -> None:
    published = (HERE.parent / "schema" / "deployment.schema.json").read_text(encoding="utf-8")
    assert published == json_schema(), (
        "run: netguard profiles schema > schema/deployment.schema.json"
    )
    schema = json.loads(published)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"extends", "name", "vendor", "customer"}
    assert "mode" not in schema["properties"]  # the base profile sets it


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_published_schema_accepts_every_valid_file(path: Path) -> None:
    import jsonschema
    import yaml

    schema = json.loads((HERE.parent / "schema" / "deployment.schema.json").read_text())
    document = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.mark.parametrize(
    "name", ["unknown-key", "unknown-top-key", "port-out-of-range", "bad-name", "mode-override"]
)
def test_published_schema_rejects_what_it_can_see(name: str) -> None:
    import jsonschema
    import yaml

    schema = json.loads((HERE.parent / "schema" / "deployment.schema.json").read_text())
    document = yaml.safe_load((HERE / "profiles" / "invalid" / f"{name}.yaml").read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)


def test_profiles_list_and_show() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["profiles", "list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "privatelink",
        "public-https",
        "vpn",
    ]
    assert list_base_profiles() == ["privatelink", "public-https", "vpn"]
    shown = runner.invoke(main, ["profiles", "show", "vpn"])
    assert shown.exit_code == 0
    assert "mode: vpn" in shown.stdout
    unknown = runner.invoke(main, ["profiles", "show", "nope"])
    assert unknown.exit_code == 2
    assert "expected one of privatelink, public-https, vpn" in unknown.stderr


def test_schema_command_prints_schema() -> None:
    result = CliRunner().invoke(main, ["profiles", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "netguard deployment profile"


@pytest.mark.parametrize("command", ["validate", "generate"])
@pytest.mark.parametrize("date", ["2027-13-01", "20270101", "2027-W01-1"])
def test_bad_as_of_is_a_usage_error(command: str, date: str, tmp_path: Path) -> None:
    # Regression: `validate --as-of 2027-13-01` was reported as an internal error (exit 3),
    # and ISO basic or week forms were taken although the option says YYYY-MM-DD.
    args = [command, str(VALID[0]), "--as-of", date]
    if command == "generate":
        args += ["-o", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"expected a date YYYY-MM-DD, got '{date}'" in result.stderr
    assert "internal error" not in result.stderr


def test_as_of_environment_variable_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    path = HERE / "profiles" / "valid" / "public-https.yaml"  # exception expires 2027-06-30
    monkeypatch.setenv("NETGUARD_AS_OF", "2027-07-01")
    expired = CliRunner().invoke(main, ["validate", str(path)])
    assert expired.exit_code == 2
    assert "exception expired on 2027-06-30 (checked against 2027-07-01)" in expired.stderr
    # An explicit --as-of wins over the variable.
    assert CliRunner().invoke(main, ["validate", str(path), "--as-of", "2027-06-30"]).exit_code == 0
    monkeypatch.setenv("NETGUARD_AS_OF", "soon")
    bad = CliRunner().invoke(main, ["validate", str(path)])
    assert bad.exit_code == 2
    assert "error: $NETGUARD_AS_OF: expected a date YYYY-MM-DD (got 'soon')" in bad.stderr
