"""Atomic, change-only writes, and all-or-nothing generation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from netguard.cli import main
from netguard.errors import OutputError
from netguard.render.write import WriteStatus, write_outputs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "public-https" / "deployment.yaml"


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    first = write_outputs(tmp_path, {"a/b.txt": "one\n"})
    assert first == [(tmp_path / "a" / "b.txt", WriteStatus.WRITTEN)]
    os.utime(tmp_path / "a" / "b.txt", (1_000_000, 1_000_000))
    second = write_outputs(tmp_path, {"a/b.txt": "one\n"})
    assert second == [(tmp_path / "a" / "b.txt", WriteStatus.UNCHANGED)]
    assert (tmp_path / "a" / "b.txt").stat().st_mtime == 1_000_000
    write_outputs(tmp_path, {"a/b.txt": "two\n"})
    assert (tmp_path / "a" / "b.txt").read_text() == "two\n"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt"]  # no temp file left


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", ""])
def test_paths_outside_output_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError):
        write_outputs(tmp_path / "out", {name: "x"})


def test_generate_twice_is_byte_identical_and_second_run_writes_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["generate", str(EXAMPLE), "-o", str(tmp_path / "o"), "--as-of", "2026-06-01"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.stderr
    snapshot = {p: p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()}
    second = runner.invoke(main, args)
    assert second.exit_code == 0
    assert ", 0 written," in second.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()} == snapshot


def test_failed_run_leaves_existing_output_untouched(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "o"
    assert (
        runner.invoke(main, ["generate", str(EXAMPLE), "-o", str(out), "-t", "iptables"]).exit_code
        == 0
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    broken = tmp_path / "broken.yaml"
    shutil.copy(EXAMPLE, broken)
    broken.write_text(broken.read_text().replace("198.51.100.0/25", "198.51.100.1/25"))
    result = runner.invoke(main, ["generate", str(broken), "-o", str(out), "-t", "iptables"])
    assert result.exit_code == 2
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_unwritable_output_is_operational_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(
        main, ["generate", str(EXAMPLE), "-o", str(blocker / "sub"), "-t", "allowlist"]
    )
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot write")


def test_write_failure_changes_no_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: files were replaced one by one, so a failure on the third left the first two
    # new and the rest old (and manifest.json out of step). Now nothing changes.
    import netguard.render.write as write

    out = tmp_path / "o"
    write_outputs(out, {"a.txt": "old a\n", "b.txt": "old b\n", "c.txt": "old c\n"})
    real = write._stage

    def failing(path: Path, data: bytes) -> Path:
        if path.name == "c.txt":
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(write, "_stage", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        write_outputs(out, {"a.txt": "new a\n", "b.txt": "new b\n", "c.txt": "new c\n"})
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "c.txt"]
    assert [(out / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == [
        "old a\n",
        "old b\n",
        "old c\n",
    ]


def test_manifest_names_what_each_hash_covers(tmp_path: Path) -> None:
    import hashlib
    import json

    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["generate", str(EXAMPLE), "-o", str(out), "-t", "allowlist"])
    assert result.exit_code == 0
    entry = json.loads((out / "manifest.json").read_text())["targets"]["allowlist"]
    assert entry["deployment"] == "acme-prod"
    assert entry["base_profile"] == "public-https"
    assert entry["deployment_file_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    listed = entry["files"]["allowlist/vendor-inbound.txt"]
    actual = hashlib.sha256((out / "allowlist" / "vendor-inbound.txt").read_bytes()).hexdigest()
    assert listed == actual


def test_mixing_deployments_in_one_directory_warns(tmp_path: Path) -> None:
    out = tmp_path / "o"
    runner = CliRunner()
    assert (
        runner.invoke(main, ["generate", str(EXAMPLE), "-o", str(out), "-t", "allowlist"]).exit_code
        == 0
    )
    vpn = EXAMPLE.parents[1] / "vpn" / "deployment.yaml"
    result = runner.invoke(main, ["generate", str(vpn), "-o", str(out), "-t", "iptables"])
    assert result.exit_code == 0
    assert f"warning: {out} also holds files of deployment acme-prod" in result.stderr


def test_aws_targets_without_vpc_id_warn(tmp_path: Path) -> None:
    minimal = Path(__file__).parent / "profiles" / "valid" / "minimal-ipv4.yaml"
    result = CliRunner().invoke(main, ["generate", str(minimal), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0
    assert "warning: aws.vpc_id is not set" in result.stderr
    quiet = CliRunner().invoke(main, ["generate", str(EXAMPLE), "-o", str(tmp_path / "p")])
    assert "warning" not in quiet.stderr


def test_empty_output_directory_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["generate", str(EXAMPLE), "-o", ""])
    assert result.exit_code == 2
    assert "expected an output directory, got an empty string" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_symbolic_links_inside_the_output_are_not_followed(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "o", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "iptables").symlink_to(elsewhere)
    result = CliRunner().invoke(main, ["generate", str(EXAMPLE), "-o", str(out), "-t", "iptables"])
    assert result.exit_code == 3
    assert f"refusing to write through the symbolic link {out / 'iptables'}" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_validate_finds_what_generate_would_refuse(tmp_path: Path) -> None:
    ranges = ", ".join(f"198.51.{i}.0/25" for i in range(0, 200))  # 200 rules > 60 x 3 groups
    path = tmp_path / "d.yaml"
    path.write_text(
        "extends: public-https\nname: many\n"
        "vendor:\n  endpoints: [{name: api, host: api.vendor.example}]\n"
        f"  api_ranges: [{ranges}]\n  webhook_ranges: [203.0.113.0/24]\n"
        "customer:\n  egress_addresses: [192.0.2.1/32]\n"
        "  webhook_receivers: [{name: hooks, addresses: [192.0.2.2/32], ports: [443]}]\n"
        "aws: {quotas: {groups_per_interface: 3}}\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "need 200 egress IPv4 rules, but 3 groups per network interface" in result.stderr
