"""``netguard drift``: hand-checked cases, feeds, rule sets through the packet-space engine.

Every expected value below is reasoned by hand from the inputs written in the test (the
arithmetic is in the comments) or computed with ``ipaddress`` as an independent oracle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netguard.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"
FEEDS = Path(__file__).parent / "data" / "feeds"


def run(*args: object, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def drift_json(*args: object) -> tuple[int, dict[str, Any]]:
    result = run("drift", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output + result.stderr
    return result.exit_code, json.loads(result.stdout)


def comparison(doc: dict[str, Any], direction: str, family: int) -> dict[str, Any]:
    (found,) = [
        c for c in doc["comparisons"] if c["direction"] == direction and c["family"] == family
    ]
    return found


# --- plain lists --------------------------------------------------------------------------------


def test_equal_sets_written_differently_are_not_drift(tmp_path: Path) -> None:
    # A /23 equals its two /24 halves; duplicates and a nested /25 add nothing.
    a = write(tmp_path, "a.txt", "198.51.100.0/23\n")
    b = write(
        tmp_path,
        "b.txt",
        "# two halves, one repeated\n198.51.101.0/24\n198.51.100.0/24\n198.51.100.0/24\n"
        "198.51.100.128/25\n",
    )
    code, doc = drift_json("--desired", a, "--actual", b)
    assert code == 0
    c = comparison(doc, "addresses", 4)
    assert c["drift"] is False
    assert c["desired"]["addresses"] == 512
    assert doc["format"] == "netguard-drift"
    assert doc["version"] == 1


def test_narrowed_range_is_missing(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    b = write(tmp_path, "b.txt", "198.51.100.0/25\n")
    code, doc = drift_json("--desired", a, "--actual", b)
    assert code == 1
    c = comparison(doc, "addresses", 4)
    assert c["missing"]["prefixes"] == ["198.51.100.128/25"]
    assert c["missing"]["addresses"] == 128
    assert c["extra"]["prefixes"] == []


def test_widened_range_is_extra_with_its_line(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    b = write(tmp_path, "b.txt", "# actual\n203.0.113.7\n198.51.100.0/23\n")
    code, doc = drift_json("--desired", a, "--actual", b)
    assert code == 1
    c = comparison(doc, "addresses", 4)
    # 198.51.100.0/23 minus 198.51.100.0/24 = 198.51.101.0/24; plus the bare address as /32.
    assert c["extra"]["prefixes"] == ["198.51.101.0/24", "203.0.113.7/32"]
    assert c["extra"]["addresses"] == 257
    by = c["extra"]["allowed_by"]
    assert by["198.51.101.0/24"] == [{"what": "198.51.100.0/23", "where": f"{b}:3"}]
    assert by["203.0.113.7/32"] == [{"what": "203.0.113.7", "where": f"{b}:2"}]


def test_text_lists_extra_before_missing(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    b = write(tmp_path, "b.txt", "198.51.100.0/25\n203.0.113.0/24\n")
    result = run("drift", "--desired", a, "--actual", b)
    assert result.exit_code == 1
    out = result.stdout
    assert out.index("EXTRA") < out.index("MISSING")
    assert "203.0.113.0/24" in out
    assert "198.51.100.128/25" in out
    assert "256 addresses" in out  # the EXTRA /24
    assert "128 addresses" in out  # the MISSING /25


def test_host_bits_are_a_finding_with_file_and_line(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    b = write(tmp_path, "b.txt", "\n198.51.100.77/24\n")
    code, doc = drift_json("--desired", a, "--actual", b)
    # The sets are equal once the entry is read as its network, but the entry is reported.
    assert comparison(doc, "addresses", 4)["drift"] is False
    assert code == 1
    (finding,) = doc["findings"]
    assert finding["kind"] == "host-bits"
    assert finding["where"] == f"{b}:2"
    assert finding["read_as"] == "198.51.100.0/24"


def test_ipv4_and_ipv6_mixed(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "2001:db8::/32\n192.0.2.0/24\n")
    b = write(tmp_path, "b.txt", "2001:db8::/33\n192.0.2.0/24\n2001:db8:8000::/33\n2001:db9::1\n")
    code, doc = drift_json("--desired", a, "--actual", b)
    assert code == 1
    assert comparison(doc, "addresses", 4)["drift"] is False
    c6 = comparison(doc, "addresses", 6)
    assert c6["extra"]["prefixes"] == ["2001:db9::1/128"]
    assert c6["missing"]["prefixes"] == []


def test_ipv4_mapped_ipv6_is_ipv4(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "192.0.2.1\n")
    b = write(tmp_path, "b.txt", "::ffff:192.0.2.1\n")
    code, doc = drift_json("--desired", a, "--actual", b)
    assert code == 0
    assert comparison(doc, "addresses", 4)["drift"] is False
    assert [f["kind"] for f in doc["findings"]] == ["ipv4-mapped"]


def test_stdin_and_json_list(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", '["198.51.100.0/25", "198.51.100.128/25"]')
    result = run("drift", "--desired", a, "--actual", "-", stdin="198.51.100.0/24\n")
    assert result.exit_code == 0, result.output + result.stderr


def test_bad_line_is_exit_2_with_file_line_column(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    b = write(tmp_path, "b.txt", "198.51.100.0/24\n  198.51.100.300\n")
    result = run("drift", "--desired", a, "--actual", b)
    assert result.exit_code == 2
    assert f"{b}:2:3:" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_missing_source_file_is_exit_2(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", "198.51.100.0/24\n")
    result = run("drift", "--desired", a, "--actual", tmp_path / "nope.txt")
    assert result.exit_code == 2
    assert "nope.txt" in result.stderr


# --- rule sets through the engine ----------------------------------------------------------------

RULES_V4 = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A OUTPUT -d 198.51.100.200/32 -j DROP
-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT
-A OUTPUT -d 203.0.113.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
-A OUTPUT -m set --match-set api dst -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -s 203.0.113.0/28 -d 192.0.2.20/32 -p tcp -m tcp --dport 8443 -j ACCEPT
COMMIT
"""
IPSET = """\
create api hash:net family inet hashsize 1024 maxelem 65536
add api 192.0.2.128/25
"""


