"""The exact packet-space engine: sets of packets as BDDs over the header fields.

Header space: one BDD variable per bit, each field most significant bit first, fields in this
order from the top (dynamic reordering is off):

====================  =====  ===================================================================
field                 bits   encoding
====================  =====  ===================================================================
``family``            1      0 = IPv4, 1 = IPv6
``ct``                3      conntrack state: NEW 0, ESTABLISHED 1, RELATED 2, INVALID 3,
                             UNTRACKED 4; codes 5-7 are invalid
``proto``             8      IANA protocol number
``dport``             16     destination port; 0 for protocols without ports
``dst``               128    destination address; IPv4 is the low 32 bits with the high 96 bits
                             0 (valid IPv4 packets always have them 0)
``src``               128    source address, as ``dst``
``sport``             16     source port; 0 for protocols without ports
``icmp_type``         8      ICMP/ICMPv6 type; 0 unless ICMP (proto 1, IPv4) or ICMPv6 (58, IPv6)
``icmp_code``         8      ICMP/ICMPv6 code; 0 likewise
``in``, ``out``       k      interface class code (below); codes past the universe are invalid
``ipsec``             1      1 = IPsec-processed (``-m policy --pol ipsec``)
====================  =====  ===================================================================

Why this order: fields with few distinct values that rules test often (family, conntrack state,
protocol, destination port) come first, so the BDD of a long chain branches on them once and
shares the address structure below; destination before source because rule sets group by
destination. Measured on a synthetic chain (random source and destination prefixes /8-/32,
TCP/UDP, one port or a range, half with ``--ctstate NEW``, ACCEPT or DROP), 3,000 rules: this
order 0.85 s; destination address before the port 1.7 s (15 s against 5 s at 10,000 rules);
conntrack state at the bottom 8 s; source and destination addresses adjacent 27-99 s.

Protocols with ports: TCP 6, UDP 17, DCCP 33, SCTP 132, UDPLite 136 (``PORT_PROTOCOLS``). A
port condition (``--dport``, ``th dport``) implies one of these protocols, negated or not:
``! --dport 22`` matches TCP packets to other ports, never ICMP. Likewise an ICMP condition
implies ICMP of the rule set's family.

Every set the engine hands out is a subset of the *valid* packets: the field constraints above
hold, so complement (``~``) is taken within valid packets and counts are packet counts.

Interfaces: the universe is finite and exact. It holds every interface name the rule sets name
(``eth0``), one class per wildcard prefix they use (``eth+``: *the names starting with "eth"
that are not named and do not start with a longer listed wildcard prefix*), and one "other"
class (``None``: every remaining name, and no interface at all). Any real interface name falls
in exactly one class, and every rule condition (exact name or wildcard prefix from the
universe) matches all or none of a class, so interface matching is exact, not approximate.
The empty wildcard (``-i +``) matches every class, "other" included.
Build the engine with :meth:`Engine.for_rulesets` so the universe covers the rules.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Union

from netguard.cidr import PrefixSet, interval_to_prefixes
from netguard.errors import NetguardError
from netguard.model.ruleset import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    AddressMatch,
    CtState,
    InterfaceMatch,
    Match,
    PortMatch,
    RuleSet,
)
from netguard.space._bdd import BACKEND_NAME, Manager, Node
from netguard.space.packet import PORT_PROTOCOLS, Packet

if TYPE_CHECKING:
    from netguard.space.rectangles import Rectangle, Rectangles

__all__ = [
    "BACKEND_NAME",
    "CT_CODES",
    "FIELD_ORDER",
    "Approx",
    "Engine",
    "HeaderSpace",
    "InterfaceUniverse",
    "UnmodeledError",
]

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007
Ranges = Sequence[tuple[int, int]]


class Approx(StrEnum):
    """How to treat conditions and targets the reader could not model (``Match.unmodeled``).

    EXACT refuses them (raises :class:`UnmodeledError`). MAY over-approximates a match (an
    unmodeled condition counts as true) and MUST under-approximates it (it makes the match
    empty). For a rule set, MAY gives every packet that *may* be accepted under some reading
    of the unmodeled parts, MUST every packet that *must* be (see ``netguard.space.evaluate``).
    """

    EXACT = "exact"
    MAY = "may"
    MUST = "must"


class UnmodeledError(NetguardError):
    """An exact answer was asked for, but conditions or targets could not be modeled.

    ``conditions`` lists ``(where, text)`` pairs; ``where`` is a rule location or ``""``.
    Callers that can live with a bound use ``Approx.MAY`` or ``Approx.MUST`` instead.
    """

    def __init__(self, conditions: Sequence[tuple[str, str]]) -> None:
        self.conditions = tuple(conditions)
        lines = [f"{where}: {text}" if where else text for where, text in self.conditions]
        super().__init__("cannot evaluate exactly; unmodeled: " + "; ".join(lines))


#: conntrack state codes of the ``ct`` field.
CT_CODES: dict[CtState, int] = {
    CtState.NEW: 0,
    CtState.ESTABLISHED: 1,
    CtState.RELATED: 2,
    CtState.INVALID: 3,
    CtState.UNTRACKED: 4,
}
_CT_BY_CODE = {code: state for state, code in CT_CODES.items()}

#: BDD variable order, top first (see the module docstring).
FIELD_ORDER = (
    "family",
    "ct",
    "proto",
    "dport",
    "dst",
    "src",
    "sport",
    "icmp_type",
    "icmp_code",
    "in",
    "out",
    "ipsec",
)
_FIXED_WIDTHS = {
    "family": 1,
    "ct": 3,
    "proto": 8,
    "dst": 128,
    "dport": 16,
    "src": 128,
    "sport": 16,
    "icmp_type": 8,
    "icmp_code": 8,
    "ipsec": 1,
}

_V4_OFFSET = 96  # IPv4 addresses occupy the low 32 of the 128 address bits


class InterfaceUniverse:
    """The finite set of interface classes an engine distinguishes (see the module docstring).

    Built from entries such as ``"eth0"`` (a name) and ``"eth+"`` (a wildcard prefix).
    ``labels[code]`` names each class: ``None`` for "other" (code 0), the name itself for a
    listed name, and ``"eth+"`` for the class of unlisted names starting with ``eth``.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        names: set[str] = set()
        prefixes: set[str] = set()
        for entry in entries:
            if entry.endswith("+"):
                if entry[:-1]:
                    prefixes.add(entry[:-1])
            elif entry:
                names.add(entry)
        self.names = frozenset(names)
        self.prefixes = frozenset(prefixes)
        self.labels: tuple[str | None, ...] = (
            None,
            *sorted(names),
            *(p + "+" for p in sorted(prefixes)),
        )
        self._code = {label: i for i, label in enumerate(self.labels)}
        self._examples: dict[int, str | None] = {0: None}
        for prefix in prefixes:
            self._examples[self._code[prefix + "+"]] = self._example_name(prefix)

    def __len__(self) -> int:
        return len(self.labels)

    def _example_name(self, prefix: str) -> str:
        """A concrete name in the class of ``prefix+``: ``prefix`` plus a small number."""
        i = 0
        while True:
            name = f"{prefix}{i}"
            if self.classify(name) == self._code[prefix + "+"]:
                return name
            i += 1

    def classify(self, name: str | None) -> int:
        """Code of the class holding interface ``name`` (``None``: no or an unnamed one)."""
        if name is None:
            return 0
        if name in self.names:
            return self._code[name]
        best = max((p for p in self.prefixes if name.startswith(p)), key=len, default=None)
        return 0 if best is None else self._code[best + "+"]

    def code_of_label(self, label: str | None) -> int:
        """Code of a class label as found in ``labels``; ``KeyError`` when unknown."""
        return self._code[label]

    def example(self, code: int) -> str | None:
        """A concrete interface name of class ``code`` (``None`` for "other")."""
        label = self.labels[code]
        if code in self._examples:
            return self._examples[code]
        return label

    def covers(self, im: InterfaceMatch) -> bool:
        """True when the condition ``im`` can be evaluated exactly over this universe."""
        if im.wildcard:
            return im.name == "" or im.name in self.prefixes
        return im.name in self.names

    def matching_codes(self, im: InterfaceMatch) -> list[int]:
        """Codes of the classes ``im`` matches (ignoring negation).

        Raises ``ValueError`` when the name or prefix is not in the universe, since the answer
        would not be exact.
        """
        if not self.covers(im):
            shown = im.name + ("+" if im.wildcard else "")
            raise ValueError(
                f"interface {shown!r} is not in this engine's interface universe "
                f"{[x for x in self.labels if x is not None]}; build the engine with "
                "Engine.for_rulesets(...) or pass it in interfaces="
            )
        if not im.wildcard:
            return [self._code[im.name]]
        codes = []
        for code, label in enumerate(self.labels):
            if label is None:
                hit = im.name == ""
            elif label.endswith("+") and label[:-1] in self.prefixes and label not in self.names:
                hit = label[:-1].startswith(im.name)
            else:
                hit = label.startswith(im.name)
            if hit:
                codes.append(code)
        return codes


