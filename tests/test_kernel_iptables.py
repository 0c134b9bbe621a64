"""The iptables target in the real kernel: generated files loaded into a network namespace and
judged by real TCP connections (DESIGN.md, "Real components in tests").

The profile tests/profiles/kernel/public-https.yaml is written for the harness in
tests/netns.py; the expected outcome of every flow is reasoned from it in
:func:`netns.public_https_cases`. One namespace pair serves the whole module; each test starts
from an empty firewall (``reset_firewall``) and loads the files as documented:
``ipset restore -exist < ipset.restore``, ``iptables-restore < rules.v4``,
``ip6tables-restore < rules.v6``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from netns import FAMILIES, IPV4, IPV6, TIMEOUT, Attempt, Case, Namespace, NetnsPair

pytestmark = pytest.mark.kernel

PROFILE = Path(__file__).parent / "profiles" / "kernel" / "public-https.yaml"
TOOLS = ("iptables", "ip6tables", "iptables-restore", "ip6tables-restore", "ipset", "nft")

IPSET_THRESHOLD_1: dict[str, Any] = {"iptables": {"ipset_threshold": 1}}
# With ipset_threshold 1 every list of two or more prefixes is an ipset ``ng<family>-<list>``
# (netguard.render.iptables.ipset_name). The profile has three lists with two prefixes per
# family: vendor-api (api_ranges), vendor-webhooks (webhook_ranges), rcv-ingest (receiver).
EXPECTED_SETS = {
    "ng4-vendor-api": {"198.51.100.0/25", "198.51.100.128/26"},
    "ng4-vendor-webhooks": {"203.0.113.0/28", "203.0.113.32/28"},
    "ng4-rcv-ingest": {"192.0.2.10/32", "192.0.2.20/32"},
    "ng6-vendor-api": {"2001:db8:100::/48", "2001:db8:102::/48"},
    "ng6-vendor-webhooks": {"2001:db8:200::/48", "2001:db8:202::/48"},
    "ng6-rcv-ingest": {"2001:db8:10::10/128", "2001:db8:10::20/128"},
}
THRESHOLDS = [
    pytest.param({}, {}, id="default-threshold"),
    pytest.param(IPSET_THRESHOLD_1, EXPECTED_SETS, id="ipset-threshold-1"),
]


@pytest.fixture(scope="module")
def pair(kernel: None) -> Iterator[NetnsPair]:
    """Customer and vendor namespaces with listeners, shared by the module."""
    netns.require_kernel(TOOLS)
    with NetnsPair() as p:
        netns.start_listeners(p)
        yield p


@pytest.fixture
def customer(pair: NetnsPair) -> Iterator[Namespace]:
    """The customer namespace with an empty firewall before and after the test."""
    netns.reset_firewall(pair.customer)
    yield pair.customer
    netns.reset_firewall(pair.customer)


def _generate(tmp_path: Path, overrides: dict[str, Any], name: str = "profile") -> Path:
    """Generate the iptables target of the kernel profile (with overrides); its directory."""
    deployment = netns.write_profile(PROFILE, tmp_path / f"{name}.yaml", overrides)
    return netns.generate(deployment, tmp_path / name, "iptables") / "iptables"


def _all_cases(*, ipv6: bool = True) -> list[Case]:
    return netns.public_https_cases(IPV4) + netns.public_https_cases(IPV6, enabled=ipv6)


def test_without_firewall_every_probe_connects(pair: NetnsPair, customer: Namespace) -> None:
    """Control: with no rules loaded, every probed flow connects, so each TIMEOUT expected
    below is the firewall's doing (a listener serves every probed address and port)."""
    cases = [Case(c.what, c.side, c.attempt, netns.CONNECTED) for c in _all_cases()]
    netns.check_cases(pair, cases)


