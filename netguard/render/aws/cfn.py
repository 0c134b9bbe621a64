"""aws-cfn target: ``aws/cloudformation.yaml`` and ``aws/cloudformation.json``, one template.

Both files hold the same CloudFormation template (``yaml.safe_load`` of one equals
``json.loads`` of the other). The JSON file is the document built here, printed with the
``json_document`` filter; the YAML file is ``templates/aws-cfn/cloudformation.yaml.j2``, which
prints every value through the ``json`` filter (a JSON string is a valid YAML double-quoted
scalar) and each rule as one flow mapping on one line, so a one-CIDR change is a one-line diff.
Only long-form intrinsic functions (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``) are used.

Resources (AWS CloudFormation User Guide, "EC2 resource type reference"):

- ``AWS::EC2::PrefixList`` per customer-managed prefix list of the plan;
- ``AWS::EC2::SecurityGroup`` per group, rules inline in ``SecurityGroupIngress`` /
  ``SecurityGroupEgress``. AWS gives every new group an allow-all egress rule; CloudFormation
  removes it only when ``SecurityGroupEgress`` is specified, so a group without egress rules
  gets the documented placeholder (``IpProtocol -1`` to ``127.0.0.1/32``) and thus no egress
  ("AWS::EC2::SecurityGroup", SecurityGroupEgress);
- ``AWS::EC2::SecurityGroupIngress`` / ``SecurityGroupEgress`` for a rule that references a
  group declared later (privatelink: the endpoint group admits the application group, which
  itself reaches the endpoint group by reference): inline, the two groups would depend on each
  other and CloudFormation refuses circular dependencies;
- ``AWS::EC2::VPCEndpoint`` (Interface) for privatelink.
"""

from __future__ import annotations

from typing import Any

import jinja2

from netguard import __version__
from netguard.model.policy import Direction, Policy
from netguard.render.aws.common import camel, header_lines, tags, unique
from netguard.render.aws.plan import (
    DEFAULT_EGRESS_PLACEHOLDER,
    AwsPlan,
    PeerKind,
    PrefixList,
    SecurityGroup,
    SgRule,
    plan_security_groups,
)
from netguard.render.base import Renderer, Safe, Target, escape_line_comment, register

TEMPLATE_FORMAT_VERSION = "2010-09-09"


def group_logical_id(group: SecurityGroup) -> str:
    """``app-1`` -> ``App1SecurityGroup``."""
    return f"{camel(group.key)}SecurityGroup"


def prefix_list_logical_id(plist: PrefixList) -> str:
    """``vendor-api-ipv4`` -> ``VendorApiIpv4PrefixList``."""
    return f"{camel(plist.key)}PrefixList"


def _group_id(plan: AwsPlan, key: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [group_logical_id(plan.group(key)), "GroupId"]}


def cfn_rule(plan: AwsPlan, rule: SgRule) -> dict[str, Any]:
    """One ``Ingress``/``Egress`` property value (or the rule part of a standalone
    ``AWS::EC2::SecurityGroupIngress``/``Egress``): exactly one of CidrIp, CidrIpv6,
    Source/DestinationPrefixListId, Source/DestinationSecurityGroupId."""
    out: dict[str, Any] = {"IpProtocol": rule.ip_protocol}
    if rule.has_ports:
        out["FromPort"] = rule.from_port
        out["ToPort"] = rule.to_port
    side = "Source" if rule.direction == Direction.INGRESS else "Destination"
    if rule.peer_kind == PeerKind.CIDR_IPV4:
        out["CidrIp"] = rule.peer
    elif rule.peer_kind == PeerKind.CIDR_IPV6:
        out["CidrIpv6"] = rule.peer
    elif rule.peer_kind == PeerKind.PREFIX_LIST:
        out[f"{side}PrefixListId"] = {"Ref": prefix_list_logical_id(plan.prefix_list(rule.peer))}
    elif rule.peer_kind == PeerKind.GROUP:
        out[f"{side}SecurityGroupId"] = _group_id(plan, rule.peer)
    else:
        out[f"{side}SecurityGroupId"] = rule.peer
    out["Description"] = rule.description
    return out


def _tags(plan: AwsPlan, name: str, role: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags(plan, name, role)]


