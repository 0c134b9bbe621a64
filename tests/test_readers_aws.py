"""Reader for AWS security groups (``aws ec2 describe-security-groups`` JSON, and live via boto3).

Expected values are worked out by hand:

- tests/data/aws/features.json: three groups in the shape the AWS CLI prints, covering every
  IpPermission field: protocols by name, by number and -1; tcp/udp port ranges (one port, a
  range, 0-65535, -1/-1); ICMP type/code (-1 for any) and icmpv6 without ports; ICMP of the
  wrong family; a protocol without ports given ports; a CIDR with host bits; prefix lists
  (resolved, listed without entries, missing); group references (resolved, by GroupName only,
  other account, peered VPC, group without interfaces); a permission without peers.
- tests/data/aws/prefix-lists.json and network-interfaces.json resolve them: pl-...1 holds
  198.51.100.64/27 and 198.51.100.96/27 (one /26 together); pl-...2 is AWS-managed without
  entries; pl-...3 (IPv6) is listed twice, once with its entries. Group web (sg-...1) is on
  eni 1 (192.0.2.10, 192.0.2.11, delegated 192.0.2.160/28, 2001:db8:10::10) and eni 2
  (192.0.2.20); group app (sg-...2) on eni 2 and eni 3 (192.0.2.30, 2001:db8:10::30,
  delegated 2001:db8:10:1::/80); group idle (sg-...3) on none.
- netguard's own EC2 API requests (aws/ec2-api.json) for the example profiles, run against
  moto's EC2 (in-process, no network), read back live and from the describe-security-groups
  JSON, against the rules of each example worked out from examples/*/deployment.yaml (the same
  as tests/test_aws.py EXPECTED).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from netguard.cidr import PrefixSet
from netguard.compile import compile_policy
from netguard.errors import EXIT_INVALID, EXIT_OPERATIONAL, InputError, Location, NetguardError
from netguard.model.policy import Policy
from netguard.model.ruleset import (
    ActionKind,
    AddressMatch,
    CtState,
    Hook,
    IcmpMatch,
    Match,
    PortMatch,
    Rule,
    RuleSet,
)
from netguard.profiles import load_deployment
from netguard.readers.aws_sg import AwsApiError, read_security_groups, read_security_groups_live
from netguard.render import Target, render_targets

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "aws"
FEATURES = DATA / "features.json"
LISTS = DATA / "prefix-lists.json"
ENIS = DATA / "network-interfaces.json"
REGION = "eu-west-1"

WEB, APP, IDLE = "sg-0aaaaaaaaaaaaaaa1", "sg-0aaaaaaaaaaaaaaa2", "sg-0aaaaaaaaaaaaaaa3"
TCP, UDP, ICMP, ICMPV6 = (frozenset({n}) for n in (6, 17, 1, 58))
ESTABLISHED = frozenset({CtState.ESTABLISHED, CtState.RELATED})


# --- helpers -------------------------------------------------------------------------------


def ps(*cidrs: str) -> PrefixSet:
    return PrefixSet.from_prefixes(ipaddress.ip_network(c) for c in cidrs)


def src(*cidrs: str) -> tuple[AddressMatch, ...]:
    return (AddressMatch(ps(*cidrs)),)


def dport(first: int, last: int | None = None) -> tuple[PortMatch, ...]:
    return (PortMatch(((first, first if last is None else last),)),)


def rules(ruleset: RuleSet, chain: str) -> list[Rule]:
    """The permission rules of a chain (the first, ESTABLISHED/RELATED, rule left out)."""
    found = ruleset.chains[chain].rules
    assert found[0].match == Match(ct_states=ESTABLISHED)
    return list(found[1:])


def table(ruleset: RuleSet, chain: str) -> list[tuple[str, Match]]:
    return [(r.text, r.match) for r in rules(ruleset, chain)]


def messages(ruleset: RuleSet) -> list[str]:
    return [n.message for n in ruleset.notes]


def write(tmp_path: Path, doc: Any, name: str = "sg.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2), encoding="utf-8")
    return path


def group(perms: list[dict[str, Any]], egress: list[dict[str, Any]] | None = None) -> Any:
    return {
        "SecurityGroups": [
            {
                "GroupId": "sg-1",
                "OwnerId": "111122223333",
                "VpcId": "vpc-1",
                "IpPermissions": perms,
                "IpPermissionsEgress": egress or [],
            }
        ]
    }


def problems(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[int, int, str]]:
    return [(loc.line, loc.column, msg) for loc, msg in exc.value.problems]


def line_of(path: Path, text: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line holding ``text``."""
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return lines[nth]


@pytest.fixture(scope="module")
def features() -> list[RuleSet]:
    return read_security_groups(FEATURES, prefix_lists=LISTS, network_interfaces=ENIS)


# --- every field, resolved -----------------------------------------------------------------

WEB_MEMBERS_V4 = ("192.0.2.10/31", "192.0.2.20/32", "192.0.2.160/28")
APP_MEMBERS_V4 = ("192.0.2.20/32", "192.0.2.30/32")
APP_MEMBERS_V6 = ("2001:db8:10::30/128", "2001:db8:10:1::/80")


def test_structure_one_ruleset_per_family_stateful_and_fail_closed(
    features: list[RuleSet],
) -> None:
    assert [rs.family for rs in features] == [4, 6]
    for rs in features:
        assert rs.source == str(FEATURES)
        assert set(rs.chains) == {"ingress", "egress"}
        assert rs.base_chains(Hook.INPUT) == (rs.chains["ingress"],)
        assert rs.base_chains(Hook.OUTPUT) == (rs.chains["egress"],)
        assert rs.base_chains(Hook.FORWARD) == ()
        for chain in rs.chains.values():
            assert chain.policy is ActionKind.DROP
            first = chain.rules[0]
            assert first.match == Match(ct_states=ESTABLISHED)
            assert first.action.kind is ActionKind.ACCEPT
            assert [r.position for r in chain.rules] == list(range(1, len(chain.rules) + 1))
            assert all(r.chain == chain.name for r in chain.rules)
            assert all(r.action.kind is ActionKind.ACCEPT for r in chain.rules)
            # no connection-state condition on the permissions: AWS has no "NEW only"
            assert all(r.match.ct_states is None for r in chain.rules[1:])