@pytest.mark.parametrize(("overrides", "expected_sets"), THRESHOLDS)
def test_rules_permit_exactly_the_profile(
    pair: NetnsPair,
    customer: Namespace,
    tmp_path: Path,
    overrides: dict[str, Any],
    expected_sets: dict[str, set[str]],
) -> None:
    """Egress 443 to the vendor API only; ingress 8443 from webhook sources to receivers only;
    IPv4 and IPv6; with prefixes matched directly (default threshold: no ipset at all) and
    through ipsets (threshold 1: one set per list and family, each used by a rule)."""
    netns.load_iptables(customer, _generate(tmp_path, overrides))
    assert netns.ipsets(customer) == expected_sets
    for name, references in netns.ipset_references(customer).items():
        assert references >= 1, f"ipset {name} is not used by any rule"
    netns.check_cases(pair, _all_cases())


def test_drops_are_logged_before_they_are_dropped(
    pair: NetnsPair, customer: Namespace, tmp_path: Path
) -> None:
    """ng-drop is LOG then DROP, and a blocked attempt raises both packet counters."""
    netns.load_iptables(customer, _generate(tmp_path, {}))
    before = {f.version: netns.chain_counters(customer, "ng-drop", f.version) for f in FAMILIES}
    for counters in before.values():
        assert [target for _, target in counters] == ["LOG", "DROP"]
    outcomes = netns.probe([(customer, Attempt(f.api, 80, f.customer)) for f in FAMILIES])
    assert outcomes == [TIMEOUT, TIMEOUT]
    for f in FAMILIES:
        after = netns.chain_counters(customer, "ng-drop", f.version)
        (log_before, _), (drop_before, _) = before[f.version]
        (log_after, _), (drop_after, _) = after
        assert log_after > log_before, f"IPv{f.version}: LOG counter did not move"
        assert drop_after > drop_before, f"IPv{f.version}: DROP counter did not move"


@pytest.mark.parametrize(("overrides", "expected_sets"), THRESHOLDS)
def test_reload_is_idempotent(
    pair: NetnsPair,
    customer: Namespace,
    tmp_path: Path,
    overrides: dict[str, Any],
    expected_sets: dict[str, set[str]],
) -> None:
    """Loading the same files a second time succeeds (ipset swap of sets in use included),
    leaves the same sets (no temporary set behind) and the same behaviour."""
    directory = _generate(tmp_path, overrides)
    netns.load_iptables(customer, directory)
    netns.load_iptables(customer, directory)
    assert netns.ipsets(customer) == expected_sets
    netns.check_cases(pair, _all_cases())


def test_ipset_reload_replaces_addresses_of_sets_in_use(
    pair: NetnsPair, customer: Namespace, tmp_path: Path
) -> None:
    """Reloading only ipset.restore swaps new members into sets the loaded rules reference.

    Second profile: webhook_ranges 203.0.113.32/28 + .64/28 and 2001:db8:202::/48 +
    2001:db8:204::/48 (the first range of each family is gone). Then 203.0.113.5 /
    2001:db8:200::5 may no longer call the receivers; 203.0.113.40 / 2001:db8:202::5 still may.
    """
    first = _generate(tmp_path, IPSET_THRESHOLD_1, "first")
    moved = {**IPSET_THRESHOLD_1, "vendor": {"webhook_ranges": netns.MOVED_WEBHOOK_RANGES}}
    second = _generate(tmp_path, moved, "second")
    netns.load_iptables(customer, first)

    customer.run(["ipset", "restore", "-exist"], stdin=second / "ipset.restore")
    sets = netns.ipsets(customer)
    assert sets["ng4-vendor-webhooks"] == {"203.0.113.32/28", "203.0.113.64/28"}
    assert sets["ng6-vendor-webhooks"] == {"2001:db8:202::/48", "2001:db8:204::/48"}
    cases = [c for f in FAMILIES for c in netns.moved_webhook_cases(f)]
    netns.check_cases(pair, cases)

    netns.load_iptables(customer, second)
    netns.check_cases(pair, cases)


def test_ipv4_only_profile_leaves_ipv6_default_deny(
    pair: NetnsPair, customer: Namespace, tmp_path: Path
) -> None:
    """families [ipv4]: IPv4 behaves as the profile says; IPv6 is dropped entirely (egress to
    the vendor API on 443 and webhooks alike), not left unfiltered."""
    netns.load_iptables(customer, _generate(tmp_path, {"families": ["ipv4"]}))
    netns.check_cases(pair, _all_cases(ipv6=False))
