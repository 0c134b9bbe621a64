"""terraform target: ``aws/security-groups.tf.json`` (Terraform JSON configuration syntax).

Resources of the Terraform AWS provider (registry documentation of each resource):

- ``aws_ec2_managed_prefix_list`` per prefix list of the plan;
- ``aws_security_group`` per group with inline ``ingress`` / ``egress`` blocks. Those arguments
  are processed in *attributes-as-blocks* mode, where JSON must give every attribute of each
  block: ``cidr_blocks``, ``ipv6_cidr_blocks``, ``prefix_list_ids``, ``security_groups``,
  ``self``, ``description``, ``from_port``, ``to_port``, ``protocol``. One block per plan rule,
  in plan order. When Terraform creates a group in a VPC it removes AWS's default allow-all
  egress rule, and a group whose ``egress`` is ``[]`` is managed to have no egress rule at all
  (aws_security_group: "NOTE on Egress rules"), so a group without egress is fail-closed;
- ``aws_vpc_security_group_ingress_rule`` / ``..._egress_rule`` for one direction of a group
  that holds a *forward reference* (privatelink: the endpoint group admits the application
  group, which reaches the endpoint group by reference). Inline references both ways would be a
  dependency cycle, and a group must not mix inline rules with rule resources in one direction,
  so that direction of that group is managed entirely by rule resources and its inline argument
  is omitted (Terraform then leaves that direction to the rule resources);
- ``aws_vpc_endpoint`` (Interface) for privatelink.

Strings that come from the profile (descriptions) are escaped for Terraform templates: ``${``
becomes ``$${`` and ``%{`` becomes ``%%{`` ("Strings and Templates", escape sequences), so no
description can become an interpolation.
"""

from __future__ import annotations

from typing import Any

import jinja2

from netguard import __version__
from netguard.model.policy import Policy
from netguard.render.aws.common import header_lines, snake, tags, unique
from netguard.render.aws.plan import (
    AwsPlan,
    PeerKind,
    PrefixList,
    SecurityGroup,
    SgRule,
    plan_security_groups,
)
from netguard.render.base import Renderer, Target, register

PROVIDER_VERSION = ">= 5.0"


def tf_literal(text: str) -> str:
    """A Terraform string whose content is exactly ``text``: template sequences escaped."""
    return text.replace("${", "$${").replace("%{", "%%{")


def group_ref(group: SecurityGroup) -> str:
    """``${aws_security_group.app_1.id}``."""
    return f"${{aws_security_group.{snake(group.key)}.id}}"


def prefix_list_ref(plist: PrefixList) -> str:
    """``${aws_ec2_managed_prefix_list.vendor_api_ipv4.id}``."""
    return f"${{aws_ec2_managed_prefix_list.{snake(plist.key)}.id}}"


def _peer(plan: AwsPlan, rule: SgRule) -> str:
    if rule.peer_kind == PeerKind.PREFIX_LIST:
        return prefix_list_ref(plan.prefix_list(rule.peer))
    if rule.peer_kind == PeerKind.GROUP:
        return group_ref(plan.group(rule.peer))
    return rule.peer


def inline_block(plan: AwsPlan, rule: SgRule) -> dict[str, Any]:
    """One inline ``ingress``/``egress`` block with every attribute given.

    Ports: the TCP/UDP range, ``-1``/``-1`` for all ICMP or ICMPv6 types and codes, ``0``/``0``
    for protocols without ports (ESP ``"50"``, ``"-1"``).
    """
    kind = rule.peer_kind
    unset = -1 if rule.ip_protocol in ("icmp", "icmpv6") else 0
    return {
        "cidr_blocks": [rule.peer] if kind == PeerKind.CIDR_IPV4 else [],
        "description": tf_literal(rule.description),
        "from_port": rule.from_port if rule.from_port is not None else unset,
        "ipv6_cidr_blocks": [rule.peer] if kind == PeerKind.CIDR_IPV6 else [],
        "prefix_list_ids": [_peer(plan, rule)] if kind == PeerKind.PREFIX_LIST else [],
        "protocol": rule.ip_protocol,
        "security_groups": (
            [_peer(plan, rule)] if kind in (PeerKind.GROUP, PeerKind.GROUP_ID) else []
        ),
        "self": False,
        "to_port": rule.to_port if rule.to_port is not None else unset,
    }


