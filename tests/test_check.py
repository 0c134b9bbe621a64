"""``netguard check`` and ``netguard explain`` end to end, on generated and mutated configs.

Expected values are worked out by hand from the example profiles (examples/*/deployment.yaml)
and the generated files' layout (see the line numbers quoted next to each expectation): e.g.
in the public-https rules.v4, line 21 is the first egress-vendor-api rule (198.51.100.0/25),
lines 19-20 are ``-A OUTPUT -j ng-drop`` / ``-A FORWARD -j ng-drop`` and line 27 the LOG rule
of ng-drop; a rule inserted before line 27 lands on line 27.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import netns
import pytest
from click.testing import CliRunner, Result

from netguard.check import (
    CheckOptions,
    ConfigFormat,
    build_report,
    detect_format,
)
from netguard.checks import CheckReport, Finding, Severity
from netguard.cli import main
from netguard.space import Packet

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "check"
MODES = ("public-https", "vpn", "privatelink")
PUBLIC = ROOT / "examples" / "public-https" / "deployment.yaml"
VPN = ROOT / "examples" / "vpn" / "deployment.yaml"


def _cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three examples generated (iptables and nftables) into a temporary directory."""
    base = tmp_path_factory.mktemp("gen")
    out: dict[str, Path] = {}
    for mode in MODES:
        result = _cli(
            "generate",
            ROOT / "examples" / mode / "deployment.yaml",
            "-o",
            base / mode,
            "-t",
            "iptables",
            "-t",
            "nftables",
        )
        assert result.exit_code == 0, result.output
        out[mode] = base / mode
    return out


def _iptables(d: Path) -> list[Path]:
    return [
        d / "iptables" / "rules.v4",
        d / "iptables" / "rules.v6",
        d / "iptables" / "ipset.restore",
    ]


def _report(deployment: Path, *configs: Path, as_of: str | None = None) -> CheckReport:
    import datetime as dt

    return build_report(
        CheckOptions(
            deployment=deployment,
            configs=configs,
            as_of=dt.date.fromisoformat(as_of) if as_of else None,
        )
    )


def _of(report: CheckReport, code: str) -> list[Finding]:
    return [f for f in report.findings if f.code == code]


def _packet(f: Finding) -> Packet:
    assert f.example is not None
    return Packet.parse(f.example)


def _in(addr: object, net: str) -> bool:
    return ipaddress.ip_address(str(addr)) in ipaddress.ip_network(net)


# --- generated configurations are compliant ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_generated_iptables_is_compliant(generated: dict[str, Path], mode: str) -> None:
    deployment = ROOT / "examples" / mode / "deployment.yaml"
    args: list[str | Path] = ["check", deployment]
    for path in _iptables(generated[mode]):
        args += ["--config", path]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("COMPLIANT: ")
    report = _report(deployment, *_iptables(generated[mode]))
    assert report.compliant
    assert not [f for f in report.findings if f.severity.blocking]
    # Nothing is shadowed or redundant in netguard's own rules.
    assert not [f for f in report.findings if f.severity is Severity.LOW]
    assert [c.families for c in report.configs] == [(4,), (6,), ()]


def test_generated_unmodeled_conditions_are_reported(generated: dict[str, Path]) -> None:
    report = _report(PUBLIC, *_iptables(generated["public-https"]))
    info = _of(report, "NG401")
    texts = {f.message for f in info}
    # rules.v6 lines 16-23 are the 8 NDP rules with -m hl --hl-eq 255.
    hl = next(f for f in info if "'-m hl --hl-eq 255'" in f.message)
    assert sorted(r.line for r in hl.rules) == list(range(16, 24))
    assert any("-m limit --limit 10/min --limit-burst 5" in t for t in texts)
    assert all(f.severity is Severity.INFO for f in info)


# --- mutations --------------------------------------------------------------------------------