def test_ipv4_ingress_every_field(features: list[RuleSet]) -> None:
    unresolved_pl2 = ("source in prefix list pl-0aaaaaaaaaaaaaaa2",)
    assert table(features[0], "ingress") == [
        (
            f'{WEB} ingress tcp 443 from 203.0.113.0/28 ("webhooks")',
            Match(protocols=TCP, sources=src("203.0.113.0/28"), destination_ports=dport(443)),
        ),
        (
            f"{WEB} ingress tcp 8000-8999 from 198.51.100.0/24",
            Match(TCP, sources=src("198.51.100.0/24"), destination_ports=dport(8000, 8999)),
        ),
        # 0-65535 and -1/-1 are every port: no port condition
        (f"{WEB} ingress udp 0-65535 from 192.0.2.0/25", Match(UDP, sources=src("192.0.2.0/25"))),
        (
            f"{WEB} ingress tcp 0-65535 from 192.0.2.128/25",  # IpProtocol "6", ports -1
            Match(TCP, sources=src("192.0.2.128/25")),
        ),
        (  # type 8, code -1: every code of type 8
            f'{WEB} ingress icmp type 8 from 198.51.100.0/24 ("ping")',
            Match(ICMP, sources=src("198.51.100.0/24"), icmp=(IcmpMatch(8, 0, 255),)),
        ),
        (
            f'{WEB} ingress icmp type 3 code 4 from 0.0.0.0/0 ("path MTU")',
            Match(ICMP, sources=src("0.0.0.0/0"), icmp=(IcmpMatch(3, 4, 4),)),
        ),
        (f"{WEB} ingress icmp from 203.0.113.0/24", Match(ICMP, sources=src("203.0.113.0/24"))),
        (
            f'{WEB} ingress proto 50 from 203.0.113.200/31 ("esp")',
            Match(frozenset({50}), sources=src("203.0.113.200/31")),
        ),
        (  # ports 10-20 given with protocol 47: ignored, as AWS does
            f'{WEB} ingress proto 47 from 203.0.113.202/32 ("gre")',
            Match(frozenset({47}), sources=src("203.0.113.202/32")),
        ),
        (  # 192.0.2.53/24 is stored by AWS as 192.0.2.0/24
            f'{WEB} ingress udp 53 from 192.0.2.0/24 ("host bits")',
            Match(UDP, sources=src("192.0.2.0/24"), destination_ports=dport(53)),
        ),
        (  # the two /27 entries of pl-...1 are one /26
            f'{WEB} ingress tcp 22 from pl-0aaaaaaaaaaaaaaa1 (admins) ("admins")',
            Match(TCP, sources=src("198.51.100.64/26"), destination_ports=dport(22)),
        ),
        (  # AWS-managed, listed without entries, IPv4: unresolved in IPv4 only
            f"{WEB} ingress tcp 5432 from pl-0aaaaaaaaaaaaaaa2 (com.amazonaws.eu-west-1.s3)",
            Match(TCP, destination_ports=dport(5432), unmodeled=unresolved_pl2),
        ),
        (
            f'{WEB} ingress tcp 5433 from pl-0aaaaaaaaaaaaaaa9 ("not in the file")',
            Match(
                TCP,
                destination_ports=dport(5433),
                unmodeled=("source in prefix list pl-0aaaaaaaaaaaaaaa9",),
            ),
        ),
        (
            f'{WEB} ingress tcp 6379 from sg-0bbbbbbbbbbbbbbb1 (account 444455556666) ("other '
            'account")',
            Match(
                TCP,
                destination_ports=dport(6379),
                unmodeled=("source in security group sg-0bbbbbbbbbbbbbbb1 (account 444455556666)",),
            ),
        ),
        (
            f"{WEB} ingress tcp 9000 from sg-0ccccccccccccccc1 (via pcx-0ccccccccccccccc1)",
            Match(
                TCP,
                destination_ports=dport(9000),
                unmodeled=(
                    "source in security group sg-0ccccccccccccccc1 (via pcx-0ccccccccccccccc1)",
                ),
            ),
        ),
        (
            f"{WEB} ingress tcp 7000 from {IDLE}",
            Match(
                TCP, destination_ports=dport(7000), unmodeled=(f"source in security group {IDLE}",)
            ),
        ),
        (  # -1: every protocol and port, from the private addresses of app's interfaces
            f'{WEB} ingress all from {APP} ("app tier")',
            Match(sources=src(*APP_MEMBERS_V4)),
        ),
        (
            f"{APP} ingress tcp 8443 from {WEB}",
            Match(TCP, sources=src(*WEB_MEMBERS_V4), destination_ports=dport(8443)),
        ),
    ]


def test_ipv4_egress(features: list[RuleSet]) -> None:
    assert table(features[0], "egress") == [
        (f"{WEB} egress all to 0.0.0.0/0", Match(destinations=src("0.0.0.0/0"))),
        (
            f'{APP} egress tcp 443 to 198.51.100.0/25 ("vendor api")',
            Match(TCP, destinations=src("198.51.100.0/25"), destination_ports=dport(443)),
        ),
        # pl-...3 is IPv6: no IPv4 rule. The pair names the group by GroupName only.
        (
            f"{APP} egress udp 53 to {WEB} (web)",
            Match(UDP, destinations=src(*WEB_MEMBERS_V4), destination_ports=dport(53)),
        ),
    ]


def test_ipv6_ingress_and_egress(features: list[RuleSet]) -> None:
    v6 = features[1]
    unresolved = [
        (text, m)
        for text, m in table(features[0], "ingress")
        if m.unmodeled and "pl-0aaaaaaaaaaaaaaa2" not in text
    ]
    assert table(v6, "ingress") == [
        (
            f'{WEB} ingress tcp 443 from 2001:db8:200::/48 ("webhooks v6")',
            Match(TCP, sources=src("2001:db8:200::/48"), destination_ports=dport(443)),
        ),
        (f"{WEB} ingress icmpv6 from 2001:db8::/32", Match(ICMPV6, sources=src("2001:db8::/32"))),
        (
            f'{WEB} ingress icmpv6 type 128 code 0 from 2001:db8:1::/48 ("ping v6")',
            Match(ICMPV6, sources=src("2001:db8:1::/48"), icmp=(IcmpMatch(128, 0, 0),)),
        ),
        (  # ICMPv4 type/code in an IPv6 rule: cannot be modeled
            f'{WEB} ingress icmp type 8 code 0 from 2001:db8:2::/48 ("icmp in ipv6")',
            Match(
                ICMP,
                sources=src("2001:db8:2::/48"),
                unmodeled=("icmp type 8 code 0 in an IPv6 packet",),
            ),
        ),
        *unresolved,  # the same unresolved conditions in both families
        (f'{WEB} ingress all from {APP} ("app tier")', Match(sources=src(*APP_MEMBERS_V6))),
        (
            f"{APP} ingress tcp 8443 from {WEB}",
            Match(TCP, sources=src("2001:db8:10::10/128"), destination_ports=dport(8443)),
        ),
    ]
    assert len(unresolved) == 4
    assert table(v6, "egress") == [
        (f"{WEB} egress all to ::/0", Match(destinations=src("::/0"))),
        (
            f'{APP} egress tcp 443 to pl-0aaaaaaaaaaaaaaa3 (vendor-api-v6) ("vendor api v6")',
            Match(TCP, destinations=src("2001:db8:100::/48"), destination_ports=dport(443)),
        ),
        (
            f"{APP} egress udp 53 to {WEB} (web)",
            Match(UDP, destinations=src("2001:db8:10::10/128"), destination_ports=dport(53)),
        ),
    ]


def test_comments_and_locations_point_at_the_peer_entry(features: list[RuleSet]) -> None:
    first = rules(features[0], "ingress")[0]
    assert first.comment == "webhooks"
    # the entry {"CidrIp": "203.0.113.0/28", ...} opens one line above its CidrIp, at column
    # 25 (indent 4 per level: groups, group, permissions, permission, IpRanges, entry)
    assert first.location == Location(FEATURES, line_of(FEATURES, '"203.0.113.0/28"') - 1, 25)
    v6_first = rules(features[1], "ingress")[0]
    assert v6_first.location == Location(FEATURES, line_of(FEATURES, '"2001:db8:200::/48"') - 1, 25)
    assert rules(features[0], "ingress")[1].comment is None
    assert rules(features[0], "ingress")[0].chain == "ingress"
    established = features[0].chains["ingress"].rules[0]
    assert established.location == Location(FEATURES)


