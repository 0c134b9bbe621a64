"""``netguard drift`` / ``aggregate`` on hostile or unusual input, and ``--fix`` corner cases.

Regression tests for bugs found by testing the commands as a new user would. Every expected
value is reasoned by hand from the input written in the test (the arithmetic is in the
comments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netguard.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"
FEEDS = Path(__file__).parent / "data" / "feeds"


def run(*args: object, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def write(tmp: Path, name: str, data: str | bytes) -> Path:
    path = tmp / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def clean_exit_2(result: Result) -> None:
    """Exit 2 through the error path: no traceback, no internal error."""
    assert result.exit_code == 2, result.output + result.stderr
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output + result.stderr
    assert "internal error" not in result.stderr


# --- list parsing ---


@pytest.mark.parametrize("entry", ["fe80::1%eth0", "fe80::%eth0/64", "2001:db8::1%1"])
def test_zone_id_is_refused_not_dropped(tmp_path: Path, entry: str) -> None:
    # A zone names a link on one host; reading fe80::1%eth0 as fe80::1 would compare
    # another address than the one written.
    f = write(tmp_path, "z.txt", f"2001:db8::/32\n{entry}\n")
    for args in (("aggregate", f), ("drift", "--desired", f, "--actual", f)):
        res = run(*args)
        clean_exit_2(res)
        assert f"{f}:2:1:" in res.stderr
        assert "zone id" in res.stderr


def test_huge_bad_line_gives_a_short_message(tmp_path: Path) -> None:
    f = write(tmp_path, "h.txt", "1" * 200_000 + "\n")
    res = run("aggregate", f)
    clean_exit_2(res)
    assert f"{f}:1:1:" in res.stderr
    assert len(res.stderr) < 1000


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    f = write(tmp_path, "bom.txt", b"\xef\xbb\xbf198.51.100.0/25\n198.51.100.128/25\n")
    res = run("aggregate", f)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "198.51.100.0/24\n"


def test_missing_file_says_so(tmp_path: Path) -> None:
    res = run("aggregate", tmp_path / "nope.txt")
    clean_exit_2(res)
    assert "no such file" in res.stderr
    res = run("aggregate", tmp_path)  # a directory
    clean_exit_2(res)
    assert "not a regular file" in res.stderr


def test_stdin_twice_is_refused(tmp_path: Path) -> None:
    # The second read of standard input is empty: everything would be reported MISSING.
    res = run("drift", "--desired", "-", "--actual", "-", stdin="198.51.100.0/24\n")
    clean_exit_2(res)
    assert "standard input" in res.stderr


# --- nothing compared ---


def test_nothing_compared_is_not_no_drift(tmp_path: Path) -> None:
    # An allowlist JSON with no list: no direction or family can be compared; "no drift"
    # with exit 0 would hide everything.
    empty = write(tmp_path, "al.json", '{"format": "netguard-allowlist", "lists": {}}')
    res = run("drift", EXAMPLE, "--actual", empty)
    clean_exit_2(res)
    assert "nothing to compare" in res.stderr


def test_allowlist_with_a_string_for_a_list_is_refused(tmp_path: Path) -> None:
    doc = {"format": "netguard-allowlist", "lists": {"egress-destinations": {"ipv4": "x"}}}
    bad = write(tmp_path, "al.json", json.dumps(doc))
    res = run("drift", EXAMPLE, "--actual", bad)
    clean_exit_2(res)
    assert '"egress-destinations"."ipv4"' in res.stderr
    assert res.stderr.count("error:") == 1


# --- --fix on sources without rules ---


@pytest.mark.parametrize("target", ["iptables", "aws-api"])
def test_fix_on_lists_is_exit_2_not_a_crash(tmp_path: Path, target: str) -> None:
    want = write(tmp_path, "w.txt", "198.51.100.0/24\n")
    have = write(tmp_path, "h.txt", "198.51.100.0/25\n")
    clean_exit_2(run("drift", "--desired", want, "--actual", have, "--fix", target))
    doc = {
        "format": "netguard-allowlist",
        "lists": {"egress-destinations": {"ipv4": ["198.51.100.0/25"], "ipv6": []}},
    }
    allowlist = write(tmp_path, "al.json", json.dumps(doc))
    res = run("drift", EXAMPLE, "--actual", allowlist, "--direction", "egress", "--fix", target)
    clean_exit_2(res)
    assert f"--fix {target}" in res.stderr


def test_fix_ipset_picks_the_set_of_the_flow(tmp_path: Path) -> None:
    # ng_dns is matched only by the port-53 rule: not the 443 list, so no --set is needed.
    sets = write(
        tmp_path,
        "s.ipset",
        "create ng_api hash:net family inet hashsize 1024 maxelem 65536\n"
        "add ng_api 198.51.100.0/24\n"
        "add ng_api 203.0.113.7\n"
        "create ng_dns hash:ip family inet hashsize 1024 maxelem 65536\n"
        "add ng_dns 192.0.2.53\n",
    )
    rules = write(
        tmp_path,
        "r.v4",
        "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n"
        ":FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n"
        "-A OUTPUT -m set --match-set ng_dns dst -p tcp -m tcp --dport 53 -j ACCEPT\n"
        "-A OUTPUT -m set --match-set ng_api dst -p tcp -m tcp --dport 443 -j ACCEPT\n"
        "COMMIT\n",
    )
    args = ("drift", EXAMPLE, "--actual", rules, "--actual", sets, "--direction", "egress")
    res = run(*args, "--fix", "ipset")
    assert res.exit_code == 1, res.stderr
    # Desired .0/25 + .128/26 (.0 - .191); the /24 is partly EXTRA (.192/26): replaced by
    # its desired part; 203.0.113.7 is EXTRA. Additions first.
    assert [x for x in res.stdout.splitlines() if not x.startswith("#")] == [
        "add ng_api 198.51.100.0/25",
        "add ng_api 198.51.100.128/26",
        "del ng_api 198.51.100.0/24",
        "del ng_api 203.0.113.7",
    ]


# --- feed state ---


def _google(tmp: Path, name: str, when: str) -> Path:
    doc = json.loads((FEEDS / "google-cloud.json").read_text())
    doc["creationTime"] = when
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_feed_dates_compare_as_instants(tmp_path: Path) -> None:
    # 11:01:54.5 is half a second after 11:01:54: newer, not stale (as text, ".5Z" sorts
    # before "Z").
    state = tmp_path / "state.json"
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    args = ["--actual", actual, "--direction", "egress", "--feed-state", state]
    first = _google(tmp_path, "1/cloud.json", "2023-11-14T11:01:54")
    newer = _google(tmp_path, "2/cloud.json", "2023-11-14T11:01:54.500000")
    assert run("drift", EXAMPLE, "--feed", first, *args).exit_code in (0, 1)
    res = run("drift", EXAMPLE, "--feed", newer, *args)
    assert res.exit_code in (0, 1), res.stderr
    res = run("drift", EXAMPLE, "--feed", first, *args)
    clean_exit_2(res)
    assert "stale feed" in res.stderr


def test_older_feed_under_another_file_name_is_stale(tmp_path: Path) -> None:
    # A dated download name must not hide that the AWS feed went back in time.
    state = tmp_path / "state.json"
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    args = ["--actual", actual, "--direction", "egress", "--feed-state", state]
    new = FEEDS / "aws-ip-ranges.json"
    doc = json.loads(new.read_text())
    doc["syncToken"] = "1600000000"
    doc["createDate"] = "2020-09-13-12-26-40"
    old = write(tmp_path, "ip-ranges-2020-09-13.json", json.dumps(doc))
    assert run("drift", EXAMPLE, "--feed", new, *args).exit_code in (0, 1)
    res = run("drift", EXAMPLE, "--feed", old, *args)
    clean_exit_2(res)
    assert "stale feed" in res.stderr


def test_fix_aws_does_not_split_a_missing_range_around_a_kept_entry(tmp_path: Path) -> None:
    # Egress on 443: a /32 inside the desired .0/25 is kept; the /24 on ports 400-500 is
    # partly EXTRA (.192/26) and goes. Left uncovered: .0 - .191 except .5, seven pieces
    # around .5 plus .128/26; a security group holds overlapping entries, so the two desired
    # prefixes .0/25 and .128/26 are added instead (two rules, not eight).
    group = {
        "GroupId": "sg-0123456789abcdef0",
        "GroupName": "ng",
        "VpcId": "vpc-1",
        "OwnerId": "123456789012",
        "Description": "x",
        "IpPermissions": [],
        "IpPermissionsEgress": [
            {
                "IpProtocol": "tcp",
                "FromPort": 400,
                "ToPort": 500,
                "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "198.51.100.5/32"}],
            },
        ],
    }
    sg = write(tmp_path, "sg.json", json.dumps({"SecurityGroups": [group]}))
    res = run("drift", EXAMPLE, "--actual", sg, "--direction", "egress", "--fix", "aws-api")
    assert res.exit_code == 1, res.stderr
    requests = json.loads(res.stdout)["requests"]
    assert [r["action"] for r in requests] == [
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupEgress",
    ]
    added = [
        r.get("CidrIp") or r.get("CidrIpv6")
        for p in requests[0]["parameters"]["IpPermissions"]
        for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])
    ]
    # IPv6: the group has no IPv6 entry, so the profile's 2001:db8:100::/48 is MISSING.
    assert added == ["198.51.100.0/25", "198.51.100.128/26", "2001:db8:100::/48"]
    revoked = requests[1]["parameters"]["IpPermissions"]
    assert revoked == [
        {"IpProtocol": "tcp", "FromPort": 400, "ToPort": 500,
         "IpRanges": [{"CidrIp": "198.51.100.0/24"}]},
    ]  # fmt: skip


def test_host_bits_in_ipset_and_security_groups_are_findings(tmp_path: Path) -> None:
    # 198.51.100.1/25 is stored as 198.51.100.0/25: the sets are equal (no drift), but the
    # entry is reported with its place and the exit code is 1, as for a plain list.
    want = write(tmp_path, "w.txt", "198.51.100.0/25\n198.51.100.128/26\n")
    sets = write(
        tmp_path,
        "s.ipset",
        "create api hash:net family inet\nadd api 198.51.100.1/25\nadd api 198.51.100.128/26\n",
    )
    res = run("drift", "--desired", want, "--actual", sets, "--format", "json")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["drift"] is False
    assert [(f["kind"], f["where"], f["read_as"]) for f in doc["findings"]] == [
        ("host-bits", f"{sets}:2", "198.51.100.0/25")
    ]
    perm = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
    group = {
        "GroupId": "sg-0123456789abcdef0",
        "GroupName": "ng",
        "VpcId": "vpc-1",
        "OwnerId": "123456789012",
        "Description": "x",
        "IpPermissions": [],
        "IpPermissionsEgress": [
            {**perm, "IpRanges": [{"CidrIp": "198.51.100.128/26"}, {"CidrIp": "198.51.100.1/25"}]},
            {**perm, "Ipv6Ranges": [{"CidrIpv6": "2001:db8:100::/48"}]},
        ],
    }
    sg = write(tmp_path, "sg.json", json.dumps({"SecurityGroups": [group]}))
    res = run("drift", EXAMPLE, "--actual", sg, "--direction", "egress", "--format", "json")
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["drift"] is False
    (finding,) = doc["findings"]
    assert finding["entry"] == "198.51.100.1/25"
    assert finding["read_as"] == "198.51.100.0/25"
    assert finding["where"].endswith("IpPermissionsEgress[0].IpRanges[1].CidrIp")


def test_feed_without_ipv6_makes_allowed_ipv6_extra(tmp_path: Path) -> None:
    # The feed lists IPv4 ranges only: the vendor has no IPv6 range, so the IPv6 list the
    # rules still allow (2001:db8:100::/48 on 443) is EXTRA, not "not compared".
    feed = write(tmp_path, "feed.txt", "198.51.100.0/25\n198.51.100.128/26\n")
    v6 = write(
        tmp_path,
        "rules.v6",
        "# Generated by ip6tables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n"
        ":FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n"
        "-A OUTPUT -d 2001:db8:100::/48 -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n",
    )
    res = run(
        "drift", EXAMPLE, "--feed", feed, "--actual", v6, "--direction", "egress",
        "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 1, res.stderr
    (c,) = json.loads(res.stdout)["comparisons"]
    assert (c["direction"], c["family"]) == ("egress", 6)
    assert c["extra"]["prefixes"] == ["2001:db8:100::/48"]
    assert c["extra"]["addresses"] == 2**80  # a /48: 128 - 48 = 80 host bits
    assert c["desired"]["addresses"] == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.txt", "# nothing\n", "holds no prefix"),
        ("empty.json", "[]", "holds no prefix"),
        (
            "aws.json",
            '{"syncToken": "1", "createDate": "2023-01-01-00-00-00", "prefixes": []}',
            "holds no prefix",
        ),
        (
            "aws-shape.json",
            '{"syncToken": "1", "createDate": "2023-01-01-00-00-00", "prefixes": {"a": 1}}',
            "prefixes: expected a list of objects",
        ),
        (
            "cf.json",
            '{"result": {"ipv4_cidrs": "198.51.100.0/24"}}',
            "result.ipv4_cidrs: expected a list of strings",
        ),
    ],
)
def test_empty_or_misshapen_feed_is_refused(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    # Before: an empty feed compared nothing and said "no drift" (exit 0); a string where a
    # list belongs was read character by character.
    feed = write(tmp_path, name, text)
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    res = run("drift", EXAMPLE, "--feed", feed, "--actual", actual, "--direction", "egress")
    clean_exit_2(res)
    assert message in res.stderr
    assert res.stderr.count("error:") == 1


def test_feed_is_used_for_a_netguard_allowlist_too(tmp_path: Path) -> None:
    # Before: with a netguard allowlist as the actual side, the feed was ignored and the
    # profile's own vendor ranges compared (no drift, exit 0).
    out = tmp_path / "out"
    assert run("generate", EXAMPLE, "-o", out, "-t", "allowlist").exit_code == 0
    allowlist = out / "allowlist" / "allowlists.json"
    feed = write(tmp_path, "feed.txt", "192.0.2.0/24\n198.51.100.0/23\n")
    res = run(
        "drift", EXAMPLE, "--feed", feed, "--actual", allowlist, "--direction", "egress",
        "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    v4 = next(c for c in doc["comparisons"] if c["family"] == 4)
    v6 = next(c for c in doc["comparisons"] if c["family"] == 6)
    # Desired IPv4: the feed (192.0.2.0/24, 198.51.100.0/23) plus the resolver 192.0.2.53 and
    # the NTP exception 192.0.2.123 (inside the feed's /24). The allowlist has .53, .123,
    # 198.51.100.0/25 and .128/26: missing are 192.0.2.0/24 less two addresses (254),
    # 198.51.100.192/26 (64) and 198.51.101.0/24 (256).
    assert v4["missing"]["addresses"] == 254 + 64 + 256
    assert "198.51.101.0/24" in v4["missing"]["prefixes"]
    assert v4["extra"]["prefixes"] == []
    # IPv6: the feed has none, so the allowlist's vendor 2001:db8:100::/48 is EXTRA (the
    # resolver 2001:db8:10::53 stays desired).
    assert v6["extra"]["prefixes"] == ["2001:db8:100::/48"]
    assert v6["missing"]["prefixes"] == []


def test_service_filter_on_a_feed_without_services_is_refused(tmp_path: Path) -> None:
    # Cloudflare's list has no service field: ignoring --service would compare with all of it.
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    res = run(
        "drift", EXAMPLE, "--feed", FEEDS / "cloudflare.json", "--service", "EC2",
        "--actual", actual, "--direction", "egress",
    )  # fmt: skip
    clean_exit_2(res)
    assert "--service/--region" in res.stderr


def test_binary_input_is_one_error(tmp_path: Path) -> None:
    # Not one "not UTF-8" error per line of a 1 MiB binary: one error naming the file.
    data = bytes(range(256)) * 4096
    f = write(tmp_path, "blob.bin", data)
    res = run("aggregate", f)
    clean_exit_2(res)
    assert res.stderr.count("error:") == 1
    assert "binary data" in res.stderr
    # Without NUL bytes, at most 100 bad lines are listed.
    g = write(tmp_path, "latin1.txt", b"\xff\xfe\n" * 1000)
    res = run("aggregate", g)
    clean_exit_2(res)
    assert res.stderr.count("error:") <= 100


@pytest.mark.parametrize("command", ["aggregate", "drift"])
def test_full_disk_on_stdout_is_exit_3_with_a_message(tmp_path: Path, command: str) -> None:
    # /dev/full fails every write with ENOSPC (null(4)): "could not run", not a crash.
    f = write(tmp_path, "l.txt", "".join(f"198.51.{i}.0/24\n" for i in range(0, 256, 2)))
    args = [command, str(f)]
    if command == "drift":
        args = [command, "--desired", str(f), "--actual", str(f)]
    with Path("/dev/full").open("w") as full:
        proc = subprocess.run(
            [sys.executable, "-c", "from netguard.cli import main; main()", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 3, proc.stderr
    assert "No space left on device" in proc.stderr
    assert "internal error" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_fix_aws_refuses_extra_from_a_prefix_list(tmp_path: Path) -> None:
    # 203.0.113.0/24 is allowed through a prefix-list reference, not a CIDR entry: a change
    # of CIDR entries cannot remove it. Before: an empty list of requests (exit 1), which
    # looked like a complete fix.
    perm: dict[str, object] = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
    group = {
        "GroupId": "sg-0123456789abcdef0",
        "GroupName": "ng",
        "VpcId": "vpc-1",
        "OwnerId": "123456789012",
        "Description": "x",
        "IpPermissions": [],
        "IpPermissionsEgress": [
            {
                **perm,
                "IpRanges": [{"CidrIp": "198.51.100.0/25"}, {"CidrIp": "198.51.100.128/26"}],
                "Ipv6Ranges": [{"CidrIpv6": "2001:db8:100::/48"}],
                "PrefixListIds": [{"PrefixListId": "pl-0aaaaaaaaaaaaaaa1"}],
            }
        ],
    }
    lists = {
        "PrefixLists": [
            {
                "PrefixListId": "pl-0aaaaaaaaaaaaaaa1",
                "AddressFamily": "IPv4",
                "State": "create-complete",
                "PrefixListName": "partners",
                "MaxEntries": 5,
                "Version": 1,
                "OwnerId": "123456789012",
                "Entries": [{"Cidr": "203.0.113.0/24", "Description": "x"}],
            }
        ]
    }
    sg = write(tmp_path, "sg.json", json.dumps({"SecurityGroups": [group]}))
    pl = write(tmp_path, "pl.json", json.dumps(lists))
    args = ("drift", EXAMPLE, "--actual", sg, "--actual", pl, "--direction", "egress")
    res = run(*args, "--format", "json")
    assert res.exit_code == 1, res.stderr
    v4 = next(c for c in json.loads(res.stdout)["comparisons"] if c["family"] == 4)
    assert v4["extra"]["prefixes"] == ["203.0.113.0/24"]
    res = run(*args, "--fix", "aws-api")
    clean_exit_2(res)
    assert "203.0.113.0/24" in res.stderr
    assert "pl-0aaaaaaaaaaaaaaa1" in res.stderr


def test_fix_iptables_refuses_extra_from_a_chain_policy(tmp_path: Path) -> None:
    # OUTPUT's policy ACCEPT allows every destination but 192.0.2.1: no rule to delete.
    # Before: a change with no command at all (exit 1), which looked complete.
    rules = write(
        tmp_path,
        "r.v4",
        "# Generated by iptables-save v1.8.9\n*filter\n:INPUT ACCEPT [0:0]\n"
        ":FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 192.0.2.1/32 -j DROP\nCOMMIT\n",
    )
    res = run("drift", EXAMPLE, "--actual", rules, "--direction", "egress", "--fix", "iptables")
    clean_exit_2(res)
    assert "chain OUTPUT policy ACCEPT" in res.stderr


def _fifo(tmp: Path, name: str, data: str) -> tuple[Path, threading.Thread]:
    """A named pipe (mkfifo(3)) that a thread fills with ``data`` once it is opened."""
    path = tmp / name
    os.mkfifo(path)

    def feed() -> None:
        with path.open("w") as fh:
            fh.write(data)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return path, thread


def test_lists_from_a_pipe_and_configurations_refused(tmp_path: Path) -> None:
    # `--actual <(...)` is a pipe: a list is read from it once; before, every pipe was refused
    # as "not a regular file".
    pipe, thread = _fifo(tmp_path, "list", "198.51.100.0/25\n198.51.100.128/25\n")
    res = run("aggregate", pipe)
    thread.join(timeout=10)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "198.51.100.0/24\n"
    # An iptables-save configuration is opened again by its reader: refused with a reason.
    rules = "# Generated by iptables-save v1.8.9\n*filter\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    pipe2, thread2 = _fifo(tmp_path, "rules", rules)
    res = run("drift", EXAMPLE, "--actual", pipe2)
    thread2.join(timeout=10)
    clean_exit_2(res)
    assert "must be a regular file" in res.stderr


def test_feed_state_says_when_it_cannot_order_a_feed(tmp_path: Path) -> None:
    # Cloudflare's response has an etag and no date: no order, so no staleness check.
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    res = run(
        "drift", EXAMPLE, "--feed", FEEDS / "cloudflare.json", "--feed-state",
        tmp_path / "state.json", "--actual", actual, "--direction", "egress", "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 1, res.stderr
    notes = json.loads(res.stdout)["notes"]
    assert any("cannot tell whether it is older" in n for n in notes)


@pytest.mark.parametrize("role", ["actual", "desired", "feed"])
def test_deeply_nested_json_is_invalid_input(tmp_path: Path, role: str) -> None:
    """JSON nested deeper than Python's parser follows, as any source or feed, is invalid
    input naming the file (exit 2), not an internal error."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    plain = tmp_path / "plain.txt"
    plain.write_text("198.51.100.0/25\n")
    args: list[object] = {
        "actual": ["drift", "--desired", plain, "--actual", deep],
        "desired": ["drift", "--desired", deep, "--actual", plain],
        "feed": ["drift", EXAMPLE, "--actual", plain, "--feed", deep],
    }[role]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert f"{deep}:1:1: invalid JSON: nested too deeply" in result.output


