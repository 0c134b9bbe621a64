"""Exact CIDR aggregation: hand-checked cases and a property test against ``ipaddress``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netguard.cidr import PrefixSet, aggregate, interval_to_prefixes, merge_intervals

net = ipaddress.ip_network


def _agg(*texts: str) -> list[str]:
    return [str(p) for p in aggregate(net(t) for t in texts)]


def test_adjacent_halves_merge() -> None:
    assert _agg("198.51.100.0/25", "198.51.100.128/25") == ["198.51.100.0/24"]


def test_two_slash_ones_are_everything() -> None:
    assert _agg("128.0.0.0/1", "0.0.0.0/1") == ["0.0.0.0/0"]
    assert _agg("::/1", "8000::/1") == ["::/0"]


def test_never_widened() -> None:
    # .0/25 and .192/26 leave .128/26 uncovered: no /24 may appear.
    assert _agg("198.51.100.0/25", "198.51.100.192/26") == ["198.51.100.0/25", "198.51.100.192/26"]


def test_overlap_and_duplicates_collapse() -> None:
    assert _agg("203.0.113.0/24", "203.0.113.128/25", "203.0.113.0/24", "203.0.113.7/32") == [
        "203.0.113.0/24"
    ]


def test_unaligned_interval_is_split_minimally() -> None:
    # 192.0.2.1 - 192.0.2.6 = .1/32 .2/31 .4/31 .6/32
    got = [
        str(p)
        for p in interval_to_prefixes(
            int(net("192.0.2.1/32").network_address), int(net("192.0.2.6/32").network_address), 4
        )
    ]
    assert got == ["192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"]


def test_families_kept_apart_ipv4_first() -> None:
    assert _agg("2001:db8::/33", "192.0.2.0/24", "2001:db8:8000::/33") == [
        "192.0.2.0/24",
        "2001:db8::/32",
    ]


def test_merge_intervals_adjacent_and_nested() -> None:
    assert merge_intervals([(5, 9), (0, 4), (2, 3), (11, 12)]) == [(0, 9), (11, 12)]


def test_prefix_set_equality_is_set_equality() -> None:
    a = PrefixSet.from_prefixes([net("198.51.100.0/23")])
    b = PrefixSet.from_prefixes([net("198.51.101.0/24"), net("198.51.100.0/24")])
    assert a == b
    assert a.num_addresses(4) == 512


def test_real_aws_ranges_match_netaddr() -> None:
    data = Path(__file__).resolve().parent / "data" / "aws-ranges-2021.txt"
    lines = [x.strip() for x in data.read_text().split() if x.strip()]
    ours = [str(p) for p in aggregate(net(x) for x in lines)]
    theirs = [str(p) for p in netaddr.cidr_merge(lines)]
    assert ours == theirs
    assert len(lines) == 4190
    assert len(ours) < len(lines)


_v4 = st.builds(
    lambda addr, plen: ipaddress.IPv4Network((addr, plen), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
_v6 = st.builds(
    lambda addr, plen: ipaddress.IPv6Network((addr, plen), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_v4, _v6), max_size=60))
def test_aggregate_equals_collapse_addresses(prefixes: list) -> None:
    v4 = [p for p in prefixes if p.version == 4]
    v6 = [p for p in prefixes if p.version == 6]
    expected = list(ipaddress.collapse_addresses(v4)) + list(ipaddress.collapse_addresses(v6))
    assert aggregate(prefixes) == expected


def test_prefixes_are_derived_once_per_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Regression: every caller of AddressSet.for_family re-derived the CIDR list, which made the
    # AWS plan quadratic (4,000 prefixes took minutes). Now it is derived once per set and family.
    import netguard.cidr as cidr
    from netguard.compile import compile_policy
    from netguard.profiles import load_deployment
    from netguard.render import RENDERERS, render_targets

    calls: list[int] = []
    real = cidr._decompose

    def counting(intervals: tuple[tuple[int, int], ...], version: int) -> tuple:
        calls.append(version)
        return real(intervals, version)

    monkeypatch.setattr(cidr, "_decompose", counting)
    ranges = ", ".join(f"198.51.{i}.0/25" for i in range(0, 100))
    path = tmp_path / "d.yaml"
    path.write_text(
        "extends: public-https\nname: many\n"
        "vendor:\n  endpoints: [{name: api, host: api.vendor.example}]\n"
        f"  api_ranges: [{ranges}]\n  webhook_ranges: [203.0.113.0/24]\n"
        "customer:\n  egress_addresses: [192.0.2.1/32]\n"
        "  webhook_receivers: [{name: hooks, addresses: [192.0.2.2/32], ports: [443]}]\n"
        "aws: {quotas: {rules_per_group: 200}}\n"
    )
    policy = compile_policy(load_deployment(path).profile)
    render_targets(policy, list(RENDERERS))
    distinct_sets = {id(s.prefixes) for s in policy.address_sets} | {
        id(s.prefixes) for s in policy.allowlists.values()
    }
    assert len(calls) <= 2 * len(distinct_sets)
    assert policy.rules[0].peer.for_family(4) is policy.rules[0].peer.for_family(4)