def test_notes_say_what_is_not_modeled_and_where(features: list[RuleSet]) -> None:
    v4, v6 = (set(messages(rs)) for rs in features)
    pl = str(LISTS)
    enis = str(ENIS)
    common = {
        "3 security groups evaluated as if all groups were attached to one interface (select "
        "the groups of one interface to check that interface)",
        f"{WEB} ingress tcp 444 has no IpRanges, Ipv6Ranges, PrefixListIds or UserIdGroupPairs: "
        "it matches nothing",
        f"prefix list pl-0aaaaaaaaaaaaaaa9 is not resolved ({pl} does not list it): the rules "
        "that use it keep it as an unmodeled condition",
        "security group sg-0bbbbbbbbbbbbbbb1 (account 444455556666) is not resolved (it belongs "
        "to account 444455556666, not 111122223333): the rules that refer to it keep it as an "
        "unmodeled condition",
        "security group sg-0ccccccccccccccc1 (via pcx-0ccccccccccccccc1) is not resolved (it is "
        "in a peered VPC (pcx-0ccccccccccccccc1)): the rules that refer to it keep it as an "
        "unmodeled condition",
        f"security group {IDLE} is not resolved (no network interface in {enis} has it): the "
        "rules that refer to it keep it as an unmodeled condition",
        f"security group {APP} resolved to the private addresses of its 2 network interfaces in "
        f"{enis} (delegated prefixes included): membership as of then, and traffic to or from "
        "their public or Elastic IP addresses does not match",
        f"security group {WEB} resolved to the private addresses of its 2 network interfaces in "
        f"{enis} (delegated prefixes included): membership as of then, and traffic to or from "
        "their public or Elastic IP addresses does not match (2 times)",
    }
    only_v4 = {
        "192.0.2.53/24 has host bits set: AWS stores it as 192.0.2.0/24 (read so)",
        "ports 10-20 of IpProtocol 47 are ignored: AWS allows every port of protocols other "
        "than tcp, udp, icmp and icmpv6",
        f"prefix list pl-0aaaaaaaaaaaaaaa2 (com.amazonaws.eu-west-1.s3) is not resolved ({pl} "
        "lists it without Entries (add the output of aws ec2 get-managed-prefix-list-entries)"
        "): the rules that use it keep it as an unmodeled condition",
    }
    only_v6 = {
        "icmp type 8 code 0 in an IPv6 rule: the type and code of icmp in IPv6 packets are not "
        "modeled (IPv6 uses icmpv6)",
    }
    bypass = "security groups do not filter traffic to and from the Route 53 Resolver"
    assert {m for m in v4 if not m.startswith(bypass)} == common | only_v4
    assert {m for m in v6 if not m.startswith(bypass)} == common | only_v6
    for rs in features:  # first, and once
        assert [m for m in messages(rs) if m.startswith(bypass)] == messages(rs)[:1]
    assert "169.254.169.254" in messages(features[0])[0]
    assert "fd00:ec2::254" in messages(features[1])[0]
    by_message = {n.message: n.location for n in features[0].notes}
    host_bits = by_message[
        "192.0.2.53/24 has host bits set: AWS stores it as 192.0.2.0/24 (read so)"
    ]
    line = line_of(FEATURES, '"192.0.2.53/24"')
    assert host_bits == Location(FEATURES, line, 29)  # the "CidrIp" key


def test_group_ids_select_the_groups_of_one_interface() -> None:
    v4, v6 = read_security_groups(
        FEATURES, prefix_lists=LISTS, network_interfaces=ENIS, group_ids=[APP]
    )
    assert [text for text, _ in table(v4, "ingress")] == [f"{APP} ingress tcp 8443 from {WEB}"]
    assert [text for text, _ in table(v6, "egress")] == [
        f'{APP} egress tcp 443 to pl-0aaaaaaaaaaaaaaa3 (vendor-api-v6) ("vendor api v6")',
        f"{APP} egress udp 53 to {WEB} (web)",
    ]
    assert not any("evaluated as if all groups" in m for m in messages(v4))
    # the union of two groups, in file order
    both = read_security_groups(FEATURES, group_ids=[IDLE, APP])
    # without a prefix-lists file pl-...3's family is unknown: unresolved in IPv4 too
    assert [r.text.split()[0] for r in rules(both[0], "egress")] == [APP, APP, APP]
    assert rules(both[0], "ingress")[0].match.unmodeled == (f"source in security group {WEB}",)
    # no group at all: only responses pass
    (empty, _) = read_security_groups(FEATURES, group_ids=[])
    assert [len(c.rules) for c in empty.chains.values()] == [1, 1]
    assert any(m.startswith("no security group selected") for m in messages(empty))


def test_group_ids_not_in_the_file() -> None:
    with pytest.raises(InputError) as exc:
        read_security_groups(FEATURES, group_ids=[APP, "sg-0ddddddddddddddd1"])
    assert problems(exc) == [
        (0, 0, "security group sg-0ddddddddddddddd1 (asked for) is not in the input")
    ]


def test_without_resolution_files_every_reference_is_unmodeled() -> None:
    v4, v6 = read_security_groups(FEATURES)
    texts = dict(table(v4, "ingress"))
    admins = texts[f'{WEB} ingress tcp 22 from pl-0aaaaaaaaaaaaaaa1 ("admins")']
    assert admins == Match(
        TCP, destination_ports=dport(22), unmodeled=("source in prefix list pl-0aaaaaaaaaaaaaaa1",)
    )
    app = texts[f'{WEB} ingress all from {APP} ("app tier")']
    assert app == Match(unmodeled=(f"source in security group {APP}",))
    assert (
        "prefix list pl-0aaaaaaaaaaaaaaa1 is not resolved (no prefix-lists file was given): "
        "the rules that use it keep it as an unmodeled condition" in messages(v6)
    )
    for ref in (WEB, f"{WEB} (web)"):  # by GroupId, and by GroupName only
        assert (
            f"security group {ref} is not resolved (no network-interfaces file was given): the "
            "rules that refer to it keep it as an unmodeled condition" in messages(v4)
        )
    # the pair named only by GroupName is still found among the groups of the file
    assert table(v6, "egress")[-1] == (
        f"{APP} egress udp 53 to {WEB} (web)",
        Match(
            UDP,
            destination_ports=dport(53),
            unmodeled=(f"destination in security group {WEB} (web)",),
        ),
    )


def test_resolved_prefix_list_without_entries_matches_nothing(tmp_path: Path) -> None:
    sg = write(
        tmp_path,
        group(
            [
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "PrefixListIds": [{"PrefixListId": "pl-1"}],
                }
            ]
        ),
    )
    lists = write(
        tmp_path, [{"PrefixListId": "pl-1", "AddressFamily": "IPv4", "Entries": []}], "pl.json"
    )
    v4, v6 = read_security_groups(sg, prefix_lists=lists)
    assert table(v4, "ingress") == table(v6, "ingress") == []
    assert f"prefix list pl-1 has no entries in {lists}: the rules that use it match nothing" in (
        messages(v4)
    )


