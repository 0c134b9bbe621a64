"""AWS security-group targets (aws-cfn, terraform, aws-api), checked by real consumers.

- CloudFormation: cfn-lint on both files; ``yaml.safe_load(yaml) == json.loads(json)``.
- EC2 API: botocore's own request validation for every request, and the requests run in order
  against moto's EC2 backend (in-process, no network), then read back with
  DescribeSecurityGroups.
- Terraform JSON: structure of every resource and inline block (there is no terraform binary).

All three outputs are parsed back into one comparable form (group name, direction, protocol,
ports, peer) and must agree with each other and with expectations worked out by hand from the
example profiles. Quota tests build deployments in ``tmp_path`` from documentation ranges only.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters
from cfnlint.api import ManualArgs, lint
from moto import mock_aws

from netguard.compile import compile_policy
from netguard.errors import RenderError
from netguard.generate import GenerateOptions, run_generate
from netguard.model.policy import Policy
from netguard.profiles import load_deployment
from netguard.render import RENDERERS, Target, render_targets
from netguard.render.aws import api, cfn, plan_security_groups, terraform

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("public-https", "vpn", "privatelink")
AS_OF = dt.date(2026, 1, 1)
AWS_TARGETS = (Target.AWS_CFN, Target.TERRAFORM, Target.AWS_API)
AWS_DESCRIPTION = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}$")
PLACEHOLDER_EGRESS = {
    "IpProtocol": "-1",
    "CidrIp": "127.0.0.1/32",
}
PORTED = ("tcp", "udp", "icmp", "icmpv6")

Rule = tuple[str, str, str, int | None, int | None, str]
"""(group name, direction, IpProtocol, from port, to port, peer) with peer one of
``cidr:<prefix>``, ``pl:<prefix-list name>``, ``sg:<group name>``, ``sg-id:<id>``."""


# --- building policies ------------------------------------------------------------------------


def load(path: Path) -> Policy:
    """Deployment file -> Policy, as ``netguard generate`` does."""
    return compile_policy(load_deployment(path, as_of=AS_OF).profile)


def example(name: str) -> Policy:
    return load(ROOT / "examples" / name / "deployment.yaml")


def v4_hosts(count: int) -> list[str]:
    """``count`` non-adjacent /32s (every other address) from the documentation ranges."""
    out = [
        f"{net}.{i}/32" for net in ("198.51.100", "203.0.113", "192.0.2") for i in range(0, 256, 2)
    ]
    assert count <= len(out)
    return out[:count]


def v6_hosts(count: int) -> list[str]:
    """``count`` non-adjacent /128s in 2001:db8::/32."""
    return [f"2001:db8::{2 * i + 2:x}/128" for i in range(count)]


def deployment(
    tmp_path: Path,
    api_ranges: list[str],
    *,
    families: list[str] | None = None,
    dns: list[str] | None = None,
    aws: dict[str, Any] | None = None,
    ports: tuple[int, ...] = (443,),
    exceptions: list[dict[str, Any]] | None = None,
    vendor_name: str = "Aimyze",
    webhook_ranges: tuple[str, ...] = ("203.0.113.240/28",),
    receivers: tuple[str, ...] = ("192.0.2.20/32",),
    description: str = "quota test deployment",
) -> Policy:
    """A public-https deployment written to ``tmp_path`` and loaded like a user's file."""
    doc: dict[str, Any] = {
        "extends": "public-https",
        "name": "quota-test",
        "description": description,
        "vendor": {
            "name": vendor_name,
            "endpoints": [
                {"name": f"ep{i}", "host": f"ep{i}.aimyze.example", "port": p}
                for i, p in enumerate(ports)
            ],
            "api_ranges": api_ranges,
            "webhook_ranges": list(webhook_ranges),
        },
        "customer": {
            "egress_addresses": ["192.0.2.10/32"],
            "webhook_receivers": [
                {"name": "ingest", "addresses": list(receivers), "ports": [8443]}
            ],
            "dns_resolvers": dns or [],
        },
        "exceptions": exceptions or [],
        "aws": {"vpc_id": "vpc-0a1b2c3d4e5f60718", "region": "eu-west-1", **(aws or {})},
    }
    if families is not None:
        doc["families"] = families
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load(path)


def render(policy: Policy) -> dict[str, str]:
    return render_targets(policy, AWS_TARGETS)


# --- reading the outputs back -----------------------------------------------------------------


