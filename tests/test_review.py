"""``netguard snapshot``, ``diff`` and ``review`` on files and moto's EC2 (no kernel needed).

Covers: the append-only store and damaged snapshots (truncated, a part or the manifest
altered, a hostile part name: each refused with exit 2 and a message naming the file);
structural diffs by identity (chain renamed with its jumps, counters ignored, nft handles and
counters ignored, security groups); semantic diffs with hand-reasoned rectangles and example
packets; the change region giving the same answer as the whole space; the review document
(compliance drift against examples/public-https, exceptions expiring within 92 days with
days counted by hand, the sign-off block) in every format; ``--source aws`` through boto3
against moto's in-process EC2.

Kernel snapshots are in tests/test_review_kernel.py, the HTML in Chromium in
tests/test_review_html.py.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netguard.cli import main
from netguard.review.load import materialise
from netguard.review.semantic import semantic_diff
from netguard.review.snapshot import (
    Part,
    Snapshot,
    SnapshotExistsError,
    load_snapshot,
    save_snapshot,
    snapshot_from_files,
)
from netguard.review.structural import structural_diff
from netguard.space import Packet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"

OLD_V4 = """\
*filter
:INPUT DROP [10:200]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
:LOGDROP - [0:0]
[5:300] -A INPUT -s 203.0.113.0/28 -p tcp -m tcp --dport 8443 -m comment --comment "hooks" -j ACCEPT
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -j LOGDROP
-A OUTPUT -d 198.51.100.0/25 -p tcp -m tcp --dport 443 -j ACCEPT
-A OUTPUT -p tcp -m tcp --dport 22 -j DROP
-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp -j ACCEPT
-A LOGDROP -j LOG --log-prefix "drop: "
-A LOGDROP -j DROP
COMMIT
"""


def _cli(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _diff_json(old: Path, new: Path, tmp: Path) -> tuple[int, dict[str, Any]]:
    out = tmp / "diff.json"
    result = _cli("diff", old, new, "--format", "json", "-o", out)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(out.read_text())


# --- the store ------------------------------------------------------------------------------


def _snap(text: str = OLD_V4) -> Snapshot:
    return Snapshot(
        taken_at="2026-06-01T10:00:00Z",
        source="files",
        host="fw1.example",
        parts=(Part("rules.v4", "iptables-save", text),),
    )


def test_store_is_append_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    path = save_snapshot(_snap(), store)
    assert path.parent == store and path.name.startswith("20260601T100000Z-fw1.example-")
    before = path.read_bytes()
    with pytest.raises(SnapshotExistsError):
        save_snapshot(_snap(), store)
    assert path.read_bytes() == before
    assert [p.name for p in store.iterdir()] == [path.name]  # no temporary file left
    # Another content gives another name: both are kept.
    other = save_snapshot(_snap(OLD_V4.replace("8443", "9443")), store)
    assert other != path and sorted(store.iterdir()) == sorted([path, other])


def test_snapshot_cli_refuses_to_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import netguard.review.snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "_now", lambda: "2026-06-01T10:00:00Z")
    rules = _write(tmp_path / "rules.v4", OLD_V4)
    first = _cli("snapshot", "--source", rules, "-o", tmp_path / "store")
    assert first.exit_code == 0, first.stderr
    path = Path(first.stdout.strip())
    before = path.read_bytes()
    second = _cli("snapshot", "--source", rules, "-o", tmp_path / "store")
    assert second.exit_code == 2
    assert f"error: {path}: a snapshot of this name already exists" in second.stderr
    assert "Traceback" not in second.stderr
    assert path.read_bytes() == before


def test_snapshot_is_self_describing(tmp_path: Path) -> None:
    rules = _write(tmp_path / "rules.v4", OLD_V4)
    result = _cli("snapshot", "--source", rules, "-o", tmp_path / "store")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(Path(result.stdout.strip()).read_text())
    assert doc["format"] == "netguard-snapshot" and doc["version"] == 1
    m = doc["manifest"]
    assert m["source"] == "files" and m["taken_at"].endswith("Z")
    assert m["netguard_version"]
    import hashlib

    (part,) = m["parts"]
    assert part == {
        "name": "rules.v4",
        "format": "iptables-save",
        "bytes": len(OLD_V4.encode()),
        "sha256": hashlib.sha256(OLD_V4.encode()).hexdigest(),
    }
    canonical = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert doc["manifest_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert doc["parts"]["rules.v4"] == OLD_V4


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    return save_snapshot(_snap(), tmp_path / "store")


def _refused(path: Path, other: Path, *expected: str) -> None:
    result = _cli("diff", path, other)
    assert result.exit_code == 2, result.stdout
    assert "snapshot refused" in result.stderr or "not a netguard snapshot" in result.stderr
    assert str(path) in result.stderr
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_truncated_snapshot_is_refused(stored: Path, tmp_path: Path) -> None:
    data = stored.read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[: len(data) // 2])
    _refused(cut, stored, "not valid JSON", "truncated or altered")


def test_altered_part_is_refused(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    doc["parts"]["rules.v4"] = doc["parts"]["rules.v4"].replace("/25", "/8")
    bad = _write(tmp_path / "bad.json", json.dumps(doc))
    _refused(bad, stored, "part rules.v4")


def test_altered_manifest_is_refused(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    doc["manifest"]["taken_at"] = "2026-09-01T10:00:00Z"
    bad = _write(tmp_path / "bad.json", json.dumps(doc))
    _refused(bad, stored, "manifest does not match manifest_sha256")
    # Re-hashing the part alone does not help: the manifest hash covers the part hashes.
    doc = json.loads(stored.read_text())
    import hashlib

    text = doc["parts"]["rules.v4"].replace("/25", "/8")
    doc["parts"]["rules.v4"] = text
    doc["manifest"]["parts"][0]["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    doc["manifest"]["parts"][0]["bytes"] = len(text.encode())
    bad2 = _write(tmp_path / "bad2.json", json.dumps(doc))
    _refused(bad2, stored, "manifest does not match")


def test_extra_or_hostile_part_is_refused(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    doc["parts"]["extra"] = "x"
    _refused(_write(tmp_path / "extra.json", json.dumps(doc)), stored, "not in the manifest")
    assert load_snapshot(stored).parts[0].name == "rules.v4"


def test_unknown_version_is_refused(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    doc["version"] = 99
    result = _cli("diff", _write(tmp_path / "v99.json", json.dumps(doc)), stored)
    assert result.exit_code == 2 and "version 99 is not supported" in result.stderr


# --- structural and semantic diffs on files -------------------------------------------------


def test_counters_only_is_no_change(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.v4", OLD_V4)
    new = _write(
        tmp_path / "new.v4", OLD_V4.replace("[5:300]", "[99:12345]").replace("[10:200]", "[1:2]")
    )
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 0
    assert doc["structural"]["rulesets"] == [] and doc["semantic"]["hooks"] == []
    assert doc["summary"]["structural_change"] is False


def test_chain_renamed_with_its_jumps_is_structural_only(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.v4", OLD_V4)
    new = _write(tmp_path / "new.v4", OLD_V4.replace("LOGDROP", "LOG_AND_DROP"))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 0
    (pair,) = doc["structural"]["rulesets"]
    assert pair["chains"] == [
        {"kind": "renamed", "old_name": "LOGDROP", "new_name": "LOG_AND_DROP", "detail": ""}
    ]
    assert pair["rules"] == []
    assert doc["semantic"]["hooks"] == []


def test_policy_change_and_rule_removed(tmp_path: Path) -> None:
    # OUTPUT policy DROP -> ACCEPT: everything OUTPUT's rules do not accept becomes permitted,
    # except TCP port 22 (dropped by rule 2): with the /25 and /24 rules, newly permitted is
    # every IPv4 packet except TCP to 198.51.100.0/24 (accepted before) and TCP port 22.
    old = _write(tmp_path / "old.v4", OLD_V4)
    new = _write(tmp_path / "new.v4", OLD_V4.replace(":OUTPUT DROP", ":OUTPUT ACCEPT"))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 1
    (pair,) = doc["structural"]["rulesets"]
    assert pair["chains"] == [
        {"kind": "policy", "old_name": "OUTPUT", "new_name": "OUTPUT",
         "detail": "policy DROP -> ACCEPT"}
    ]  # fmt: skip
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output" and hook["denied"] == []
    for flow in hook["permitted"]:
        p = Packet.parse(flow["example"])
        assert not (p.protocol == 6 and p.dport == 22)
        assert not (p.protocol == 6 and ipaddress.ip_address(str(p.dst)) in
                    ipaddress.ip_network("198.51.100.0/24"))  # fmt: skip
        assert flow["old_rules"] == ["OUTPUT policy DROP [old.v4:4]"]
        assert flow["new_rules"] == ["OUTPUT policy ACCEPT [new.v4:4]"]


def test_redundant_rule_removed_is_proven_harmless(tmp_path: Path) -> None:
    # OUTPUT rule 1 accepts TCP to 198.51.100.0/25 port 443; without it rule 2 (DROP TCP 22)
    # does not touch port 443 and rule 3 accepts TCP to the /24, so nothing changes.
    old = _write(tmp_path / "old.v4", OLD_V4)
    lines = OLD_V4.splitlines(keepends=True)
    new = _write(tmp_path / "new.v4", "".join(x for x in lines if "198.51.100.0/25" not in x))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 0
    (pair,) = doc["structural"]["rulesets"]
    assert [(r["kind"], r["chain"]) for r in pair["rules"]] == [("removed", "OUTPUT")]
    assert doc["semantic"]["hooks"] == []
    assert "iptables IPv4 output" in doc["semantic"]["unchanged"]


DROP22 = "-A OUTPUT -p tcp -m tcp --dport 22 -j DROP\n"
ACCEPT24 = "-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp -j ACCEPT\n"


@pytest.mark.parametrize("change", ["removed", "moved"])
def test_drop_rule_removed_or_moved_below_the_accept(change: str, tmp_path: Path) -> None:
    # Without the DROP of TCP 22 before the /24 accept, TCP port 22 to 198.51.100.0/24 is
    # accepted: newly permitted, by OUTPUT's /24 rule instead of the DROP.
    old = _write(tmp_path / "old.v4", OLD_V4)
    after = ACCEPT24 if change == "removed" else ACCEPT24 + DROP22
    new = _write(tmp_path / "new.v4", OLD_V4.replace(DROP22 + ACCEPT24, after))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 1
    (pair,) = doc["structural"]["rulesets"]
    assert [(r["kind"], r["chain"]) for r in pair["rules"]] == [(change, "OUTPUT")]
    # Removed: the DROP. Moved: one of the two swapped rules (the aligner's choice).
    moved_text = pair["rules"][0]["old"]["text"] + "\n"
    assert moved_text == DROP22 or (change == "moved" and moved_text == ACCEPT24)
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output" and hook["denied"] == []
    (flow,) = hook["permitted"]
    assert flow["space"] == "ipv4 tcp dst 198.51.100.0/24 dport 22"
    assert flow["example"] == "tcp 192.0.2.10:40000 -> 198.51.100.5:22 (NEW)"
    assert flow["old_rules"] == [
        "OUTPUT rule 2: -A OUTPUT -p tcp -m tcp --dport 22 -j DROP [old.v4:10]"
    ]
    assert flow["new_rules"] == [
        "OUTPUT rule 2: -A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp -j ACCEPT [new.v4:10]"
    ]


def test_region_gives_the_whole_answer(tmp_path: Path) -> None:
    """The change region restricts nothing that differs: with and without it, the same."""
    old_text = OLD_V4
    new_text = (
        OLD_V4.replace("-p udp -m udp --dport 53", "-p udp -m udp --dport 53:54")
        .replace("-A OUTPUT -p tcp -m tcp --dport 22 -j DROP\n", "")
        .replace(
            "COMMIT",
            "-A OUTPUT -p tcp -m tcp --dport 22 -j DROP\n"
            "-A LOGDROP -s 192.0.2.0/24 -j RETURN\nCOMMIT",
        )
    )
    old = snapshot_from_files([_write(tmp_path / "old.v4", old_text)])
    new = snapshot_from_files([_write(tmp_path / "new.v4", new_text)])
    with materialise(old) as a, materialise(new) as b:
        s = structural_diff(a, b)
        fast = semantic_diff(s.pairs, a, b)
        slow = semantic_diff(s.pairs, a, b, restrict=False)
    assert fast.changed and [(h.hook, h.permitted, h.denied) for h in fast.hooks] == [
        (h.hook, h.permitted, h.denied) for h in slow.hooks
    ]


NFT_OLD: dict[str, Any] = {
    "nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "inet", "name": "fw", "handle": 1}},
        {"chain": {"family": "inet", "table": "fw", "name": "output", "handle": 1,
                   "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "fw", "chain": "output", "handle": 2, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": {"prefix": {"addr": "198.51.100.0", "len": 25}}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": 443}},
            {"counter": {"packets": 1, "bytes": 60}},
            {"accept": None}]}},
    ]
}  # fmt: skip


def test_nft_counters_and_handles_ignored_port_change_found(tmp_path: Path) -> None:
    new_doc = json.loads(json.dumps(NFT_OLD))
    rule = new_doc["nftables"][3]["rule"]
    rule["handle"] = 7
    rule["expr"][2]["counter"] = {"packets": 99, "bytes": 9999}
    old = _write(tmp_path / "old.json", json.dumps(NFT_OLD))
    same = _write(tmp_path / "same.json", json.dumps(new_doc))
    code, doc = _diff_json(old, same, tmp_path)
    assert code == 0 and doc["structural"]["rulesets"] == []
    rule["expr"][1]["match"]["right"] = {"set": [443, 8443]}
    wider = _write(tmp_path / "wider.json", json.dumps(new_doc))
    code, doc = _diff_json(old, wider, tmp_path)
    assert code == 1
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output" and hook["family"] == 4
    (flow,) = hook["permitted"]
    assert flow["space"] == "ipv4 tcp dst 198.51.100.0/25 dport 8443"
    assert flow["example"] == "tcp 192.0.2.10:40000 -> 198.51.100.5:8443 (NEW)"


# --- review ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    result = _cli("generate", EXAMPLE, "-o", out, "-t", "iptables")
    assert result.exit_code == 0, result.stderr
    return out / "iptables"


def _store_of(tmp: Path, directory: Path, name: str, rules_v4: str | None = None) -> Path:
    src = tmp / name
    src.mkdir()
    for f in ("rules.v4", "rules.v6", "ipset.restore"):
        text = (directory / f).read_text()
        if f == "rules.v4" and rules_v4 is not None:
            text = rules_v4
        _write(src / f, text)
    snap = snapshot_from_files([src / "rules.v4", src / "rules.v6", src / "ipset.restore"])
    return save_snapshot(snap, tmp / f"store-{name}")


def test_review_finds_the_violation_that_appeared(generated: Path, tmp_path: Path) -> None:
    v4 = (generated / "rules.v4").read_text()
    opened = v4.replace(
        "-A ng-drop -m limit",
        "-A ng-egress -p tcp -m tcp --dport 22 -j ACCEPT\n-A ng-drop -m limit",
    )
    old = _store_of(tmp_path, generated, "old")
    new = _store_of(tmp_path, generated, "new", opened)
    out = tmp_path / "review.json"
    result = _cli(
        "review", EXAMPLE, "--since", old, "--until", new, "--format", "json", "-o", out,
        "--as-of", "2026-06-01", "--reviewer", "A. Auditor",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(out.read_text())
    assert doc["kind"] == "review" and doc["version"] == 1
    s = doc["summary"]
    assert s["compliant"] is False and s["semantic_change"] is True
    assert s["violations_appeared"] == 1 and s["violations_resolved"] == 0
    c = doc["compliance"]
    assert c["old"]["compliant"] is True and c["new"]["compliant"] is False
    (appeared,) = c["appeared"]
    assert appeared["code"] == "NG101" and appeared["hook"] == "output"
    p = Packet.parse(appeared["example"])
    assert p.protocol == 6 and p.dport == 22
    assert any("rules.v4:" in r for r in appeared["rules"])
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output"
    (flow,) = hook["permitted"]
    # Reaches ng-egress: not lo, not ESTABLISHED/RELATED; TCP port 22 anywhere (except the
    # vendor API ranges already accepted for 443 only, which do not include port 22).
    assert flow["space"] == "ipv4 tcp dport 22 state NEW,INVALID,UNTRACKED out other"
    assert doc["signoff"] == {"reviewer": "A. Auditor", "date": "", "decision": "", "notes": ""}
    # The ntp exception expires 2027-06-30, more than 92 days after 2026-06-01.
    assert doc["exceptions"]["items"] == [] and doc["exceptions"]["until"] == "2026-09-01"


def test_review_unchanged_is_compliant_and_lists_expiring_exception(
    generated: Path, tmp_path: Path
) -> None:
    old = _store_of(tmp_path, generated, "old")
    out = tmp_path / "review.json"
    result = _cli(
        "review", EXAMPLE, "--since", old, "--until", old.parent, "--format", "json",
        "-o", out, "--as-of", "2027-04-15",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["summary"]["compliant"] is True and doc["summary"]["semantic_change"] is False
    # 2027-04-15 -> 2027-06-30: 15 days of April + 31 of May + 30 of June = 76.
    (exc,) = doc["exceptions"]["items"]
    assert exc["name"] == "ntp" and exc["expires"] == "2027-06-30" and exc["days_left"] == 76
    assert exc["ticket"] == "SEC-1234"
    assert doc["exceptions"]["until"] == "2027-07-16"


def test_review_formats_have_every_section_in_order(generated: Path, tmp_path: Path) -> None:
    old = _store_of(tmp_path, generated, "old")
    v4 = (
        (generated / "rules.v4")
        .read_text()
        .replace('--comment "egress-dns-tcp"', '--comment "<script>alert(1)</script> & dns"')
    )
    new = _store_of(tmp_path, generated, "new", v4)
    base = ["review", EXAMPLE, "--since", old, "--until", new, "--as-of", "2027-04-15"]
    text = _cli(*base).stdout
    md = _cli(*base, "--format", "markdown").stdout
    html = _cli(*base, "--format", "html").stdout
    order_text = ["SUMMARY", "SEMANTIC CHANGES", "STRUCTURAL CHANGES", "COMPLIANCE",
                  "ALLOWLIST DRIFT", "EXCEPTIONS EXPIRING", "SIGN-OFF"]  # fmt: skip
    positions = [text.index(h) for h in order_text]
    assert positions == sorted(positions)
    assert "what the network allows is UNCHANGED (proven)" in text
    assert "rule modified (comment)" in text
    order_md = ["## Summary", "## Semantic changes", "## Structural changes", "## Compliance",
                "## Allowlist drift", "## Exceptions expiring", "## Sign-off"]  # fmt: skip
    positions = [md.index(h) for h in order_md]
    assert positions == sorted(positions)
    # Markdown: configuration text only inside code spans (inert in CommonMark).
    assert "<script>" in md and "<script>" not in re.sub(r"`[^`]*`", "", md)
    # HTML: escaped, self-contained, printable.
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; dns" in html
    assert "@media print" in html
    for external in ("src=", "href=", "@import", "url("):
        assert external not in html
    ids = ['id="summary"', 'id="semantic"', 'id="structural"', 'id="compliance"',
           'id="drift"', 'id="exceptions"', 'id="signoff"']  # fmt: skip
    positions = [html.index(i) for i in ids]
    assert positions == sorted(positions)


def test_output_file_is_written_whole(generated: Path, tmp_path: Path) -> None:
    old = _store_of(tmp_path, generated, "old")
    out = tmp_path / "reports" / "q3.md"
    result = _cli("diff", old, old, "--format", "markdown", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().startswith("# Firewall diff")
    assert [p.name for p in out.parent.iterdir()] == ["q3.md"]


def test_review_until_local_without_tools_is_operational_error(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _store_of(tmp_path, generated, "old")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = _cli("review", EXAMPLE, "--since", old)
    assert result.exit_code == 3
    assert "none of iptables-save, ip6tables-save, ipset, nft is on PATH" in result.stderr


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    junk = _write(tmp_path / "junk.txt", "hello world\n")
    good = _write(tmp_path / "old.v4", OLD_V4)
    result = _cli("diff", junk, good)
    assert result.exit_code == 2 and f"{junk}:1: unrecognised configuration" in result.stderr
    result = _cli("snapshot", "--source", "local", "--source", good, "-o", tmp_path / "s")
    assert result.exit_code == 2 and "not several of them" in result.stderr
    result = _cli("diff", tmp_path / "missing.v4", good)
    assert result.exit_code == 2


# --- AWS ------------------------------------------------------------------------------------


@pytest.fixture
def moto_ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        import boto3

        yield boto3.client("ec2", region_name="eu-west-1")


def test_aws_snapshot_and_diff(moto_ec2: Any, tmp_path: Path) -> None:
    ec2 = moto_ec2
    vpc = ec2.create_vpc(CidrBlock="192.0.2.0/24")["Vpc"]["VpcId"]
    pl = ec2.create_managed_prefix_list(
        PrefixListName="vendor-api", AddressFamily="IPv4", MaxEntries=5,
        Entries=[{"Cidr": "198.51.100.0/25"}],
    )["PrefixList"]  # fmt: skip
    sg = ec2.create_security_group(GroupName="agents", Description="agents", VpcId=vpc)["GroupId"]
    (default,) = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    for group in (sg, default["GroupId"]):  # every group of the VPC is read: close egress
        ec2.revoke_security_group_egress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
    ec2.authorize_security_group_egress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                        "PrefixListIds": [{"PrefixListId": pl["PrefixListId"]}]}],
    )  # fmt: skip
    store = tmp_path / "store"
    args = ["snapshot", "--source", "aws", "--region", "eu-west-1", "--vpc-id", vpc, "-o", store]
    first = _cli(*args)
    assert first.exit_code == 0, first.stderr
    old = Path(first.stdout.strip())
    snap = load_snapshot(old)
    assert snap.source == "aws" and snap.region == "eu-west-1"
    assert [p.name for p in snap.parts] == ["security-groups.json", "prefix-lists.json"]
    # Changes: an ingress rule (TCP 8443 from 203.0.113.0/28), a prefix-list entry added.
    ec2.authorize_security_group_ingress(
        GroupId=sg,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443,
                        "IpRanges": [{"CidrIp": "203.0.113.0/28", "Description": "hooks"}]}],
    )  # fmt: skip
    ec2.modify_managed_prefix_list(
        PrefixListId=pl["PrefixListId"], CurrentVersion=pl["Version"],
        PrefixListName="vendor-api", AddEntries=[{"Cidr": "198.51.100.128/26"}],
    )  # fmt: skip
    second = _cli(*args)
    assert second.exit_code == 0, second.stderr
    code, doc = _diff_json(old, Path(second.stdout.strip()), tmp_path)
    assert code == 1
    (sets,) = doc["structural"]["sets"]
    assert sets["kind"] == "members" and sets["added"] == ["198.51.100.128/26"]
    (pair,) = doc["structural"]["rulesets"]
    assert [(r["kind"], r["chain"]) for r in pair["rules"]] == [("added", "ingress")]
    (affected,) = pair["set_affected_rules"]
    assert f"egress tcp 443 to {pl['PrefixListId']}" in affected["new"]["text"]
    hooks = {(h["family"], h["hook"]): h for h in doc["semantic"]["hooks"]}
    assert set(hooks) == {(4, "input"), (4, "output")}
    (inflow,) = hooks[(4, "input")]["permitted"]
    assert "src 203.0.113.0/28" in inflow["space"] and "dport 8443" in inflow["space"]
    (outflow,) = hooks[(4, "output")]["permitted"]
    assert "dst 198.51.100.128/26" in outflow["space"] and "dport 443" in outflow["space"]
    assert hooks[(4, "input")]["denied"] == [] and hooks[(4, "output")]["denied"] == []


def test_iptables_replaced_by_nftables_is_compared_by_family(tmp_path: Path) -> None:
    # The same IPv4 policy (OUTPUT drops all but TCP 443 to 198.51.100.0/25) moved from
    # iptables to an nftables inet table: IPv4 unchanged at every hook. The old snapshot had no
    # IPv6 rules (everything accepted); the inet table's output policy drop now denies every
    # IPv6 packet leaving, and nothing else.
    v4 = (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n"
        "-A OUTPUT -d 198.51.100.0/25 -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n"
    )
    old = _write(tmp_path / "old.v4", v4)
    new = _write(tmp_path / "new.json", json.dumps(NFT_OLD))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 1
    unchanged = doc["semantic"]["unchanged"]
    for hook in ("input", "output", "forward"):
        assert f"iptables -> nftables IPv4 {hook}" in unchanged
    (hook,) = doc["semantic"]["hooks"]
    assert (hook["family"], hook["hook"]) == (6, "output") and hook["permitted"] == []
    (flow,) = hook["denied"]
    assert flow["space"] == "ipv6"
    assert Packet.parse(flow["example"]).family == 6


NFT_SET: dict[str, Any] = {
    "nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"family": "inet", "name": "fw", "handle": 1}},
        {"set": {"family": "inet", "table": "fw", "name": "vendor", "handle": 2,
                 "type": "ipv4_addr", "flags": ["interval"],
                 "elem": [{"prefix": {"addr": "198.51.100.0", "len": 25}}]}},
        {"chain": {"family": "inet", "table": "fw", "name": "output", "handle": 3,
                   "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "fw", "chain": "output", "handle": 4, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": "@vendor"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": 443}},
            {"accept": None}]}},
    ]
}  # fmt: skip


def test_nft_set_member_added(tmp_path: Path) -> None:
    new_doc = json.loads(json.dumps(NFT_SET))
    new_doc["nftables"][2]["set"]["elem"].append({"prefix": {"addr": "203.0.113.64", "len": 28}})
    old = _write(tmp_path / "old.json", json.dumps(NFT_SET))
    new = _write(tmp_path / "new.json", json.dumps(new_doc))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 1
    (change,) = doc["structural"]["sets"]
    assert change["kind"] == "members" and change["old_title"] == "inet fw vendor"
    assert change["added"] == ['{"prefix": {"addr": "203.0.113.64", "len": 28}}']
    (pair,) = doc["structural"]["rulesets"]
    assert pair["rules"] == [] and len(pair["set_affected_rules"]) == 1
    (hook,) = doc["semantic"]["hooks"]
    (flow,) = hook["permitted"]
    assert flow["space"] == "ipv4 tcp dst 203.0.113.64/28 dport 443"
    assert flow["example"] == "tcp 192.0.2.10:40000 -> 203.0.113.69:443 (NEW)"


def test_empty_nft_ruleset_has_no_phantom_table(tmp_path: Path) -> None:
    """``nft -j list ruleset`` on a host without rules is only a metainfo object: it names no
    table, so nothing is 'changed where netguard does not analyse' (regression: a phantom
    'nft table None None added' made the verdict 'not proven')."""
    empty = '{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}'
    old = _write(tmp_path / "old.json", empty)
    new = _write(tmp_path / "new.json", empty.replace("1.0.6", "1.0.9"))
    code, doc = _diff_json(old, new, tmp_path)
    assert code == 0
    assert "None" not in json.dumps(doc)


def test_review_reports_allowlist_drift_at_both_ends(generated: Path, tmp_path: Path) -> None:
    """The vendor's 198.51.100.0/25 widened to a /24 in NEW: drift against the profile is
    EXTRA egress IPv4 198.51.100.192/26 (the /24 less the vendor's .0/25 and .128/26) at the
    new end only, so it appeared; the old end has no drift."""
    v4 = (generated / "rules.v4").read_text()
    assert "198.51.100.0/25" in v4
    old = _store_of(tmp_path, generated, "old")
    new = _store_of(tmp_path, generated, "new", v4.replace("198.51.100.0/25", "198.51.100.0/24"))
    out = tmp_path / "review.json"
    result = _cli(
        "review", EXAMPLE, "--since", old, "--until", new, "--format", "json", "-o", out,
        "--as-of", "2026-06-01",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(out.read_text())
    d = doc["drift"]
    assert d["old"]["error"] is None and d["old"]["drift"] is False
    assert d["new"]["drift"] is True
    extra = {(r["direction"], r["family"], p) for r in d["new"]["rows"] for p in r["extra"]}
    assert extra == {("egress", 4, "198.51.100.192/26")}
    assert d["appeared"] == [
        {"kind": "EXTRA", "direction": "egress", "family": 4, "prefix": "198.51.100.192/26"}
    ]
    assert d["went_away"] == []
    assert doc["summary"]["drift"] is True and doc["summary"]["drift_appeared"] == 1
    for fmt, needle in (("text", "ALLOWLIST DRIFT"), ("markdown", "## Allowlist drift")):
        text = _cli("review", EXAMPLE, "--since", old, "--until", new, "--format", fmt,
                    "--as-of", "2026-06-01").stdout  # fmt: skip
        assert needle in text and "198.51.100.192/26" in text