def test_extra_hidden_inside_a_larger_permitted_range(tmp_path: Path) -> None:
    """The profile wants 198.51.100.0/25 and .128/26 on 443 (examples/public-https)."""
    v4 = write(tmp_path, "rules.v4", RULES_V4)
    sets = write(tmp_path, "ipset.save", IPSET)
    code, doc = drift_json(EXAMPLE, "--actual", v4, "--actual", sets)
    assert code == 1
    egress = comparison(doc, "egress", 4)
    assert egress["flow"] == "tcp/443"
    # Allowed on 443: 198.51.100.0/24 minus .200 (dropped first), plus the set's 192.0.2.128/25.
    # Desired: .0/25 + .128/26 = .0 - .191. EXTRA: .192 - .255 without .200, i.e.
    # .192/29 (192-199), .201/32, .202/31, .204/30, .208/28, .224/27; and 192.0.2.128/25.
    # 203.0.113.0/24 is allowed on port 22 only: not EXTRA for the 443 flow.
    assert egress["extra"]["prefixes"] == [
        "192.0.2.128/25",
        "198.51.100.192/29",
        "198.51.100.201/32",
        "198.51.100.202/31",
        "198.51.100.204/30",
        "198.51.100.208/28",
        "198.51.100.224/27",
    ]
    assert egress["extra"]["addresses"] == 128 + 63
    assert egress["missing"]["prefixes"] == []
    by = egress["extra"]["allowed_by"]
    rule8 = {
        "what": "-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --dport 443 -m conntrack "
        "--ctstate NEW -j ACCEPT",
        "where": f"{v4}:8",
    }
    assert by["198.51.100.224/27"] == [rule8]
    wheres = [x["where"] for x in by["192.0.2.128/25"]]
    assert wheres == [f"{v4}:10", f"{sets}:2"]  # the --match-set rule, then the set member
    ingress = comparison(doc, "ingress", 4)
    assert ingress["drift"] is False
    # No IPv6 rules were given: said, not assumed.
    assert any("IPv6" in n and "not compared" in n for n in doc["notes"])


@pytest.mark.parametrize("mode", ["vpn", "privatelink"])
def test_generated_configuration_of_other_modes_has_no_drift(tmp_path: Path, mode: str) -> None:
    example = ROOT / "examples" / mode / "deployment.yaml"
    out = tmp_path / "out"
    gen = run("generate", example, "-o", out, "-t", "iptables", "-t", "allowlist")
    assert gen.exit_code == 0, gen.stderr
    ipt = out / "iptables"
    code, doc = drift_json(
        example, "--actual", ipt / "rules.v4", "--actual", ipt / "rules.v6",
        "--actual", ipt / "ipset.restore",
    )  # fmt: skip
    assert code == 0
    assert doc["comparisons"]
    code, _ = drift_json(example, "--actual", out / "allowlist" / "allowlists.json")
    assert code == 0


