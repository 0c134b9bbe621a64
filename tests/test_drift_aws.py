"""``netguard drift`` against security groups in moto's EC2 (in-process, no network): live
reads through boto3 (``aws:REGION:sg-id``), describe-security-groups JSON, and ``--fix aws-api``
requests executed against moto, after which drift reports none.

Desired: examples/public-https (egress 198.51.100.0/25 + 198.51.100.128/26 and
2001:db8:100::/48 on TCP 443).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from netguard.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"
REGION = "eu-west-1"


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="192.0.2.0/24")["Vpc"]["VpcId"]
        gid = ec2.create_security_group(GroupName="vendor", Description="t", VpcId=vpc)["GroupId"]
        # A new group allows all egress: remove that, then add the hand-made allowlist.
        ec2.revoke_security_group_egress(
            GroupId=gid,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        ec2.authorize_security_group_egress(
            GroupId=gid,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpRanges": [{"CidrIp": "198.51.100.0/24"}, {"CidrIp": "203.0.113.0/24"}],
                    "Ipv6Ranges": [{"CidrIpv6": "2001:db8:100::/48"}],
                },
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": "192.0.2.0/24"}],
                },
            ],
        )
        yield ec2, gid


def drift(*args: object) -> Result:
    return CliRunner().invoke(main, ["drift", *(str(a) for a in args)])


def egress(result: Result, family: int) -> dict[str, Any]:
    doc = json.loads(result.stdout)
    (c,) = [x for x in doc["comparisons"] if x["direction"] == "egress" and x["family"] == family]
    return c


def test_live_and_file_agree_and_the_fix_runs_in_moto(
    group: tuple[Any, str], tmp_path: Path
) -> None:
    ec2, gid = group
    live = f"aws:{REGION}:{gid}"
    before = drift(EXAMPLE, "--actual", live, "--direction", "egress", "--format", "json")
    assert before.exit_code == 1, before.stderr
    c4 = egress(before, 4)
    # 198.51.100.0/24 minus (.0/25 + .128/26) = .192/26; 203.0.113.0/24 wholly; port 22 not.
    assert c4["extra"]["prefixes"] == ["198.51.100.192/26", "203.0.113.0/24"]
    assert c4["missing"]["prefixes"] == []
    assert egress(before, 6)["drift"] is False

    described = tmp_path / "sg.json"
    described.write_text(json.dumps(ec2.describe_security_groups(GroupIds=[gid]), default=str))
    from_file = drift(EXAMPLE, "--actual", described, "--direction", "egress", "--format", "json")
    # The same group read from describe-security-groups JSON gives the same drift.
    file_c4 = egress(from_file, 4)
    assert file_c4["extra"]["prefixes"] == c4["extra"]["prefixes"]
    assert file_c4["extra"]["addresses"] == c4["extra"]["addresses"] == 64 + 256

    fix = drift(EXAMPLE, "--actual", live, "--direction", "egress", "--fix", "aws-api")
    assert fix.exit_code == 1, fix.stderr
    doc = json.loads(fix.stdout)
    assert doc["version"] == 1
    actions = [r["action"] for r in doc["requests"]]
    # Authorize the kept part of the /24 first, then revoke the two entries.
    assert actions == ["AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress"]
    added = [r["IpRanges"][0]["CidrIp"] for r in doc["requests"][0]["parameters"]["IpPermissions"]]
    assert added == ["198.51.100.0/25", "198.51.100.128/26"]
    revoked = [
        r["IpRanges"][0]["CidrIp"] for r in doc["requests"][1]["parameters"]["IpPermissions"]
    ]
    assert revoked == ["198.51.100.0/24", "203.0.113.0/24"]
    for request in doc["requests"]:
        method = {
            "AuthorizeSecurityGroupEgress": ec2.authorize_security_group_egress,
            "RevokeSecurityGroupEgress": ec2.revoke_security_group_egress,
        }[request["action"]]
        method(**request["parameters"])
    after = drift(EXAMPLE, "--actual", live, "--direction", "egress", "--format", "json")
    assert after.exit_code == 0, after.stdout
    # The port-22 entry was left alone.
    perms = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    assert any(p.get("FromPort") == 22 for p in perms["IpPermissionsEgress"])


def test_fix_beyond_the_rules_per_group_quota_is_refused(
    group: tuple[Any, str], tmp_path: Path
) -> None:
    _, gid = group
    # 70 /32s wanted, one group of at most 60 rules: exit 2 with the quota named.
    want = tmp_path / "want.txt"
    want.write_text("".join(f"198.51.100.{2 * i}\n" for i in range(70)))
    res = drift("--desired", want, "--actual", f"aws:{REGION}:{gid}", "--direction", "egress",
                "--fix", "aws-api")  # fmt: skip
    assert res.exit_code == 2
    assert "rules per group" in res.stderr


def test_aws_api_error_is_exit_3(group: tuple[Any, str]) -> None:
    res = drift(EXAMPLE, "--actual", f"aws:{REGION}:sg-0000000000000dead", "--direction", "egress")
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "InvalidGroup" in res.stderr
    assert "Traceback" not in res.stderr
