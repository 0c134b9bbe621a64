"""Allowlist target: plain text and JSON lists of prefixes, both directions (guide 5.3).

- ``customer-inbound``: every source the customer's ingress rules admit (vendor webhook ranges,
  VPN peers in vpn mode, ingress exceptions);
- ``vendor-inbound``: what the vendor must let in (the customer's egress addresses);
- ``egress-destinations``: every destination the customer's egress rules allow (vendor API or
  endpoint subnets, VPN peers, DNS resolvers, egress exceptions).

Text files hold one aggregated prefix per line, IPv4 then IPv6, after ``#`` comment lines, the
format ``iprange`` and ``aggregate6`` read and print. The JSON file holds all three lists. No
derived value (count, hash) sits beside the prefixes, so a one-prefix change is a one-line diff.
"""

from __future__ import annotations

import jinja2

from netguard import __version__
from netguard.model.policy import Policy
from netguard.render.base import (
    Renderer,
    Safe,
    Target,
    escape_line_comment,
    register,
)

LIST_TITLES = {
    "customer-inbound": (
        "Every source the customer's ingress rules admit (webhook callbacks; VPN peers; "
        "ingress exceptions)"
    ),
    "vendor-inbound": (
        "The customer's egress addresses: the vendor must allowlist these (guide 5.3)"
    ),
    "egress-destinations": (
        "Every destination the customer's egress rules allow (vendor API or endpoint; VPN "
        "peers; DNS resolvers; egress exceptions)"
    ),
}


@register
class AllowlistRenderer(Renderer):
    """Renders ``allowlist/<list>.txt`` for each list and ``allowlist/allowlists.json``."""

    target = Target.ALLOWLIST

    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        files: dict[str, str] = {}
        document: dict[str, object] = {
            "format": "netguard-allowlist",
            "format_version": 1,
            "generator": f"netguard {__version__}",
            "deployment": policy.name,
            "mode": policy.mode,
            "lists": {},
        }
        lists: dict[str, object] = {}
        for name in sorted(policy.allowlists):
            aset = policy.allowlists[name]
            v4 = [str(p) for p in aset.for_family(4)] if 4 in policy.families else []
            v6 = [str(p) for p in aset.for_family(6)] if 6 in policy.families else []
            files[f"allowlist/{name}.txt"] = env.get_template("allowlist/list.txt.j2").render(
                name=Safe(name),
                title=escape_line_comment(LIST_TITLES[name]),
                deployment=Safe(policy.name),
                prefixes=[Safe(p) for p in v4 + v6],
            )
            lists[name] = {
                "description": LIST_TITLES[name],
                "ipv4": v4,
                "ipv6": v6,
            }
        document["lists"] = lists
        document["endpoints"] = [
            {"name": e.name, "host": e.host, "port": e.port} for e in policy.endpoints
        ]
        files["allowlist/allowlists.json"] = env.get_template(
            "allowlist/allowlists.json.j2"
        ).render(document=document)
        return files
