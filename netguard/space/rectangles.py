"""Readable descriptions of header spaces as unions of rectangles.

A *rectangle* gives, per header field, a set of values (intervals, prefixes, states,
interface classes) or "any"; it stands for the valid packets whose every field lies in its set.
A set of packets is covered by rectangles in four steps:

1. decomposition, field by field in reading order (family, protocol, destination, destination
   port, source, source port, ICMP type and code, state, interfaces, IPsec): the values of a
   field are grouped into classes with the same residual set over the remaining fields
   (``forall others. S <-> residual``), and each class is decomposed further. The result is
   exact and disjoint;
2. merging rectangles that differ in one field only (union of that field's values);
3. widening a field to "any" when the widened rectangle still lies inside the set (this drops
   fields that only restate validity, e.g. ICMP type 0 on TCP, and fields the set does not
   constrain), then dropping rectangles inside another;
4. merging again.

Each step keeps the union equal to the set, so the cover is exact unless it is truncated:
when the decomposition or the final list exceeds the limit, ``truncated`` is True and the
rectangles returned are a subset of a cover (each still inside the set).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from netguard.cidr import PrefixSet, interval_to_prefixes, merge_intervals
from netguard.model.ruleset import CtState
from netguard.space._bdd import Node
from netguard.space.engine import _V4_OFFSET, CT_CODES, Engine, HeaderSpace
from netguard.space.packet import protocol_name

if TYPE_CHECKING:
    from netguard.space._bdd import Manager

Intervals = tuple[tuple[int, int], ...]

#: Fields in decomposition (reading) order.
DIMS = (
    "family",
    "proto",
    "dst",
    "dport",
    "src",
    "sport",
    "icmp_type",
    "icmp_code",
    "ct",
    "in",
    "out",
    "ipsec",
)
_ADDR = frozenset({"src", "dst"})
# Widening order: fields least worth showing first (the family before the protocol, so that
# ICMP type 8 reads "icmp icmp-type 8", not "ipv4 icmp-type 8").
_WIDEN = (
    "ipsec",
    "out",
    "in",
    "icmp_code",
    "icmp_type",
    "ct",
    "sport",
    "src",
    "dport",
    "dst",
    "family",
    "proto",
)
_CT_BY_CODE = {code: state for state, code in CT_CODES.items()}


@dataclass(frozen=True)
class Rectangle:
    """A product of per-field value sets (``None``: any value), intersected with the valid
    packets.

    ``family`` 4 or 6. ``protocols``, ``sport``, ``dport``, ``icmp_type``, ``icmp_code``:
    inclusive ``(first, last)`` ranges. ``src``/``dst``: exact address sets (of one family).
    ``ct_states``: conntrack states. ``in_interfaces``/``out_interfaces``: interface class
    labels of the engine (a name, ``"eth+"`` for unnamed interfaces starting with ``eth``,
    ``None`` for any other or no interface). ``ipsec``: IPsec-processed or not.
    """

    family: int | None = None
    protocols: Intervals | None = None
    dst: PrefixSet | None = None
    dport: Intervals | None = None
    src: PrefixSet | None = None
    sport: Intervals | None = None
    icmp_type: Intervals | None = None
    icmp_code: Intervals | None = None
    ct_states: frozenset[CtState] | None = None
    in_interfaces: frozenset[str | None] | None = None
    out_interfaces: frozenset[str | None] | None = None
    ipsec: bool | None = None

    def __str__(self) -> str:
        """E.g. ``ipv4 tcp dst 198.51.100.128/25 dport 443``; a field whose complement is
        shorter prints as ``not ...`` (``udp dport not 53``); ``any`` for the whole space."""
        parts: list[str] = []
        family = self.family
        for addrs in (self.src, self.dst):
            if family is None and addrs is not None:
                family = 4 if addrs.v4_intervals else 6 if addrs.v6_intervals else None
        if family is not None:
            parts.append(f"ipv{family}")
        if self.protocols is not None:
            parts.append(_values_text(self.protocols, 255, lambda n: protocol_name(n, self.family)))
        for name, addrs in (("src", self.src), ("dst", self.dst)):
            if addrs is not None:
                parts.append(f"{name} {_addresses_text(addrs)}")
        for name, ranges in (
            ("sport", self.sport),
            ("dport", self.dport),
            ("icmp-type", self.icmp_type),
            ("icmp-code", self.icmp_code),
        ):
            if ranges is not None:
                limit = 65535 if name.endswith("port") else 255
                parts.append(f"{name} {_values_text(ranges, limit, str)}")
        if self.ct_states is not None:
            states = sorted(self.ct_states, key=lambda s: CT_CODES[s])
            parts.append("state " + ",".join(s.value for s in states))
        for name, ifaces in (("in", self.in_interfaces), ("out", self.out_interfaces)):
            if ifaces is not None:
                labels = sorted(ifaces, key=lambda x: (x is None, x or ""))
                parts.append(f"{name} " + ",".join("other" if x is None else x for x in labels))
        if self.ipsec is not None:
            parts.append("ipsec" if self.ipsec else "not-ipsec")
        return " ".join(parts) if parts else "any"


def _complement(ranges: Intervals, maximum: int) -> Intervals:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= maximum:
        out.append((nxt, maximum))
    return tuple(out)


def _values_text(ranges: Intervals, maximum: int, name: Callable[[int], str]) -> str:
    def text(rs: Intervals) -> str:
        return ",".join(name(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in rs)

    others = _complement(ranges, maximum)
    if others and len(others) < len(ranges):
        return "not " + text(others)
    return text(ranges)


def _addresses_text(addrs: PrefixSet) -> str:
    family = 4 if addrs.v4_intervals else 6
    mine = addrs.prefixes(family)
    if not mine:
        return "none"
    maximum = (1 << (32 if family == 4 else 128)) - 1
    intervals = addrs.v4_intervals if family == 4 else addrs.v6_intervals
    other_intervals = _complement(intervals, maximum)
    others = [p for lo, hi in other_intervals for p in interval_to_prefixes(lo, hi, family)]
    if others and len(others) < len(mine):
        return "not " + ",".join(str(p) for p in others)
    return ",".join(str(p) for p in mine)


class Rectangles(Sequence[Rectangle]):
    """The rectangles of a cover, in a stable order; ``truncated`` True when not exact."""

    def __init__(self, rectangles: Sequence[Rectangle], truncated: bool) -> None:
        self._items = tuple(rectangles)
        self.truncated = truncated

    @overload
    def __getitem__(self, index: int) -> Rectangle: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Rectangle]: ...

    def __getitem__(self, index: int | slice) -> Rectangle | Sequence[Rectangle]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rectangles):
            return self._items == other._items and self.truncated == other.truncated
        if isinstance(other, list | tuple):
            return list(self._items) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._items, self.truncated))

    def __repr__(self) -> str:
        return f"Rectangles({list(self._items)!r}, truncated={self.truncated})"

    def __str__(self) -> str:
        lines = [str(r) for r in self._items] or ["(empty)"]
        if self.truncated:
            lines.append("... (truncated)")
        return "\n".join(lines)


# --- internal representation --------------------------------------------------------------------


@dataclass(frozen=True)
class _Rect:
    """Per DIMS entry: code intervals or None (any). ``fam`` is the family code (0 IPv4,
    1 IPv6) the address intervals are in."""

    fam: int
    dims: tuple[Intervals | None, ...]


class _Truncated(Exception):
    pass


def _field_vars(engine: Engine, dim: str, fam: int) -> tuple[str, ...]:
    if dim in _ADDR:
        return engine.addr_vars(dim, 4 if fam == 0 else 6)
    return engine.fields[dim].vars


def _intervals(b: Manager, u: Node, vars_: Sequence[str], cap: int) -> Intervals:
    """The values over bits ``vars_`` (MSB first) where ``u`` holds, as merged intervals."""
    width = len(vars_)
    out: list[tuple[int, int]] = []

    def rec(v: Node, i: int, base: int) -> None:
        if v == b.false:
            return
        if v == b.true:
            lo, hi = base, base + (1 << (width - i)) - 1
            if out and out[-1][1] + 1 == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
                if len(out) > cap:
                    raise _Truncated
            return
        name = vars_[i]
        rec(b.let({name: False}, v), i + 1, base)
        rec(b.let({name: True}, v), i + 1, base | (1 << (width - 1 - i)))

    rec(u, 0, 0)
    return tuple(out)


def field_intervals(b: Manager, u: Node, vars_: Sequence[str]) -> Intervals:
    """The values over bits ``vars_`` (most significant first) where ``u``, a function of
    those bits only, holds: merged inclusive intervals, every one of them."""
    return _intervals(b, u, vars_, cap=1 << 62)


def _decompose(engine: Engine, node: Node, cap: int, truncated: list[bool]) -> Iterator[_Rect]:
    """Exact disjoint rectangles of ``node``, field by field (see the module docstring). A
    class whose values need more than ``cap`` intervals is skipped, noting it in
    ``truncated``."""
    b = engine.bdd

    def rec(u: Node, d: int, fam: int, dims: tuple[Intervals | None, ...]) -> Iterator[_Rect]:
        if u == b.false:
            return
        if d == len(DIMS):
            yield _Rect(fam, dims)
            return
        dim = DIMS[d]
        if dim in _ADDR and fam == 0:
            high = engine.fields[dim].vars[:_V4_OFFSET]
            u = b.let(dict.fromkeys(high, False), u)
        vars_ = _field_vars(engine, dim, fam)
        var_set = set(vars_)
        if not (b.support(u) & var_set):
            yield from rec(u, d + 1, fam, (*dims, None))
            return
        rest = u
        while rest != b.false:
            residual = rest
            value = 0
            for name in vars_:
                low = b.let({name: False}, residual)
                value <<= 1
                if low != b.false:
                    residual = low
                else:
                    residual = b.let({name: True}, residual)
                    value |= 1
            same = (rest & residual) | (~rest & ~residual)
            cls = b.forall(b.support(same) - var_set, same)
            rest = rest & ~cls
            try:
                codes = _intervals(b, cls, vars_, cap)
            except _Truncated:
                truncated.append(True)
                continue
            next_fam = value if dim == "family" else fam
            yield from rec(residual, d + 1, next_fam, (*dims, codes))

    return rec(node, 0, 0, ())


_PART_CACHE: weakref.WeakKeyDictionary[Engine, dict[tuple[object, ...], Node]] = (
    weakref.WeakKeyDictionary()
)


def _dim_node(engine: Engine, dim: str, fam: int, codes: Intervals) -> Node:
    """The BDD of one dimension's intervals, built once per engine: widening asks for the same
    parts again and again, and building an address part means one BDD per prefix."""
    cache = _PART_CACHE.setdefault(engine, {})
    key = (dim, fam if dim in _ADDR else None, codes)
    part = cache.get(key)
    if part is not None:
        return part
    b = engine.bdd
    part = b.false
    if dim in _ADDR:
        family = 4 if fam == 0 else 6
        for lo, hi in codes:
            for net in interval_to_prefixes(lo, hi, family):
                part = part | engine.prefix(dim, net)
    else:
        vars_ = engine.fields[dim].vars
        for lo, hi in codes:
            part = part | engine.range_vars(vars_, lo, hi)
    cache[key] = part
    return part


def _rect_node(engine: Engine, r: _Rect) -> Node:
    node = engine.bdd.true
    for dim, codes in zip(DIMS, r.dims, strict=True):
        if codes is not None:
            node = node & _dim_node(engine, dim, r.fam, codes)
    return node & engine.valid


def _union(a: Intervals | None, c: Intervals | None) -> Intervals | None:
    if a is None or c is None:
        return None
    return tuple(merge_intervals(a + c))


def _merge(rects: list[_Rect]) -> list[_Rect]:
    """Merge rectangles equal in every field but one, until nothing changes."""
    changed = True
    while changed:
        changed = False
        for d in range(len(DIMS)):
            groups: dict[tuple[object, ...], _Rect] = {}
            for r in rects:
                has_addr = any(r.dims[DIMS.index(a)] is not None for a in _ADDR)
                key = (r.fam if has_addr else -1, r.dims[:d], r.dims[d + 1 :])
                if key in groups:
                    g = groups[key]
                    groups[key] = _Rect(
                        r.fam, (*r.dims[:d], _union(g.dims[d], r.dims[d]), *r.dims[d + 1 :])
                    )
                    changed = True
                else:
                    groups[key] = r
            rects = list(groups.values())
    return rects


def _inside(a: Intervals, c: Intervals) -> bool:
    """Every interval of ``a`` inside some interval of merged ``c``."""
    return all(any(clo <= lo and hi <= chi for clo, chi in c) for lo, hi in a)


def _contains(outer: _Rect, inner: _Rect) -> bool:
    for dim, o, i in zip(DIMS, outer.dims, inner.dims, strict=True):
        if o is None:
            continue
        if i is None:
            return False
        if dim in _ADDR and outer.fam != inner.fam:
            return False
        if not _inside(i, o):
            return False
    return True


def _widen(engine: Engine, rects: list[_Rect], target: Node) -> list[_Rect]:
    b = engine.bdd
    out: list[_Rect] = []
    for r in rects:
        for dim in _WIDEN:
            d = DIMS.index(dim)
            if r.dims[d] is None:
                continue
            cand = _Rect(r.fam, (*r.dims[:d], None, *r.dims[d + 1 :]))
            if (_rect_node(engine, cand) & ~target) == b.false:
                r = cand
        out.append(r)
    kept: list[_Rect] = []
    for i, r in enumerate(out):
        covered = any(
            _contains(o, r) and (not _contains(r, o) or j < i) for j, o in enumerate(out) if j != i
        )
        if not covered:
            kept.append(r)
    return kept


def _public(engine: Engine, r: _Rect) -> Rectangle:
    dims = dict(zip(DIMS, r.dims, strict=True))

    def addrs(codes: Intervals | None) -> PrefixSet | None:
        if codes is None:
            return None
        return PrefixSet(codes, ()) if r.fam == 0 else PrefixSet((), codes)

    def values(codes: Intervals | None) -> list[int] | None:
        if codes is None:
            return None
        return [c for lo, hi in codes for c in range(lo, hi + 1)]

    fam = values(dims["family"])
    ct = values(dims["ct"])
    ipsec = values(dims["ipsec"])
    labels = engine.universe.labels

    def ifaces(codes: Intervals | None) -> frozenset[str | None] | None:
        vals = values(codes)
        if vals is None:
            return None
        return frozenset(labels[c] for c in vals if c < len(labels))

    return Rectangle(
        family=None if fam is None else (4 if fam == [0] else 6 if fam == [1] else None),
        protocols=dims["proto"],
        dst=addrs(dims["dst"]),
        dport=dims["dport"],
        src=addrs(dims["src"]),
        sport=dims["sport"],
        icmp_type=dims["icmp_type"],
        icmp_code=dims["icmp_code"],
        ct_states=None if ct is None else frozenset(_CT_BY_CODE[c] for c in ct if c in _CT_BY_CODE),
        in_interfaces=ifaces(dims["in"]),
        out_interfaces=ifaces(dims["out"]),
        ipsec=None if ipsec is None or len(ipsec) != 1 else bool(ipsec[0]),
    )


def _sort_key(r: _Rect) -> tuple[object, ...]:
    return (r.fam, tuple((0, ()) if d is None else (1, d) for d in r.dims))


def cover(space: HeaderSpace, limit: int) -> Rectangles:
    """Rectangles whose union is ``space`` (see the module docstring); at most ``limit``."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    engine = space.engine
    cap = max(4 * limit, 64)
    skipped: list[bool] = []
    raw: list[_Rect] = []
    for r in _decompose(engine, space.node, cap, skipped):
        raw.append(r)
        if len(raw) > cap:
            break
    truncated = len(raw) > cap or bool(skipped)
    rects = _merge(raw)
    rects = _widen(engine, rects, space.node)
    rects = _merge(rects)
    # Largest first (so a truncated cover shows the bulk of the set), then reading order.
    size = {r: engine._count(_rect_node(engine, r)) for r in rects}
    rects.sort(key=lambda r: (-size[r], _sort_key(r)))
    if len(rects) > limit:
        rects, truncated = rects[:limit], True
    return Rectangles([_public(engine, r) for r in rects], truncated)