def _insert_before(marker: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert marker in text
        return text.replace(marker, new + "\n" + marker, 1)

    return edit


LOG_RULE = "-A ng-drop -m limit"


def _write(tmp_path: Path, generated: dict[str, Path], edit: Callable[[str], str]) -> Path:
    text = (generated["public-https"] / "iptables" / "rules.v4").read_text()
    path = tmp_path / "rules.v4"
    path.write_text(edit(text))
    return path


def test_mutation_ssh_accept(tmp_path: Path, generated: dict[str, Path]) -> None:
    path = _write(
        tmp_path,
        generated,
        _insert_before(LOG_RULE, "-A ng-egress -p tcp -m tcp --dport 22 -j ACCEPT"),
    )
    result = _cli("check", PUBLIC, "--config", path)
    assert result.exit_code == 1
    assert result.stdout.startswith("NOT COMPLIANT: ")
    report = _report(PUBLIC, path)
    (f,) = _of(report, "NG101")
    p = _packet(f)
    assert (p.protocol, p.dport) == (6, 22)
    assert [(r.line, r.chain, r.position) for r in f.rules] == [(27, "ng-egress", 6)]
    assert f.severity is Severity.HIGH
    assert "ng-egress rule 6" in f.remediation


def test_mutation_widened_cidr(tmp_path: Path, generated: dict[str, Path]) -> None:
    path = _write(tmp_path, generated, lambda t: t.replace("198.51.100.0/25", "198.51.100.0/24", 1))
    report = _report(PUBLIC, path)
    (f,) = _of(report, "NG101")
    p = _packet(f)
    # /24 minus the vendor's /25 and 128/26 leaves 198.51.100.192/26.
    assert _in(p.dst, "198.51.100.192/26")
    assert p.dport == 443
    assert [r.line for r in f.rules] == [21]
    # The 198.51.100.128/26 rule (line 22) is now inside the /24 of line 21: redundant.
    (red,) = _of(report, "NG202")
    assert [r.line for r in red.rules] == [22, 21]


def test_mutation_accept_above_the_drop(tmp_path: Path, generated: dict[str, Path]) -> None:
    # -A OUTPUT -j ACCEPT inserted before -A OUTPUT -j ng-drop (line 19 -> the accept is 19).
    path = _write(
        tmp_path, generated, _insert_before("-A OUTPUT -j ng-drop", "-A OUTPUT -j ACCEPT")
    )
    report = _report(PUBLIC, path)
    found = _of(report, "NG101")
    assert found and all([r.line for r in f.rules] == [19] for f in found)
    examples = [_packet(f) for f in found]
    assert any(p.protocol == 1 for p in examples)  # ICMP anywhere
    assert any(p.protocol == 6 and p.dport == 22 for p in examples)  # SSH to the vendor
    # The jump to ng-drop (line 20) never matches: shadowed, and the ACCEPT (19) is named.
    (sh,) = _of(report, "NG201")
    assert sh.rules[0].line == 20
    assert 19 in [r.line for r in sh.rules[1:]]


def test_mutation_any_as_two_halves(tmp_path: Path, generated: dict[str, Path]) -> None:
    path = _write(
        tmp_path,
        generated,
        _insert_before(
            LOG_RULE,
            "-A ng-egress -d 0.0.0.0/1 -p tcp -m tcp --dport 443 -j ACCEPT\n"
            "-A ng-egress -d 128.0.0.0/1 -p tcp -m tcp --dport 443 -j ACCEPT",
        ),
    )
    report = _report(PUBLIC, path)
    # One finding per accepting rule: each half lets TCP 443 out to non-vendor addresses.
    found = {f.rules[0].line: f for f in _of(report, "NG101")}
    assert sorted(found) == [27, 28]
    assert all(len(f.rules) == 1 for f in found.values())
    low, high = _packet(found[27]), _packet(found[28])
    assert low.dport == 443 and _in(low.dst, "0.0.0.0/1")
    assert high.dport == 443 and _in(high.dst, "128.0.0.0/1")
    assert not _in(high.dst, "198.51.100.0/25") and not _in(high.dst, "198.51.100.128/26")
    # The vendor's ranges lie in 128.0.0.0/1: the second rule's excess is that /1 without them.
    assert found[28].space is not None
    assert "dst not 0.0.0.0/1,198.51.100.0/25,198.51.100.128/26 dport 443" in found[28].space


def test_mutation_port_range(tmp_path: Path, generated: dict[str, Path]) -> None:
    path = _write(
        tmp_path,
        generated,
        _insert_before(LOG_RULE, "-A ng-egress -p tcp -m tcp --dport 20:30 -j ACCEPT"),
    )
    report = _report(PUBLIC, path)
    (f,) = _of(report, "NG101")
    assert _packet(f).dport == 22
    assert f.space is not None and "dport 20-30" in f.space


def test_vpn_rule_outside_the_tunnel(tmp_path: Path, generated: dict[str, Path]) -> None:
    text = (generated["vpn"] / "iptables" / "rules.v4").read_text()
    path = tmp_path / "rules.v4"
    path.write_text(text.replace("-m policy --dir out --pol ipsec ", "", 1))
    report = _report(VPN, path)
    (f,) = _of(report, "NG101")
    p = _packet(f)
    assert (p.dport, p.ipsec) == (443, False)
    assert _in(p.dst, "198.51.100.0/26")


def test_ingress_beyond_policy_and_blocked_webhook(
    tmp_path: Path, generated: dict[str, Path]
) -> None:
    # The webhook rule (line 26) now admits any source: ingress beyond policy.
    path = _write(tmp_path, generated, lambda t: t.replace("-s 203.0.113.0/28 ", "", 1))
    report = _report(PUBLIC, path)
    (f,) = _of(report, "NG102")
    p = _packet(f)
    assert p.dport == 8443 and not _in(p.src, "203.0.113.0/28")
    assert [r.line for r in f.rules] == [26]
    # Without the webhook rule the callbacks are dropped: NG110, medium, by ng-drop's DROP.
    path.write_text(
        "".join(
            line
            for line in (generated["public-https"] / "iptables" / "rules.v4")
            .read_text()
            .splitlines(keepends=True)
            if "ingress-webhook" not in line
        )
    )
    report = _report(PUBLIC, path)
    (b,) = _of(report, "NG110")
    assert b.severity is Severity.MEDIUM and not report.compliant
    p = _packet(b)
    assert _in(p.src, "203.0.113.0/28") and str(p.dst) == "192.0.2.20" and p.dport == 8443
    assert [r.text for r in b.rules] == ["-A ng-drop -j DROP"]


def test_policy_accept_reached(tmp_path: Path, generated: dict[str, Path]) -> None:
    def edit(text: str) -> str:
        return text.replace(":OUTPUT DROP", ":OUTPUT ACCEPT").replace("-A OUTPUT -j ng-drop\n", "")

    path = _write(tmp_path, generated, edit)
    report = _report(PUBLIC, path)
    (pol,) = _of(report, "NG104")
    assert pol.severity is Severity.HIGH
    assert pol.rules[0].line == 8  # :OUTPUT ACCEPT [0:0]
    assert any(
        r.position == 0 and r.chain == "OUTPUT" for f in _of(report, "NG101") for r in f.rules
    )


# --- exceptions -------------------------------------------------------------------------------


def test_expired_exception(generated: dict[str, Path]) -> None:
    configs = _iptables(generated["public-https"])
    # Expires 2027-06-30: still in force that day.
    assert _report(PUBLIC, *configs, as_of="2027-06-30").compliant
    report = _report(PUBLIC, *configs, as_of="2027-07-01")
    assert not report.compliant
    (exp,) = _of(report, "NG301")
    assert exp.severity is Severity.MEDIUM
    assert exp.exception is not None and exp.exception.name == "ntp"
    assert exp.location == (str(PUBLIC), 41)  # examples/public-https/deployment.yaml:41
    assert "time sync for TLS certificate validation" in exp.message
    (v,) = _of(report, "NG101")
    p = _packet(v)
    assert (p.protocol, str(p.dst), p.dport) == (17, "192.0.2.123", 123)
    assert "expired exception ntp" in v.message
    assert [r.line for r in v.rules] == [25]
    result = _cli(
        "check", PUBLIC, *[x for c in configs for x in ("--config", c)], "--as-of", "2027-07-01"
    )
    assert result.exit_code == 1


# --- anomalies --------------------------------------------------------------------------------


def test_shadowed_and_redundant_rules() -> None:
    report = _report(PUBLIC, DATA / "shadow.v4")
    by_line = {f.rules[0].line: f for f in report.findings if f.code in ("NG201", "NG202")}
    assert sorted(by_line) == [8, 9, 10, 18]
    # Line 8 (accept ssh to .5) is covered by the DROP of 198.51.100.0/24 on line 7.
    assert by_line[8].code == "NG201"
    assert [r.line for r in by_line[8].rules[1:]] == [7]
    # Line 9 (accept 443 to .64/26) is inside line 6's accept: redundant.
    assert by_line[9].code == "NG202"
    assert [r.line for r in by_line[9].rules[1:]] == [6]
    # Line 10 (drop 443 to .130) is inside line 7's drop: redundant.
    assert by_line[10].code == "NG202"
    assert [r.line for r in by_line[10].rules[1:]] == [7]
    # Line 18 (accept 203.0.113.0/29) is covered by lines 11-16 (accepts) and 17 (REJECT):
    # 7 covering rules, 5 named, the REJECT among them.
    sh = by_line[18]
    assert sh.code == "NG201"
    named = [r.line for r in sh.rules[1:]]
    assert len(named) == 5 and 17 in named
    assert "and 2 more" in sh.message


# --- input errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "column"),
    [
        (
            lambda t: t.replace(
                '443 -m conntrack --ctstate NEW -m comment --comment "egress-vendor-api" -j ACCEPT',
                "",
                1,
            ),
            47,
        ),
        (lambda t: t.replace("-d 198.51.100.0/25", "-d 198.51.100.0/25 --frobnicate", 1), 33),
        (lambda t: t.replace("198.51.100.0/25", "198.51.100.300/25", 1), 17),
    ],
    ids=["truncated", "unknown-option", "bad-address"],
)
def test_malformed_config_names_the_line(
    tmp_path: Path, generated: dict[str, Path], edit: Callable[[str], str], column: int
) -> None:
    path = _write(tmp_path, generated, edit)
    result = _cli("check", PUBLIC, "--config", path)
    assert result.exit_code == 2
    assert f"{path}:21:{column}:" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("# a comment\nhello world\n")
    js = tmp_path / "x.json"
    js.write_text('{"x": 1}')
    missing = tmp_path / "missing"
    result = _cli("check", PUBLIC, "--config", junk, "--config", js, "--config", missing)
    assert result.exit_code == 2
    assert f"{junk}:2: unrecognised configuration" in result.stderr
    assert f"{js}:1: unrecognised JSON" in result.stderr
    assert f"{missing}: " in result.stderr