def rule_resource(plan: AwsPlan, group: SecurityGroup, rule: SgRule) -> dict[str, Any]:
    """An ``aws_vpc_security_group_{ingress,egress}_rule`` body for one plan rule."""
    out: dict[str, Any] = {"security_group_id": group_ref(group), "ip_protocol": rule.ip_protocol}
    if rule.has_ports:
        out["from_port"] = rule.from_port
        out["to_port"] = rule.to_port
    key = {
        PeerKind.CIDR_IPV4: "cidr_ipv4",
        PeerKind.CIDR_IPV6: "cidr_ipv6",
        PeerKind.PREFIX_LIST: "prefix_list_id",
        PeerKind.GROUP: "referenced_security_group_id",
        PeerKind.GROUP_ID: "referenced_security_group_id",
    }[rule.peer_kind]
    out[key] = _peer(plan, rule)
    out["description"] = tf_literal(rule.description)
    return out


def _tags(plan: AwsPlan, name: str, role: str) -> dict[str, str]:
    return dict(tags(plan, name, role))


def terraform_document(plan: AwsPlan) -> dict[str, Any]:
    """The ``.tf.json`` document of a plan (stable key order).

    Shape: ``//`` (comment), ``terraform.required_providers``, ``resource`` (prefix lists,
    groups, rule resources for forward references, the VPC endpoint) and ``output``. Arguments
    follow the Terraform AWS provider pages "aws_security_group", "aws_ec2_managed_prefix_list",
    "aws_vpc_security_group_ingress_rule" and "aws_vpc_endpoint", in the "JSON Configuration
    Syntax" of Terraform. Raises ``RenderError`` if two plan keys would share a resource name.
    """
    unique([snake(g.key) for g in plan.groups], "security groups")
    unique([snake(p.key) for p in plan.prefix_lists], "prefix lists")
    resources: dict[str, dict[str, Any]] = {}
    if plan.prefix_lists:
        resources["aws_ec2_managed_prefix_list"] = {
            snake(p.key): {
                "name": p.name,
                "address_family": p.address_family,
                "max_entries": p.max_entries,
                "entry": [{"cidr": c} for c in p.entries],
                "tags": _tags(plan, p.name, "prefix-list"),
            }
            for p in plan.prefix_lists
        }
    groups: dict[str, Any] = {}
    rule_resources: dict[str, dict[str, Any]] = {}
    for group in plan.groups:
        body: dict[str, Any] = {
            "//": " | ".join(group.notes) if group.notes else f"netguard role {group.role}",
            "name": group.name,
            "description": tf_literal(group.description),
            "vpc_id": plan.vpc_id,
        }
        for direction, rules in (("ingress", group.ingress), ("egress", group.egress)):
            if any(plan.is_forward_reference(group, r) for r in rules):
                kind = f"aws_vpc_security_group_{direction}_rule"
                for n, rule in enumerate(rules, 1):
                    rule_resources.setdefault(kind, {})[f"{snake(group.key)}_{direction}_{n}"] = (
                        rule_resource(plan, group, rule)
                    )
            else:
                body[direction] = [inline_block(plan, r) for r in rules]
        body["tags"] = _tags(plan, group.name, group.role)
        groups[snake(group.key)] = body
    resources["aws_security_group"] = groups
    resources.update(rule_resources)
    if plan.endpoint is not None:
        ep = plan.endpoint
        resources["aws_vpc_endpoint"] = {
            "vendor": {
                "vpc_id": ep.vpc_id,
                "service_name": ep.service_name,
                "vpc_endpoint_type": "Interface",
                "subnet_ids": list(ep.subnet_ids),
                "security_group_ids": [group_ref(plan.group(k)) for k in ep.security_group_keys],
                "private_dns_enabled": ep.private_dns,
                "tags": _tags(plan, ep.name, "endpoint"),
            }
        }
    outputs: dict[str, Any] = {
        f"{snake(g.key)}_security_group_id": {
            "description": f"GroupId of {g.name}",
            "value": group_ref(g),
        }
        for g in plan.groups
    }
    for p in plan.prefix_lists:
        outputs[f"{snake(p.key)}_prefix_list_id"] = {
            "description": f"PrefixListId of {p.name}",
            "value": prefix_list_ref(p),
        }
    if plan.endpoint is not None:
        outputs["vendor_vpc_endpoint_id"] = {
            "description": "Id of the interface VPC endpoint",
            "value": "${aws_vpc_endpoint.vendor.id}",
        }
    return {
        "//": f"netguard {__version__}: " + " | ".join(header_lines(plan)),
        "terraform": {
            "required_providers": {"aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}}
        },
        "resource": resources,
        "output": outputs,
    }


@register
class TerraformRenderer(Renderer):
    """Renders ``aws/security-groups.tf.json``.

    Raises ``RenderError`` when the policy does not fit the AWS quotas (see
    :func:`netguard.render.aws.plan.plan_security_groups`).
    """

    target = Target.TERRAFORM

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        """Return the one Terraform JSON file; nothing is written."""
        plan = plan_security_groups(policy)
        return {
            "aws/security-groups.tf.json": env.get_template(
                "terraform/security-groups.tf.json.j2"
            ).render(doc=terraform_document(plan)),
        }