def test_ipset_file_alone_is_the_list(tmp_path: Path) -> None:
    sets = write(tmp_path, "sets.save", IPSET + "create other hash:net family inet\n"
                 "add other 203.0.113.0/24\n")  # fmt: skip
    want = write(tmp_path, "want.txt", "192.0.2.128/26\n")
    code, doc = drift_json("--desired", want, "--actual", sets, "--set", "api")
    assert code == 1
    c = comparison(doc, "addresses", 4)
    assert c["extra"]["prefixes"] == ["192.0.2.192/26"]
    assert c["extra"]["allowed_by"]["192.0.2.192/26"] == [
        {"what": "add api 192.0.2.128/25", "where": f"{sets}:2"}
    ]


def test_generated_configuration_has_no_drift(tmp_path: Path) -> None:
    out = tmp_path / "out"
    gen = run("generate", EXAMPLE, "-o", out, "-t", "iptables", "-t", "nftables", "-t", "allowlist")
    assert gen.exit_code == 0, gen.stderr
    ipt = out / "iptables"
    code, _ = drift_json(
        EXAMPLE, "--actual", ipt / "rules.v4", "--actual", ipt / "rules.v6",
        "--actual", ipt / "ipset.restore",
    )  # fmt: skip
    assert code == 0
    # nft's own syntax is not read (nft -j list ruleset JSON is): one clear error.
    res = run("drift", EXAMPLE, "--actual", out / "nftables" / "netguard.nft")
    assert res.exit_code == 2
    assert res.stderr.count("error:") == 1
    assert "unrecognised source" in res.stderr
    code, doc = drift_json(EXAMPLE, "--actual", out / "allowlist" / "allowlists.json")
    assert code == 0
    assert {(c["direction"], c["family"]) for c in doc["comparisons"]} == {
        ("egress", 4),
        ("egress", 6),
        ("ingress", 4),
        ("ingress", 6),
    }