def test_detect_format(tmp_path: Path) -> None:
    cases = {
        "a": (
            "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
            ConfigFormat.IPTABLES,
        ),
        "b": (":INPUT DROP [0:0]\n", ConfigFormat.IPTABLES),
        "c": ("create s hash:net family inet\nadd s 192.0.2.0/24\n", ConfigFormat.IPSET),
        "d": ("# ipset restore file\n# nothing\n", ConfigFormat.IPSET),
        "e": ('{"nftables": []}', ConfigFormat.NFT_JSON),
        "f": ('{"SecurityGroups": []}', ConfigFormat.AWS_SG),
        "g": ('[{"GroupId": "sg-1"}]', ConfigFormat.AWS_SG),
    }
    for name, (text, fmt) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert detect_format(path) is fmt, name
    # `ipset save` on a host without sets prints nothing: an empty file is an empty ipset file.
    empty = tmp_path / "empty"
    empty.write_text("\n# nothing here\n")
    assert detect_format(empty) is ConfigFormat.IPSET


def test_family_without_configuration_is_not_compliant(generated: dict[str, Path]) -> None:
    # Regression: a family the profile enables but no --config covered was only a note, so an
    # unchecked IPv6 (or an empty iptables-save) could be reported COMPLIANT.
    v4 = generated["public-https"] / "iptables" / "rules.v4"
    result = _cli("check", str(PUBLIC), "--config", str(v4), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["compliant"] is False
    assert [f["id"] for f in doc["findings"] if f["severity"] in ("high", "medium")] == ["NG105"]
    v6 = generated["public-https"] / "iptables" / "rules.v6"
    both = _cli("check", str(PUBLIC), "--config", str(v4), "--config", str(v6))
    assert both.exit_code == 0


def test_profile_errors_exit_2(tmp_path: Path, generated: dict[str, Path]) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("extends: nonsense\n")
    result = _cli("check", bad, "--config", generated["public-https"] / "iptables" / "rules.v4")
    assert result.exit_code == 2
    assert f"{bad}:1:" in result.stderr


# --- explain ----------------------------------------------------------------------------------


def test_explain_accept_by_vendor_rule(generated: dict[str, Path]) -> None:
    v4 = generated["public-https"] / "iptables" / "rules.v4"
    v6 = generated["public-https"] / "iptables" / "rules.v6"
    result = _cli(
        "explain",
        "--config",
        v4,
        "--config",
        v6,
        "--packet",
        "tcp 192.0.2.10:40000 -> 198.51.100.5:443",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f'verdict: ACCEPT by ng-egress rule 1 "egress-vendor-api" ({v4}:21)' in out
    # The path: OUTPUT rules 1, 2 do not match, rule 3 jumps to ng-egress, whose rule 1 decides.
    assert f"OUTPUT rule 3: -A OUTPUT -j ng-egress [{v4}:17] -> matched" in out
    assert "rules.v6" not in out  # an IPv4 packet is traced through IPv4 rule sets only
    # The same packet arriving (INPUT) is dropped by ng-drop's DROP (line 28).
    result = _cli(
        "explain",
        "--config",
        v4,
        "--packet",
        "tcp 192.0.2.10:40000 -> 198.51.100.5:443",
        "--hook",
        "input",
    )
    assert result.exit_code == 0
    assert f"verdict: DROP by ng-drop rule 2 ({v4}:28)" in result.stdout


def test_explain_bad_packet(generated: dict[str, Path]) -> None:
    v4 = generated["public-https"] / "iptables" / "rules.v4"
    result = _cli("explain", "--config", v4, "--packet", "tcp 192.0.2.10 -> 198.51.100.5")
    assert result.exit_code == 2
    assert "expected 'ADDRESS:PORT -> ADDRESS:PORT'" in result.stderr
    result = _cli("explain", "--config", v4, "--packet", "tcp [2001:db8::1]:1 -> [2001:db8::2]:443")
    assert result.exit_code == 2
    assert "no IPv6 rule set" in result.stderr


# --- nftables (the kernel prints the JSON) ----------------------------------------------------


def _nft_json(nft_file: Path, out: Path) -> Path:
    ns = f"ngt-chk-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=30)
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", str(nft_file)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    out.write_text(done.stdout)
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("mode", MODES)
def test_generated_nftables_is_compliant(
    tmp_path: Path, generated: dict[str, Path], mode: str
) -> None:
    netns.require_kernel(["nft"])
    path = _nft_json(generated[mode] / "nftables" / "netguard.nft", tmp_path / "ruleset.json")
    assert detect_format(path) is ConfigFormat.NFT_JSON
    deployment = ROOT / "examples" / mode / "deployment.yaml"
    report = _report(deployment, path)
    assert report.compliant, [f.message for f in report.findings if f.severity.blocking]
    assert report.configs[0].families == (4, 6)
    result = _cli("check", deployment, "--config", path, "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["compliant"] is True


@pytest.mark.kernel
def test_nftables_mutation_found(tmp_path: Path, generated: dict[str, Path]) -> None:
    netns.require_kernel(["nft"])
    text = (generated["public-https"] / "nftables" / "netguard.nft").read_text()
    marker = 'comment "egress-vendor-api"'
    assert marker in text
    nft = tmp_path / "mutated.nft"
    # An extra accept of TCP 22 anywhere, next to the vendor rule in the same chain.
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if marker in line)
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines.insert(i + 1, f"{indent}tcp dport 22 accept")
    nft.write_text("\n".join(lines) + "\n")
    path = _nft_json(nft, tmp_path / "ruleset.json")
    report = _report(PUBLIC, path)
    found = _of(report, "NG101")
    assert any(_packet(f).dport == 22 for f in found)


# --- AWS security groups ----------------------------------------------------------------------


def test_security_group_too_wide() -> None:
    # tests/data/check/sg-wide.json: egress TCP 443 to 198.51.100.0/24 (its IpRanges entry
    # starts on line 16), DNS to the resolver; no ingress permission at all.
    report = _report(PUBLIC, DATA / "sg-wide.json")
    assert report.configs[0].format == "aws-security-groups"
    (f,) = _of(report, "NG101")
    p = _packet(f)
    assert _in(p.dst, "198.51.100.192/26") and p.dport == 443
    assert [r.line for r in f.rules] == [16]
    assert not _of(report, "NG103")  # security groups have no forward hook
    assert any("no forward hook" in n for n in report.notes)
    # The webhook callbacks (IPv4 and IPv6) and the NTP exception are blocked.
    blocked = {
        (f.family, f.message.split("profile rule ")[1].split()[0]) for f in _of(report, "NG110")
    }
    assert {
        (4, "ingress-webhook-ingest"),
        (6, "ingress-webhook-ingest"),
        (4, "exception-ntp"),
    } <= blocked


def test_hooks_filtered_by_another_ruleset_are_not_unfiltered(
    tmp_path: Path, generated: dict[str, Path]
) -> None:
    """On an iptables-nft host the snapshot holds iptables-save output and an nft ruleset
    without netguard-readable base chains; the iptables rules filter every hook, so the pair
    is compliant (regression: each empty rule set was reported as an unfiltered hook)."""
    empty = tmp_path / "empty.json"
    empty.write_text('{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    report = _report(PUBLIC, *_iptables(generated["public-https"]), empty)
    assert report.compliant, [f.message for f in report.findings]


def test_unfiltered_hooks_are_violations(tmp_path: Path) -> None:
    """An nft ruleset with no filter base chain filters nothing: every hook of both families
    accepts every packet (netfilter's default), so each is a violation with an example the
    profile does not allow (regression: it used to pass with NG401 notes only)."""
    path = tmp_path / "empty.json"
    path.write_text('{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    result = _cli("check", PUBLIC, "--config", path)
    assert result.exit_code == 1
    report = _report(PUBLIC, path)
    assert not report.compliant
    got = {(f.code, f.family) for f in report.findings if f.code in ("NG101", "NG102", "NG103")}
    assert got == {(c, fam) for c in ("NG101", "NG102", "NG103") for fam in (4, 6)}
    for f in _of(report, "NG101"):
        p = _packet(f)
        assert f.rules == () and "not filtered" in f.message
        # public-https allows TCP 443 to 198.51.100.0/25 and .128/26 (IPv4), DNS to the
        # resolvers, NTP by exception: the example must be outside all of that.
        vendor = ("198.51.100.0/25", "198.51.100.128/26", "2001:db8:100::/48")
        assert not (p.protocol == 6 and p.dport == 443 and any(_in(p.dst, n) for n in vendor))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"nftables": ' + "[" * 100_000,
        '{"nftables": [{"metainfo": {"json_schema_version": 1}}, '
        + "[" * 100_000
        + "]" * 100_000
        + "]}",
        '{"SecurityGroups": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["bare", "nft-head", "nft-element", "aws"],
)
def test_deeply_nested_json_is_invalid_input(tmp_path: Path, text: str) -> None:
    """JSON nested deeper than Python's parser can follow is invalid input naming the file
    (exit 2), not an internal error (regression: RecursionError reached the user)."""
    path = tmp_path / "deep.json"
    path.write_text(text)
    result = _cli("check", PUBLIC, "--config", path)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "Traceback" not in result.output


def _sg_permission(protocol: str, ports: tuple[int, int] | None, cidr: str) -> dict[str, object]:
    ranges: dict[str, object] = {"IpRanges": [], "Ipv6Ranges": []}
    if ":" in cidr:
        ranges["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    else:
        ranges["IpRanges"] = [{"CidrIp": cidr}]
    perm: dict[str, object] = {"IpProtocol": protocol, "PrefixListIds": [], "UserIdGroupPairs": []}
    if ports is not None:
        perm["FromPort"], perm["ToPort"] = ports
    return perm | ranges


def _vpn_groups(api_v4: str) -> dict[str, object]:
    """describe-security-groups output for the vpn example as its generator lays it out: the
    app group (API and webhooks inside the tunnel, DNS) and the VPN appliance's group (IKE,
    NAT-T, ESP to the peers 203.0.113.200-201)."""
    peers = "203.0.113.200/31"
    app = {
        "GroupId": "sg-0000000000000000a",
        "GroupName": "app",
        "IpPermissions": [
            _sg_permission("tcp", (8443, 8443), "198.51.100.64/28"),
            _sg_permission("tcp", (8443, 8443), "2001:db8:100:20::/64"),
        ],
        "IpPermissionsEgress": [
            _sg_permission("tcp", (443, 443), api_v4),
            _sg_permission("tcp", (443, 443), "2001:db8:100:10::/64"),
            _sg_permission("tcp", (53, 53), "192.0.2.53/32"),
            _sg_permission("udp", (53, 53), "192.0.2.53/32"),
        ],
    }
    gateway = {
        "GroupId": "sg-0000000000000000b",
        "GroupName": "vpn-gateway",
        "IpPermissions": [
            _sg_permission("udp", (500, 500), peers),
            _sg_permission("udp", (4500, 4500), peers),
            _sg_permission("50", None, peers),
        ],
        "IpPermissionsEgress": [
            _sg_permission("udp", (500, 500), peers),
            _sg_permission("udp", (4500, 4500), peers),
            _sg_permission("50", None, peers),
        ],
    }
    return {"SecurityGroups": [app, gateway]}


def test_security_groups_of_the_vpn_mode_need_no_ipsec(tmp_path: Path) -> None:
    """A security group cannot match IPsec processing (the route sends the in-tunnel ranges
    to the VPN appliance): the vpn example's groups, which accept the in-tunnel flows with no
    IPsec condition, are compliant (regression: every in-tunnel permission was NG101/NG102,
    "not-ipsec"); a widened in-tunnel destination is still found."""
    good = tmp_path / "sg.json"
    good.write_text(json.dumps(_vpn_groups("198.51.100.0/26"), indent=1))
    report = _report(VPN, good)
    assert report.compliant, [f.message for f in report.findings if f.severity.blocking]
    assert _cli("check", VPN, "--config", good).exit_code == 0
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps(_vpn_groups("198.51.100.0/25"), indent=1))
    report = _report(VPN, wide)
    (f,) = [f for f in report.findings if f.severity.blocking]
    assert f.code == "NG101" and f.family == 4
    p = _packet(f)
    # 198.51.100.0/25 minus the vendor's 198.51.100.0/26 is 198.51.100.64/26.
    assert _in(p.dst, "198.51.100.64/26") and p.dport == 443 and p.protocol == 6


def test_byte_order_marks_and_utf16_are_read(tmp_path: Path, generated: dict[str, Path]) -> None:
    """A leading UTF-8 byte-order mark (Windows editors) is skipped in every format, and a
    UTF-16 describe-security-groups file (a Windows PowerShell redirection) is read: the
    generated, compliant rules stay compliant (regression: format detection refused them as
    "unrecognised", though the AWS reader decodes both)."""
    configs = []
    for path in _iptables(generated["public-https"]):
        copy = tmp_path / path.name
        copy.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        configs.append(copy)
    report = _report(PUBLIC, *configs)
    assert report.compliant, [f.message for f in report.findings if f.severity.blocking]
    groups = _vpn_groups("198.51.100.0/26")
    utf16 = tmp_path / "sg16.json"
    utf16.write_bytes(json.dumps(groups).encode("utf-16"))
    bom = tmp_path / "sgbom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(groups).encode())
    for path in (utf16, bom):
        result = _cli("check", VPN, "--config", path)
        assert result.exit_code == 0, result.output


def test_truncated_json_names_line_and_column(tmp_path: Path) -> None:
    """Truncated JSON is invalid input at the place it breaks (regression: "unrecognised JSON"
    at line 1). Line 3 is '  {"GroupId": "sg-0a': the unterminated string opens at column
    15."""
    path = tmp_path / "cut.json"
    path.write_text('{\n "SecurityGroups": [\n  {"GroupId": "sg-0a')
    result = _cli("check", PUBLIC, "--config", path)
    assert result.exit_code == 2
    assert f"{path}:3:15: invalid JSON" in result.output
    assert "Traceback" not in result.output


_IPTABLES_NFT_COPY = {
    "nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "ip", "name": "filter", "handle": 1}},
        {
            "chain": {
                "family": "ip", "table": "filter", "name": "OUTPUT", "handle": 1,
                "type": "filter", "hook": "output", "prio": 0, "policy": "drop",
            }
        },
        {
            "rule": {
                "family": "ip", "table": "filter", "chain": "OUTPUT", "handle": 2,
                "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"accept": None}],
            }
        },
    ]
}  # fmt: skip


def test_iptables_nft_copy_is_read_from_iptables_save(
    tmp_path: Path, generated: dict[str, Path]
) -> None:
    """On an iptables-nft host `nft -j` shows the iptables filter table again as `ip filter`
    with xt matches whose conditions the JSON omits (here an ACCEPT behind an unknown
    conntrack match, which may accept anything). Given with iptables-save, that copy is left
    out (noted): compliant. Alone it is all netguard has, read conservatively: a violation."""
    nft = tmp_path / "nft.json"
    nft.write_text(json.dumps(_IPTABLES_NFT_COPY))
    both = _report(PUBLIC, *_iptables(generated["public-https"]), nft)
    assert both.compliant, [f.message for f in both.findings]
    assert any("nft table ip filter left out" in f.message for f in both.findings)
    alone = _report(PUBLIC, nft)
    assert any(f.code == "NG101" and f.family == 4 for f in alone.findings)


def test_one_ipset_with_two_contents_is_invalid_input(
    tmp_path: Path, generated: dict[str, Path]
) -> None:
    """Two ipset files creating the same set with other members cannot both be what the
    kernel holds: exit 2 naming both, whatever the order (regression: the last file won, so
    one order was COMPLIANT while the other set holds 0.0.0.0/0). Equal contents, written
    differently, are fine."""
    rules = tmp_path / "rules.v4"
    rules.write_text(
        (generated["public-https"] / "iptables" / "rules.v4")
        .read_text()
        .replace("-A ng-egress -d 198.51.100.0/25 ", "-A ng-egress -m set --match-set vendor dst ")
    )
    narrow = tmp_path / "narrow.txt"
    narrow.write_text("create vendor hash:net family inet\nadd vendor 198.51.100.0/25\n")
    halves = tmp_path / "halves.txt"
    halves.write_text(
        "create vendor hash:net family inet\n"
        "add vendor 198.51.100.0/26\nadd vendor 198.51.100.64/26\n"
    )
    wide = tmp_path / "wide.txt"
    wide.write_text("create vendor hash:net family inet\nadd vendor 0.0.0.0/0\n")
    for first, second in ((narrow, wide), (wide, narrow)):
        result = _cli("check", PUBLIC, "--config", rules, "--config", first, "--config", second)
        assert result.exit_code == 2, result.output
        assert f"{second}:1:1: ipset 'vendor' is also created" in result.output
        assert f"at {first}:1:1" in result.output
    report = _report(PUBLIC, rules, narrow, halves)
    assert not [f for f in report.findings if f.code in ("NG101", "NG102", "NG103")]


def _two_output_chains(second_policy: str) -> dict[str, object]:
    """nft JSON: table inet t with two base chains on the output hook: ``first`` (priority
    -10, policy accept, no rules, as firewalld and Docker add) and ``second`` (priority 0,
    policy ``second_policy``) accepting TCP 443 to 198.51.100.0/25 only."""

    def chain(name: str, prio: int, policy: str) -> dict[str, object]:
        return {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": name,
                "handle": 1,
                "type": "filter",
                "hook": "output",
                "prio": prio,
                "policy": policy,
            }
        }

    vendor = [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                "right": {"prefix": {"addr": "198.51.100.0", "len": 25}},
            }
        },
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                "right": 443,
            }
        },
        {"accept": None},
    ]
    return {"nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        chain("first", -10, "accept"),
        chain("second", 0, second_policy),
        {"rule": {"family": "inet", "table": "t", "chain": "second", "handle": 2,
                  "expr": vendor}},
    ]}  # fmt: skip