def _rule_set_interfaces(rulesets: Iterable[RuleSet]) -> Iterator[str]:
    for rs in rulesets:
        for chain in rs.chains.values():
            for rule in chain.rules:
                for im in rule.match.in_interfaces + rule.match.out_interfaces:
                    yield im.name + "+" if im.wildcard else im.name


@dataclass(frozen=True)
class _Field:
    name: str
    vars: tuple[str, ...]  # most significant bit first

    @property
    def width(self) -> int:
        return len(self.vars)


class Engine:
    """Factory of header spaces: holds the BDD manager and the interface universe.

    ``interfaces``: names (``"eth0"``) and wildcard prefixes (``"eth+"``) to distinguish; use
    :meth:`for_rulesets` to collect them from rule sets. Spaces from different engines do not
    mix (``ValueError``).
    """

    def __init__(self, interfaces: Iterable[str] = ()) -> None:
        self.universe = InterfaceUniverse(interfaces)
        if_bits = max(1, (len(self.universe) - 1).bit_length())
        widths = dict(_FIXED_WIDTHS, **{"in": if_bits, "out": if_bits})
        self.fields: dict[str, _Field] = {
            name: _Field(name, tuple(f"{name}{i}" for i in range(widths[name])))
            for name in FIELD_ORDER
        }
        self.bdd = Manager([v for name in FIELD_ORDER for v in self.fields[name].vars])
        b = self.bdd
        self._fam6 = b.var("family0")
        self._fam: dict[int, Node] = {4: ~self._fam6, 6: self._fam6}
        hi_zero = b.cube(
            {v: False for f in ("src", "dst") for v in self.fields[f].vars[:_V4_OFFSET]}
        )
        self._port_proto = self._or(self.eq("proto", p) for p in sorted(PORT_PROTOCOLS))
        self._icmp_proto: dict[int, Node] = {
            4: self._fam[4] & self.eq("proto", PROTO_ICMP),
            6: self._fam[6] & self.eq("proto", PROTO_ICMPV6),
        }
        any_icmp = self._icmp_proto[4] | self._icmp_proto[6]
        no_ports = self.eq("sport", 0) & self.eq("dport", 0)
        no_icmp = self.eq("icmp_type", 0) & self.eq("icmp_code", 0)
        last_if = len(self.universe) - 1
        self.valid: Node = (
            (self._fam[6] | hi_zero)
            & self.le("ct", len(CT_CODES) - 1)
            & (self._port_proto | no_ports)
            & (any_icmp | no_icmp)
            & self.le("in", last_if)
            & self.le("out", last_if)
        )
        self._prefs: dict[str, list[Node]] | None = None

    @classmethod
    def for_rulesets(cls, *rulesets: RuleSet, interfaces: Iterable[str] = ()) -> Engine:
        """An engine whose interface universe covers every interface the rule sets name."""
        return cls([*_rule_set_interfaces(rulesets), *interfaces])

    def __repr__(self) -> str:
        return f"Engine(interfaces={[x for x in self.universe.labels if x is not None]!r})"

    # --- building blocks over one field ---------------------------------------------------------

    def _or(self, nodes: Iterable[Node]) -> Node:
        out = self.bdd.false
        for n in nodes:
            out = out | n
        return out

    def _bits(self, vars_: Sequence[str], value: int) -> dict[str, bool]:
        width = len(vars_)
        return {v: bool((value >> (width - 1 - i)) & 1) for i, v in enumerate(vars_)}

    def eq(self, field: str, value: int) -> Node:
        """``field == value``."""
        return self.bdd.cube(self._bits(self.fields[field].vars, value))

    def _le_vars(self, vars_: Sequence[str], bound: int) -> Node:
        """``x <= bound`` over bits ``vars_`` (MSB first), built from the LSB up: O(width)."""
        b = self.bdd
        width = len(vars_)
        if bound >= (1 << width) - 1:
            return b.true
        out = b.true
        for i in range(width - 1, -1, -1):
            x = b.var(vars_[i])
            out = (~x | out) if (bound >> (width - 1 - i)) & 1 else (~x & out)
        return out

    def _ge_vars(self, vars_: Sequence[str], bound: int) -> Node:
        """``x >= bound`` over bits ``vars_`` (MSB first)."""
        b = self.bdd
        width = len(vars_)
        if bound <= 0:
            return b.true
        out = b.true
        for i in range(width - 1, -1, -1):
            x = b.var(vars_[i])
            out = (x & out) if (bound >> (width - 1 - i)) & 1 else (x | out)
        return out

    def le(self, field: str, bound: int) -> Node:
        """``field <= bound``."""
        return self._le_vars(self.fields[field].vars, bound)

    def range_vars(self, vars_: Sequence[str], first: int, last: int) -> Node:
        """``first <= x <= last`` over bits ``vars_``."""
        if first > last:
            return self.bdd.false
        if first == last:
            return self.bdd.cube(self._bits(vars_, first))
        return self._ge_vars(vars_, first) & self._le_vars(vars_, last)

    def ranges(self, field: str, ranges: Ranges) -> Node:
        """Union of inclusive ranges over one field."""
        vars_ = self.fields[field].vars
        return self._or(self.range_vars(vars_, lo, hi) for lo, hi in ranges)

    def addr_vars(self, field: str, family: int) -> tuple[str, ...]:
        """The address bits that vary in ``family`` (low 32 for IPv4, all 128 for IPv6)."""
        vars_ = self.fields[field].vars
        return vars_[_V4_OFFSET:] if family == 4 else vars_

    def prefix(self, field: str, network: Network) -> Node:
        """``field`` inside ``network``, with the family of the network."""
        family = network.version
        vars_ = self.addr_vars(field, family)
        value = int(network.network_address)
        width = len(vars_)
        plen = network.prefixlen
        bits = {vars_[i]: bool((value >> (width - 1 - i)) & 1) for i in range(plen)}
        return self._fam[family] & self.bdd.cube(bits)

    def addresses(self, field: str, addresses: PrefixSet, family: int | None = None) -> Node:
        """``field`` in ``addresses`` (the families present, or only ``family``)."""
        out = self.bdd.false
        for fam, intervals in ((4, addresses.v4_intervals), (6, addresses.v6_intervals)):
            if family is not None and fam != family:
                continue
            for first, last in intervals:
                for net in interval_to_prefixes(first, last, fam):
                    out = out | self.prefix(field, net)
        return out

    def family(self, family: int | None) -> Node:
        """Packets of ``family`` (4 or 6; ``None``: both)."""
        if family is None:
            return self.bdd.true
        if family not in (4, 6):
            raise ValueError(f"family must be 4, 6 or None, not {family!r}")
        return self._fam[family]

    def interface_codes(self, field: str, codes: Iterable[int]) -> Node:
        """``field`` (``in`` or ``out``) is one of the class ``codes``."""
        return self._or(self.eq(field, c) for c in codes)

    # --- spaces -----------------------------------------------------------------------------------

    def wrap(self, node: Node) -> HeaderSpace:
        """The space of the valid packets in ``node``."""
        return HeaderSpace(self, node & self.valid)

    def all(self, family: int | None = None) -> HeaderSpace:
        """Every valid packet (of ``family`` when given)."""
        return HeaderSpace(self, self.valid & self.family(family))

    def none(self) -> HeaderSpace:
        """The empty space."""
        return HeaderSpace(self, self.bdd.false)

    def packet(self, p: Packet) -> HeaderSpace:
        """The space holding exactly packet ``p`` (interfaces taken by their class)."""
        return HeaderSpace(self, self._packet_node(p))

    def _packet_node(self, p: Packet) -> Node:
        f = self.fields
        bits: dict[str, bool] = {"family0": p.family == 6, "ipsec0": p.ipsec}
        values = {
            "ct": CT_CODES[p.ct_state],
            "proto": p.protocol,
            "dport": p.dport,
            "sport": p.sport,
            "icmp_type": p.icmp_type,
            "icmp_code": p.icmp_code,
            "in": self.universe.classify(p.in_interface),
            "out": self.universe.classify(p.out_interface),
            "dst": int(p.dst),
            "src": int(p.src),
        }
        for name, value in values.items():
            bits.update(self._bits(f[name].vars, value))
        return self.bdd.cube(bits)

    def space(
        self,
        *,
        family: int | None = None,
        protocols: Iterable[int] | None = None,
        src: PrefixSet | Iterable[Network | str] | None = None,
        dst: PrefixSet | Iterable[Network | str] | None = None,
        sport: Ranges | int | None = None,
        dport: Ranges | int | None = None,
        icmp_type: Ranges | int | None = None,
        icmp_code: Ranges | int | None = None,
        ct_states: Iterable[CtState] | None = None,
        in_interfaces: Iterable[str | None] | None = None,
        out_interfaces: Iterable[str | None] | None = None,
        ipsec: bool | None = None,
    ) -> HeaderSpace:
        """The valid packets whose fields lie in the given sets (``None``: any value).

        Addresses: a ``PrefixSet`` or CIDR strings / networks. Ports and ICMP: an int or
        inclusive ``(first, last)`` ranges; giving ports keeps only port protocols, giving
        ICMP fields keeps only ICMP. Interfaces: names (``"eth0"``, classified like a packet's
        interface), wildcards (``"eth+"``, every class the prefix matches) or ``None`` (the
        "other" class).
        """
        b = self.bdd
        node = self.family(family)
        if protocols is not None:
            node = node & self._or(self.eq("proto", p) for p in protocols)
        for field, value in (("src", src), ("dst", dst)):
            if value is not None:
                pset = value if isinstance(value, PrefixSet) else _prefix_set(value)
                node = node & self.addresses(field, pset)
        for field, value_r in (
            ("sport", sport),
            ("dport", dport),
            ("icmp_type", icmp_type),
            ("icmp_code", icmp_code),
        ):
            if value_r is not None:
                rs = [(value_r, value_r)] if isinstance(value_r, int) else value_r
                node = node & self.ranges(field, rs)
                node = node & (
                    self._port_proto
                    if field.endswith("port")
                    else (self._icmp_proto[4] | self._icmp_proto[6])
                )
        if ct_states is not None:
            node = node & self._or(self.eq("ct", CT_CODES[s]) for s in ct_states)
        for field, ifaces in (("in", in_interfaces), ("out", out_interfaces)):
            if ifaces is not None:
                codes: set[int] = set()
                for name in ifaces:
                    if name is not None and name.endswith("+"):
                        codes.update(
                            self.universe.matching_codes(InterfaceMatch(name[:-1], wildcard=True))
                        )
                    else:
                        codes.add(self.universe.classify(name))
                node = node & self.interface_codes(field, sorted(codes))
        if ipsec is not None:
            x = b.var("ipsec0")
            node = node & (x if ipsec else ~x)
        return self.wrap(node)

    def rectangle(self, rect: Rectangle) -> HeaderSpace:
        """The valid packets inside rectangle ``rect`` (from :meth:`HeaderSpace.rectangles`)."""
        from netguard.space.rectangles import rectangle_space

        return rectangle_space(self, rect)

    # --- matches ----------------------------------------------------------------------------------

    def match(
        self, match: Match, family: int | None = None, approx: Approx = Approx.EXACT
    ) -> HeaderSpace:
        """The packets (of ``family``; ``None``: both) that satisfy ``match``.

        ``match.unmodeled`` non-empty: EXACT raises :class:`UnmodeledError`, MAY ignores those
        conditions (over-approximation), MUST returns the empty space (under-approximation).
        Interface names must be in the universe (``ValueError`` otherwise).
        """
        if match.unmodeled:
            if approx is Approx.EXACT:
                raise UnmodeledError([("", text) for text in match.unmodeled])
            if approx is Approx.MUST:
                return self.none()
        families = (4, 6) if family is None else (family,)
        node = self._or(self._match_node(match, f) for f in families)
        return HeaderSpace(self, node & self.valid)

    def match_node(self, match: Match, family: int) -> Node:
        """The modeled conditions of ``match`` for ``family`` (unmodeled ones ignored), before
        intersecting with the valid packets."""
        return self._match_node(match, family)

    def _match_node(self, m: Match, family: int) -> Node:
        node = self._fam[family]
        if m.protocols is not None:
            protos = self._or(self.eq("proto", p) for p in sorted(m.protocols))
            node = node & (~protos if m.protocols_negated else protos)
        for field, ams in (("src", m.sources), ("dst", m.destinations)):
            for am in ams:
                node = node & self._address_match(field, am, family)
        for field, pms in (("sport", m.source_ports), ("dport", m.destination_ports)):
            for pm in pms:
                node = node & self._port_match(field, pm)
        for im in m.icmp:
            cond = self.ranges("icmp_code", [(im.code_first, im.code_last)])
            if im.type is not None:
                cond = cond & self.eq("icmp_type", im.type)
            node = node & self._icmp_proto[family] & (~cond if im.negated else cond)
        if m.ct_states is not None:
            states = self._or(self.eq("ct", CT_CODES[s]) for s in sorted(m.ct_states))
            node = node & (~states if m.ct_states_negated else states)
        for field, ims in (("in", m.in_interfaces), ("out", m.out_interfaces)):
            for iface in ims:
                hit = self.interface_codes(field, self.universe.matching_codes(iface))
                node = node & (~hit if iface.negated else hit)
        if m.ipsec is not None:
            x = self.bdd.var("ipsec0")
            node = node & (x if m.ipsec else ~x)
        return node

    def _address_match(self, field: str, am: AddressMatch, family: int) -> Node:
        inside = self.addresses(field, am.addresses, family)
        return ~inside if am.negated else inside

    def _port_match(self, field: str, pm: PortMatch) -> Node:
        inside = self.ranges(field, pm.ranges)
        return self._port_proto & (~inside if pm.negated else inside)

    # --- example extraction -------------------------------------------------------------------

    def _preferences(self) -> dict[str, list[Node]]:
        """Preference sets, most natural first, for :meth:`HeaderSpace.example`."""
        if self._prefs is not None:
            return self._prefs
        b = self.bdd
        fam4, fam6 = self._fam[4], self._fam[6]

        def icmp(v4: int, v6: int) -> Node:
            return (fam4 & self.eq("icmp_type", v4)) | (fam6 & self.eq("icmp_type", v6))

        def blocks(v4: Sequence[str], v6: Sequence[str], field: str) -> list[Node]:
            out = [
                self.prefix(field, ipaddress.ip_network(a))
                | self.prefix(field, ipaddress.ip_network(c))
                for a, c in zip(v4, v6, strict=True)
            ]
            unusual4 = self._or(
                self.prefix(field, ipaddress.ip_network(n))
                for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
            )
            public6 = self.prefix(field, ipaddress.ip_network("2000::/3"))
            out.append((fam4 & ~unusual4) | public6)
            out.append(b.true)
            return out

        doc6 = "2001:db8::/32"
        self._prefs = {
            "family": [fam4, fam6],
            "proto": [
                self.eq("proto", PROTO_TCP),
                self.eq("proto", PROTO_UDP),
                self._icmp_proto[4] | self._icmp_proto[6],
                b.true,
            ],
            "ct": [
                self.eq("ct", CT_CODES[CtState.NEW]),
                self.eq("ct", CT_CODES[CtState.ESTABLISHED]),
                self.eq("ct", CT_CODES[CtState.RELATED]),
                b.true,
            ],
            "dport": [self.eq("dport", p) for p in PREFERRED_PORTS]
            + [self.ranges("dport", [(1, 1023)]), self.ranges("dport", [(1024, 49151)]), b.true],
            "sport": [
                self.eq("sport", 40000),
                self.ranges("sport", [(32768, 60999)]),
                self.ranges("sport", [(1024, 65535)]),
                b.true,
            ],
            "icmp_type": [icmp(8, 128), icmp(0, 129), icmp(3, 1), b.true],
            "icmp_code": [self.eq("icmp_code", 0), b.true],
            "ipsec": [~b.var("ipsec0"), b.true],
            "in": [self.eq("in", 0), b.true],
            "out": [self.eq("out", 0), b.true],
            "dst": blocks(
                ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"],
                [doc6, doc6, doc6],
                "dst",
            ),
            "src": blocks(
                ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"],
                [doc6, doc6, doc6],
                "src",
            ),
        }
        return self._prefs

    def _example(self, node: Node) -> Packet | None:
        b = self.bdd
        if node == b.false:
            return None
        prefs = self._preferences()
        for field in (
            "family",
            "proto",
            "ct",
            "dport",
            "sport",
            "icmp_type",
            "icmp_code",
            "ipsec",
            "in",
            "out",
        ):
            node = _prefer(node, prefs[field], b.false)
        family = 4 if (node & self._fam[4]) != b.false else 6
        # Offsets: .5 / .10 in IPv4, ::5 / ::10 (hexadecimal 0x10) in IPv6.
        node = self._pick_address(node, "dst", family, prefs["dst"], 5)
        node = self._pick_address(node, "src", family, prefs["src"], 10 if family == 4 else 0x10)
        # Everything else: the least value in variable order. Down the BDD from the root,
        # take the low edge whenever it leads to a packet; a variable the path skips is
        # free, and 0 is least.
        bits = dict.fromkeys(self.bdd.variables, False)
        while node != b.true:
            var = node.var
            assert var is not None  # not FALSE: every step keeps a satisfiable node
            low, high = node.low, node.high
            if node.negated:  # a complemented edge complements both cofactors
                low, high = ~low, ~high
            if low != b.false:
                node = low
            else:
                node, bits[var] = high, True
        return self._decode(bits)

    def _pick_address(
        self, node: Node, field: str, family: int, prefs: list[Node], offset: int
    ) -> Node:
        """Fix ``field`` to a round address: inside the first preferred block the set touches,
        its lowest address plus ``offset`` (or plus 1) when that is in the set and the lowest
        address is aligned, else the lowest address."""
        b = self.bdd
        node = _prefer(node, prefs, b.false)
        vars_ = self.addr_vars(field, family)
        probe = node
        lowest = 0
        support = b.support(probe)
        for i, v in enumerate(vars_):
            if v not in support:  # free: 0 is least, and fixing it changes nothing else
                continue
            low = probe & ~b.var(v)
            if low != b.false:
                probe = low
            else:
                probe = probe & b.var(v)
                lowest |= 1 << (len(vars_) - 1 - i)
        candidates = [lowest + offset, lowest + 1, lowest] if lowest % 16 == 0 else [lowest]
        for cand in candidates:
            if cand < (1 << len(vars_)):
                picked = node & b.cube(self._bits(vars_, cand))
                if picked != b.false:
                    return picked
        return probe  # pragma: no cover - `lowest` is always in the set

    def _decode(self, bits: dict[str, bool]) -> Packet:
        def value(field: str) -> int:
            out = 0
            for v in self.fields[field].vars:
                out = (out << 1) | int(bits[v])
            return out

        family = 6 if bits["family0"] else 4

        def addr(field: str) -> Address:
            if family == 4:
                return ipaddress.IPv4Address(value(field) & 0xFFFFFFFF)
            return ipaddress.IPv6Address(value(field))

        return Packet(
            family=family,
            src=addr("src"),
            dst=addr("dst"),
            protocol=value("proto"),
            sport=value("sport"),
            dport=value("dport"),
            icmp_type=value("icmp_type"),
            icmp_code=value("icmp_code"),
            ct_state=_CT_BY_CODE[value("ct")],
            in_interface=self.universe.example(value("in")),
            out_interface=self.universe.example(value("out")),
            ipsec=bits["ipsec0"],
        )

    # --- counting -------------------------------------------------------------------------------

    def _count(self, node: Node) -> int:
        """Exact number of assignments (packets, for a valid set), with Python integers.

        Walks the BDD once: a node's count is the sum of its children's counts, each scaled by
        the variables skipped below it; a complemented edge counts the complement.
        """
        b = self.bdd
        n = len(b.variables)
        memo: dict[Node, int] = {}

        def rec(u: Node) -> int:
            """Models of ``u`` over the variables from its own top level down."""
            if u == b.true:
                return 1
            if u == b.false:
                return 0
            negated = u.negated
            regular = ~u if negated else u
            level = b.top_level(regular)
            got = memo.get(regular)
            if got is None:
                got = 0
                for child in (regular.low, regular.high):
                    got += rec(child) << (b.top_level(child) - level - 1)
                memo[regular] = got
            return (1 << (n - level)) - got if negated else got

        return rec(node) << b.top_level(node)