def rectangle_space(engine: Engine, rect: Rectangle) -> HeaderSpace:
    """The valid packets inside ``rect``; ``ValueError`` for an interface label the engine
    does not know."""
    b = engine.bdd
    node = engine.family(rect.family)
    if rect.protocols is not None:
        node = node & engine.ranges("proto", rect.protocols)
    for dim, addrs in (("src", rect.src), ("dst", rect.dst)):
        if addrs is not None:
            node = node & engine.addresses(dim, addrs)
    for dim, ranges in (
        ("sport", rect.sport),
        ("dport", rect.dport),
        ("icmp_type", rect.icmp_type),
        ("icmp_code", rect.icmp_code),
    ):
        if ranges is not None:
            node = node & engine.ranges(dim, ranges)
    if rect.ct_states is not None:
        node = node & engine.ranges("ct", [(CT_CODES[s], CT_CODES[s]) for s in rect.ct_states])
    for dim, ifaces in (("in", rect.in_interfaces), ("out", rect.out_interfaces)):
        if ifaces is not None:
            try:
                codes = [engine.universe.code_of_label(x) for x in ifaces]
            except KeyError as exc:
                raise ValueError(f"unknown interface class {exc.args[0]!r}") from None
            node = node & engine.interface_codes(dim, codes)
    if rect.ipsec is not None:
        x = b.var("ipsec0")
        node = node & (x if rect.ipsec else ~x)
    return engine.wrap(node)
