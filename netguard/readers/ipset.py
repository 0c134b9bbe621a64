"""Reader for ``ipset save`` output and ``ipset restore`` input (ipset(8)): name -> set.

Both formats are one command per line; ``ipset save`` writes only ``create`` and ``add``, an
``ipset restore`` file (such as netguard's ``ipset.restore``) may also ``flush``, ``del``,
``swap``, ``rename`` and ``destroy``. The reader replays every command in order on an empty
table of sets, as ``ipset restore -exist`` would, and returns the sets that exist at the end.
``create`` of an existing set of the same type keeps it (``-exist``); ``add`` of an existing
element updates its ``nomatch`` flag; ``del`` of a missing element is ignored.

What is modeled exactly, as a :class:`~netguard.cidr.PrefixSet` of addresses a packet address
must be in for ``--match-set NAME src|dst`` to match:

- ``hash:ip`` and ``bitmap:ip``: every address of every element (``a``, ``a/len``, ``a-b``),
  widened to its ``netmask`` block when the set has one (lookups mask the packet address);
- ``hash:net``: longest-prefix match over the stored prefixes (``a/len``, ``a``, ``a-b``
  split into prefixes), where the most specific matching entry decides and an entry flagged
  ``nomatch`` excludes its addresses (ipset(8) "nomatch").

Types whose elements carry ports, interfaces, marks or MAC addresses (``hash:ip,port``,
``hash:net,iface``, ``bitmap:port``, ``list:set``, ...) are read but not modeled:
:attr:`IpSetInfo.members` is None and :attr:`IpSetInfo.unmodeled` says why. Element options
that do not change membership (``timeout``, ``packets``, ``bytes``, ``comment``, ``skb*``) and
create options other than ``family``, ``netmask``, ``bitmask`` and ``range`` are ignored.

Tokens follow ipset's own restore parser: words split on blanks, a double quote toggles
quoting (there is no escape character).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from netguard._ascii import is_digits
from netguard.cidr import PrefixSet, interval_to_prefixes, merge_intervals
from netguard.errors import InputError, Location

__all__ = ["IpSetInfo", "read_ipset_save", "subtract_intervals"]

#: Types whose members are addresses: modeled exactly.
ADDRESS_TYPES = frozenset({"hash:ip", "hash:net", "bitmap:ip"})
#: Types netguard reads but does not model (elements with ports, interfaces, marks, MACs, sets).
OTHER_TYPES = frozenset(
    {
        "hash:ip,port",
        "hash:ip,port,ip",
        "hash:ip,port,net",
        "hash:ip,mark",
        "hash:net,port",
        "hash:net,iface",
        "hash:net,net",
        "hash:net,port,net",
        "hash:mac",
        "bitmap:ip,mac",
        "bitmap:port",
        "list:set",
    }
)
#: ipset 4 type names still accepted by ipset(8).
_TYPE_ALIASES = {
    "iphash": "hash:ip",
    "nethash": "hash:net",
    "ipporthash": "hash:ip,port",
    "ipportiphash": "hash:ip,port,ip",
    "ipportnethash": "hash:ip,port,net",
    "ipmap": "bitmap:ip",
    "macipmap": "bitmap:ip,mac",
    "portmap": "bitmap:port",
    "setlist": "list:set",
}
_NO_FAMILY_TYPES = frozenset({"hash:mac", "bitmap:port", "list:set"})
_IPV4_ONLY_TYPES = frozenset({"bitmap:ip", "bitmap:ip,mac"})

# create options: name -> takes a value
_CREATE_OPTIONS = {
    "family": True,
    "hashsize": True,
    "maxelem": True,
    "bucketsize": True,
    "initval": True,
    "netmask": True,
    "bitmask": True,
    "range": True,
    "timeout": True,
    "markmask": True,
    "size": True,
    "counters": False,
    "comment": False,
    "skbinfo": False,
    "forceadd": False,
    "-exist": False,
    "-!": False,
}
# element options: name -> takes a value ("nomatch" is handled apart)
_ELEMENT_OPTIONS = {
    "timeout": True,
    "packets": True,
    "bytes": True,
    "comment": True,
    "skbmark": True,
    "skbprio": True,
    "skbqueue": True,
    "-exist": False,
    "-!": False,
}
_COMMANDS = {
    "create": "create",
    "n": "create",
    "new": "create",
    "-N": "create",
    "add": "add",
    "a": "add",
    "-A": "add",
    "del": "del",
    "d": "del",
    "-D": "del",
    "flush": "flush",
    "f": "flush",
    "-F": "flush",
    "destroy": "destroy",
    "x": "destroy",
    "-X": "destroy",
    "rename": "rename",
    "e": "rename",
    "-E": "rename",
    "swap": "swap",
    "w": "swap",
    "-W": "swap",
}
_BITS = {4: 32, 6: 128}


@dataclass(frozen=True)
class IpSetInfo:
    """One ipset as it exists after the file is replayed.

    ``type`` is the canonical type name (``hash:net``); ``family`` is 4 or 6 (None for types
    without an address family: ``hash:mac``, ``bitmap:port``, ``list:set``). ``members`` is
    the exact set of packet addresses the set matches (``nomatch`` exclusions applied), or None
    when the type is not modeled, with the reason in ``unmodeled``. ``location`` is the line
    of the ``create`` command.
    """

    name: str
    type: str
    family: int | None
    members: PrefixSet | None
    location: Location
    unmodeled: str | None = None

    @property
    def modeled(self) -> bool:
        """True when ``members`` is exact."""
        return self.members is not None


@dataclass
class _Set:
    """Mutable state of one set while the file is replayed."""

    name: str
    type: str
    family: int | None
    location: Location
    netmask: int | None = None  # prefix length lookups mask packet addresses to (hash:ip, bitmap)
    range: tuple[int, int] | None = None  # bitmap:ip
    # hash:net: (first address, prefix length) -> nomatch
    nets: dict[tuple[int, int], bool] = field(default_factory=dict)
    # hash:ip / bitmap:ip: ordered (add?, intervals) operations
    ops: list[tuple[bool, tuple[tuple[int, int], ...]]] = field(default_factory=list)
    unmodeled: str | None = None

    def clear(self) -> None:
        self.nets = {}
        self.ops = []

    def members(self) -> PrefixSet | None:
        if self.unmodeled is not None or self.family is None:
            return None
        if self.type == "hash:net":
            intervals = net_members(self.nets, self.family)
        else:
            # runs of adds are merged at once (merging after each would be quadratic)
            current: list[tuple[int, int]] = []
            pending: list[tuple[int, int]] = []
            for add, ivs in self.ops:
                if add:
                    pending.extend(ivs)
                    continue
                if pending:
                    current, pending = merge_intervals([*current, *pending]), []
                current = subtract_intervals(current, merge_intervals(ivs))
            intervals = merge_intervals([*current, *pending]) if pending else current
        if self.family == 4:
            return PrefixSet(tuple(intervals), ())
        return PrefixSet((), tuple(intervals))


def subtract_intervals(
    keep: list[tuple[int, int]], remove: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``keep`` minus ``remove``; both sorted, disjoint, non-adjacent (``merge_intervals``)."""
    out: list[tuple[int, int]] = []
    j = 0
    for first, last in keep:
        cur = first
        while j < len(remove) and remove[j][1] < cur:
            j += 1
        k = j
        while cur <= last and k < len(remove) and remove[k][0] <= last:
            r_first, r_last = remove[k]
            if r_first > cur:
                out.append((cur, r_first - 1))
            cur = max(cur, r_last + 1)
            if r_last > last:
                break
            k += 1
        if cur <= last:
            out.append((cur, last))
    return out


