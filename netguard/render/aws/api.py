"""aws-api target: ``aws/ec2-api.json``, the ordered EC2 API requests that build the plan.

The file is a JSON object whose ``operations`` is an ordered list of
``{"operation": <EC2 action>, "parameters": <request>}``; each ``parameters`` is exactly the
botocore request shape of that action (``boto3.client("ec2").<action>(**parameters)``; EC2 API
Reference for each action):

1. ``CreateManagedPrefixList`` per prefix list of the plan;
2. per group ``CreateSecurityGroup``, then ``RevokeSecurityGroupEgress`` of the IPv4 allow-all
   rule (``-1`` to ``0.0.0.0/0``) that AWS adds to every new group ("Security group rules":
   "When you first create a security group, it has an outbound rule that allows all outbound
   traffic"), so that a group is fail-closed before any rule is added;
3. per group ``AuthorizeSecurityGroupIngress`` and ``AuthorizeSecurityGroupEgress`` with one
   ``IpPermission`` per plan rule (one CIDR, prefix list or group each);
4. ``CreateVpcEndpoint`` (Interface) for privatelink.

Ids that exist only once a request has run are placeholders, always a whole string value:
``${GroupId:<key>}`` (the ``GroupId`` in the response of the ``CreateSecurityGroup`` of the group
with that key) and ``${PrefixListId:<key>}`` (``PrefixList.PrefixListId`` of
``CreateManagedPrefixList``). The ``placeholders`` object of the file lists each one with the
(0-based) index in ``operations`` of the request whose response holds it. A description never
equals a placeholder (it starts with a rule id and a colon), so replacing whole values is
unambiguous.

In a VPC with an IPv6 CIDR block a new group may also get an allow-all IPv6 egress rule
(``::/0``); it is absent otherwise, and revoking an absent rule fails. The requests that revoke
it are therefore listed apart, in ``if_vpc_has_ipv6``, to be run only in IPv6-enabled VPCs.
"""

from __future__ import annotations

from typing import Any

import jinja2

from netguard import __version__
from netguard.model.policy import Policy
from netguard.render.aws.common import header_lines, tags
from netguard.render.aws.plan import AwsPlan, PeerKind, SecurityGroup, SgRule, plan_security_groups
from netguard.render.base import Renderer, Target, register

FORMAT = "netguard-aws-ec2-api"
FORMAT_VERSION = 1


def group_placeholder(key: str) -> str:
    """``${GroupId:app-1}``: the id of the plan group ``app-1`` once created."""
    return f"${{GroupId:{key}}}"


def prefix_list_placeholder(key: str) -> str:
    """``${PrefixListId:vendor-api-ipv4}``: the id of that prefix list once created."""
    return f"${{PrefixListId:{key}}}"


def ip_permission(rule: SgRule) -> dict[str, Any]:
    """One EC2 ``IpPermission`` for a plan rule; its description sits on the peer entry."""
    out: dict[str, Any] = {"IpProtocol": rule.ip_protocol}
    if rule.has_ports:
        out["FromPort"] = rule.from_port
        out["ToPort"] = rule.to_port
    d = rule.description
    if rule.peer_kind == PeerKind.CIDR_IPV4:
        out["IpRanges"] = [{"CidrIp": rule.peer, "Description": d}]
    elif rule.peer_kind == PeerKind.CIDR_IPV6:
        out["Ipv6Ranges"] = [{"CidrIpv6": rule.peer, "Description": d}]
    elif rule.peer_kind == PeerKind.PREFIX_LIST:
        out["PrefixListIds"] = [
            {"PrefixListId": prefix_list_placeholder(rule.peer), "Description": d}
        ]
    elif rule.peer_kind == PeerKind.GROUP:
        out["UserIdGroupPairs"] = [{"GroupId": group_placeholder(rule.peer), "Description": d}]
    else:
        out["UserIdGroupPairs"] = [{"GroupId": rule.peer, "Description": d}]
    return out


def _tag_spec(plan: AwsPlan, resource_type: str, name: str, role: str) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": k, "Value": v} for k, v in tags(plan, name, role)],
        }
    ]