def cfn_document(plan: AwsPlan) -> dict[str, Any]:
    """The CloudFormation template of a plan, as JSON-ready data (stable key order).

    Shape: ``AWSTemplateFormatVersion``, ``Description``, ``Metadata.netguard``, ``Resources``
    (prefix lists, groups, standalone rules for forward references, the VPC endpoint) and
    ``Outputs`` (each GroupId, PrefixListId and the endpoint id). Resource properties follow
    the AWS CloudFormation User Guide pages "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroup
    Ingress/Egress" (rule properties), "AWS::EC2::SecurityGroupIngress", "AWS::EC2::PrefixList"
    and "AWS::EC2::VPCEndpoint". Raises ``RenderError`` if two plan keys would share a logical id.
    """
    unique(
        [group_logical_id(g) for g in plan.groups]
        + [prefix_list_logical_id(p) for p in plan.prefix_lists],
        "resources",
    )
    resources: dict[str, Any] = {}
    for plist in plan.prefix_lists:
        resources[prefix_list_logical_id(plist)] = {
            "Type": "AWS::EC2::PrefixList",
            "Properties": {
                "PrefixListName": plist.name,
                "AddressFamily": plist.address_family,
                "MaxEntries": plist.max_entries,
                "Entries": [{"Cidr": c} for c in plist.entries],
                "Tags": _tags(plan, plist.name, "prefix-list"),
            },
        }
    standalone: list[tuple[str, dict[str, Any]]] = []
    for group in plan.groups:
        ingress = [r for r in group.ingress if not plan.is_forward_reference(group, r)]
        egress = [r for r in group.egress if not plan.is_forward_reference(group, r)]
        if not egress:
            egress = [DEFAULT_EGRESS_PLACEHOLDER]
        props: dict[str, Any] = {
            "GroupName": group.name,
            "GroupDescription": group.description,
            "VpcId": plan.vpc_id,
        }
        if ingress:
            props["SecurityGroupIngress"] = [cfn_rule(plan, r) for r in ingress]
        props["SecurityGroupEgress"] = [cfn_rule(plan, r) for r in egress]
        props["Tags"] = _tags(plan, group.name, group.role)
        resource: dict[str, Any] = {"Type": "AWS::EC2::SecurityGroup"}
        metadata: dict[str, Any] = {"role": group.role}
        if group.notes:
            metadata["notes"] = list(group.notes)
        resource["Metadata"] = {"netguard": metadata}
        resource["Properties"] = props
        resources[group_logical_id(group)] = resource
        for direction, rules in (("Ingress", group.ingress), ("Egress", group.egress)):
            forward = [r for r in rules if plan.is_forward_reference(group, r)]
            for n, rule in enumerate(forward, 1):
                standalone.append(
                    (
                        f"{group_logical_id(group)}{direction}{n}",
                        {
                            "Type": f"AWS::EC2::SecurityGroup{direction}",
                            "Properties": {
                                "GroupId": _group_id(plan, group.key),
                                **cfn_rule(plan, rule),
                            },
                        },
                    )
                )
    resources.update(standalone)
    if plan.endpoint is not None:
        ep = plan.endpoint
        ep_props: dict[str, Any] = {
            "VpcEndpointType": "Interface",
            "ServiceName": ep.service_name,
            "VpcId": ep.vpc_id,
        }
        if ep.subnet_ids:
            ep_props["SubnetIds"] = list(ep.subnet_ids)
        ep_props["SecurityGroupIds"] = [_group_id(plan, k) for k in ep.security_group_keys]
        ep_props["PrivateDnsEnabled"] = ep.private_dns
        resources["VendorVpcEndpoint"] = {"Type": "AWS::EC2::VPCEndpoint", "Properties": ep_props}
    outputs: dict[str, Any] = {}
    for group in plan.groups:
        outputs[f"{group_logical_id(group)}Id"] = {
            "Description": f"GroupId of {group.name}",
            "Value": _group_id(plan, group.key),
        }
    for plist in plan.prefix_lists:
        outputs[f"{prefix_list_logical_id(plist)}Id"] = {
            "Description": f"PrefixListId of {plist.name}",
            "Value": {"Ref": prefix_list_logical_id(plist)},
        }
    if plan.endpoint is not None:
        outputs["VendorVpcEndpointId"] = {
            "Description": "Id of the interface VPC endpoint",
            "Value": {"Ref": "VendorVpcEndpoint"},
        }
    return {
        "AWSTemplateFormatVersion": TEMPLATE_FORMAT_VERSION,
        "Description": f"netguard {__version__}: security groups for {plan.deployment} "
        f"({plan.mode})" + (f" - {plan.description}" if plan.description else ""),
        "Metadata": {
            "netguard": {
                "deployment": plan.deployment,
                "mode": plan.mode,
                "region": plan.region,
                "notes": list(header_lines(plan)),
            }
        },
        "Resources": resources,
        "Outputs": outputs,
    }


@register
class CloudFormationRenderer(Renderer):
    """Renders ``aws/cloudformation.yaml`` and ``aws/cloudformation.json`` (same template).

    Raises ``RenderError`` when the policy does not fit the AWS quotas (see
    :func:`netguard.render.aws.plan.plan_security_groups`).
    """

    target = Target.AWS_CFN

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        """Return both template files; nothing is written."""
        plan = plan_security_groups(policy)
        document = cfn_document(plan)
        comments = [escape_line_comment(line) for line in header_lines(plan)]
        group_comments = {
            group_logical_id(g): [escape_line_comment(n) for n in g.notes] for g in plan.groups
        }
        return {
            "aws/cloudformation.yaml": env.get_template("aws-cfn/cloudformation.yaml.j2").render(
                doc=document,
                deployment=Safe(plan.deployment),
                mode=Safe(plan.mode),
                comments=comments,
                group_comments=group_comments,
            ),
            "aws/cloudformation.json": env.get_template("aws-cfn/cloudformation.json.j2").render(
                doc=document
            ),
        }