# --- input shapes --------------------------------------------------------------------------

ONE_RULE: dict[str, Any] = {
    "IpProtocol": "tcp",
    "FromPort": 443,
    "ToPort": 443,
    "IpRanges": [{"CidrIp": "192.0.2.0/24"}, {"CidrIp": "198.51.100.0/24"}],
}


def test_bare_list_and_boto3_response(tmp_path: Path) -> None:
    expected = [
        (
            "sg-1 ingress tcp 443 from 192.0.2.0/24",
            Match(TCP, sources=src("192.0.2.0/24"), destination_ports=dport(443)),
        ),
        (
            "sg-1 ingress tcp 443 from 198.51.100.0/24",
            Match(TCP, sources=src("198.51.100.0/24"), destination_ports=dport(443)),
        ),
    ]
    bare = write(tmp_path, group([ONE_RULE])["SecurityGroups"], "bare.json")
    assert table(read_security_groups(bare)[0], "ingress") == expected
    boto = group([ONE_RULE]) | {
        "ResponseMetadata": {"RequestId": "x", "HTTPStatusCode": 200, "RetryAttempts": 0},
        "NextToken": "abc",
    }
    v4, _ = read_security_groups(write(tmp_path, boto, "boto.json"))
    assert table(v4, "ingress") == expected
    assert any("it is one page of a paginated answer" in m for m in messages(v4))


def test_one_line_json_has_a_column_per_rule(tmp_path: Path) -> None:
    text = json.dumps(group([ONE_RULE]), separators=(",", ":"))
    path = write(tmp_path, text)
    first, second = rules(read_security_groups(path)[0], "ingress")
    assert first.location == Location(path, 1, text.index('{"CidrIp":"192.0.2.0/24"}') + 1)
    assert second.location == Location(path, 1, text.index('{"CidrIp":"198.51.100.0/24"}') + 1)


def test_braces_inside_strings_do_not_shift_locations(tmp_path: Path) -> None:
    perm = dict(ONE_RULE, IpRanges=[{"Description": 'x"}{[', "CidrIp": "192.0.2.0/24"}])
    doc = group([perm])
    doc["SecurityGroups"][0]["Description"] = "{ braces } in a [string]"
    path = write(tmp_path, doc)
    [rule] = rules(read_security_groups(path)[0], "ingress")
    assert rule.location.line == line_of(path, '"x\\"}{["') - 1
    assert rule.comment == 'x"}{['
    assert rule.text == 'sg-1 ingress tcp 443 from 192.0.2.0/24 ("x\\"}{[")'


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe")]
)
def test_byte_order_marks(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = tmp_path / "sg.json"
    path.write_bytes(bom + json.dumps(group([ONE_RULE])).encode(encoding))
    assert len(rules(read_security_groups(path)[0], "ingress")) == 2


def test_protocol_all_and_numbers_as_integers(tmp_path: Path) -> None:
    perms: list[dict[str, Any]] = [
        {"IpProtocol": "all", "IpRanges": [{"CidrIp": "192.0.2.1/32"}]},
        {
            "IpProtocol": 17,
            "FromPort": 500,
            "ToPort": 500,
            "IpRanges": [{"CidrIp": "192.0.2.2/32"}],
        },
        {"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "192.0.2.3"}]},
        {"IpProtocol": "1", "FromPort": 0, "ToPort": -1, "IpRanges": [{"CidrIp": "192.0.2.4/32"}]},
        {"IpProtocol": "132", "IpRanges": [{"CidrIp": "192.0.2.5/32"}]},
    ]
    v4, _ = read_security_groups(write(tmp_path, group(perms)))
    assert table(v4, "ingress") == [
        ("sg-1 ingress all from 192.0.2.1/32", Match(sources=src("192.0.2.1/32"))),
        (
            "sg-1 ingress udp 500 from 192.0.2.2/32",
            Match(UDP, sources=src("192.0.2.2/32"), destination_ports=dport(500)),
        ),
        ("sg-1 ingress all from 192.0.2.3/32", Match(sources=src("192.0.2.3/32"))),
        (
            "sg-1 ingress icmp type 0 from 192.0.2.4/32",
            Match(ICMP, sources=src("192.0.2.4/32"), icmp=(IcmpMatch(0, 0, 255),)),
        ),
        (
            "sg-1 ingress proto 132 from 192.0.2.5/32",
            Match(frozenset({132}), sources=src("192.0.2.5/32")),
        ),
    ]


def test_host_bits_only_when_set(tmp_path: Path) -> None:
    """A CIDR written in another text form (upper case, leading zeros, no length) is no Note;
    host bits are, in the family of the address."""
    perm = {
        "IpProtocol": "-1",
        "IpRanges": [{"CidrIp": "192.0.2.7"}, {"CidrIp": "198.51.100.77/26"}],
        "Ipv6Ranges": [{"CidrIpv6": "2001:DB8:0:0::/64"}, {"CidrIpv6": "2001:db8:1::1/48"}],
    }
    v4, v6 = read_security_groups(write(tmp_path, group([perm])))
    assert [m.sources for _, m in table(v4, "ingress")] == [
        src("192.0.2.7/32"),
        src("198.51.100.64/26"),
    ]
    assert [m.sources for _, m in table(v6, "ingress")] == [
        src("2001:db8::/64"),
        src("2001:db8:1::/48"),
    ]
    host_bits = [m for m in messages(v4) + messages(v6) if "host bits" in m]
    assert host_bits == [
        "198.51.100.77/26 has host bits set: AWS stores it as 198.51.100.64/26 (read so)",
        "2001:db8:1::1/48 has host bits set: AWS stores it as 2001:db8:1::/48 (read so)",
    ]


def test_missing_egress_key_is_noted(tmp_path: Path) -> None:
    doc = {"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": []}]}
    v4, _ = read_security_groups(write(tmp_path, doc))
    assert table(v4, "egress") == []
    assert (
        "security group sg-1 has no IpPermissionsEgress: read as no egress rules (AWS lists "
        "every rule, the default allow-all egress rule included)" in messages(v4)
    )


def test_unknown_permission_keys_are_noted(tmp_path: Path) -> None:
    perm = dict(ONE_RULE, SomethingNew=[{"x": 1}])
    v4, _ = read_security_groups(write(tmp_path, group([perm])))
    assert len(rules(v4, "ingress")) == 2
    assert (
        "SecurityGroups[0].IpPermissions[0]: SomethingNew unknown to netguard in an "
        "IpPermission: ignored" in messages(v4)
    )


def test_groups_in_several_vpcs_are_noted(tmp_path: Path) -> None:
    doc = {
        "SecurityGroups": [
            {"GroupId": "sg-1", "VpcId": "vpc-1", "IpPermissions": [], "IpPermissionsEgress": []},
            {"GroupId": "sg-2", "VpcId": "vpc-2", "IpPermissions": [], "IpPermissionsEgress": []},
        ]
    }
    v4, _ = read_security_groups(write(tmp_path, doc))
    assert "the groups are in 2 VPCs (vpc-1, vpc-2): no one interface can have them all" in (
        messages(v4)
    )