def test_older_sync_token_with_the_same_date_is_stale(tmp_path: Path) -> None:
    # AWS's syncToken counts seconds: a copy whose token went back is older even when its
    # createDate was left as it was (regression: it was used, and the state went backwards).
    state = tmp_path / "state.json"
    actual = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    args = ["--actual", actual, "--direction", "egress", "--feed-state", state]
    new = FEEDS / "aws-ip-ranges.json"
    doc = json.loads(new.read_text())
    doc["syncToken"] = str(int(doc["syncToken"]) - 1)
    old = write(tmp_path, "ip-ranges.json", json.dumps(doc))
    assert run("drift", EXAMPLE, "--feed", new, *args).exit_code in (0, 1)
    recorded = state.read_text()
    res = run("drift", EXAMPLE, "--feed", old, *args)
    clean_exit_2(res)
    assert "stale feed" in res.stderr
    assert state.read_text() == recorded


def test_snapshot_as_actual_source(tmp_path: Path) -> None:
    """A netguard snapshot (file or store) stands for the configurations it recorded: the
    generated public-https rules show no drift; with the vendor's /25 widened to a /24 the
    EXTRA range is the /24 less the vendor's .0/25 and .128/26, i.e. 198.51.100.192/26,
    attributed to the snapshot's part and line (ipaddress: /24 minus those is .192/26)."""
    gen = tmp_path / "gen"
    assert run("generate", EXAMPLE, "-o", gen, "-t", "iptables").exit_code == 0
    v4, v6, sets = (gen / "iptables" / n for n in ("rules.v4", "rules.v6", "ipset.restore"))
    store = tmp_path / "store"
    assert (
        run("snapshot", "--source", v4, "--source", v6, "--source", sets, "-o", store).exit_code
        == 0
    )
    res = run("drift", EXAMPLE, "--actual", store)
    assert res.exit_code == 0, res.output
    wide = write(tmp_path, "wide.v4", v4.read_text().replace("198.51.100.0/25", "198.51.100.0/24"))
    store2 = tmp_path / "store2"
    assert (
        run("snapshot", "--source", wide, "--source", v6, "--source", sets, "-o", store2).exit_code
        == 0
    )
    (snap,) = store2.iterdir()
    res = run("drift", EXAMPLE, "--actual", snap, "--format", "json")
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert "netguard-drift-" not in res.stdout  # no temporary path leaks into the report
    text = run("drift", EXAMPLE, "--actual", snap).stdout
    assert "198.51.100.192/26" in text
    line = 1 + wide.read_text().splitlines().index(
        next(ln for ln in wide.read_text().splitlines() if "198.51.100.0/24" in ln)
    )
    assert f"{snap} part wide.v4:{line}]" in text
    assert doc["drift"] is True


def test_damaged_snapshot_as_source_is_invalid_input(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    assert run("generate", EXAMPLE, "-o", gen, "-t", "iptables").exit_code == 0
    store = tmp_path / "store"
    v4 = gen / "iptables" / "rules.v4"
    assert run("snapshot", "--source", v4, "-o", store).exit_code == 0
    (snap,) = store.iterdir()
    damaged = write(tmp_path, "damaged.json", snap.read_text().replace("ng-egress", "ng-egresz", 1))
    res = run("drift", EXAMPLE, "--actual", damaged)
    assert res.exit_code == 2
    assert str(damaged) in res.stderr
