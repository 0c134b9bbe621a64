"""Exact CIDR arithmetic on integer intervals: aggregation without widening.

Vocabulary: a *prefix* is an ``ipaddress.IPv4Network`` or ``IPv6Network``; an *interval* is an
inclusive ``(first, last)`` pair of integer addresses. A set of addresses is kept as sorted,
disjoint, non-adjacent intervals per family; turning it back into prefixes gives the unique
minimal list of CIDR blocks covering exactly that set (the same answer ``iprange`` and
``aggregate6`` give, RFC 4632 section 3.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network
Prefix = IPv4Network | IPv6Network

_BITS = {4: 32, 6: 128}


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent inclusive intervals.

    Input: any iterable of ``(first, last)`` with ``first <= last``. Output: sorted, disjoint,
    non-adjacent intervals covering exactly the same integers. O(n log n).
    """
    ordered = sorted(intervals)
    merged: list[tuple[int, int]] = []
    for first, last in ordered:
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def interval_to_prefixes(first: int, last: int, version: int) -> Iterator[Prefix]:
    """Yield the minimal list of CIDR blocks covering exactly ``[first, last]``, in order.

    ``version`` is 4 or 6. Each block is the largest one aligned at the current start that does
    not pass ``last``; that greedy choice is optimal (RFC 4632 section 3.1).
    """
    bits = _BITS[version]
    network_cls: type[Prefix] = IPv4Network if version == 4 else IPv6Network
    while first <= last:
        # Largest power of two dividing `first` (the alignment), or the whole space for 0.
        size = (first & -first) if first else 1 << bits
        remaining = last - first + 1
        while size > remaining:
            size >>= 1
        yield network_cls((first, bits - size.bit_length() + 1))
        first += size


def prefix_interval(prefix: Prefix) -> tuple[int, int]:
    """The inclusive integer interval a prefix covers (arithmetic only: ``num_addresses``
    would build a broadcast-address object per prefix)."""
    first = int(prefix.network_address)
    return first, first + (1 << (prefix.max_prefixlen - prefix.prefixlen)) - 1


def _decompose(intervals: tuple[tuple[int, int], ...], version: int) -> tuple[Prefix, ...]:
    out: list[Prefix] = []
    for first, last in intervals:
        out.extend(interval_to_prefixes(first, last, version))
    return tuple(out)


@dataclass(frozen=True)
class PrefixSet:
    """An exact set of IPv4 and IPv6 addresses, held as merged integer intervals per family.

    Build with :meth:`from_prefixes`; read back with :meth:`prefixes` (aggregated, sorted) and
    :attr:`v4` / :attr:`v6` (tuples of prefixes). Equality is set equality: ``198.51.100.0/23``
    equals ``198.51.100.0/24`` plus ``198.51.101.0/24``.
    """

    v4_intervals: tuple[tuple[int, int], ...] = ()
    v6_intervals: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_prefixes(cls, prefixes: Iterable[Prefix]) -> PrefixSet:
        """Union of the given prefixes. Host bits must already be clear (``strict=True``)."""
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for p in prefixes:
            (v4 if p.version == 4 else v6).append(prefix_interval(p))
        return cls(tuple(merge_intervals(v4)), tuple(merge_intervals(v6)))

    def prefixes(self, version: int) -> tuple[Prefix, ...]:
        """Aggregated prefixes of one family (4 or 6), sorted by address (computed once)."""
        return self.v4 if version == 4 else self.v6

    @cached_property
    def v4(self) -> tuple[Prefix, ...]:
        """Aggregated IPv4 prefixes (derived once per set and cached: sets are immutable)."""
        return _decompose(self.v4_intervals, 4)

    @cached_property
    def v6(self) -> tuple[Prefix, ...]:
        """Aggregated IPv6 prefixes (derived once per set and cached: sets are immutable)."""
        return _decompose(self.v6_intervals, 6)

    def all_prefixes(self) -> tuple[Prefix, ...]:
        """IPv4 then IPv6 aggregated prefixes."""
        return self.v4 + self.v6

    def num_addresses(self, version: int) -> int:
        """Number of addresses of one family in the set."""
        intervals = self.v4_intervals if version == 4 else self.v6_intervals
        return sum(last - first + 1 for first, last in intervals)

    def is_empty(self) -> bool:
        """True when the set holds no address of either family."""
        return not self.v4_intervals and not self.v6_intervals

    def union(self, other: PrefixSet) -> PrefixSet:
        """Set union."""
        return PrefixSet(
            tuple(merge_intervals(self.v4_intervals + other.v4_intervals)),
            tuple(merge_intervals(self.v6_intervals + other.v6_intervals)),
        )


def aggregate(prefixes: Iterable[Prefix]) -> list[Prefix]:
    """Exact aggregation of mixed IPv4/IPv6 prefixes: IPv4 first, then IPv6, each sorted."""
    return list(PrefixSet.from_prefixes(prefixes).all_prefixes())