def _ports(protocol: str, lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
    """Comparable ports: none for protocols without ports; an omitted ICMPv6 range is every
    type and code, which AWS (and Terraform) write as -1/-1."""
    if protocol == "icmpv6" and lo is None:
        return -1, -1
    return (lo, hi) if protocol in PORTED else (None, None)


def cfn_rules(doc: dict[str, Any]) -> set[Rule]:
    """Every rule of a CloudFormation template, placeholders left out."""
    res = doc["Resources"]
    names = {
        k: v["Properties"]["GroupName"]
        for k, v in res.items()
        if v["Type"] == "AWS::EC2::SecurityGroup"
    }
    lists = {
        k: v["Properties"]["PrefixListName"]
        for k, v in res.items()
        if v["Type"] == "AWS::EC2::PrefixList"
    }

    def peer(r: dict[str, Any], side: str) -> str:
        if "CidrIp" in r:
            return f"cidr:{r['CidrIp']}"
        if "CidrIpv6" in r:
            return f"cidr:{r['CidrIpv6']}"
        if f"{side}PrefixListId" in r:
            return f"pl:{lists[r[f'{side}PrefixListId']['Ref']]}"
        ref = r[f"{side}SecurityGroupId"]
        if isinstance(ref, dict):
            return f"sg:{names[ref['Fn::GetAtt'][0]]}"
        return f"sg-id:{ref}"

    def add(out: set[Rule], group: str, direction: str, r: dict[str, Any]) -> None:
        if {k: r.get(k) for k in PLACEHOLDER_EGRESS} == PLACEHOLDER_EGRESS:
            return
        side = "Source" if direction == "ingress" else "Destination"
        lo, hi = _ports(r["IpProtocol"], r.get("FromPort"), r.get("ToPort"))
        rule = (group, direction, r["IpProtocol"], lo, hi, peer(r, side))
        assert rule not in out, f"duplicate rule {rule}"
        out.add(rule)

    out: set[Rule] = set()
    for logical_id, resource in res.items():
        props = resource["Properties"]
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for r in props.get("SecurityGroupIngress", []):
                add(out, names[logical_id], "ingress", r)
            for r in props["SecurityGroupEgress"]:
                add(out, names[logical_id], "egress", r)
        elif resource["Type"] in (
            "AWS::EC2::SecurityGroupIngress",
            "AWS::EC2::SecurityGroupEgress",
        ):
            direction = "ingress" if resource["Type"].endswith("Ingress") else "egress"
            add(out, names[props["GroupId"]["Fn::GetAtt"][0]], direction, props)
    return out


_TF_REF = re.compile(r"^\$\{(aws_security_group|aws_ec2_managed_prefix_list)\.([a-z0-9_]+)\.id\}$")


def tf_rules(doc: dict[str, Any]) -> set[Rule]:
    """Every rule of the Terraform document: inline blocks and rule resources."""
    res = doc["resource"]
    names = {k: v["name"] for k, v in res["aws_security_group"].items()}
    lists = {k: v["name"] for k, v in res.get("aws_ec2_managed_prefix_list", {}).items()}

    def ref(value: str) -> str:
        m = _TF_REF.match(value)
        if m is None:
            return f"sg-id:{value}"
        return f"sg:{names[m[2]]}" if m[1] == "aws_security_group" else f"pl:{lists[m[2]]}"

    out: set[Rule] = set()
    for group in res["aws_security_group"].values():
        for direction in ("ingress", "egress"):
            for b in group.get(direction, []):
                peers = [f"cidr:{c}" for c in b["cidr_blocks"] + b["ipv6_cidr_blocks"]] + [
                    ref(p) for p in b["prefix_list_ids"] + b["security_groups"]
                ]
                assert len(peers) == 1, b
                lo, hi = _ports(b["protocol"], b["from_port"], b["to_port"])
                out.add((group["name"], direction, b["protocol"], lo, hi, peers[0]))
    for direction in ("ingress", "egress"):
        for r in res.get(f"aws_vpc_security_group_{direction}_rule", {}).values():
            group = names[_TF_REF.match(r["security_group_id"])[2]]  # type: ignore[index]
            peer = (
                f"cidr:{r['cidr_ipv4']}"
                if "cidr_ipv4" in r
                else f"cidr:{r['cidr_ipv6']}"
                if "cidr_ipv6" in r
                else ref(r.get("prefix_list_id") or r["referenced_security_group_id"])
            )
            lo, hi = _ports(r["ip_protocol"], r.get("from_port"), r.get("to_port"))
            out.add((group, direction, r["ip_protocol"], lo, hi, peer))
    return out


def api_names(doc: dict[str, Any]) -> dict[str, str]:
    """Placeholder -> group or prefix-list name, read the documented way: the placeholder's
    text names the operation whose response holds the id."""
    out = {}
    for placeholder, text in doc["placeholders"].items():
        index = int(re.search(r"operations\[(\d+)\]", text)[1])  # type: ignore[index]
        params = doc["operations"][index]["parameters"]
        out[placeholder] = params.get("GroupName") or params["PrefixListName"]
    return out


def api_rules(doc: dict[str, Any]) -> set[Rule]:
    """Every rule authorised by the EC2 API requests."""
    names = api_names(doc)
    out: set[Rule] = set()
    for op in doc["operations"]:
        if not op["operation"].startswith("AuthorizeSecurityGroup"):
            continue
        direction = "ingress" if op["operation"].endswith("Ingress") else "egress"
        group = names[op["parameters"]["GroupId"]]
        for p in op["parameters"]["IpPermissions"]:
            peers = (
                [f"cidr:{r['CidrIp']}" for r in p.get("IpRanges", [])]
                + [f"cidr:{r['CidrIpv6']}" for r in p.get("Ipv6Ranges", [])]
                + [f"pl:{names[r['PrefixListId']]}" for r in p.get("PrefixListIds", [])]
                + [
                    f"sg:{names[r['GroupId']]}"
                    if r["GroupId"] in names
                    else f"sg-id:{r['GroupId']}"
                    for r in p.get("UserIdGroupPairs", [])
                ]
            )
            assert len(peers) == 1, p
            lo, hi = _ports(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
            out.add((group, direction, p["IpProtocol"], lo, hi, peers[0]))
    return out


def outputs(policy: Policy) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(CloudFormation, Terraform, EC2 API) documents, after checking the CloudFormation YAML
    and JSON files hold the same template and the three agree on every rule."""
    files = render(policy)
    assert set(files) == {
        "aws/cloudformation.yaml",
        "aws/cloudformation.json",
        "aws/security-groups.tf.json",
        "aws/ec2-api.json",
    }
    cfn_doc = json.loads(files["aws/cloudformation.json"])
    assert yaml.safe_load(files["aws/cloudformation.yaml"]) == cfn_doc
    tf_doc = json.loads(files["aws/security-groups.tf.json"])
    api_doc = json.loads(files["aws/ec2-api.json"])
    assert cfn_rules(cfn_doc) == tf_rules(tf_doc) == api_rules(api_doc)
    return cfn_doc, tf_doc, api_doc


def groups_of(cfn_doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """GroupName -> Properties of each AWS::EC2::SecurityGroup."""
    return {
        r["Properties"]["GroupName"]: r["Properties"]
        for r in cfn_doc["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroup"
    }


# --- expectations worked out by hand from examples/*/deployment.yaml ------------------------

PROD = "netguard-acme-prod-app"
EXPECTED: dict[str, set[Rule]] = {
    # api_ranges 198.51.100.0/25 + 198.51.100.128/26 cover .0-.191: no single prefix, so two;
    # both endpoints use 443; resolvers 192.0.2.53 and 2001:db8:10::53 for UDP and TCP 53;
    # exception ntp: UDP 123 to 192.0.2.123/32; webhooks TCP 8443 from both families (the
    # receiver has an address of each family).
    "public-https": {
        (PROD, "egress", "tcp", 443, 443, "cidr:198.51.100.0/25"),
        (PROD, "egress", "tcp", 443, 443, "cidr:198.51.100.128/26"),
        (PROD, "egress", "tcp", 443, 443, "cidr:2001:db8:100::/48"),
        (PROD, "egress", "tcp", 53, 53, "cidr:192.0.2.53/32"),
        (PROD, "egress", "tcp", 53, 53, "cidr:2001:db8:10::53/128"),
        (PROD, "egress", "udp", 53, 53, "cidr:192.0.2.53/32"),
        (PROD, "egress", "udp", 53, 53, "cidr:2001:db8:10::53/128"),
        (PROD, "egress", "udp", 123, 123, "cidr:192.0.2.123/32"),
        (PROD, "ingress", "tcp", 8443, 8443, "cidr:203.0.113.0/28"),
        (PROD, "ingress", "tcp", 8443, 8443, "cidr:2001:db8:200::/48"),
    },
    # VPN peers 203.0.113.200/32 and .201/32 are adjacent and aligned: one /31. IKE, NAT-T
    # and ESP (protocol 50, no ports) both ways on the gateway group; the app group carries
    # the in-tunnel API and webhook rules and DNS to the one IPv4 resolver.
    "vpn": {
        *{
            ("netguard-acme-vpn-vpn-gateway", d, proto, lo, hi, "cidr:203.0.113.200/31")
            for d in ("egress", "ingress")
            for proto, lo, hi in (("udp", 500, 500), ("udp", 4500, 4500), ("50", None, None))
        },
        ("netguard-acme-vpn-app", "egress", "tcp", 443, 443, "cidr:198.51.100.0/26"),
        ("netguard-acme-vpn-app", "egress", "tcp", 443, 443, "cidr:2001:db8:100:10::/64"),
        ("netguard-acme-vpn-app", "egress", "tcp", 53, 53, "cidr:192.0.2.53/32"),
        ("netguard-acme-vpn-app", "egress", "udp", 53, 53, "cidr:192.0.2.53/32"),
        ("netguard-acme-vpn-app", "ingress", "tcp", 8443, 8443, "cidr:198.51.100.64/28"),
        ("netguard-acme-vpn-app", "ingress", "tcp", 8443, 8443, "cidr:2001:db8:100:20::/64"),
    },
    # The endpoint group admits TCP 443 from the application CIDR, the listed application
    # group and the generated app group; the app group reaches the endpoint by reference.
    # The receiver has only an IPv4 address, so the webhook rule exists only for IPv4.
    "privatelink": {
        ("netguard-acme-pl-endpoint", "ingress", "tcp", 443, 443, "cidr:192.0.2.128/25"),
        ("netguard-acme-pl-endpoint", "ingress", "tcp", 443, 443, "sg-id:sg-0a1b2c3d4e5f60718"),
        ("netguard-acme-pl-endpoint", "ingress", "tcp", 443, 443, "sg:netguard-acme-pl-app"),
        ("netguard-acme-pl-app", "egress", "tcp", 443, 443, "sg:netguard-acme-pl-endpoint"),
        ("netguard-acme-pl-app", "egress", "tcp", 53, 53, "cidr:192.0.2.2/32"),
        ("netguard-acme-pl-app", "egress", "udp", 53, 53, "cidr:192.0.2.2/32"),
        ("netguard-acme-pl-app", "ingress", "tcp", 8443, 8443, "cidr:203.0.113.0/28"),
    },
}


# --- registry and examples --------------------------------------------------------------------


def test_the_three_targets_are_registered() -> None:
    assert RENDERERS[Target.AWS_CFN] is cfn.CloudFormationRenderer
    assert RENDERERS[Target.TERRAFORM] is terraform.TerraformRenderer
    assert RENDERERS[Target.AWS_API] is api.Ec2ApiRenderer


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_give_the_expected_rules_in_all_three_targets(name: str) -> None:
    cfn_doc, _, _ = outputs(example(name))
    assert cfn_rules(cfn_doc) == EXPECTED[name]


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_cfn_lint_passes(name: str, suffix: str) -> None:
    text = render(example(name))[f"aws/cloudformation.{suffix}"]
    matches = lint(text, config=ManualArgs(regions=["eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_yaml_template_has_one_cidr_per_line() -> None:
    text = render(example("public-https"))["aws/cloudformation.yaml"]
    for line in text.splitlines():
        assert len(re.findall(r"Cidr(Ip|Ipv6)?: ", line)) <= 1, line
    assert '"!' not in text and "!Ref" not in text and "!GetAtt" not in text


def test_output_is_byte_identical_across_runs() -> None:
    assert render(example("privatelink")) == render(example("privatelink"))
    assert render(example("vpn")) == render_targets(example("vpn"), reversed(AWS_TARGETS))


def test_privatelink_endpoint_resources() -> None:
    cfn_doc, tf_doc, api_doc = outputs(example("privatelink"))
    [endpoint] = [
        r["Properties"]
        for r in cfn_doc["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    ]
    assert endpoint == {
        "VpcEndpointType": "Interface",
        "ServiceName": "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0",
        "VpcId": "vpc-0a1b2c3d4e5f60718",
        "SubnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"],
        "SecurityGroupIds": [{"Fn::GetAtt": ["EndpointSecurityGroup", "GroupId"]}],
        "PrivateDnsEnabled": True,
    }
    tf_ep = tf_doc["resource"]["aws_vpc_endpoint"]["vendor"]
    assert tf_ep["vpc_endpoint_type"] == "Interface"
    assert tf_ep["security_group_ids"] == ["${aws_security_group.endpoint.id}"]
    assert tf_ep["subnet_ids"] == endpoint["SubnetIds"]
    assert tf_ep["private_dns_enabled"] is True
    [api_ep] = [
        o["parameters"] for o in api_doc["operations"] if o["operation"] == "CreateVpcEndpoint"
    ]
    assert api_names(api_doc)[api_ep["SecurityGroupIds"][0]] == "netguard-acme-pl-endpoint"
    # The endpoint group admits the app group, which refers back to the endpoint group: the
    # template must not be circular (cfn-lint E3004 would say so; checked here directly too).
    standalone = [
        r for r in cfn_doc["Resources"].values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"
    ]
    assert [r["Properties"]["SourceSecurityGroupId"] for r in standalone] == [
        {"Fn::GetAtt": ["AppSecurityGroup", "GroupId"]}
    ]


# --- EC2 API: botocore validation and moto ---------------------------------------------------


def _substitute(value: Any, ids: dict[str, str]) -> Any:
    """Replace whole-string placeholders, as the file's documentation says."""
    if isinstance(value, dict):
        return {k: _substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ids) for v in value]
    if isinstance(value, str) and value.startswith("${"):
        return ids[value]
    return value


def _validate_requests(api_doc: dict[str, Any]) -> int:
    model = botocore.session.get_session().get_service_model("ec2")
    ids = {
        p: ("pl-0123456789abcdef0" if "PrefixListId" in p else "sg-0123456789abcdef0")
        for p in api_doc["placeholders"]
    }
    ops = api_doc["operations"] + api_doc["if_vpc_has_ipv6"]["operations"]
    for op in ops:
        assert set(op) == {"operation", "parameters"}
        shape = model.operation_model(op["operation"]).input_shape
        validate_parameters(_substitute(op["parameters"], ids), shape)
    return len(ops)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_ec2_request_passes_botocore_validation(name: str) -> None:
    _, _, api_doc = outputs(example(name))
    assert _validate_requests(api_doc) > 0


def test_botocore_validation_catches_a_bad_request() -> None:
    """The check above is not vacuous: a misspelt member is refused."""
    from botocore.exceptions import ParamValidationError

    shape = (
        botocore.session.get_session()
        .get_service_model("ec2")
        .operation_model("AuthorizeSecurityGroupEgress")
        .input_shape
    )
    with pytest.raises(ParamValidationError):
        validate_parameters({"GroupId": "sg-1", "IpPermissions": [{"IpProtocl": "tcp"}]}, shape)


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def run_in_moto(api_doc: dict[str, Any], policy: Policy) -> set[Rule]:
    """Run the requests in order against moto's EC2 and read the groups back as rules.

    moto needs existing VPC, subnets and referenced groups: they are created first and
    substituted for the profile's ids. Workaround: moto 5 fails on a permission without
    FromPort (IP protocol 50, icmpv6), which AWS accepts (ports are ignored for protocols other
    than TCP, UDP and ICMP, and an omitted ICMPv6 range is every type and code: EC2 API
    Reference, AuthorizeSecurityGroupIngress), so -1/-1 is added for moto only.
    """
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    vpc = ec2.create_vpc(CidrBlock="192.0.2.0/24")["Vpc"]["VpcId"]
    ids: dict[str, str] = {policy.aws.vpc_id: vpc}
    pl = policy.privatelink
    if pl is not None:
        for n, subnet in enumerate(pl.subnet_ids):
            subnet_cidr = f"192.0.2.{64 * n}/26"
            created = ec2.create_subnet(VpcId=vpc, CidrBlock=subnet_cidr)
            ids[subnet] = created["Subnet"]["SubnetId"]
        for group in pl.application_security_groups:
            ids[group] = ec2.create_security_group(
                GroupName=f"existing-{group}", Description="existing", VpcId=vpc
            )["GroupId"]
    names = api_names(api_doc)
    for op in api_doc["operations"]:
        known = {k: v for k, v in ids.items() if k.startswith("${")}
        params = _substitute(op["parameters"], known)
        text = json.dumps(params)
        for old, new in ids.items():
            if not old.startswith("${"):
                text = text.replace(json.dumps(old), json.dumps(new))
        params = json.loads(text)
        for perm in params.get("IpPermissions", []):
            if perm["IpProtocol"] != "-1":
                perm.setdefault("FromPort", -1)
                perm.setdefault("ToPort", -1)
        response = getattr(ec2, _snake(op["operation"]))(**params)
        if op["operation"] == "CreateSecurityGroup":
            [ph] = [p for p, n in names.items() if n == params["GroupName"]]
            ids[ph] = response["GroupId"]
        elif op["operation"] == "CreateManagedPrefixList":
            [ph] = [p for p, n in names.items() if n == params["PrefixListName"]]
            ids[ph] = response["PrefixList"]["PrefixListId"]
    by_id = {v: names[k] for k, v in ids.items() if k in names}
    external = {v: k for k, v in ids.items() if k.startswith("sg-")}
    out: set[Rule] = set()
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    for g in groups["SecurityGroups"]:
        if g["GroupName"] not in names.values():
            continue
        for direction, perms in (
            ("ingress", g["IpPermissions"]),
            ("egress", g["IpPermissionsEgress"]),
        ):
            for p in perms:
                lo, hi = _ports(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
                peers = (
                    [f"cidr:{r['CidrIp']}" for r in p["IpRanges"]]
                    + [f"cidr:{r['CidrIpv6']}" for r in p["Ipv6Ranges"]]
                    + [f"pl:{by_id[r['PrefixListId']]}" for r in p["PrefixListIds"]]
                    + [
                        f"sg:{by_id[r['GroupId']]}"
                        if r["GroupId"] in by_id
                        else f"sg-id:{external[r['GroupId']]}"
                        for r in p["UserIdGroupPairs"]
                    ]
                )
                for peer in peers:
                    out.add((g["GroupName"], direction, p["IpProtocol"], lo, hi, peer))
    return out


@pytest.fixture
def moto_ec2(monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.mark.parametrize("name", EXAMPLES)
def test_ec2_requests_run_in_order_and_leave_exactly_the_plan(name: str, moto_ec2: Any) -> None:
    """After the requests, each group holds exactly the planned rules: in particular no
    allow-all egress rule is left (it was revoked)."""
    policy = example(name)
    _, _, api_doc = outputs(policy)
    assert run_in_moto(api_doc, policy) == EXPECTED[name]


# --- Terraform structure ----------------------------------------------------------------------

INLINE_TYPES = {
    "cidr_blocks": list,
    "ipv6_cidr_blocks": list,
    "prefix_list_ids": list,
    "security_groups": list,
    "self": bool,
    "description": str,
    "from_port": int,
    "to_port": int,
    "protocol": str,
}


def check_terraform(tf_doc: dict[str, Any]) -> None:
    """Every inline block has all nine attributes with the right types; every reference names
    a declared resource; each group's direction is either inline or rule resources, not both."""
    assert tf_doc["terraform"]["required_providers"]["aws"]["source"] == "hashicorp/aws"
    res = tf_doc["resource"]
    declared = {f"{t}.{n}" for t, body in res.items() for n in body}
    text = json.dumps(tf_doc)
    for m in re.finditer(r"(?<!\$)\$\{([^}]*)\}", text):
        target = m[1].removesuffix(".id")
        assert target in declared, f"unescaped or dangling interpolation {m[0]}"
    rule_targets = {
        (r["security_group_id"], direction)
        for direction in ("ingress", "egress")
        for r in res.get(f"aws_vpc_security_group_{direction}_rule", {}).values()
    }
    for name, group in res["aws_security_group"].items():
        assert set(group) <= {"//", "name", "description", "vpc_id", "ingress", "egress", "tags"}
        for direction in ("ingress", "egress"):
            managed_by_rules = (f"${{aws_security_group.{name}.id}}", direction) in rule_targets
            assert (direction in group) != managed_by_rules, (name, direction)
            for block in group.get(direction, []):
                assert set(block) == set(INLINE_TYPES), block
                for key, kind in INLINE_TYPES.items():
                    assert type(block[key]) is kind, (key, block)
                assert all(
                    isinstance(x, str)
                    for k in (
                        "cidr_blocks",
                        "ipv6_cidr_blocks",
                        "prefix_list_ids",
                        "security_groups",
                    )
                    for x in block[k]
                )
                assert block["self"] is False
                assert AWS_DESCRIPTION.match(block["description"].replace("$${", "${"))
                if block["protocol"] in ("tcp", "udp"):
                    assert 0 <= block["from_port"] <= block["to_port"] <= 65535
                elif block["protocol"] in ("-1", "50"):
                    assert block["from_port"] == block["to_port"] == 0
                elif block["protocol"] == "icmpv6":
                    assert block["from_port"] == block["to_port"] == -1


@pytest.mark.parametrize("name", EXAMPLES)
def test_terraform_structure(name: str) -> None:
    _, tf_doc, _ = outputs(example(name))
    check_terraform(tf_doc)


def test_terraform_privatelink_uses_rule_resources_for_the_endpoint_ingress() -> None:
    _, tf_doc, _ = outputs(example("privatelink"))
    groups = tf_doc["resource"]["aws_security_group"]
    assert "ingress" not in groups["endpoint"]
    assert groups["endpoint"]["egress"] == []
    rules = tf_doc["resource"]["aws_vpc_security_group_ingress_rule"]
    assert [
        r.get("cidr_ipv4") or r.get("referenced_security_group_id") for r in rules.values()
    ] == ["192.0.2.128/25", "sg-0a1b2c3d4e5f60718", "${aws_security_group.app.id}"]


# --- fail closed ------------------------------------------------------------------------------


def test_group_without_egress_gets_the_placeholder_and_the_api_revokes_the_default() -> None:
    cfn_doc, tf_doc, api_doc = outputs(example("privatelink"))
    endpoint = groups_of(cfn_doc)["netguard-acme-pl-endpoint"]
    [rule] = endpoint["SecurityGroupEgress"]
    assert {k: rule[k] for k in ("IpProtocol", "CidrIp")} == PLACEHOLDER_EGRESS
    assert "FromPort" not in rule and rule["Description"].startswith("default-deny-egress: ")
    assert tf_doc["resource"]["aws_security_group"]["endpoint"]["egress"] == []
    # Every CreateSecurityGroup is followed at once by the revocation of the IPv4 allow-all.
    ops = api_doc["operations"]
    names = api_names(api_doc)
    created = [i for i, o in enumerate(ops) if o["operation"] == "CreateSecurityGroup"]
    assert len(created) == 2
    for i in created:
        revoke = ops[i + 1]
        assert revoke["operation"] == "RevokeSecurityGroupEgress"
        assert names[revoke["parameters"]["GroupId"]] == ops[i]["parameters"]["GroupName"]
        assert revoke["parameters"]["IpPermissions"] == [
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ]
    egress_to = {
        names[o["parameters"]["GroupId"]]
        for o in ops
        if o["operation"] == "AuthorizeSecurityGroupEgress"
    }
    assert egress_to == {"netguard-acme-pl-app"}
    ipv6 = api_doc["if_vpc_has_ipv6"]["operations"]
    assert [o["parameters"]["IpPermissions"] for o in ipv6] == [
        [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    ] * 2


def test_groups_with_egress_rules_have_no_placeholder() -> None:
    cfn_doc, _, _ = outputs(example("public-https"))
    for props in groups_of(cfn_doc).values():
        assert all(r.get("CidrIp") != "127.0.0.1/32" for r in props["SecurityGroupEgress"])


def test_ipv4_only_profile_has_no_ipv6_rule_and_no_any_address(tmp_path: Path) -> None:
    policy = deployment(
        tmp_path,
        ["198.51.100.0/24", "2001:db8:100::/48"],
        families=["ipv4"],
        dns=["192.0.2.53", "2001:db8::53"],
        webhook_ranges=("203.0.113.0/28", "2001:db8:200::/48"),
        receivers=("192.0.2.20/32", "2001:db8:10::20/128"),
        exceptions=[
            {
                "name": "v6only",
                "reason": "an IPv6-only peer",
                "expires": "2099-12-31",
                "direction": "egress",
                "protocol": "tcp",
                "ports": [22],
                "peers": ["2001:db8:99::/48"],
            }
        ],
    )
    cfn_doc, tf_doc, api_doc = outputs(policy)
    rules = cfn_rules(cfn_doc)
    assert all(":" not in peer.removeprefix("cidr:") for *_, peer in rules)
    # The exception's peer set is empty in IPv4: no rule at all, never an any-address rule.
    assert not any(r[4] == 22 for r in rules)
    for text in (json.dumps(cfn_doc), json.dumps(tf_doc), json.dumps(api_doc["operations"])):
        assert "CidrIpv6" not in text and '0.0.0.0/0", "Desc' not in text
        assert "2001:db8" not in text and "::/0" not in text
    assert all(
        b["ipv6_cidr_blocks"] == []
        for g in tf_doc["resource"]["aws_security_group"].values()
        for d in ("ingress", "egress")
        for b in g.get(d, [])
    )
    assert ("netguard-quota-test-app", "egress", "tcp", 443, 443, "cidr:198.51.100.0/24") in rules


# --- quotas -----------------------------------------------------------------------------------


def _egress_v4(props: dict[str, Any]) -> list[str]:
    return [r["CidrIp"] for r in props["SecurityGroupEgress"] if "CidrIp" in r]


def test_150_prefixes_split_into_three_groups(tmp_path: Path) -> None:
    hosts = v4_hosts(150)
    policy = deployment(tmp_path, hosts, dns=["192.0.2.53"])
    cfn_doc, tf_doc, api_doc = outputs(policy)
    groups = groups_of(cfn_doc)
    # 150 vendor prefixes + 2 DNS rules = 152 egress IPv4 rules: ceil(152 / 60) = 3 groups.
    assert sorted(groups) == [f"netguard-quota-test-app-{i}" for i in (1, 2, 3)]
    assert all(len(_egress_v4(p)) <= 60 for p in groups.values())
    vendor = [c for p in groups.values() for c in _egress_v4(p) if c != "192.0.2.53/32"]
    assert sorted(vendor) == sorted(hosts) and len(vendor) == 150
    assert [len(_egress_v4(groups[f"netguard-quota-test-app-{i}"])) for i in (1, 2, 3)] == [
        60,
        60,
        32,
    ]
    check_terraform(tf_doc)
    _validate_requests(api_doc)
    assert lint(json.dumps(cfn_doc), config=ManualArgs(regions=["eu-west-1"])) == []


def test_ipv4_and_ipv6_are_counted_separately(tmp_path: Path) -> None:
    policy = deployment(tmp_path, v4_hosts(59) + v6_hosts(59))
    cfn_doc, _, _ = outputs(policy)
    [(name, props)] = groups_of(cfn_doc).items()
    assert name == "netguard-quota-test-app"
    assert len(_egress_v4(props)) == 59
    assert len([r for r in props["SecurityGroupEgress"] if "CidrIpv6" in r]) == 59


def test_sixty_one_prefixes_need_two_groups(tmp_path: Path) -> None:
    cfn_doc, _, _ = outputs(deployment(tmp_path, v4_hosts(61)))
    assert sorted(groups_of(cfn_doc)) == ["netguard-quota-test-app-1", "netguard-quota-test-app-2"]


def test_each_port_range_is_a_rule(tmp_path: Path) -> None:
    # 40 prefixes x 2 endpoint ports (443, 8443) = 80 egress IPv4 rules: two groups.
    cfn_doc, _, _ = outputs(deployment(tmp_path, v4_hosts(40), ports=(443, 8443)))
    groups = groups_of(cfn_doc)
    assert len(groups) == 2
    assert sum(len(_egress_v4(p)) for p in groups.values()) == 80


def test_too_many_prefixes_raise_before_anything_is_written(tmp_path: Path) -> None:
    # 5 groups x 60 rules = 300 egress IPv4 rules at most; 301 prefixes cannot fit.
    policy = deployment(tmp_path, v4_hosts(301))
    for target in AWS_TARGETS:
        with pytest.raises(RenderError) as info:
            render_targets(policy, [target])
        message = str(info.value)
        assert "vendor-api (301 IPv4 prefixes)" in message
        assert "groups_per_interface 5" in message and "rules_per_group 60" in message
        assert "at most 300" in message
    out = tmp_path / "out"
    options = GenerateOptions(
        tmp_path / "deployment.yaml", out, targets=list(AWS_TARGETS), as_of=AS_OF
    )
    with pytest.raises(RenderError):
        run_generate(options, err=io.StringIO())
    assert not out.exists() or not any(out.iterdir())


def test_rules_times_groups_limits_the_group_count(tmp_path: Path) -> None:
    # max_rules_times_groups 120 with 60 rules per group allows 2 groups: 150 rules do not fit.
    policy = deployment(tmp_path, v4_hosts(150), aws={"quotas": {"max_rules_times_groups": 120}})
    with pytest.raises(RenderError, match="max_rules_times_groups 120"):
        render(policy)


def test_prefix_lists_count_their_max_entries(tmp_path: Path) -> None:
    # 80 prefixes x 2 ports = 160 inline rules > 100: the list becomes one prefix list of 80
    # entries. Each of the two references (443, 8443) counts 80 rules, and 80 + 80 > 100, so
    # they cannot share a group: two groups of one reference each. The webhook rule joins the
    # first group.
    hosts = v4_hosts(80)
    policy = deployment(
        tmp_path,
        hosts,
        ports=(443, 8443),
        aws={"prefix_lists": True, "quotas": {"rules_per_group": 100}},
    )
    cfn_doc, tf_doc, api_doc = outputs(policy)
    [plist] = [
        r["Properties"]
        for r in cfn_doc["Resources"].values()
        if r["Type"] == "AWS::EC2::PrefixList"
    ]
    assert plist["PrefixListName"] == "netguard-quota-test-vendor-api-ipv4"
    assert plist["AddressFamily"] == "IPv4"
    assert plist["MaxEntries"] == 80
    assert [e["Cidr"] for e in plist["Entries"]] == hosts
    groups = groups_of(cfn_doc)
    pl_refs = {
        name: [(r["FromPort"], r["DestinationPrefixListId"]) for r in p["SecurityGroupEgress"]]
        for name, p in groups.items()
    }
    [logical] = [k for k, r in cfn_doc["Resources"].items() if r["Type"] == "AWS::EC2::PrefixList"]
    ref = {"Ref": logical}
    assert pl_refs == {
        "netguard-quota-test-app-1": [(443, ref)],
        "netguard-quota-test-app-2": [(8443, ref)],
    }
    assert "SecurityGroupIngress" not in groups["netguard-quota-test-app-2"]
    assert len(groups["netguard-quota-test-app-1"]["SecurityGroupIngress"]) == 1
    creates = [o for o in api_doc["operations"] if o["operation"] == "CreateManagedPrefixList"]
    assert [o["parameters"]["MaxEntries"] for o in creates] == [80]
    assert api_doc["operations"][0] == creates[0]  # created before any group refers to it
    check_terraform(tf_doc)
    tf_pl = tf_doc["resource"]["aws_ec2_managed_prefix_list"]["vendor_api_ipv4"]
    assert tf_pl["max_entries"] == 80 and [e["cidr"] for e in tf_pl["entry"]] == hosts
    _validate_requests(api_doc)
    for suffix in ("yaml", "json"):
        text = render(policy)[f"aws/cloudformation.{suffix}"]
        assert lint(text, config=ManualArgs(regions=["eu-west-1"])) == []


def test_prefix_lists_run_in_moto(tmp_path: Path, moto_ec2: Any) -> None:
    policy = deployment(
        tmp_path,
        v4_hosts(80),
        ports=(443, 8443),
        aws={"prefix_lists": True, "quotas": {"rules_per_group": 100}},
    )
    cfn_doc, _, api_doc = outputs(policy)
    assert run_in_moto(api_doc, policy) == cfn_rules(cfn_doc)


def test_a_prefix_list_heavier_than_a_group_is_refused(tmp_path: Path) -> None:
    policy = deployment(
        tmp_path, v4_hosts(150), aws={"prefix_lists": True, "quotas": {"rules_per_group": 100}}
    )
    with pytest.raises(RenderError) as info:
        render(policy)
    message = str(info.value)
    assert "netguard-quota-test-vendor-api-ipv4" in message
    assert "150 IPv4 prefixes" in message and "max-entries 150" in message
    assert "rules_per_group 100" in message


def test_prefix_lists_are_not_used_when_everything_fits(tmp_path: Path) -> None:
    policy = deployment(tmp_path, v4_hosts(20), aws={"prefix_lists": True})
    cfn_doc, tf_doc, _ = outputs(policy)
    assert not any(r["Type"] == "AWS::EC2::PrefixList" for r in cfn_doc["Resources"].values())
    assert "aws_ec2_managed_prefix_list" not in tf_doc["resource"]
    assert plan_security_groups(policy).prefix_lists == ()


# --- descriptions and hostile text ------------------------------------------------------------


def test_hostile_text_stays_data_everywhere(tmp_path: Path) -> None:
    vendor = "Evil\" corp: {x} # ${jndi:ldap} %{if 1}' -\u00e9"
    policy = deployment(
        tmp_path,
        ["198.51.100.0/24", "2001:db8:100::/48"],
        vendor_name=vendor,
        description="emoji \U0001f600 and 'quotes\" and # not a comment",
        exceptions=[
            {
                "name": "ping",
                "reason": 'ping ${var.x} "quoted": #not-a-comment',
                "expires": "2099-12-31",
                "direction": "egress",
                "protocol": "icmp",
                "peers": ["192.0.2.99/32", "2001:db8::99/128"],
            }
        ],
    )
    cfn_doc, tf_doc, api_doc = outputs(policy)
    check_terraform(tf_doc)
    _validate_requests(api_doc)
    for suffix in ("yaml", "json"):
        text = render(policy)[f"aws/cloudformation.{suffix}"]
        assert lint(text, config=ManualArgs(regions=["eu-west-1"])) == []
    rules = cfn_rules(cfn_doc)
    # ICMP: every type and code is -1/-1; IPv6 uses icmpv6.
    assert ("netguard-quota-test-app", "egress", "icmp", -1, -1, "cidr:192.0.2.99/32") in rules
    v6_rule = ("netguard-quota-test-app", "egress", "icmpv6", -1, -1, "cidr:2001:db8::99/128")
    assert v6_rule in rules
    [v6_icmp] = [
        r
        for r in groups_of(cfn_doc)["netguard-quota-test-app"]["SecurityGroupEgress"]
        if r["IpProtocol"] == "icmpv6"
    ]
    assert "FromPort" not in v6_icmp and "ToPort" not in v6_icmp
    descriptions = [
        r["Description"]
        for p in groups_of(cfn_doc).values()
        for r in p.get("SecurityGroupIngress", []) + p["SecurityGroupEgress"]
    ]
    descriptions += [p["GroupDescription"] for p in groups_of(cfn_doc).values()]
    for d in descriptions:
        assert AWS_DESCRIPTION.match(d), d
    assert all(re.match(r"^[a-z0-9-]+: ", d) for d in descriptions[:-1])
    tf_text = json.dumps(tf_doc)
    # '%' is not an AWS description character (it became '_'); '${' is, and is escaped.
    assert "$${jndi:ldap}" in tf_text and "$${var.x}" in tf_text and "%{" not in tf_text
    assert terraform.tf_literal("a ${b} %{c}") == "a $${b} %%{c}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_rule_descriptions_start_with_the_rule_id(name: str) -> None:
    policy = example(name)
    ids = {r.id for r in policy.rules} | {"endpoint-https-in", "default-deny-egress"}
    cfn_doc, _, _ = outputs(policy)
    for props in groups_of(cfn_doc).values():
        for r in props.get("SecurityGroupIngress", []) + props["SecurityGroupEgress"]:
            assert r["Description"].split(":")[0] in ids
            assert AWS_DESCRIPTION.match(r["Description"])


def test_webhook_receiver_address_limitation_is_documented() -> None:
    """A security group cannot match the destination: the receiver addresses are named in the
    group's notes (CloudFormation Metadata and comment, Terraform comment)."""
    files = render(example("public-https"))
    note = (
        "ingress-webhook-ingest: a security group cannot match the destination address; "
        "attach this group only to the network interfaces of the receivers 192.0.2.20/32, "
        "2001:db8:10::20/128"
    )
    cfn_doc = json.loads(files["aws/cloudformation.json"])
    assert cfn_doc["Resources"]["AppSecurityGroup"]["Metadata"]["netguard"]["notes"] == [note]
    assert f"    # {note}\n" in files["aws/cloudformation.yaml"]
    tf_doc = json.loads(files["aws/security-groups.tf.json"])
    assert tf_doc["resource"]["aws_security_group"]["app"]["//"] == note
    api_doc = json.loads(files["aws/ec2-api.json"])
    assert api_doc["group_notes"] == {"netguard-acme-prod-app": [note]}


def test_privatelink_with_a_split_app_role(tmp_path: Path, moto_ec2: Any) -> None:
    """70 exception peers + 2 DNS rules + the endpoint reference = 73 egress IPv4 rules: two
    app groups. The endpoint admits the role through its first group (all groups of a role are
    attached together), and the template stays acyclic for cfn-lint and runs in moto."""
    doc = yaml.safe_load((ROOT / "examples" / "privatelink" / "deployment.yaml").read_text())
    doc["exceptions"] = [
        {
            "name": "ssh",
            "reason": "bastion access",
            "expires": "2099-12-31",
            "direction": "egress",
            "protocol": "tcp",
            "ports": [22],
            "peers": v4_hosts(70),
        }
    ]
    path = tmp_path / "deployment.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    policy = load(path)
    cfn_doc, tf_doc, api_doc = outputs(policy)
    groups = groups_of(cfn_doc)
    assert sorted(groups) == [
        "netguard-acme-pl-app-1",
        "netguard-acme-pl-app-2",
        "netguard-acme-pl-endpoint",
    ]
    rules = cfn_rules(cfn_doc)
    endpoint_refs = {r[5] for r in rules if r[0] == "netguard-acme-pl-endpoint"}
    assert "sg:netguard-acme-pl-app-1" in endpoint_refs
    assert "sg:netguard-acme-pl-app-2" not in endpoint_refs
    ssh = [r[5] for r in rules if r[3] == 22]
    assert sorted(ssh) == sorted(f"cidr:{h}" for h in v4_hosts(70))
    for suffix in ("yaml", "json"):
        text = render(policy)[f"aws/cloudformation.{suffix}"]
        assert lint(text, config=ManualArgs(regions=["eu-west-1"])) == []
    check_terraform(tf_doc)
    _validate_requests(api_doc)
    assert run_in_moto(api_doc, policy) == rules


def test_generated_groups_pass_check_read_back_from_ec2(tmp_path: Path, moto_ec2: Any) -> None:
    """netguard's own security groups for public-https, created in moto's EC2 and read back
    with describe-security-groups, are compliant: a group cannot name the local address, so
    the webhook receivers' addresses are not required of it (regression: every webhook rule
    was NG102, 'dst not 192.0.2.20/32', so netguard's own AWS output failed its check)."""
    from netguard.check import CheckOptions, build_report

    policy = example("public-https")
    _, _, api_doc = outputs(policy)
    run_in_moto(api_doc, policy)
    ec2 = boto3.client("ec2", region_name="eu-west-1")
    names = list(api_names(api_doc).values())
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": names}])
    path = tmp_path / "sg.json"
    path.write_text(json.dumps({"SecurityGroups": groups["SecurityGroups"]}, default=str))
    report = build_report(
        CheckOptions(
            deployment=ROOT / "examples" / "public-https" / "deployment.yaml",
            configs=(path,),
            as_of=AS_OF,
        )
    )
    assert report.compliant, [(f.code, f.message) for f in report.findings]
    # The webhook rule is still checked on its sources: a group admitting 8443 from anywhere
    # is found (the same groups with the webhook source widened to 0.0.0.0/0).
    widened = json.loads(path.read_text())
    for group in widened["SecurityGroups"]:
        for perm in group["IpPermissions"]:
            for r in perm["IpRanges"]:
                if r["CidrIp"] == "203.0.113.0/28":
                    r["CidrIp"] = "0.0.0.0/0"
    path.write_text(json.dumps(widened))
    report = build_report(
        CheckOptions(
            deployment=ROOT / "examples" / "public-https" / "deployment.yaml",
            configs=(path,),
            as_of=AS_OF,
        )
    )
    (f,) = [f for f in report.findings if f.code == "NG102" and f.family == 4]
    assert f.example is not None and "8443" in f.example
