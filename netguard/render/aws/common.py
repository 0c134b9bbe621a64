"""Helpers the three AWS renderers share: resource identifiers and tags derived from a plan."""

from __future__ import annotations

import re

from netguard.errors import RenderError
from netguard.render.aws.plan import AwsPlan

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def camel(key: str) -> str:
    """``"vpn-gateway"`` -> ``"VpnGateway"``; ``"app-1"`` -> ``"App1"`` (CloudFormation logical
    ids are alphanumeric: "CloudFormation template Resources syntax", Logical ID)."""
    return "".join(part[:1].upper() + part[1:] for part in _NON_ALNUM.split(key) if part)


def snake(key: str) -> str:
    """``"vpn-gateway"`` -> ``"vpn_gateway"`` (a Terraform resource name)."""
    return _NON_ALNUM.sub("_", key)


def unique(ids: list[str], what: str) -> None:
    """Raise ``RenderError`` when two plan keys map to the same target identifier."""
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise RenderError(f"aws: two {what} map to the same identifier {i!r}")
        seen.add(i)


def tags(plan: AwsPlan, name: str, role: str) -> list[tuple[str, str]]:
    """Tags of a generated resource, as (key, value) pairs: Name, deployment and role.

    Values are slugs (schema-restricted) and so valid tag values ("Tag your Amazon EC2
    resources", tag restrictions).
    """
    return [("Name", name), ("netguard:deployment", plan.deployment), ("netguard:role", role)]


def header_lines(plan: AwsPlan) -> list[str]:
    """What every AWS output says about itself, line by line (plain ASCII)."""
    return [
        f"security groups for {plan.deployment} (mode {plan.mode}, region {plan.region}, "
        f"VPC {plan.vpc_id})",
        "generated file: change the profile and regenerate (provenance in manifest.json)",
        *plan.notes,
    ]
