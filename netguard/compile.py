"""Compile a validated deployment profile into a Policy (the permitted flows).

Rule order and ids are fixed by this module, so that an unchanged profile always gives the same
rules and a changed CIDR changes only the set it belongs to. Per mode (guide 5.1, 5.2):

- public-https: egress TCP (endpoint ports, 443) to ``vendor.api_ranges``; DNS (UDP and TCP 53,
  RFC 7766) to ``customer.dns_resolvers``; ingress TCP receiver ports from
  ``vendor.webhook_ranges`` to each receiver.
- vpn: IKE (UDP 500), NAT-T (UDP 4500, RFC 3948) and ESP to and from ``vpn.peers``; inside the
  tunnel, egress TCP 443 to ``vendor.api_ranges`` and webhook ingress.
- privatelink: egress TCP 443 only to ``privatelink.endpoint_subnets``; webhook ingress.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable

from netguard.cidr import Prefix, PrefixSet
from netguard.model.policy import (
    AddressSet,
    AwsSpec,
    Direction,
    Endpoint,
    ExceptionInfo,
    LogSpec,
    Policy,
    PolicyRule,
    PortRange,
    PrivateLinkSpec,
    Protocol,
    Through,
)
from netguard.schema import DeploymentProfile, Mode

DNS_PORT = PortRange(53, 53)
IKE_PORT = PortRange(500, 500)
NAT_T_PORT = PortRange(4500, 4500)


def _set(name: str, prefixes: Iterable[Prefix]) -> AddressSet:
    return AddressSet(name, PrefixSet.from_prefixes(prefixes))


def _ports(ports: Iterable[int]) -> tuple[PortRange, ...]:
    """Sorted, merged port ranges."""
    out: list[PortRange] = []
    for p in sorted(set(ports)):
        if out and out[-1].last + 1 == p:
            out[-1] = PortRange(out[-1].first, p)
        else:
            out.append(PortRange(p, p))
    return tuple(out)


def compile_policy(profile: DeploymentProfile, *, source_digest: str = "") -> Policy:
    """Turn a validated profile into a default-deny Policy.

    ``source_digest`` is a content hash of the inputs, echoed in every generated file's header.
    """
    mode = profile.mode
    families = tuple(sorted(4 if f.value == "ipv4" else 6 for f in profile.families))
    rules: list[PolicyRule] = []
    tunnel = Through.TUNNEL if mode == Mode.VPN else Through.ANY

    webhook_set = _set("vendor-webhooks", profile.vendor.webhook_ranges)
    api_ports = _ports(e.port for e in profile.vendor.endpoints)

    # --- egress -----------------------------------------------------------------------------
    if mode == Mode.VPN:
        assert profile.vpn is not None
        peers = _set("vpn-peers", profile.vpn.peers)
        for direction in (Direction.EGRESS, Direction.INGRESS):
            d = direction.value
            rules.append(
                PolicyRule(
                    f"{d}-ike",
                    direction,
                    Protocol.UDP,
                    peers,
                    (IKE_PORT,),
                    description="IKE to the vendor VPN peers",
                )
            )
            if profile.vpn.nat_traversal:
                rules.append(
                    PolicyRule(
                        f"{d}-nat-t",
                        direction,
                        Protocol.UDP,
                        peers,
                        (NAT_T_PORT,),
                        description="IPsec NAT traversal (RFC 3948)",
                    )
                )
            rules.append(
                PolicyRule(
                    f"{d}-esp",
                    direction,
                    Protocol.ESP,
                    peers,
                    description="IPsec ESP to the vendor VPN peers",
                )
            )
    if mode == Mode.PRIVATELINK:
        assert profile.privatelink is not None
        api_set = _set("vendor-endpoint", profile.privatelink.endpoint_subnets)
        api_ports = (PortRange(443, 443),)
    else:
        assert profile.vendor.api_ranges is not None
        api_set = _set("vendor-api", profile.vendor.api_ranges)
    rules.append(
        PolicyRule(
            "egress-vendor-api",
            Direction.EGRESS,
            Protocol.TCP,
            api_set,
            api_ports,
            through=tunnel,
            description="HTTPS to the vendor API",
        )
    )
    if profile.customer.dns_resolvers:
        resolvers = _set("dns-resolvers", (_host(a) for a in profile.customer.dns_resolvers))
        rules.append(
            PolicyRule(
                "egress-dns-udp",
                Direction.EGRESS,
                Protocol.UDP,
                resolvers,
                (DNS_PORT,),
                description="DNS to the named resolvers",
            )
        )
        rules.append(
            PolicyRule(
                "egress-dns-tcp",
                Direction.EGRESS,
                Protocol.TCP,
                resolvers,
                (DNS_PORT,),
                description="DNS over TCP to the named resolvers",
            )
        )

    # --- ingress ----------------------------------------------------------------------------
    for receiver in sorted(profile.customer.webhook_receivers, key=lambda r: r.name):
        rules.append(
            PolicyRule(
                f"ingress-webhook-{receiver.name}",
                Direction.INGRESS,
                Protocol.TCP,
                webhook_set,
                _ports(receiver.ports),
                local=_set(f"rcv-{receiver.name}", receiver.addresses),
                through=tunnel,
                description=receiver.description or "vendor webhook callbacks",
            )
        )

    # --- named exceptions (guide 10.3: reviewed quarterly, each with reason and expiry) -----
    for exc in sorted(profile.exceptions, key=lambda e: e.name):
        rules.append(
            PolicyRule(
                f"exception-{exc.name}",
                Direction(exc.direction),
                Protocol(exc.protocol),
                _set(f"exc-{exc.name}", exc.peers),
                _ports(exc.ports),
                description=exc.reason,
                exception=ExceptionInfo(exc.name, exc.reason, exc.expires.isoformat(), exc.ticket),
            )
        )

    rules.sort(key=lambda r: (r.direction != Direction.EGRESS, _kind_order(r.id), r.id))
    # Allowlists are unions of the rules' peers, so they cannot disagree with the rules.
    allowlists = {
        "customer-inbound": _union(
            "customer-inbound", [r.peer for r in rules if r.direction == Direction.INGRESS]
        ),
        "vendor-inbound": _set("vendor-inbound", profile.customer.egress_addresses),
        "egress-destinations": _union(
            "egress-destinations", [r.peer for r in rules if r.direction == Direction.EGRESS]
        ),
    }
    pl = None
    if profile.privatelink is not None:
        p = profile.privatelink
        pl = PrivateLinkSpec(
            p.service_name,
            api_set,
            tuple(p.subnet_ids),
            _set("application-cidrs", p.application_cidrs),
            tuple(p.application_security_groups),
            p.private_dns,
        )
    sets: dict[str, AddressSet] = {}
    for r in rules:
        for s in (r.peer, r.local):
            if s is not None:
                sets.setdefault(s.name, s)
    lg = profile.logging
    q = profile.aws.quotas
    return Policy(
        name=profile.name,
        mode=mode.value,
        description=profile.description,
        vendor_name=profile.vendor.name,
        families=families,
        rules=tuple(rules),
        log=LogSpec(
            lg.enabled, lg.prefix, lg.accept_prefix, lg.rate_per_minute, lg.burst, lg.log_accepted
        ),
        tls_min_version=profile.tls.min_version,
        endpoints=tuple(Endpoint(e.name, e.host, e.port) for e in profile.vendor.endpoints),
        allowlists=allowlists,
        ipset_threshold=profile.iptables.ipset_threshold,
        aws=AwsSpec(
            profile.aws.vpc_id,
            profile.aws.region,
            profile.aws.group_name_prefix,
            q.rules_per_group,
            q.groups_per_interface,
            q.max_rules_times_groups,
            profile.aws.prefix_lists,
        ),
        privatelink=pl,
        tunnel_interface=profile.vpn.tunnel_interface if profile.vpn else None,
        source_digest=source_digest,
        address_sets=tuple(sets[k] for k in sorted(sets)),
    )


_KIND_PREFIXES = (
    "egress-ike",
    "egress-nat-t",
    "egress-esp",
    "ingress-ike",
    "ingress-nat-t",
    "ingress-esp",
    "egress-vendor-api",
    "egress-dns",
    "ingress-webhook",
    "exception",
)


def _kind_order(rule_id: str) -> int:
    """Position of a rule's kind in the fixed policy order (unknown kinds last)."""
    return next((i for i, p in enumerate(_KIND_PREFIXES) if rule_id.startswith(p)), 99)


def _host(address: object) -> Prefix:
    """The /32 or /128 of one address."""
    a = ipaddress.ip_address(str(address))
    return ipaddress.ip_network(f"{a}/{a.max_prefixlen}")


def _union(name: str, sets: list[AddressSet]) -> AddressSet:
    total = PrefixSet()
    for s in sets:
        total = total.union(s.prefixes)
    return AddressSet(name, total)


def profile_digest(profile: DeploymentProfile) -> str:
    """sha256 of the validated profile's canonical JSON: identifies what a file was made from."""
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