# --- malformed input -----------------------------------------------------------------------


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{"SecurityGroups": [\n  {"GroupId": "sg-1",}\n]}\n')
    with pytest.raises(InputError) as exc:
        read_security_groups(path)
    assert problems(exc) == [
        (2, 22, "invalid JSON: Expecting property name enclosed in double quotes")
    ]
    assert exc.value.exit_code == EXIT_INVALID
    with pytest.raises(InputError) as exc:
        read_security_groups(write(tmp_path, ""))
    assert problems(exc) == [(1, 1, "invalid JSON: Expecting value")]


def test_not_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_bytes(b'{"SecurityGroups": [\n"\xff"]}')
    with pytest.raises(InputError) as exc:
        read_security_groups(path)
    assert problems(exc) == [(2, 0, "not UTF-8 text (nor UTF-16 with a byte-order mark)")]
    with pytest.raises(InputError) as exc:
        read_security_groups(tmp_path / "missing.json")
    assert problems(exc) == [(0, 0, "cannot read the security groups: No such file or directory")]
    with pytest.raises(InputError) as exc:
        read_security_groups(FEATURES, prefix_lists=tmp_path / "missing.json")
    assert exc.value.problems[0][0] == Location(tmp_path / "missing.json")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '{"SecurityGroups": [{"GroupId": "sg-1",\n "GroupId": "sg-2"}]}')
    with pytest.raises(InputError) as exc:
        read_security_groups(path)
    assert problems(exc) == [(2, 2, "key 'GroupId' appears more than once in one object")]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"Groups": []},
            'expected {"SecurityGroups": [...]} (the output of aws ec2 '
            "describe-security-groups) or a list of security groups, found an object with keys "
            "Groups",
        ),
        (
            '"sg-1"',
            'expected {"SecurityGroups": [...]} (the output of aws ec2 '
            'describe-security-groups) or a list of security groups, found the string "sg-1"',
        ),
        (
            {"SecurityGroupRules": []},
            "this is describe-security-group-rules output: give the output of aws ec2 "
            "describe-security-groups",
        ),
        (
            {"SecurityGroups": {"GroupId": "sg-1"}},
            "SecurityGroups: expected a list of security groups, found an object",
        ),
    ],
)
def test_wrong_top_level_shape(tmp_path: Path, doc: Any, expected: str) -> None:
    with pytest.raises(InputError) as exc:
        read_security_groups(write(tmp_path, doc))
    assert [msg for _, _, msg in problems(exc)] == [expected]


P = "SecurityGroups[0].IpPermissions[0]"
PROTOCOL_HELP = "expected tcp, udp, icmp, icmpv6, a number 0-255 or -1 (every protocol)"


@pytest.mark.parametrize(
    ("perm", "expected"),
    [
        ({"IpRanges": []}, f"{P}: expected an IpProtocol, found none"),
        (
            {"IpProtocol": "gre"},
            f"{P}.IpProtocol: unknown protocol 'gre': {PROTOCOL_HELP}",
        ),
        (
            {"IpProtocol": "256"},
            f"{P}.IpProtocol: unknown protocol '256': {PROTOCOL_HELP}",
        ),
        (
            {"IpProtocol": True},
            f"{P}.IpProtocol: expected a protocol name or number as a string, found true",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": "443", "ToPort": 443},
            f'{P}.FromPort: expected an integer, found the string "443"',
        ),
        ({"IpProtocol": "tcp"}, f"{P}: tcp needs FromPort and ToPort (the port range; -1 for all)"),
        (
            {"IpProtocol": "udp", "FromPort": 53},
            f"{P}: udp needs FromPort and ToPort (the port range; -1 for all)",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": -1, "ToPort": 80},
            f"{P}: tcp ports -1 to 80: -1 (every port) must be given for both or neither",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 65536},
            f"{P}.ToPort: port 65536 is not in 0-65535",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80},
            f"{P}: tcp port range 90-80 starts above its end",
        ),
        (
            {"IpProtocol": "icmp"},
            f"{P}: icmp needs FromPort (the ICMP type) and ToPort (the code), -1 for any",
        ),
        (
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": 0},
            f"{P}.ToPort: ICMP code 0 with every type (FromPort -1): AWS requires ToPort -1 then",
        ),
        (
            {"IpProtocol": "icmpv6", "FromPort": 256, "ToPort": -1},
            f"{P}.FromPort: ICMP type 256 is not in 0-255 (or -1)",
        ),
        (
            {"IpProtocol": "-1", "IpRanges": {"CidrIp": "192.0.2.0/24"}},
            f"{P}.IpRanges: expected a list, found an object",
        ),
        (
            {"IpProtocol": "-1", "IpRanges": ["192.0.2.0/24"]},
            f'{P}.IpRanges[0]: expected an object with CidrIp, found the string "192.0.2.0/24"',
        ),
        (
            {"IpProtocol": "-1", "IpRanges": [{"Description": "x"}]},
            f"{P}.IpRanges[0]: expected a CidrIp (a string), found none",
        ),
        (
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "2001:db8::/32"}]},
            f"{P}.IpRanges[0].CidrIp: 2001:db8::/32 is an IPv6 block: CidrIp holds IPv4 only",
        ),
        (
            {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "192.0.2.0/24"}]},
            f"{P}.Ipv6Ranges[0].CidrIpv6: 192.0.2.0/24 is an IPv4 block: CidrIpv6 holds IPv6 only",
        ),
        (
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "192.0.2.0/33"}]},
            f"{P}.IpRanges[0].CidrIp: expected a CIDR block such as 203.0.113.0/24, found the "
            'string "192.0.2.0/33"',
        ),
        (
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": 5}]},
            f"{P}.IpRanges[0].Description: expected a string, found the number 5",
        ),
        (
            {"IpProtocol": "-1", "PrefixListIds": [{"Description": "x"}]},
            f"{P}.PrefixListIds[0]: expected a PrefixListId (a string), found none",
        ),
        (
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"UserId": "111122223333"}]},
            f"{P}.UserIdGroupPairs[0]: expected a GroupId (or GroupName), found none",
        ),
        (
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": ""}]},
            f"{P}.UserIdGroupPairs[0]: expected a GroupId (or GroupName), found none",
        ),
        (
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": 7}]},
            f"{P}.UserIdGroupPairs[0].GroupId: expected a string, found the number 7",
        ),
    ],
)
def test_wrong_permission_shape(tmp_path: Path, perm: dict[str, Any], expected: str) -> None:
    with pytest.raises(InputError) as exc:
        read_security_groups(write(tmp_path, group([perm])))
    assert [msg for _, _, msg in problems(exc)] == [expected]


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    doc = {
        "SecurityGroups": [
            {
                "GroupId": "sg-1",
                "IpPermissions": [
                    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 8},
                    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "bad"}]},
                ],
                "IpPermissionsEgress": "none",
            },
            {"GroupName": "no id", "IpPermissions": [], "IpPermissionsEgress": []},
            {"GroupId": "sg-1", "IpPermissions": [], "IpPermissionsEgress": []},
            7,
        ]
    }
    path = write(tmp_path, doc)  # indent 2: see the line numbers below
    with pytest.raises(InputError) as exc:
        read_security_groups(path)
    assert problems(exc) == [
        # a list item has no position of its own: the key of its list
        (2, 3, "SecurityGroups[3]: expected a security group (an object), found the number 7"),
        # a bad value: its key; a missing key: the object's brace
        (8, 11, "SecurityGroups[0].IpPermissions[0]: tcp port range 80-8 starts above its end"),
        (
            15,
            15,
            "SecurityGroups[0].IpPermissions[1].IpRanges[0].CidrIp: expected a CIDR block such "
            'as 203.0.113.0/24, found the string "bad"',
        ),
        (20, 7, 'SecurityGroups[0].IpPermissionsEgress: expected a list, found the string "none"'),
        (22, 5, "SecurityGroups[1]: expected a GroupId (a string), found none"),
        (
            28,
            7,
            f"SecurityGroups[2].GroupId: security group sg-1 appears twice (first at {path}:4:7)",
        ),
    ]
    assert line_of(path, '"FromPort": 80') == 8
    assert line_of(path, '"GroupName": "no id"') == 23


