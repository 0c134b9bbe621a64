"""The nftables target in the real kernel: ``nftables/netguard.nft`` loaded with ``nft -f`` into
a network namespace and judged by real TCP connections (DESIGN.md, "Real components in tests").

Same profile (tests/profiles/kernel/public-https.yaml) and the same hand-reasoned flows
(:func:`netns.public_https_cases`) as tests/test_kernel_iptables.py. One namespace pair serves
the module; each test starts from an empty ruleset (``nft flush ruleset``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from netns import FAMILIES, IPV4, IPV6, Case, Namespace, NetnsPair

pytestmark = pytest.mark.kernel

PROFILE = Path(__file__).parent / "profiles" / "kernel" / "public-https.yaml"
TOOLS = ("nft",)


@pytest.fixture(scope="module")
def pair(kernel: None) -> Iterator[NetnsPair]:
    """Customer and vendor namespaces with listeners, shared by the module."""
    netns.require_kernel(TOOLS)
    with NetnsPair() as p:
        netns.start_listeners(p)
        yield p


@pytest.fixture
def customer(pair: NetnsPair) -> Iterator[Namespace]:
    """The customer namespace with an empty ruleset before and after the test."""
    netns.reset_firewall(pair.customer)
    yield pair.customer
    netns.reset_firewall(pair.customer)


def _generate(tmp_path: Path, overrides: dict[str, Any], name: str = "profile") -> Path:
    """Generate the nftables target of the kernel profile (with overrides); the .nft file."""
    deployment = netns.write_profile(PROFILE, tmp_path / f"{name}.yaml", overrides)
    path = netns.generate(deployment, tmp_path / name, "nftables") / "nftables" / "netguard.nft"
    assert path.is_file(), f"netguard generate -t nftables wrote no {path}"
    return path


def _all_cases(*, ipv6: bool = True) -> list[Case]:
    return netns.public_https_cases(IPV4) + netns.public_https_cases(IPV6, enabled=ipv6)


def _tables(ns: Namespace) -> list[str]:
    """``nft list tables``: one "table <family> <name>" per line."""
    return [ln.strip() for ln in ns.run(["nft", "list", "tables"]).stdout.splitlines() if ln]


def test_without_firewall_every_probe_connects(pair: NetnsPair, customer: Namespace) -> None:
    """Control: with an empty ruleset every probed flow connects, so each TIMEOUT expected
    below is the firewall's doing."""
    cases = [Case(c.what, c.side, c.attempt, netns.CONNECTED) for c in _all_cases()]
    netns.check_cases(pair, cases)


def test_rules_permit_exactly_the_profile(
    pair: NetnsPair, customer: Namespace, tmp_path: Path
) -> None:
    """Egress 443 to the vendor API only; ingress 8443 from webhook sources to receivers only;
    IPv4 and IPv6, from one ``nft -f`` of the generated file."""
    netns.load_nftables(customer, _generate(tmp_path, {}))
    assert _tables(customer) == ["table inet netguard"]
    netns.check_cases(pair, _all_cases())


def test_reload_twice_is_idempotent(pair: NetnsPair, customer: Namespace, tmp_path: Path) -> None:
    """Loading the same file again, twice, succeeds, keeps one table (replaced, not
    duplicated) and the same behaviour."""
    path = _generate(tmp_path, {})
    for _ in range(3):
        netns.load_nftables(customer, path)
    assert _tables(customer) == ["table inet netguard"]
    netns.check_cases(pair, _all_cases())


def test_reload_replaces_addresses(pair: NetnsPair, customer: Namespace, tmp_path: Path) -> None:
    """A reload with changed webhook_ranges (203.0.113.32/28 + .64/28, 2001:db8:202::/48 +
    2001:db8:204::/48) takes effect: 203.0.113.5 / 2001:db8:200::5 may no longer call the
    receivers, 203.0.113.40 / 2001:db8:202::5 still may."""
    moved = {"vendor": {"webhook_ranges": netns.MOVED_WEBHOOK_RANGES}}
    netns.load_nftables(customer, _generate(tmp_path, {}, "first"))
    netns.load_nftables(customer, _generate(tmp_path, moved, "second"))
    cases = [c for f in FAMILIES for c in netns.moved_webhook_cases(f)]
    netns.check_cases(pair, cases)


def test_ipv4_only_profile_leaves_ipv6_default_deny(
    pair: NetnsPair, customer: Namespace, tmp_path: Path
) -> None:
    """families [ipv4]: IPv4 behaves as the profile says; IPv6 is dropped entirely (egress to
    the vendor API on 443 and webhooks alike), not left unfiltered."""
    netns.load_nftables(customer, _generate(tmp_path, {"families": ["ipv4"]}))
    netns.check_cases(pair, _all_cases(ipv6=False))
