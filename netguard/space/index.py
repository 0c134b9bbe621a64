"""Bounding boxes of rule matches, and an index that finds the rules whose box meets a query.

A rule's *box* is a superset of the packets its match (upper bound: unmodeled conditions
counted as true) selects, written as one interval per field: source and destination address,
destination port, protocol, and a bit mask of conntrack states. Two matches whose boxes are
disjoint in any field select no common packet, so a walk of a rule set restricted to packets
inside a box (``evaluate(..., entry=...)``) can skip every rule whose box does not meet it:
such a rule's hit is empty, and an empty hit changes nothing in the walk.

Addresses are compared on their 64 most significant bits (IPv4 addresses, 32 bits, as they
are; IPv6 addresses shifted right by 64): a coarser interval is still a superset, so the test
stays conservative (it may keep a rule that turns out not to meet the query, never drop one
that does). Negated conditions and conditions on other fields (interfaces, source port, ICMP
type, IPsec) widen the box to the whole field.

Per chain the boxes sit in NumPy arrays, so one query tests every rule of a chain in a few
vectorised comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netguard.model.ruleset import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    CtState,
    Match,
    Rule,
    RuleSet,
)
from netguard.space.engine import CT_CODES
from netguard.space.packet import PORT_PROTOCOLS

__all__ = ["Box", "RuleIndex", "box_of"]

_ADDR_MAX = (1 << 64) - 1
_ALL_CT = (1 << len(CtState)) - 1
_PORT_PROTO = (min(PORT_PROTOCOLS), max(PORT_PROTOCOLS))


@dataclass(frozen=True, slots=True)
class Box:
    """Inclusive intervals per field and a conntrack-state bit mask (bit ``CT_CODES[s]``).

    Addresses are the 64 most significant bits of the address as stored by the engine (see
    the module docstring). ``empty`` is True when some interval is empty (no packet fits).
    """

    src: tuple[int, int] = (0, _ADDR_MAX)
    dst: tuple[int, int] = (0, _ADDR_MAX)
    dport: tuple[int, int] = (0, 65535)
    proto: tuple[int, int] = (0, 255)
    ct: int = _ALL_CT

    @property
    def empty(self) -> bool:
        """True when no packet lies in the box."""
        return (
            self.src[0] > self.src[1]
            or self.dst[0] > self.dst[1]
            or self.dport[0] > self.dport[1]
            or self.proto[0] > self.proto[1]
            or self.ct == 0
        )

    def __and__(self, other: Box) -> Box:
        return Box(
            _meet(self.src, other.src),
            _meet(self.dst, other.dst),
            _meet(self.dport, other.dport),
            _meet(self.proto, other.proto),
            self.ct & other.ct,
        )


def _meet(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (max(a[0], b[0]), min(a[1], b[1]))


def _address_hull(match: Match, sources: bool, family: int) -> tuple[int, int]:
    lo, hi = 0, _ADDR_MAX
    shift = 0 if family == 4 else 64
    for am in match.sources if sources else match.destinations:
        if am.negated:
            continue
        intervals = am.addresses.v4_intervals if family == 4 else am.addresses.v6_intervals
        if not intervals:
            return (1, 0)  # no address of this family: the match is empty
        lo = max(lo, intervals[0][0] >> shift)
        hi = min(hi, intervals[-1][1] >> shift)
    return (lo, hi)


def box_of(match: Match, family: int) -> Box:
    """The box of ``match`` for packets of ``family`` (4 or 6): a superset of what the match
    selects with unmodeled conditions counted as true (``Approx.MAY``)."""
    proto = (0, 255)
    if match.protocols is not None and not match.protocols_negated:
        if not match.protocols:
            return Box(proto=(1, 0))
        proto = (min(match.protocols), max(match.protocols))
    dport = (0, 65535)
    if match.source_ports or match.destination_ports:
        proto = _meet(proto, _PORT_PROTO)
    for pm in match.destination_ports:
        if not pm.negated and pm.ranges:
            dport = _meet(dport, (min(r[0] for r in pm.ranges), max(r[1] for r in pm.ranges)))
    if match.icmp:
        icmp = PROTO_ICMP if family == 4 else PROTO_ICMPV6
        proto = _meet(proto, (icmp, icmp))
    ct = _ALL_CT
    if match.ct_states is not None:
        bits = 0
        for state in match.ct_states:
            bits |= 1 << CT_CODES[state]
        ct = (_ALL_CT & ~bits) if match.ct_states_negated else bits
    return Box(
        src=_address_hull(match, True, family),
        dst=_address_hull(match, False, family),
        dport=dport,
        proto=proto,
        ct=ct,
    )


class _ChainBoxes:
    """The boxes of one chain's rules as arrays (one row per rule, in order)."""

    def __init__(self, rules: tuple[Rule, ...], family: int) -> None:
        boxes = [box_of(rule.match, family) for rule in rules]
        self.rules = rules
        self.boxes = boxes

        def column(pick: int, field: str) -> npt.NDArray[np.uint64]:
            return np.fromiter(
                (getattr(b, field)[pick] for b in boxes), dtype=np.uint64, count=len(boxes)
            )

        self.src_lo, self.src_hi = column(0, "src"), column(1, "src")
        self.dst_lo, self.dst_hi = column(0, "dst"), column(1, "dst")
        self.dport_lo, self.dport_hi = column(0, "dport"), column(1, "dport")
        self.proto_lo, self.proto_hi = column(0, "proto"), column(1, "proto")
        self.ct = np.fromiter((b.ct for b in boxes), dtype=np.uint64, count=len(boxes))

    def meeting(self, q: Box, stop: int | None = None) -> list[int]:
        """Indexes (0-based, ascending) of the rules (before index ``stop``, when given)
        whose box meets ``q``."""
        n = len(self.rules) if stop is None else min(stop, len(self.rules))
        if q.empty or n <= 0:
            return []
        u = np.uint64
        hit = (
            (self.src_lo[:n] <= u(q.src[1]))
            & (self.src_hi[:n] >= u(q.src[0]))
            & (self.dst_lo[:n] <= u(q.dst[1]))
            & (self.dst_hi[:n] >= u(q.dst[0]))
            & (self.dport_lo[:n] <= u(q.dport[1]))
            & (self.dport_hi[:n] >= u(q.dport[0]))
            & (self.proto_lo[:n] <= u(q.proto[1]))
            & (self.proto_hi[:n] >= u(q.proto[0]))
            & ((self.ct[:n] & u(q.ct)) != 0)
        )
        found: list[int] = np.flatnonzero(hit).tolist()
        return found


class RuleIndex:
    """Rule boxes of every chain of ``ruleset``, built once (time and memory linear in the
    number of rules).

    :meth:`select` gives a chain's rules whose box meets a query box, in chain order;
    :meth:`box` a rule's own box.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.family = ruleset.family
        self._chains = {
            name: _ChainBoxes(chain.rules, ruleset.family) for name, chain in ruleset.chains.items()
        }

    def select(self, chain: str, query: Box) -> list[Rule]:
        """The rules of ``chain`` whose box meets ``query``, in order."""
        boxes = self._chains[chain]
        return [boxes.rules[i] for i in boxes.meeting(query)]

    def box(self, chain: str, position: int) -> Box:
        """The box of rule ``position`` (1-based) of ``chain``."""
        return self._chains[chain].boxes[position - 1]