_REPR_MAX_NODES = 5000  # repr() describes smaller sets by rectangles, larger ones by size

#: Destination ports preferred in examples, most natural first.
PREFERRED_PORTS = (443, 22, 80, 53, 25, 3389, 8080, 8443)


def _prefer(node: Node, options: Sequence[Node], false: Node) -> Node:
    """``node`` intersected with the first option it meets (``node`` if it meets none)."""
    for option in options:
        meet = node & option
        if meet != false:
            return meet
    return node


def _prefix_set(items: Iterable[Network | str]) -> PrefixSet:
    nets = [ipaddress.ip_network(x) if isinstance(x, str) else x for x in items]
    return PrefixSet.from_prefixes(nets)


class HeaderSpace:
    """An immutable set of valid packets (a BDD), from one :class:`Engine`.

    Set algebra: ``|``, ``&``, ``-``, ``^`` and ``~`` (complement within the valid packets);
    ``==`` is set equality, ``<=``/``<`` subset; ``bool(space)`` is False when empty;
    ``packet in space`` tests membership. Mixing engines raises ``ValueError``.
    """

    __slots__ = ("_engine", "_node")

    def __init__(self, engine: Engine, node: Node) -> None:
        """Internal: use the :class:`Engine` factories. ``node`` must be within the valid
        packets."""
        self._engine = engine
        self._node = node

    @property
    def engine(self) -> Engine:
        """The engine this space belongs to."""
        return self._engine

    @property
    def node(self) -> Node:
        """The BDD of this set."""
        return self._node

    def _other(self, other: object) -> Node:
        if not isinstance(other, HeaderSpace):
            raise TypeError(f"expected a HeaderSpace, got {type(other).__name__}")
        if other._engine is not self._engine:
            raise ValueError("header spaces from different engines cannot be combined")
        return other._node

    def __or__(self, other: HeaderSpace) -> HeaderSpace:
        return HeaderSpace(self._engine, self._node | self._other(other))

    def __and__(self, other: HeaderSpace) -> HeaderSpace:
        return HeaderSpace(self._engine, self._node & self._other(other))

    def __sub__(self, other: HeaderSpace) -> HeaderSpace:
        return HeaderSpace(self._engine, self._node & ~self._other(other))

    def __xor__(self, other: HeaderSpace) -> HeaderSpace:
        o = self._other(other)
        return HeaderSpace(self._engine, (self._node & ~o) | (o & ~self._node))

    def __invert__(self) -> HeaderSpace:
        return HeaderSpace(self._engine, ~self._node & self._engine.valid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeaderSpace):
            return NotImplemented
        return self._node == self._other(other)

    def __hash__(self) -> int:
        return hash(self._node)

    def __le__(self, other: HeaderSpace) -> bool:
        return (self._node & ~self._other(other)) == self._engine.bdd.false

    def __lt__(self, other: HeaderSpace) -> bool:
        return self <= other and self != other

    def __ge__(self, other: HeaderSpace) -> bool:
        return other <= self

    def __gt__(self, other: HeaderSpace) -> bool:
        return other < self

    def __bool__(self) -> bool:
        return not self.is_empty()

    def __contains__(self, packet: object) -> bool:
        if not isinstance(packet, Packet):
            return False
        return (self._node & self._engine._packet_node(packet)) != self._engine.bdd.false

    def is_empty(self) -> bool:
        """True when no packet is in the set."""
        return self._node == self._engine.bdd.false

    def isdisjoint(self, other: HeaderSpace) -> bool:
        """True when the two sets share no packet."""
        return (self._node & self._other(other)) == self._engine.bdd.false

    def is_all(self, family: int | None = None) -> bool:
        """True when the set holds every valid packet (of ``family``)."""
        return self._node == self._engine.all(family)._node

    def count(self) -> int:
        """Exact number of packets in the set (interfaces counted per class)."""
        return self._engine._count(self._node)

    def example(self) -> Packet | None:
        """A packet of the set that reads naturally, or ``None`` when empty.

        Preferences, in this order, each kept only when the set meets it: IPv4 before IPv6;
        TCP, UDP, ICMP, then anything; state NEW, ESTABLISHED, RELATED; destination port 443,
        22, 80, 53, 25, 3389, 8080, 8443, then 1-1023, then 1024-49151; source port 40000,
        then 32768-60999 (the Linux ephemeral range), then 1024-65535; ICMP echo request,
        echo reply, unreachable; code 0; not IPsec; interfaces not named by the rules;
        destination then source address in a documentation range (198.51.100.0/24,
        203.0.113.0/24, 192.0.2.0/24, 2001:db8::/32), then a public-looking one, at the
        lowest address plus a small offset (``.5`` destination, ``.10`` source) when possible.
        """
        return self._engine._example(self._node)

    def rectangles(self, limit: int = 20) -> Rectangles:
        """A short description of the set as a union of header-space rectangles.

        Exact (the union equals the set) unless ``result.truncated`` is True, in which case
        at most ``limit`` rectangles are returned, each still inside the set. See
        :mod:`netguard.space.rectangles`.
        """
        from netguard.space.rectangles import cover

        return cover(self, limit)

    def addresses(self, field: str, family: int) -> tuple[tuple[int, int], ...]:
        """The addresses of ``field`` (``"src"`` or ``"dst"``) that some packet of this set
        of ``family`` (4 or 6) has, as sorted, merged, inclusive integer intervals: the set
        projected on that field (every other header bit existentially quantified)."""
        from netguard.space.rectangles import field_intervals

        b = self._engine.bdd
        keep = self._engine.addr_vars(field, family)
        kept = set(keep)
        node = self._node & self._engine.family(family)
        # exists others. node  ==  not forall others. not node
        projected = ~b.forall([v for v in b.variables if v not in kept], ~node)
        return field_intervals(b, projected, keep)

    def __repr__(self) -> str:
        if self.is_empty():
            return "HeaderSpace(empty)"
        size = self._node.dag_size
        if size > _REPR_MAX_NODES:
            return f"HeaderSpace(<{size} BDD nodes>)"
        rects = self.rectangles(3)
        more = ", ..." if rects.truncated else ""
        return f"HeaderSpace({'; '.join(str(r) for r in rects)}{more})"