def test_wrong_prefix_list_and_interface_files(tmp_path: Path) -> None:
    sg = write(tmp_path, group([ONE_RULE]))
    lists = write(
        tmp_path,
        {
            "PrefixLists": [
                {"PrefixListId": "pl-1", "AddressFamily": "IPv5"},
                {
                    "PrefixListId": "pl-2",
                    "AddressFamily": "IPv4",
                    "Entries": [{"Cidr": "2001:db8::/32"}],
                },
                {"AddressFamily": "IPv4"},
            ]
        },
        "pl.json",
    )
    enis = write(
        tmp_path,
        {
            "NetworkInterfaces": [
                {"Groups": [{"GroupName": "x"}], "PrivateIpAddress": "192.0.2.1"},
                {"Groups": [], "PrivateIpAddresses": [{"PrivateIpAddress": "2001:db8::1"}]},
            ]
        },
        "eni.json",
    )
    with pytest.raises(InputError) as exc:
        read_security_groups(sg, prefix_lists=lists, network_interfaces=enis)
    assert sorted((str(loc.path), msg) for loc, msg in exc.value.problems) == sorted(
        [
            (
                str(lists),
                'PrefixLists[0].AddressFamily: expected IPv4 or IPv6, found the string "IPv5"',
            ),
            (
                str(lists),
                "PrefixLists[1].Entries[0].Cidr: 2001:db8::/32 is an IPv6 block: Cidr holds IPv4 "
                "only",
            ),
            (str(lists), "PrefixLists[2]: expected a PrefixListId (a string), found none"),
            (
                str(enis),
                "NetworkInterfaces[0].Groups[0]: expected a GroupId (a string), found none",
            ),
            (
                str(enis),
                "NetworkInterfaces[1].PrivateIpAddresses[0].PrivateIpAddress: 2001:db8::1 is "
                "an IPv6 block: PrivateIpAddress holds IPv4 only",
            ),
        ]
    )


# --- the packet-space engine reads the model as intended -----------------------------------


def test_engine_semantics_of_a_read_group(tmp_path: Path) -> None:
    from netguard.space import Packet, UnmodeledError, evaluate

    perms = [
        {
            "IpProtocol": "tcp",
            "FromPort": 8443,
            "ToPort": 8443,
            "IpRanges": [{"CidrIp": "203.0.113.0/28"}],
        },
        {
            "IpProtocol": "icmp",
            "FromPort": 8,
            "ToPort": -1,
            "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
        },
    ]
    egress = [
        {
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
        }
    ]
    v4, v6 = read_security_groups(write(tmp_path, group(perms, egress)))
    out, inp = evaluate(v4, Hook.OUTPUT), evaluate(v4, Hook.INPUT)
    assert out.accepts(Packet.parse("tcp 192.0.2.10:40000 -> 198.51.100.5:443 (NEW)"))
    assert not out.accepts(Packet.parse("tcp 192.0.2.10:40000 -> 198.51.100.5:80 (NEW)"))
    assert not out.accepts(Packet.parse("udp 192.0.2.10:40000 -> 198.51.100.5:443 (NEW)"))
    # responses to anything allowed: stateful in both directions
    assert out.accepts(Packet.parse("tcp 192.0.2.10:8443 -> 203.0.113.5:40000 (ESTABLISHED)"))
    assert inp.accepts(Packet.parse("tcp 198.51.100.5:443 -> 192.0.2.10:40000 (ESTABLISHED)"))
    assert inp.accepts(Packet.parse("tcp 203.0.113.5:40000 -> 192.0.2.10:8443 (NEW)"))
    assert not inp.accepts(Packet.parse("tcp 203.0.113.16:40000 -> 192.0.2.10:8443 (NEW)"))
    assert inp.accepts(Packet.parse("icmp 198.51.100.1 -> 192.0.2.10 type 8 code 0 (NEW)"))
    assert not inp.accepts(Packet.parse("icmp 198.51.100.1 -> 192.0.2.10 type 13 code 0 (NEW)"))
    assert not evaluate(v6, Hook.INPUT).accepts(
        Packet.parse("tcp [2001:db8::1]:40000 -> [2001:db8::2]:8443 (NEW)")
    )
    with pytest.raises(UnmodeledError):
        evaluate(read_security_groups(FEATURES)[0], Hook.INPUT)


# --- netguard's own security groups in moto's EC2 ------------------------------------------

AS_OF = dt.date(2026, 1, 1)


def example(name: str) -> Policy:
    path = ROOT / "examples" / name / "deployment.yaml"
    return compile_policy(load_deployment(path, as_of=AS_OF).profile)


def _substitute(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def deploy(ec2: Any, policy: Policy) -> tuple[str, dict[str, str]]:
    """Run the example's aws/ec2-api.json requests in order against moto; (VPC id, group name ->
    id). The profile's VPC, subnets and existing groups are created first (documentation
    ranges): endpoint subnets 192.0.2.64/28 and 192.0.2.80/28. moto 5 needs FromPort/ToPort on
    every permission (AWS does not for protocol 50 or icmpv6): -1/-1 is added, as
    tests/test_aws.py does."""
    api = json.loads(render_targets(policy, (Target.AWS_API,))["aws/ec2-api.json"])
    vpc = ec2.create_vpc(CidrBlock="192.0.2.0/24")["Vpc"]["VpcId"]
    ids = {policy.aws.vpc_id: vpc}
    names: dict[str, str] = {}
    if policy.privatelink is not None:
        for n, subnet in enumerate(policy.privatelink.subnet_ids):
            cidr = f"192.0.2.{64 + 16 * n}/28"
            ids[subnet] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
        for existing in policy.privatelink.application_security_groups:
            ids[existing] = ec2.create_security_group(
                GroupName="existing-app", Description="existing", VpcId=vpc
            )["GroupId"]
            names["existing-app"] = ids[existing]
    for op in api["operations"]:
        params = _substitute(op["parameters"], ids)
        for perm in params.get("IpPermissions", []):
            if perm["IpProtocol"] != "-1":
                perm.setdefault("FromPort", -1)
                perm.setdefault("ToPort", -1)
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", op["operation"]).lower()
        response = getattr(ec2, method)(**params)
        if op["operation"] == "CreateSecurityGroup":
            created, name = response["GroupId"], params["GroupName"]
            names[name] = created
        elif op["operation"] == "CreateManagedPrefixList":
            created, name = response["PrefixList"]["PrefixListId"], params["PrefixListName"]
        else:
            continue
        for placeholder, text in api["placeholders"].items():
            if text.endswith(f"({op['operation']} {name})"):
                ids[placeholder] = created
    return vpc, names


def interface(ec2: Any, vpc: str, cidr: str, group_ids: list[str], *addresses: str) -> None:
    """A network interface with the given groups and private IPv4 addresses."""
    subnets = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [cidr]}])["Subnets"]
    subnet = (
        subnets[0]["SubnetId"]
        if subnets
        else ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    )
    eni = ec2.create_network_interface(
        SubnetId=subnet, Groups=group_ids, PrivateIpAddress=addresses[0]
    )["NetworkInterface"]["NetworkInterfaceId"]
    if addresses[1:]:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni, PrivateIpAddresses=list(addresses[1:])
        )