def net_members(nets: dict[tuple[int, int], bool], version: int) -> list[tuple[int, int]]:
    """Addresses matched by a ``hash:net`` set: the most specific entry containing an address
    decides, and a ``nomatch`` entry means "not matched" (ipset(8); kernel ip_set_hash_gen.h
    tries the stored prefix lengths from most to least specific)."""
    bits = _BITS[version]
    by_len: dict[int, list[tuple[int, bool]]] = {}
    for (first, plen), nomatch in nets.items():
        by_len.setdefault(plen, []).append((first, nomatch))
    current: list[tuple[int, int]] = []
    for plen in sorted(by_len):  # least specific first: longer prefixes override
        size = 1 << (bits - plen)
        covered = merge_intervals((first, first + size - 1) for first, _ in by_len[plen])
        matched = merge_intervals(
            (first, first + size - 1) for first, nomatch in by_len[plen] if not nomatch
        )
        current = merge_intervals([*subtract_intervals(current, covered), *matched])
    return current


def split_words(line: str) -> list[tuple[str, int]]:
    """(word, 1-based column) pairs as ipset's restore parser splits a line: blanks separate
    words, a double quote toggles quoting and is dropped. Raises _Problem on an open quote."""
    words: list[tuple[str, int]] = []
    buf: list[str] = []
    start = 0
    quoted = False
    have = False
    quote_col = 0
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
            quote_col = i + 1
            if not have:
                start, have = i, True
            continue
        if ch in " \t\r\n" and not quoted:
            if have:
                words.append(("".join(buf), start + 1))
                buf, have = [], False
            continue
        if not have:
            start, have = i, True
        buf.append(ch)
    if quoted:
        raise _Problem(quote_col, "double quote is never closed on this line")
    if have:
        words.append(("".join(buf), start + 1))
    return words


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def _element_intervals(text: str, family: int) -> list[tuple[int, int, int]]:
    """(first, last, prefix length or -1 for a range) of one element ``a``, ``a/len``, ``a-b``.

    Raises ValueError with a message naming what was expected.
    """
    bits = _BITS[family]
    if "-" in text and "/" not in text:
        lo_text, _, hi_text = text.partition("-")
        lo, hi = _parse_address(lo_text), _parse_address(hi_text)
        if lo.version != family or hi.version != family:
            raise ValueError(f"IPv{lo.version if lo.version != family else hi.version}")
        if int(lo) > int(hi):
            raise ValueError("range start is above its end")
        return [(int(lo), int(hi), -1)]
    net = ipaddress.ip_network(text, strict=False)
    if net.version != family:
        raise ValueError(f"IPv{net.version}")
    first = int(net.network_address)
    return [(first, first + net.num_addresses - 1, net.prefixlen if "/" in text else bits)]