def _revoke_all(group: SecurityGroup, family: int) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": "-1"}
    if family == 4:
        permission["IpRanges"] = [{"CidrIp": "0.0.0.0/0"}]
    else:
        permission["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
    return {
        "operation": "RevokeSecurityGroupEgress",
        "parameters": {"GroupId": group_placeholder(group.key), "IpPermissions": [permission]},
    }


def api_document(plan: AwsPlan) -> dict[str, Any]:
    """The ``ec2-api.json`` document of a plan (stable order).

    Shape: ``format``, ``format_version``, ``generator``, ``deployment``, ``mode``, ``region``,
    ``about`` (lines of text), ``group_notes`` (group name -> remarks, e.g. which receiver
    addresses a webhook rule cannot enforce), ``placeholders`` (placeholder -> where its id
    comes from), ``operations`` (ordered ``{"operation", "parameters"}``) and ``if_vpc_has_ipv6``
    (``about``, ``operations``). Parameters follow the EC2 API Reference pages of
    CreateManagedPrefixList, CreateSecurityGroup, RevokeSecurityGroupEgress,
    AuthorizeSecurityGroupIngress, AuthorizeSecurityGroupEgress and CreateVpcEndpoint.
    """
    ops: list[dict[str, Any]] = []
    placeholders: dict[str, str] = {}
    for plist in plan.prefix_lists:
        placeholders[prefix_list_placeholder(plist.key)] = (
            f"PrefixList.PrefixListId in the response of operations[{len(ops)}] "
            f"(CreateManagedPrefixList {plist.name})"
        )
        ops.append(
            {
                "operation": "CreateManagedPrefixList",
                "parameters": {
                    "PrefixListName": plist.name,
                    "Entries": [{"Cidr": c} for c in plist.entries],
                    "MaxEntries": plist.max_entries,
                    "AddressFamily": plist.address_family,
                    "TagSpecifications": _tag_spec(plan, "prefix-list", plist.name, "prefix-list"),
                },
            }
        )
    for group in plan.groups:
        placeholders[group_placeholder(group.key)] = (
            f"GroupId in the response of operations[{len(ops)}] (CreateSecurityGroup {group.name})"
        )
        ops.append(
            {
                "operation": "CreateSecurityGroup",
                "parameters": {
                    "Description": group.description,
                    "GroupName": group.name,
                    "VpcId": plan.vpc_id,
                    "TagSpecifications": _tag_spec(plan, "security-group", group.name, group.role),
                },
            }
        )
        ops.append(_revoke_all(group, 4))
    for group in plan.groups:
        for operation, rules in (
            ("AuthorizeSecurityGroupIngress", group.ingress),
            ("AuthorizeSecurityGroupEgress", group.egress),
        ):
            if rules:
                ops.append(
                    {
                        "operation": operation,
                        "parameters": {
                            "GroupId": group_placeholder(group.key),
                            "IpPermissions": [ip_permission(r) for r in rules],
                        },
                    }
                )
    if plan.endpoint is not None:
        ep = plan.endpoint
        params: dict[str, Any] = {
            "VpcEndpointType": "Interface",
            "VpcId": ep.vpc_id,
            "ServiceName": ep.service_name,
        }
        if ep.subnet_ids:
            params["SubnetIds"] = list(ep.subnet_ids)
        params["SecurityGroupIds"] = [group_placeholder(k) for k in ep.security_group_keys]
        params["PrivateDnsEnabled"] = ep.private_dns
        params["TagSpecifications"] = _tag_spec(plan, "vpc-endpoint", ep.name, "endpoint")
        ops.append({"operation": "CreateVpcEndpoint", "parameters": params})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": f"netguard {__version__}",
        "deployment": plan.deployment,
        "mode": plan.mode,
        "region": plan.region,
        "about": [
            *header_lines(plan),
            "run the operations in order, e.g. boto3.client('ec2').<operation>(**parameters), "
            "after replacing each placeholder (a whole string value) with the id it names",
            "every new security group starts with an allow-all IPv4 egress rule: the "
            "RevokeSecurityGroupEgress after each CreateSecurityGroup removes it",
        ],
        "group_notes": {g.name: list(g.notes) for g in plan.groups if g.notes},
        "placeholders": placeholders,
        "operations": ops,
        "if_vpc_has_ipv6": {
            "about": "run only when the VPC has an IPv6 CIDR block: revokes the allow-all IPv6 "
            "egress rule (::/0) a new group may have there (absent in IPv4-only VPCs, where "
            "revoking it fails)",
            "operations": [_revoke_all(g, 6) for g in plan.groups],
        },
    }


@register
class Ec2ApiRenderer(Renderer):
    """Renders ``aws/ec2-api.json``.

    Raises ``RenderError`` when the policy does not fit the AWS quotas (see
    :func:`netguard.render.aws.plan.plan_security_groups`).
    """

    target = Target.AWS_API

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        """Return the one JSON file; nothing is written."""
        plan = plan_security_groups(policy)
        return {
            "aws/ec2-api.json": env.get_template("aws-api/ec2-api.json.j2").render(
                doc=api_document(plan)
            ),
        }