def shape(ruleset: RuleSet) -> dict[str, set[Match]]:
    """Chain -> the matches of its permission rules (which group or order does not matter)."""
    return {name: {r.match for r in rules(ruleset, name)} for name in ("ingress", "egress")}


def tcp(cidrs: tuple[str, ...], port: int, side: str = "dst") -> Match:
    peer = src(*cidrs)
    if side == "src":
        return Match(TCP, sources=peer, destination_ports=dport(port))
    return Match(TCP, destinations=peer, destination_ports=dport(port))


def udp(cidrs: tuple[str, ...], port: int, side: str = "dst") -> Match:
    peer = src(*cidrs)
    if side == "src":
        return Match(UDP, sources=peer, destination_ports=dport(port))
    return Match(UDP, destinations=peer, destination_ports=dport(port))


# Worked out from examples/*/deployment.yaml (the rules of tests/test_aws.py EXPECTED), per
# group, as read for an interface with that group alone: (IPv4 shape, IPv6 shape).
PL_APP_MEMBERS = ("192.0.2.140/31",)  # app interface: 192.0.2.140 and .141
PL_EXISTING_MEMBERS = ("192.0.2.150/32",)
PL_ENDPOINT_MEMBERS = ("192.0.2.70/32", "192.0.2.85/32")  # one per endpoint subnet
EXPECTED: dict[str, dict[str, tuple[dict[str, set[Match]], dict[str, set[Match]]]]] = {
    "public-https": {
        "netguard-acme-prod-app": (
            {
                "ingress": {tcp(("203.0.113.0/28",), 8443, "src")},
                "egress": {
                    tcp(("198.51.100.0/25",), 443),
                    tcp(("198.51.100.128/26",), 443),
                    tcp(("192.0.2.53/32",), 53),
                    udp(("192.0.2.53/32",), 53),
                    udp(("192.0.2.123/32",), 123),
                },
            },
            {
                "ingress": {tcp(("2001:db8:200::/48",), 8443, "src")},
                "egress": {
                    tcp(("2001:db8:100::/48",), 443),
                    tcp(("2001:db8:10::53/128",), 53),
                    udp(("2001:db8:10::53/128",), 53),
                },
            },
        ),
    },
    "vpn": {
        "netguard-acme-vpn-vpn-gateway": (
            {
                "ingress": {
                    udp(("203.0.113.200/31",), 500, "src"),
                    udp(("203.0.113.200/31",), 4500, "src"),
                    Match(frozenset({50}), sources=src("203.0.113.200/31")),
                },
                "egress": {
                    udp(("203.0.113.200/31",), 500),
                    udp(("203.0.113.200/31",), 4500),
                    Match(frozenset({50}), destinations=src("203.0.113.200/31")),
                },
            },
            {"ingress": set(), "egress": set()},
        ),
        "netguard-acme-vpn-app": (
            {
                "ingress": {tcp(("198.51.100.64/28",), 8443, "src")},
                "egress": {
                    tcp(("198.51.100.0/26",), 443),
                    tcp(("192.0.2.53/32",), 53),
                    udp(("192.0.2.53/32",), 53),
                },
            },
            {
                "ingress": {tcp(("2001:db8:100:20::/64",), 8443, "src")},
                "egress": {tcp(("2001:db8:100:10::/64",), 443)},
            },
        ),
    },
    "privatelink": {
        "netguard-acme-pl-endpoint": (
            {
                "ingress": {
                    tcp(("192.0.2.128/25",), 443, "src"),
                    tcp(PL_APP_MEMBERS, 443, "src"),
                    tcp(PL_EXISTING_MEMBERS, 443, "src"),
                },
                "egress": set(),
            },
            {"ingress": set(), "egress": set()},
        ),
        "netguard-acme-pl-app": (
            {
                "ingress": {tcp(("203.0.113.0/28",), 8443, "src")},
                "egress": {
                    tcp(PL_ENDPOINT_MEMBERS, 443),
                    tcp(("192.0.2.2/32",), 53),
                    udp(("192.0.2.2/32",), 53),
                },
            },
            {"ingress": set(), "egress": set()},
        ),
    },
}


def add_interfaces(ec2: Any, vpc: str, names: dict[str, str]) -> None:
    """The privatelink groups' members: the endpoint's interfaces in its two subnets, an
    application host (two addresses) and a host of the existing application group."""
    endpoint, app = names["netguard-acme-pl-endpoint"], names["netguard-acme-pl-app"]
    interface(ec2, vpc, "192.0.2.64/28", [endpoint], "192.0.2.70")
    interface(ec2, vpc, "192.0.2.80/28", [endpoint], "192.0.2.85")
    interface(ec2, vpc, "192.0.2.128/26", [app], "192.0.2.140", "192.0.2.141")
    interface(ec2, vpc, "192.0.2.128/26", [names["existing-app"]], "192.0.2.150")