def read_ipset_save(path: Path) -> dict[str, IpSetInfo]:
    """Read ``ipset save`` output or an ``ipset restore`` file; sets that exist at the end.

    Raises :class:`~netguard.errors.InputError` naming every malformed line (unknown command,
    type or option, a bad or wrong-family address, a set used before it is created).
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # skips a leading byte-order mark (Windows editors)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError.at(Location(path, line), "not UTF-8 text") from None
    return _Replayer(path).run(text.splitlines())


class _Replayer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sets: dict[str, _Set] = {}
        self.problems: list[tuple[Location, str]] = []

    def run(self, lines: list[str]) -> dict[str, IpSetInfo]:
        for lineno, line in enumerate(lines, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                self._command(split_words(line), lineno)
            except _Problem as p:
                self.problems.append((Location(self.path, lineno, p.column), p.message))
            if len(self.problems) >= 100:
                self.problems.append(
                    (Location(self.path, 0), "too many problems: stopped after 100")
                )
                break
        if self.problems:
            raise InputError(self.problems)
        return {
            name: IpSetInfo(s.name, s.type, s.family, s.members(), s.location, s.unmodeled)
            for name, s in self.sets.items()
        }

    def _need(self, words: list[tuple[str, int]], count: int, what: str) -> None:
        if len(words) < count:
            end = words[-1][1] + len(words[-1][0]) if words else 1
            raise _Problem(end, f"expected {what}")

    def _get(self, word: tuple[str, int]) -> _Set:
        name, col = word
        found = self.sets.get(name)
        if found is None:
            raise _Problem(col, f"set {name!r} does not exist (no 'create {name}' line before)")
        return found

    def _command(self, words: list[tuple[str, int]], lineno: int) -> None:
        cmd_word, col = words[0]
        cmd = _COMMANDS.get(cmd_word)
        if cmd is None:
            raise _Problem(
                col,
                f"unknown command {cmd_word!r}: expected create, add, del, flush, destroy, "
                "rename or swap",
            )
        if cmd == "create":
            self._need(words, 3, "create NAME TYPE [options]")
            self._create(words, lineno)
        elif cmd in ("add", "del"):
            self._need(words, 3, f"{cmd} NAME ELEMENT [options]")
            self._element(self._get(words[1]), words[2:], add=cmd == "add")
        elif cmd in ("flush", "destroy"):
            if len(words) > 2:
                raise _Problem(words[2][1], f"unexpected {words[2][0]!r} after {cmd} NAME")
            targets = [self._get(words[1])] if len(words) == 2 else list(self.sets.values())
            for s in targets:
                if cmd == "flush":
                    s.clear()
                else:
                    del self.sets[s.name]
        elif cmd == "rename":
            self._need(words, 3, "rename FROM TO")
            s = self._get(words[1])
            new, new_col = words[2]
            if new in self.sets:
                raise _Problem(new_col, f"set {new!r} already exists")
            del self.sets[s.name]
            s.name = new
            self.sets[new] = s
        else:  # swap: the two sets exchange contents, their names stay
            self._need(words, 3, "swap FROM TO")
            a, b = self._get(words[1]), self._get(words[2])
            if a.type != b.type or a.family != b.family:
                raise _Problem(
                    words[2][1],
                    f"cannot swap {a.name!r} ({a.type}) and {b.name!r} ({b.type}): "
                    "type or family differ",
                )
            a.name, b.name = b.name, a.name
            a.location, b.location = b.location, a.location
            self.sets[a.name], self.sets[b.name] = a, b

    def _create(self, words: list[tuple[str, int]], lineno: int) -> None:
        name, name_col = words[1]
        if len(name) > 31:
            raise _Problem(name_col, f"set name {name!r} is longer than 31 characters")
        type_word, type_col = words[2]
        stype = _TYPE_ALIASES.get(type_word, type_word)
        if stype not in ADDRESS_TYPES and stype not in OTHER_TYPES:
            raise _Problem(type_col, f"unknown set type {type_word!r}")
        opts: dict[str, tuple[str, int]] = {}
        i = 3
        while i < len(words):
            opt, ocol = words[i]
            if opt not in _CREATE_OPTIONS:
                raise _Problem(ocol, f"unknown create option {opt!r} for {stype}")
            if _CREATE_OPTIONS[opt]:
                if i + 1 >= len(words):
                    raise _Problem(ocol, f"create option {opt!r} expects a value")
                opts[opt] = words[i + 1]
                i += 2
            else:
                i += 1
        family: int | None = None if stype in _NO_FAMILY_TYPES else 4
        if "family" in opts:
            fam, fcol = opts["family"]
            if fam not in ("inet", "inet6"):
                raise _Problem(fcol, f"family must be inet or inet6, not {fam!r}")
            if family is None or (fam == "inet6" and stype in _IPV4_ONLY_TYPES):
                raise _Problem(fcol, f"{stype} does not take family {fam}")
            family = 4 if fam == "inet" else 6
        s = _Set(name, stype, family, Location(self.path, lineno, 1))
        if stype not in ADDRESS_TYPES:
            s.unmodeled = f"{stype} elements are not plain addresses"
        assert family is not None or s.unmodeled is not None
        if "netmask" in opts and family is not None:
            value, vcol = opts["netmask"]
            if not is_digits(value) or not 1 <= int(value) <= _BITS[family]:
                raise _Problem(vcol, f"netmask must be a prefix length 1-{_BITS[family]}")
            s.netmask = int(value)
        if "bitmask" in opts and family is not None:
            value, vcol = opts["bitmask"]
            try:
                s.netmask = ipaddress.ip_network(
                    f"::/{value}" if family == 6 else f"0.0.0.0/{value}"
                ).prefixlen
            except ValueError:
                s.unmodeled = f"bitmask {value} is not a contiguous mask"
        if stype == "bitmap:ip":
            if "range" not in opts:
                raise _Problem(type_col, "bitmap:ip needs 'range FROM-TO' or 'range CIDR'")
            value, vcol = opts["range"]
            try:
                ((lo, hi, _),) = _element_intervals(value, 4)
            except ValueError:
                raise _Problem(vcol, f"bad range {value!r}: expected FROM-TO or CIDR") from None
            s.range = (lo, hi)
        existing = self.sets.get(name)
        if existing is not None:
            if existing.type != stype or existing.family != family:
                raise _Problem(
                    name_col,
                    f"set {name!r} exists as {existing.type} (line {existing.location.line})",
                )
            return  # ipset restore -exist: keep the existing set and its elements
        self.sets[name] = s

    def _element(self, s: _Set, words: list[tuple[str, int]], *, add: bool) -> None:
        elem, ecol = words[0]
        nomatch = False
        i = 1
        while i < len(words):
            opt, ocol = words[i]
            if opt == "nomatch":
                nomatch = True
                i += 1
                continue
            if opt not in _ELEMENT_OPTIONS:
                raise _Problem(ocol, f"unknown element option {opt!r}")
            if _ELEMENT_OPTIONS[opt]:
                if i + 1 >= len(words):
                    raise _Problem(ocol, f"element option {opt!r} expects a value")
                i += 2
            else:
                i += 1
        if s.unmodeled is not None or s.family is None:
            return
        if nomatch and s.type != "hash:net":
            raise _Problem(ecol, f"nomatch is not supported by {s.type}")
        try:
            intervals = _element_intervals(elem, s.family)
        except ValueError as exc:
            fam = "IPv4" if s.family == 4 else "IPv6"
            detail = str(exc)
            if detail.startswith("IPv"):
                msg = f"{detail} element {elem!r} in {fam} set {s.name!r}"
            else:
                msg = f"bad element {elem!r}: expected an {fam} address, CIDR or FROM-TO range"
            raise _Problem(ecol, msg) from None
        if s.type == "hash:net":
            for first, last, _plen in intervals:
                for p in interval_to_prefixes(first, last, s.family):
                    key = (int(p.network_address), p.prefixlen)
                    if add:
                        s.nets[key] = nomatch
                    else:
                        s.nets.pop(key, None)
            return
        if s.range is not None:
            lo, hi = s.range
            for first, last, _ in intervals:
                if first < lo or last > hi:
                    raise _Problem(ecol, f"element {elem!r} is outside the set's range")
        ivs = tuple((first, last) for first, last, _ in intervals)
        if s.netmask is not None:
            host = (1 << (_BITS[s.family] - s.netmask)) - 1
            ivs = tuple((first & ~host, last | host) for first, last in ivs)
        s.ops.append((add, ivs))


class _Problem(Exception):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message