def test_security_group_entry_is_named(tmp_path: Path) -> None:
    sg = {
        "SecurityGroups": [
            {
                "GroupId": "sg-0123456789abcdef0",
                "GroupName": "vendor",
                "OwnerId": "123456789012",
                "VpcId": "vpc-0a1b2c3d4e5f60718",
                "IpPermissions": [],
                "IpPermissionsEgress": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "IpRanges": [{"CidrIp": "198.51.100.0/25"}, {"CidrIp": "203.0.113.0/24"}],
                        "Ipv6Ranges": [],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(sg, indent=1), encoding="utf-8")
    code, doc = drift_json(EXAMPLE, "--actual", path, "--direction", "egress")
    assert code == 1
    c = comparison(doc, "egress", 4)
    assert c["extra"]["prefixes"] == ["203.0.113.0/24"]
    assert c["missing"]["prefixes"] == ["198.51.100.128/26"]
    (by,) = c["extra"]["allowed_by"]["203.0.113.0/24"]
    # json.dumps(indent=1) puts the second IpRanges entry's "{" on line 15.
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "203.0.113.0/24" in t)
    assert by["where"] == f"{path}:{line - 1}"


# --- feeds ---------------------------------------------------------------------------------------


def test_aws_feed_filters_and_keeps_its_version(tmp_path: Path) -> None:
    feed = FEEDS / "aws-ip-ranges.json"
    actual = write(tmp_path, "a.txt", "198.51.100.0/25\n198.51.100.128/26\n2001:db8:100::/48\n")
    code, doc = drift_json(
        EXAMPLE, "--feed", feed, "--service", "EC2", "--region", "eu-west-1",
        "--actual", actual, "--direction", "egress",
    )  # fmt: skip
    # The feed's EC2 eu-west-1 ranges: 198.51.100.0/25 and 2001:db8:100::/48 (the /26 is
    # us-east-1): the /26 of the actual list is EXTRA, so the range "removed from the feed".
    assert code == 1
    assert comparison(doc, "egress", 4)["extra"]["prefixes"] == ["198.51.100.128/26"]
    assert comparison(doc, "egress", 6)["drift"] is False
    (feedv,) = doc["desired"]["feeds"]
    assert feedv["kind"] == "aws"
    assert feedv["token"] == "1700000000"  # noqa: S105 (the syncToken, not a secret)
    assert feedv["date"] == "2023-11-14T22:13:20Z"  # createDate 2023-11-14-22-13-20, UTC


@pytest.mark.parametrize(
    ("name", "extra_args", "v4", "v6"),
    [
        (
            "google-cloud.json",
            ["--region", "europe-west1"],
            ["198.51.100.0/24"],
            ["2001:db8:1::/48"],
        ),
        ("cloudflare.json", [], ["198.51.100.0/24", "203.0.113.0/24"], ["2001:db8::/32"]),
        ("github-meta.json", ["--key", "hooks"], ["192.0.2.0/24"], []),
        ("atlassian.json", ["--service", "jira"], ["203.0.113.0/25"], ["2001:db8:a::/48"]),
        ("plain.txt", [], ["192.0.2.0/24", "198.51.100.0/23"], []),
    ],
)
def test_feed_shapes(name: str, extra_args: list[str], v4: list[str], v6: list[str]) -> None:
    feed = FEEDS / name
    result = run("aggregate", feed) if name.endswith(".txt") else None
    if result is not None:
        assert result.exit_code == 0
    args = ["drift", "--desired", feed, *extra_args, "--actual", "-", "--format", "json"]
    res = run(*args, stdin="\n".join(v4 + v6) + "\n")
    assert res.exit_code == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    if not name.endswith(".txt"):
        (feedv,) = doc["desired"]["feeds"]
        assert len(feedv["sha256"]) == 64


def test_github_meta_needs_a_key() -> None:
    res = run(
        "drift", "--desired", FEEDS / "github-meta.json", "--actual", "-", stdin="192.0.2.1\n"
    )
    assert res.exit_code == 2
    assert "--key" in res.stderr


def test_stale_feed_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    new = FEEDS / "aws-ip-ranges.json"
    old_doc = json.loads(new.read_text())
    old_doc["syncToken"] = "1600000000"
    old_doc["createDate"] = "2020-09-13-12-26-40"
    old = write(tmp_path, "old-ip-ranges.json", json.dumps(old_doc))
    (tmp_path / "aws-ip-ranges.json").write_bytes(new.read_bytes())
    actual = write(tmp_path, "a.txt", "198.51.100.0/25\n")
    args = ["--actual", actual, "--direction", "egress", "--feed-state", state]
    first = run("drift", EXAMPLE, "--feed", tmp_path / "aws-ip-ranges.json", *args)
    assert first.exit_code in (0, 1), first.stderr
    assert json.loads(state.read_text())["feeds"]
    # The same feed kind and name, older: refused, never used silently.
    old.rename(tmp_path / "aws-ip-ranges.json")
    second = run("drift", EXAMPLE, "--feed", tmp_path / "aws-ip-ranges.json", *args)
    assert second.exit_code == 2
    assert "stale feed" in second.stderr
    assert "2020-09-13" in second.stderr


# --- aggregate -----------------------------------------------------------------------------------


def test_aggregate_mixed_families_and_stdin(tmp_path: Path) -> None:
    f = write(tmp_path, "l.txt", "2001:db8:8000::/33\n198.51.100.128/25\n# c\n2001:db8::/33\n")
    res = run("aggregate", f, "-", stdin="198.51.100.0/25\n192.0.2.1\n")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["192.0.2.1/32", "198.51.100.0/24", "2001:db8::/32"]


def test_aggregate_host_bits_warn_and_exit_1(tmp_path: Path) -> None:
    f = write(tmp_path, "l.txt", "198.51.100.9/24\n")
    res = run("aggregate", f)
    assert res.exit_code == 1
    assert res.stdout == "198.51.100.0/24\n"
    assert f"{f}:1" in res.stderr


def test_fix_ipset_on_a_set_file_alone_and_refusals(tmp_path: Path) -> None:
    sets = write(
        tmp_path,
        "s.save",
        "create api hash:net family inet\nadd api 192.0.2.0/24\nadd api 203.0.113.0/24\n",
    )
    want = write(tmp_path, "w.txt", "192.0.2.0/25\n198.51.100.0/24\n")
    res = run("drift", "--desired", want, "--actual", sets, "--fix", "ipset")
    assert res.exit_code == 1
    # 192.0.2.0/24 is partly EXTRA: removed whole, its desired /25 added back; the /24 of
    # 198.51.100 is MISSING; 203.0.113.0/24 is EXTRA. Additions come first.
    assert [x for x in res.stdout.splitlines() if not x.startswith("#")] == [
        "add api 192.0.2.0/25",
        "add api 198.51.100.0/24",
        "del api 192.0.2.0/24",
        "del api 203.0.113.0/24",
    ]
    for target in ("nft", "aws-api"):
        res = run("drift", "--desired", want, "--actual", sets, "--fix", target)
        assert res.exit_code == 2, target
        assert f"--fix {target}" in res.stderr