def test_accept_policy_next_to_a_denying_base_chain(tmp_path: Path) -> None:
    """A base chain with policy accept next to one with policy drop on the same hook lets
    through only what the other accepts (nft(8): a packet must pass every base chain): no
    NG104 (regression: high, with an example packet the second chain drops). When the second
    chain accepts by policy too, everything gets through: NG104 high for both."""
    path = tmp_path / "two.json"
    path.write_text(json.dumps(_two_output_chains("drop")))
    report = _report(PUBLIC, path)
    assert [f for f in report.findings if f.code == "NG104"] == []
    assert not [f for f in report.findings if f.code == "NG101"]
    path.write_text(json.dumps(_two_output_chains("accept")))
    found = [f for f in _report(PUBLIC, path).findings if f.code == "NG104"]
    got = sorted((f.family, f.severity.value, f.rules[0].chain) for f in found)
    assert got == [
        (4, "high", "inet t/first"),
        (4, "high", "inet t/second"),
        (6, "high", "inet t/first"),
        (6, "high", "inet t/second"),
    ]
    # The example is a packet beyond policy: not TCP 443 to the vendor's ranges.
    vendor = ("198.51.100.0/25", "198.51.100.128/26", "2001:db8:100::/48")
    for f in found:
        p = _packet(f)
        assert not (p.protocol == 6 and p.dport == 443 and any(_in(p.dst, n) for n in vendor))