def normalized(rulesets: list[RuleSet]) -> list[list[tuple[str, int, str, Match, str | None]]]:
    """What must agree between a live read and a read of the same answers from files."""
    return [
        [
            (r.chain, r.position, r.text, r.match, r.comment)
            for c in rs.chains.values()
            for r in c.rules
        ]
        for rs in rulesets
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_deployed_in_moto_read_back_live_and_from_json(
    name: str, ec2: Any, tmp_path: Path
) -> None:
    vpc, names = deploy(ec2, example(name))
    if name == "privatelink":
        add_interfaces(ec2, vpc, names)
    session = boto3.Session(region_name=REGION)
    for group_name, (want4, want6) in EXPECTED[name].items():
        gid = names[group_name]
        live = read_security_groups_live(session, REGION, group_ids=[gid])
        assert [shape(rs) for rs in live] == [want4, want6], group_name
        assert all(
            not r.match.unmodeled for rs in live for c in rs.chains.values() for r in c.rules
        )
        for rs in live:
            for r in rules(rs, "ingress") + rules(rs, "egress"):
                assert r.text.startswith(f"{gid} ")
                assert r.location == Location(
                    f"arn:aws:ec2:{REGION}:123456789012:security-group/{gid}"
                )
        # the same answers written as the AWS CLI would, then read from the files
        groups = ec2.describe_security_groups(GroupIds=[gid])
        enis = ec2.describe_network_interfaces()
        sg_file = write(tmp_path, json.dumps(groups, indent=4, default=str), f"{gid}.json")
        eni_file = write(tmp_path, json.dumps(enis, indent=4, default=str), "enis.json")
        from_files = read_security_groups(sg_file, network_interfaces=eni_file, group_ids=[gid])
        assert normalized(from_files) == normalized(live)
    # every group of the deployment at once: the union of their rules
    gids = [names[g] for g in EXPECTED[name]]
    union = read_security_groups_live(session, REGION, group_ids=gids)
    for family, rs in enumerate(union):
        assert shape(rs) == {
            chain: set().union(*(want[family][chain] for want in EXPECTED[name].values()))
            for chain in ("ingress", "egress")
        }


def test_live_whole_vpc_includes_the_default_group(ec2: Any) -> None:
    vpc, names = deploy(ec2, example("public-https"))
    [default] = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    did = default["GroupId"]
    # AWS's default group admits its own members (moto leaves the rule out: added here)
    ec2.authorize_security_group_ingress(
        GroupId=did, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": did}]}]
    )
    v4, v6 = read_security_groups_live(boto3.Session(region_name=REGION), REGION, vpc_id=vpc)
    assert v4.source == f"aws ec2 {REGION} {vpc}"
    ingress = table(v4, "ingress")
    # the default group admits its own members: none exist, so the reference is unresolved
    assert (
        f"{did} ingress all from {did}",
        Match(unmodeled=(f"source in security group {did}",)),
    ) in ingress
    assert (f"{did} egress all to 0.0.0.0/0", Match(destinations=src("0.0.0.0/0"))) in table(
        v4, "egress"
    )
    assert (
        shape(v6)["ingress"]
        == {Match(unmodeled=(f"source in security group {did}",))}
        | EXPECTED["public-https"]["netguard-acme-prod-app"][1]["ingress"]
    )
    assert (
        "2 security groups evaluated as if all groups were attached to one interface (select "
        "the groups of one interface to check that interface)" in messages(v4)
    )
    assert (
        f"security group {did} is not resolved (no network interface in "
        f"DescribeNetworkInterfaces in {REGION} has it): the rules that refer to it keep it as "
        "an unmodeled condition" in messages(v4)
    )
    assert names


def test_live_prefix_lists_resolved_like_the_files(ec2: Any, tmp_path: Path) -> None:
    vpc = ec2.create_vpc(CidrBlock="192.0.2.0/24")["Vpc"]["VpcId"]
    admins = ec2.create_managed_prefix_list(
        PrefixListName="admins",
        Entries=[{"Cidr": "198.51.100.0/26"}, {"Cidr": "198.51.100.64/26", "Description": "vpn"}],
        MaxEntries=5,
        AddressFamily="IPv4",
    )["PrefixList"]["PrefixListId"]
    vendor6 = ec2.create_managed_prefix_list(
        PrefixListName="vendor-v6",
        Entries=[{"Cidr": "2001:db8:100::/48"}],
        MaxEntries=5,
        AddressFamily="IPv6",
    )["PrefixList"]["PrefixListId"]
    gid = ec2.create_security_group(GroupName="pl", Description="pl", VpcId=vpc)["GroupId"]
    ec2.revoke_security_group_egress(
        GroupId=gid, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "PrefixListIds": [{"PrefixListId": admins}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 23,
                "ToPort": 23,
                "PrefixListIds": [{"PrefixListId": "pl-0eeeeeeeeeeeeeee1"}],
            },
        ],
    )
    ec2.authorize_security_group_egress(
        GroupId=gid,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "PrefixListIds": [{"PrefixListId": vendor6}],
            }
        ],
    )
    live = read_security_groups_live(boto3.Session(region_name=REGION), REGION, group_ids=[gid])
    v4, v6 = live
    missing = Match(
        TCP, destination_ports=dport(23), unmodeled=("source in prefix list pl-0eeeeeeeeeeeeeee1",)
    )
    assert table(v4, "ingress") == [
        (
            f"{gid} ingress tcp 22 from {admins} (admins)",
            Match(TCP, sources=src("198.51.100.0/25"), destination_ports=dport(22)),
        ),
        (f"{gid} ingress tcp 23 from pl-0eeeeeeeeeeeeeee1", missing),
    ]
    assert table(v6, "egress") == [
        (
            f"{gid} egress tcp 443 to {vendor6} (vendor-v6)",
            Match(TCP, destinations=src("2001:db8:100::/48"), destination_ports=dport(443)),
        )
    ]
    assert (
        f"prefix list pl-0eeeeeeeeeeeeeee1 is not resolved (DescribeManagedPrefixLists in "
        f"{REGION} does not return it): the rules that use it keep it as an unmodeled condition"
        in messages(v6)
    )
    # the files: describe-managed-prefix-lists, and the entries of each list, given apart
    described = ec2.describe_managed_prefix_lists(PrefixListIds=[admins, vendor6])
    entries = [
        {
            "PrefixListId": pl,
            "Entries": ec2.get_managed_prefix_list_entries(PrefixListId=pl)["Entries"],
        }
        for pl in (admins, vendor6)
    ]
    lists = {"PrefixLists": described["PrefixLists"] + entries}
    pl_file = write(tmp_path, json.dumps(lists, default=str), "pl.json")
    sg_file = write(tmp_path, json.dumps(ec2.describe_security_groups(GroupIds=[gid]), default=str))
    from_files = read_security_groups(sg_file, prefix_lists=pl_file, group_ids=[gid])
    assert normalized(from_files) == normalized(live)


def test_live_errors_name_the_aws_error_code(ec2: Any) -> None:
    with pytest.raises(AwsApiError) as exc:
        read_security_groups_live(
            boto3.Session(region_name=REGION), REGION, group_ids=["sg-0ddddddddddddddd1"]
        )
    assert exc.value.exit_code == EXIT_OPERATIONAL
    assert exc.value.code == "InvalidGroup.NotFound"
    assert str(exc.value).startswith(
        f"AWS EC2 DescribeSecurityGroups in {REGION} failed: InvalidGroup.NotFound: "
    )
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_botocore_errors_become_operational_errors() -> None:
    from botocore.exceptions import NoCredentialsError

    class Client:
        def get_paginator(self, name: str) -> Any:
            raise NoCredentialsError()

    class Session:
        def client(self, service: str, region_name: str) -> Client:
            assert (service, region_name) == ("ec2", REGION)
            return Client()

    with pytest.raises(NetguardError) as exc:
        read_security_groups_live(Session(), REGION)
    assert isinstance(exc.value, AwsApiError)
    assert exc.value.exit_code == EXIT_OPERATIONAL
    assert str(exc.value) == (
        f"AWS EC2 DescribeSecurityGroups in {REGION} failed: NoCredentialsError: "
        "Unable to locate credentials"
    )
