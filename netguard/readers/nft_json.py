"""Reader for ``nft -j list ruleset`` output: nftables JSON (libnftables-json(5)) -> RuleSets.

The document is ``{"nftables": [ ... ]}``: a ``metainfo`` object, then ``table``, ``chain``,
``set``, ``map`` and ``rule`` objects (libnftables-json(5) "GLOBAL STRUCTURE", "RULESET
ELEMENTS"). The reader returns two :class:`~netguard.model.ruleset.RuleSet`, IPv4 then IPv6,
built from the tables that apply to each family: ``ip`` tables to IPv4, ``ip6`` tables to
IPv6, ``inet`` tables to both. An ``inet`` table is split: a rule whose conditions imply one
family (``ip saddr``, ``ip protocol``, ``icmp ...``, ``meta nfproto ipv4``, ``reject with icmp``
give IPv4; ``ip6 ...``, ``icmpv6 ...``, ``meta nfproto ipv6`` give IPv6, exactly the
dependencies nft(8) adds to such rules) appears only in that family's chains.

Chains: base chains of ``type filter`` on hook ``input``, ``output`` or ``forward`` become
chains with :attr:`~netguard.model.ruleset.Chain.hook`, ``policy`` (accept, the kernel's default,
when absent) and ``priority`` (``prio``); every regular chain of the same table is kept (jump and
goto targets). Chain names are qualified by table as ``"<family> <table>/<chain>"`` (e.g.
``"inet netguard/input"``), so base chains of several tables on one hook stay distinct: a packet
must be accepted by all of them. Tables of other families (arp, bridge, netdev), dormant tables,
chains of ``type nat`` or ``type route`` and filter chains on other hooks (prerouting,
postrouting, ingress, egress) are reported as :class:`~netguard.model.ruleset.Note` with their
location and rule count, not modeled. nftables 1.0.6 prints a table's single flag wrongly (a
freed string: in practice the table's name), so dormant cannot be told from ``owner`` or
``persist`` there: each base chain of such a table gets a first rule whose only condition is
unmodeled ("the table may be dormant") and that accepts, so the engine may skip the table.

Modeled exactly in :class:`~netguard.model.ruleset.Match` (libnftables-json(5) "MATCH",
"PAYLOAD", "META", "CT", "SET", "RANGE", "PREFIX"), with the operators ``==``, ``!=`` and ``in``
(``<``, ``>``, ``<=``, ``>=`` on ports and addresses); right-hand sides may be a value, a
``prefix``, a ``range``, an anonymous ``set`` mixing them, or a named set ``@name`` (resolved
through the ``set`` objects of the same table):

- ``ip``/``ip6`` ``saddr``/``daddr``;
- ``tcp``/``udp``/``udplite``/``sctp``/``dccp`` ``sport``/``dport`` (they imply that protocol);
  ``th sport``/``th dport`` when the rule's protocols are all port protocols (``th`` has no
  protocol dependency: alone it reads two bytes of any transport header, so it is unmodeled);
- ``meta l4proto``, ``ip protocol``, ``ip6 nexthdr`` (names as in /etc/protocols, or numbers;
  ``ip6 nexthdr`` is read as the layer-4 protocol, which it is only without extension headers:
  the engine has none, and a Note says so);
- ``meta nfproto`` and ``meta protocol`` (ethertype ip/ip6): the family split;
- ``icmp``/``icmpv6`` ``type`` and ``code`` (nft's names or numbers). Match.icmp is a
  conjunction and an IcmpMatch has one type, so a set of several types is written as "ICMP and
  none of the other types" (negated IcmpMatch for each type outside the set): exact, if long;
- ``meta iif``/``oif``/``iifname``/``oifname`` (a trailing ``*`` is a wildcard, ``\\*`` a
  literal star; a set of names is modeled when negated, unmodeled otherwise);
- ``ct state`` (names, sets, ``!=``; several are intersected);
- ``meta ipsec`` / ``rt ipsec`` ``exists``/``missing`` (JSON ``true``/``false``) as
  ``Match.ipsec``, where the hooks reaching the chain imply the direction the key looks at
  (``meta ipsec``: the packet came in through IPsec, INPUT; ``rt ipsec``: it will leave through
  IPsec, OUTPUT). Elsewhere (FORWARD, or several hooks) the one ``ipsec`` bit cannot say which,
  so the condition stays unmodeled text, as the iptables reader does for ``-m policy``;
- verdict maps (``vmap``) whose entries all carry the same verdict: ``key in keys`` + verdict.

Statements: ``accept``, ``drop``, ``reject`` (REJECT; ``with tcp reset`` implies TCP, ``with
icmp``/``icmpv6`` one family), ``return``, ``jump``, ``goto``, ``continue``; ``log`` without a
verdict is LOG; ``counter`` is ignored; ``comment`` becomes ``Rule.comment``. ``queue``,
``synproxy``, the NAT statements (``snat``, ``dnat``, ``masquerade``, ``redirect``), ``tproxy``
and ``fwd`` end evaluation in ways the engine does not model: UNMODELED actions. A vmap with
different verdicts keeps its key condition and gets an UNMODELED action.

Kept as ``Match.unmodeled`` text (the engine treats it conservatively): ``limit`` (on any
rule, as the iptables reader keeps ``-m limit``), ``quota``, ``ct count``, ``meter``, other
payload fields (``tcp flags``, ``ip6 hoplimit``, ``ip ttl``, raw ``@th,16,16``, ...), other
meta/ct/rt keys (``meta mark``, ``ct mark``, ``ct status``, ...), ``fib``, ``socket``,
``osf``, extension headers, binary operations, concatenations and lookups in sets of
concatenated types, lookups in sets whose contents change at runtime (flags ``timeout`` or
``dynamic``), ``map`` expressions, ``th`` ports without port protocols, sets of interface names,
names netguard does not know (a Note too), and side-effect statements (``mangle`` such as ``meta
mark set``, ``notrack``, ``dup``, ``set add``/``update``, ``ct helper``, ``flow add``, ``xt``
matches and unknown statements; the last three with a Note; an ``xt`` target is LOG or
CONTINUE when iptables-extensions(8) says it does not end evaluation, else an UNMODELED
action). The dependencies nft adds for the headers an unmodeled condition or statement reads
still hold and are applied (``ip saddr . tcp dport @pairs`` is IPv4 and TCP). A named set
listed without elements is read as empty, with a Note (``nft -t`` omits elements).

Texts: ``Rule.text`` is an nft-like rendering of the rule, as ``nft -a list ruleset`` prints
it: the statements, ``comment "..."`` and ``# handle N`` (the handle names the rule for ``nft
delete rule ... handle N``). ``Match.unmodeled`` entries and ``Action.text`` are renderings of
the statements concerned; expressions netguard has no syntax for are rendered as compact JSON.

Locations: JSON has no line per rule (``nft -j`` prints the whole document on one line), so a
rule's, chain's or table's :class:`~netguard.errors.Location` is the line and column of its
object's opening brace in the file; the column tells objects on one line apart. They are worked
out while decoding, one object of the ``nftables`` array at a time (``json.JSONDecoder.
raw_decode``), so the file is decoded once; a document whose ``nftables`` array is not its first
key is decoded as a whole and its locations carry the path only.

Malformed input raises :class:`~netguard.errors.InputError` with file, line and column of every
problem found: not UTF-8, not JSON (``json.JSONDecodeError``'s line and column), not an nftables
JSON document (no ``"nftables"`` array), command objects (``nft -j -f`` input, not list output),
objects lacking a required property, rules of a chain that is not listed, jumps to a chain the
table lacks, references to a set or map the table lacks, and values that are not what their
field holds (an address that is not an address, a port above 65535, ...).
"""

from __future__ import annotations

import bisect
import gc
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netguard._ascii import is_digits
from netguard.cidr import PrefixSet, merge_intervals
from netguard.errors import InputError, Location
from netguard.model.ruleset import (
    Action,
    ActionKind,
    AddressMatch,
    Chain,
    CtState,
    Hook,
    IcmpMatch,
    InterfaceMatch,
    Match,
    Note,
    PortMatch,
    Rule,
    RuleSet,
)
from netguard.readers.iptables_save import PROTOCOLS

__all__ = ["read_nft_json"]

#: A decoded JSON value (libnftables-json(5) objects are checked with isinstance as they are read).
Json = Any

# --- names ---------------------------------------------------------------------------------

#: Table families that carry IPv4 / IPv6 packets through the input, output and forward hooks.
_TABLE_FAMILIES: dict[str, frozenset[int]] = {
    "ip": frozenset({4}),
    "ip6": frozenset({6}),
    "inet": frozenset({4, 6}),
}
_OTHER_FAMILIES = {
    "arp": "ARP packets only",
    "bridge": "it filters bridged frames, IP included, before and apart from the ip hooks",
    "netdev": "its ingress/egress chains see every packet of a device before (after) the ip "
    "hooks and can drop it",
}
_HOOKS = {"input": Hook.INPUT, "output": Hook.OUTPUT, "forward": Hook.FORWARD}
_POLICIES = {"accept": ActionKind.ACCEPT, "drop": ActionKind.DROP}
#: Standard chain priority names (nft(8) "CHAINS", table of priority names and values).
_PRIORITY_NAMES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}
_CHAIN_TYPE_NOTES = {
    "nat": "its address and port rewriting (dnat, snat, masquerade, redirect) changes what the "
    "filter chains see",
    "route": "it re-routes packets whose mark or addresses it changes",
}

#: IANA protocol numbers by name as nft prints them (/etc/protocols: "ip" is protocol 0 here,
#: not "any protocol" as in iptables' -p).
_PROTOCOLS: dict[str, int] = {n: v for n, v in PROTOCOLS.items() if n != "all"}
#: Payload protocols whose ports netguard models, with their IANA numbers.
_PORT_PAYLOADS = {"tcp": 6, "udp": 17, "udplite": 136, "sctp": 132, "dccp": 33}
#: Protocols that carry ports (the engine's PORT_PROTOCOLS).
_PORT_PROTOCOLS = frozenset(_PORT_PAYLOADS.values())
#: Payload protocols implying a layer-4 protocol (nft adds ``meta l4proto`` as dependency).
_PAYLOAD_L4 = {**_PORT_PAYLOADS, "icmp": 1, "icmpv6": 58, "esp": 50, "ah": 51, "comp": 108}
#: Payload protocols implying a family in inet tables (nft adds ``meta nfproto``).
_PAYLOAD_FAMILY = {"ip": 4, "icmp": 4, "igmp": 4, "ip6": 6, "icmpv6": 6}

# nft's names (src/proto.c icmp_type_tbl, icmp6_type_tbl; src/datatype.c icmp_code_tbl,
# icmpv6_code_tbl), as `nft -j` prints them for every value 0-255 of nftables 1.0.6.
_ICMP_TYPES = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "info-request": 15,
    "info-reply": 16,
    "address-mask-request": 17,
    "address-mask-reply": 18,
}
_ICMPV6_TYPES = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "mld-listener-query": 130,
    "mld-listener-report": 131,
    "mld-listener-done": 132,
    "mld-listener-reduction": 132,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
    "router-renumbering": 138,
    "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142,
    "mld2-listener-report": 143,
}
_ICMP_CODES = {
    "net-unreachable": 0,
    "host-unreachable": 1,
    "prot-unreachable": 2,
    "port-unreachable": 3,
    "frag-needed": 4,
    "net-prohibited": 9,
    "host-prohibited": 10,
    "admin-prohibited": 13,
}
_ICMPV6_CODES = {
    "no-route": 0,
    "admin-prohibited": 1,
    "addr-unreachable": 3,
    "port-unreachable": 4,
    "policy-fail": 5,
    "reject-route": 6,
}
_CT_STATES = {
    "invalid": CtState.INVALID,
    "established": CtState.ESTABLISHED,
    "related": CtState.RELATED,
    "new": CtState.NEW,
    "untracked": CtState.UNTRACKED,
}
#: ct state bits (linux/netfilter/nf_conntrack_common.h) for states given as numbers.
_CT_BITS = {
    1: CtState.INVALID,
    2: CtState.ESTABLISHED,
    4: CtState.RELATED,
    8: CtState.NEW,
    64: CtState.UNTRACKED,
}
_NFPROTO = {"ipv4": 4, "ipv6": 6, 2: 4, 10: 6}
_ETHERTYPES = {"ip": 4, "ip6": 6, 0x0800: 4, 0x86DD: 6}
#: Service names nft accepts for ports (it prints numbers unless asked for names with -S).
_SERVICES = {
    "ssh": 22,
    "domain": 53,
    "http": 80,
    "ntp": 123,
    "https": 443,
    "isakmp": 500,
    "ipsec-nat-t": 4500,
}

#: Meta keys nft prints without "meta " (src/meta.c meta_key_is_unqualified).
_UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
_INTERFACE_KEYS = {"iif": "in", "iifname": "in", "oif": "out", "oifname": "out"}

_VERDICTS = {
    "accept": ActionKind.ACCEPT,
    "drop": ActionKind.DROP,
    "return": ActionKind.RETURN,
    "continue": ActionKind.CONTINUE,
}
#: Statements that end evaluation in ways the engine does not model (may accept, may deny).
_TERMINAL_UNMODELED = frozenset(
    {"queue", "synproxy", "snat", "dnat", "masquerade", "redirect", "tproxy", "fwd"}
)
#: Statements read and kept as unmodeled text without a Note.
_SIDE_EFFECTS = frozenset(
    {
        "limit",
        "quota",
        "ct count",
        "meter",
        "mangle",
        "notrack",
        "dup",
        "set",
        "map",
        "ct helper",
        "ct timeout",
        "ct expectation",
        "secmark",
        "last",
    }
)
#: iptables targets (``xt`` in nft JSON of iptables-nft tables) that do not end evaluation:
#: logging ones, and ones that mark, classify or mangle (iptables-extensions(8)).
_XT_LOG = frozenset({"LOG", "NFLOG", "ULOG", "TRACE", "AUDIT"})
#: iptables targets that end evaluation with a denial: REJECT drops the packet and answers
#: with an error (iptables-extensions(8), REJECT; iptables-nft shows it as ``xt`` when it
#: cannot translate it, e.g. when no ``--reject-with`` is given).
_XT_DENY = frozenset({"REJECT"})
_XT_CONTINUE = frozenset(
    {
        "MARK",
        "CONNMARK",
        "CLASSIFY",
        "DSCP",
        "TOS",
        "TTL",
        "HL",
        "TCPMSS",
        "CT",
        "NOTRACK",
        "SET",
        "CHECKSUM",
        "CONNSECMARK",
        "SECMARK",
        "IDLETIMER",
        "LED",
        "RATEEST",
        "TEE",
    }
)
_STATEMENT_NOTES = {
    "xt": "an iptables-nft (xtables compat) statement nft cannot translate: read this table "
    "with iptables-save and the iptables reader",
    "flow": "'flow add @flowtable' offloads established connections past the forward hook",
}

_MAX_PROBLEMS = 200
_WS = re.compile(r"[ \t\n\r]*")
_HEAD = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"nftables"[ \t\n\r]*:[ \t\n\r]*\[')


# --- problems ------------------------------------------------------------------------------


class _Problem(Exception):
    """Invalid input in the current object: becomes a problem of the InputError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Unmodeled(Exception):
    """A condition netguard cannot model: kept as text (``reason`` appended), ``note`` if set."""

    def __init__(self, reason: str = "", note: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.note = note


class _TooMany(Exception):
    pass


# --- rendering -----------------------------------------------------------------------------


def _compact(value: Json) -> str:
    """A JSON fragment on one line, as netguard shows what it has no nft syntax for."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _quote(text: str) -> str:
    """A string as nft prints it: in double quotes (backslashes stay as they are)."""
    return '"' + text.replace('"', '\\"') + '"'


def _text(expr: Json, quote: bool = False) -> str:
    """nft-like rendering of an expression (libnftables-json(5) "EXPRESSIONS")."""
    if isinstance(expr, bool):
        return "exists" if expr else "missing"
    if isinstance(expr, int):
        return str(expr)
    if isinstance(expr, str):
        return _quote(expr) if quote and not expr.startswith("@") else expr
    if isinstance(expr, list):
        return ",".join(_text(e, quote) for e in expr)
    if isinstance(expr, dict) and len(expr) == 1:
        ((key, value),) = expr.items()
        rendered = _render_object(key, value, quote)
        if rendered is not None:
            return rendered
    return _compact(expr)


def _render_object(key: str, value: Json, quote: bool) -> str | None:
    """Rendering of ``{key: value}``, or None when netguard has no syntax for it."""
    if value is None and key in ("accept", "drop", "continue", "return"):
        return key
    if not isinstance(value, dict | list):
        return None
    v: Json = value
    if key == "set":
        items = v if isinstance(v, list) else [v]
        parts = [
            f"{_text(i[0], quote)} : {_text(i[1], quote)}"
            if isinstance(i, list) and len(i) == 2
            else _text(i, quote)
            for i in items
        ]
        return "{ " + ", ".join(parts) + " }" if parts else "{ }"
    if isinstance(v, list):
        if key == "range" and len(v) == 2:
            return f"{_text(v[0], quote)}-{_text(v[1], quote)}"
        if key == "concat":
            return " . ".join(_text(e, quote) for e in v)
        if key in ("&", "|", "^", "<<", ">>") and len(v) == 2:
            return f"{_text(v[0])} {key} {_text(v[1])}"
        return None
    if key in ("jump", "goto") and isinstance(v.get("target"), str):
        return f"{key} {v['target']}"
    if key == "prefix" and "addr" in v and "len" in v:
        return f"{_text(v['addr'])}/{_text(v['len'])}"
    if key == "elem" and "val" in v:
        return _text(v["val"], quote)
    if key == "payload":
        if isinstance(v.get("protocol"), str) and isinstance(v.get("field"), str):
            return f"{v['protocol']} {v['field']}"
        if "base" in v:
            return f"@{v.get('base')},{v.get('offset')},{v.get('len')}"
        return None
    if key == "meta" and isinstance(v.get("key"), str):
        meta_key = str(v["key"])
        return meta_key if meta_key in _UNQUALIFIED_META else f"meta {meta_key}"
    if key in ("ct", "rt") and isinstance(v.get("key"), str):
        words = [key, v.get("dir"), v.get("family"), v["key"]]
        return " ".join(str(w) for w in words if w)
    if key == "fib" and "result" in v:
        flags = v.get("flags", [])
        flag_text = " . ".join(flags) if isinstance(flags, list) else str(flags)
        return f"fib {flag_text} {v['result']}"
    if key == "socket" and "key" in v:
        return f"socket {v['key']}"
    if key in ("exthdr", "tcp option", "sctp chunk") and "name" in v:
        words = [key, v["name"], v.get("field")]
        return " ".join(str(w) for w in words if w)
    if key == "map" and "key" in v and "data" in v:
        return f"{_text(v['key'])} map {_text(v['data'], quote)}"
    return None


def _match_text(m: Json) -> str:
    left, right, op = m.get("left"), m.get("right"), m.get("op")
    quote = _is_string_key(left)
    lhs, rhs = _text(left), _text(right, quote)
    binary = isinstance(left, dict) and next(iter(left), None) in ("&", "|", "^", "<<", ">>")
    return f"{lhs} {rhs}" if op in ("==", "in") and not binary else f"{lhs} {op} {rhs}"


def _is_string_key(expr: Json) -> bool:
    """Whether nft quotes the values compared with ``expr`` (interface names)."""
    return (
        isinstance(expr, dict)
        and isinstance(expr.get("meta"), dict)
        and expr["meta"].get("key") in _INTERFACE_KEYS
    )


def _statement_text(stmt: Json) -> str:
    """nft-like rendering of a statement (libnftables-json(5) "STATEMENTS")."""
    if not isinstance(stmt, dict) or len(stmt) != 1:
        return _compact(stmt)
    ((key, v),) = stmt.items()
    if key == "match" and isinstance(v, dict):
        return _match_text(v)
    if key == "counter":
        return f"counter name {_quote(v)}" if isinstance(v, str) else "counter"
    if key == "log":
        parts = ["log"]
        if isinstance(v, dict):
            for name in ("prefix", "group", "snaplen", "queue-threshold", "level", "flags"):
                if name in v:
                    value = v[name]
                    shown = _quote(value) if name == "prefix" else _text(value)
                    parts.append(f"{name} {shown}")
        return " ".join(parts)
    if key == "limit" and isinstance(v, dict):
        over = "over " if v.get("inv") else ""
        unit = v.get("rate_unit", "packets")
        rate = f"{v.get('rate')}/{v.get('per', 'second')}"
        if unit != "packets":
            rate = f"{v.get('rate')} {unit}/{v.get('per', 'second')}"
        burst = ""
        if v.get("burst"):
            burst_unit = "packets" if unit == "packets" else v.get("burst_unit", "bytes")
            burst = f" burst {v['burst']} {burst_unit}"
        return f"limit rate {over}{rate}{burst}"
    if key == "reject":
        if not isinstance(v, dict) or "type" not in v:
            return "reject"
        return " ".join(
            ["reject with", str(v["type"]), *([_text(v["expr"])] if "expr" in v else [])]
        )
    if key == "queue":
        parts = ["queue"]
        if isinstance(v, dict):
            if "num" in v:
                parts.append(f"num {_text(v['num'])}")
            if "flags" in v:
                parts.append(_text(v["flags"]))
        return " ".join(parts)
    if key == "vmap" and isinstance(v, dict):
        return f"{_text(v.get('key'))} vmap {_text(v.get('data'))}"
    if key == "mangle" and isinstance(v, dict):
        return f"{_text(v.get('key'))} set {_text(v.get('value'))}"
    if key == "quota" and isinstance(v, dict):
        over = "over " if v.get("inv") else ""
        return f"quota {over}{v.get('val')} {v.get('val_unit', 'bytes')}"
    if key == "ct count" and isinstance(v, dict):
        return f"ct count {'over ' if v.get('inv') else ''}{v.get('val')}"
    if key in ("snat", "dnat") and isinstance(v, dict):
        target = _text(v.get("addr")) if "addr" in v else ""
        if "port" in v:
            target += f":{_text(v['port'])}"
        family = f" {v['family']}" if "family" in v else ""
        return f"{key}{family} to {target}".rstrip()
    rendered = _render_object(key, v, False)
    if rendered is not None:
        return rendered
    if v is None:
        return str(key)
    return _compact(stmt)


# --- values --------------------------------------------------------------------------------


def _name_or_number(value: Json, names: dict[str, int], what: str, hi: int = 255) -> int:
    """A number 0..hi or one of nft's ``names`` (unknown names raise _Unmodeled)."""
    if isinstance(value, bool):
        raise _Problem(f"expected {what}, found {_compact(value)}")
    if isinstance(value, int):
        if not 0 <= value <= hi:
            raise _Problem(f"{what} {value} is outside 0-{hi}")
        return value
    if isinstance(value, str):
        if is_digits(value):
            return _name_or_number(int(value), names, what, hi)
        if value.startswith("0x"):
            try:
                return _name_or_number(int(value, 16), names, what, hi)
            except ValueError:
                pass
        found = names.get(value)
        if found is None:
            raise _Unmodeled(note=f"{what} {value!r} is unknown to netguard")
        return found
    raise _Problem(f"expected {what} (a name or a number), found {_compact(value)}")


def _protocol(value: Json) -> int:
    try:
        return _name_or_number(value, _PROTOCOLS, "protocol")
    except _Unmodeled:
        if isinstance(value, str):
            try:
                return socket.getprotobyname(value)
            except OSError:
                pass
        raise


def _port(value: Json) -> int:
    try:
        return _name_or_number(value, _SERVICES, "port", 65535)
    except _Unmodeled:
        if isinstance(value, str):
            try:
                return socket.getservbyname(value)
            except OSError:
                pass
        raise


@dataclass(frozen=True)
class _Domain:
    """Values a numeric field holds: integers 0..``hi``, each read by ``value``; ``version``
    for addresses (4 or 6: prefixes are allowed)."""

    what: str
    hi: int
    value: Callable[[Json], int]
    version: int | None = None


def _address_value(version: int) -> Callable[[Json], int]:
    def parse(value: Json) -> int:
        if not isinstance(value, str):
            raise _Problem(f"expected an IPv{version} address, found {_compact(value)}")
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise _Problem(f"expected an IPv{version} address, found {value!r}") from None
        if addr.version != version:
            raise _Problem(f"expected an IPv{version} address, found {value!r}")
        return int(addr)

    return parse


_ADDR4 = _Domain("IPv4 address", (1 << 32) - 1, _address_value(4), 4)
_ADDR6 = _Domain("IPv6 address", (1 << 128) - 1, _address_value(6), 6)
_PORTS = _Domain("port", 65535, _port)
_PROTOS = _Domain("protocol", 255, _protocol)
_ICMP_TYPE = _Domain("ICMP type", 255, lambda v: _name_or_number(v, _ICMP_TYPES, "ICMP type"))
_ICMPV6_TYPE = _Domain(
    "ICMPv6 type", 255, lambda v: _name_or_number(v, _ICMPV6_TYPES, "ICMPv6 type")
)
_ICMP_CODE = _Domain("ICMP code", 255, lambda v: _name_or_number(v, _ICMP_CODES, "ICMP code"))
_ICMPV6_CODE = _Domain(
    "ICMPv6 code", 255, lambda v: _name_or_number(v, _ICMPV6_CODES, "ICMPv6 code")
)


def _payload_protocols(expr: Json) -> Iterator[str]:
    """The header names of every ``payload`` expression inside ``expr``."""
    if isinstance(expr, dict):
        payload = expr.get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("protocol"), str):
            yield payload["protocol"]
        for value in expr.values():
            yield from _payload_protocols(value)
    elif isinstance(expr, list):
        for value in expr:
            yield from _payload_protocols(value)


def _element_value(item: Json) -> Json:
    """A set element without its ``elem`` wrapper (timeout, expires, comment)."""
    while isinstance(item, dict) and isinstance(item.get("elem"), dict) and "val" in item["elem"]:
        item = item["elem"]["val"]
    return item


def _intervals(domain: _Domain, items: Iterable[Json]) -> list[tuple[int, int]]:
    """Merged inclusive intervals of values, prefixes and ranges (libnftables-json(5) "RANGE",
    "PREFIX")."""
    out: list[tuple[int, int]] = []
    for raw in items:
        item = _element_value(raw)
        if isinstance(item, dict) and isinstance(item.get("range"), list):
            bounds = item["range"]
            if len(bounds) != 2:
                raise _Problem(f"a range has two bounds, found {_compact(item)}")
            lo, hi = domain.value(bounds[0]), domain.value(bounds[1])
            if lo > hi:
                raise _Problem(f"range {_text(item)} starts above its end")
            out.append((lo, hi))
        elif isinstance(item, dict) and isinstance(item.get("prefix"), dict):
            out.append(_prefix(domain, item["prefix"]))
        elif isinstance(item, dict | list):
            raise _Problem(f"expected {domain.what}, a range or a prefix, found {_compact(item)}")
        else:
            value = domain.value(item)
            out.append((value, value))
    return merge_intervals(out)


def _prefix(domain: _Domain, p: Json) -> tuple[int, int]:
    if domain.version is None:
        raise _Problem(f"a prefix is not {domain.what}: {_compact({'prefix': p})}")
    bits = 32 if domain.version == 4 else 128
    length = p.get("len")
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= bits:
        raise _Problem(f"prefix length must be 0-{bits}, found {_compact(length)}")
    first = domain.value(p.get("addr"))
    host = (1 << (bits - length)) - 1
    first &= ~host  # the kernel compares under the mask: host bits never matter
    return first, first | host


def _compare(domain: _Domain, op: str, value: int) -> list[tuple[int, int]]:
    """Intervals of ``x op value`` for ``<``, ``>``, ``<=``, ``>=``."""
    lo, hi = {
        "<": (0, value - 1),
        "<=": (0, value),
        ">": (value + 1, domain.hi),
        ">=": (value, domain.hi),
    }[op]
    return [(lo, hi)] if lo <= hi else []


def _complement(intervals: list[tuple[int, int]], hi: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = 0
    for a, b in intervals:
        if a > start:
            out.append((start, a - 1))
        start = b + 1
    if start <= hi:
        out.append((start, hi))
    return out


def _address_set(version: int, intervals: list[tuple[int, int]]) -> PrefixSet:
    iv = tuple(intervals)
    return PrefixSet(iv, ()) if version == 4 else PrefixSet((), iv)


def _interface(value: Json) -> InterfaceMatch:
    """``eth*`` is a prefix match (nft(8) wildcard), ``eth\\*`` the literal name ``eth*``."""
    if not isinstance(value, str):
        raise _Unmodeled("interface given by index")
    if value.endswith("*") and not value.endswith("\\*"):
        return InterfaceMatch(value[:-1].replace("\\*", "*"), wildcard=True)
    return InterfaceMatch(value.replace("\\*", "*"))


# --- the document --------------------------------------------------------------------------


class _Lines:
    """Line and column of a character offset (1-based), from the positions of the newlines."""

    def __init__(self, text: str) -> None:
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_left(self.newlines, offset)
        start = self.newlines[line - 1] + 1 if line else 0
        return line + 1, offset - start + 1


def _kind(value: Json) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _skip(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _decode_array(text: str, start: int) -> tuple[list[Json], list[int]] | None:
    """The elements of the array opening before ``start`` and their offsets, decoded one at a
    time; None when the document does not end right after it (decode it as a whole then)."""
    decoder = json.JSONDecoder()
    items: list[Json] = []
    offsets: list[int] = []
    pos = _skip(text, start)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            offsets.append(pos)
            item, end = decoder.raw_decode(text, pos)
            items.append(item)
            pos = _skip(text, end)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                return None
    pos = _skip(text, pos)
    if not text.startswith("}", pos) or text[pos + 1 :].strip(" \t\n\r"):
        return None
    return items, offsets


def _decode(text: str, path: Path) -> tuple[list[Json], list[int] | None]:
    """The ``nftables`` array and the offset of each element in ``text`` (None when the array
    is not the document's first key: then it is decoded as a whole)."""
    head = _HEAD.match(text)
    if head is not None:
        try:
            found = _decode_array(text, head.end())
        except (json.JSONDecodeError, ValueError, RecursionError):
            found = None  # decoded again as a whole below, for json's message and position
        if found is not None:
            return found[0], found[1]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError.at(
            Location(path, exc.lineno, exc.colno),
            f"not JSON ({exc.msg}): expected the output of 'nft -j list ruleset'",
        ) from None
    except RecursionError:
        raise InputError.at(Location(path, 1, 1), "invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict) or "nftables" not in doc:
        what = "an object without that key" if isinstance(doc, dict) else _kind(doc)
        raise InputError.at(
            Location(path, 1, 1),
            f'not an nftables JSON document: expected an object with an "nftables" array '
            f"(the output of 'nft -j list ruleset', libnftables-json(5)), found {what}",
        )
    array = doc["nftables"]
    if not isinstance(array, list):
        raise InputError.at(
            Location(path, 1, 1),
            f'"nftables" must be an array of objects, found {_kind(array)}',
        )
    return array, None


# --- objects -------------------------------------------------------------------------------


@dataclass
class _ChainDecl:
    """A ``chain`` object: a base chain has ``hook`` (and type, prio, policy)."""

    name: str
    location: Location
    hook: str | None = None
    type: str | None = None
    priority: int = 0
    policy: ActionKind | None = None
    rules: list[tuple[Json, Location]] = field(default_factory=list)


@dataclass
class _Table:
    """A table and what the document lists in it."""

    family: str
    name: str
    location: Location | None = None
    flags: Json = None
    chains: dict[str, _ChainDecl] = field(default_factory=dict)
    sets: dict[str, tuple[Json, Location]] = field(default_factory=dict)
    maps: dict[str, tuple[Json, Location]] = field(default_factory=dict)
    orphans: list[tuple[str, Json, Location]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.family} {self.name}"

    def qualified(self, chain: str) -> str:
        """The chain's name in the RuleSet: ``"<family> <table>/<chain>"``."""
        return f"{self.family} {self.name}/{chain}"

    def rule_count(self) -> int:
        return sum(len(c.rules) for c in self.chains.values())


_COMMANDS = frozenset(
    {"add", "replace", "create", "insert", "delete", "list", "reset", "flush", "rename"}
)
_IGNORED_OBJECTS = frozenset(
    {
        "metainfo",
        "counter",
        "quota",
        "ct helper",
        "limit",
        "ct timeout",
        "ct expectation",
        "secmark",
        "synproxy",
        "flowtable",
        "tunnel",
    }
)


@dataclass(slots=True)
class _Parsed:
    """One rule read, before the family split and the ipsec direction are decided."""

    chain: str  # qualified
    families: frozenset[int]
    match: Match
    ipsec: list[tuple[str, bool, str]]  # ("meta" | "rt", exists, text)
    action: Action
    targets: tuple[str, ...]  # qualified chains it may jump or go to (vmaps included)
    text: str
    location: Location
    comment: str | None


def _string(obj: Json, key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _Problem(f'{what} object lacks "{key}" (a string), found {_kind(value)}')
    return value


def _priority(value: Json) -> int:
    """``prio``: a number as nft prints it, or a standard name with an offset (``filter + 5``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([a-z]+)\s*(?:([+-])\s*(\d+))?\s*", value)
        if m and m.group(1) in _PRIORITY_NAMES:
            offset = int(m.group(3) or 0)
            return _PRIORITY_NAMES[m.group(1)] + (-offset if m.group(2) == "-" else offset)
        if re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    raise _Problem(
        f'chain "prio" must be a number or a priority name such as filter, found {_compact(value)}'
    )


# --- the reader ----------------------------------------------------------------------------


def read_nft_json(path: Path) -> list[RuleSet]:
    """Read ``nft -j list ruleset`` output into two RuleSets: IPv4, then IPv6.

    Each holds the filter base chains on input, output and forward and the regular chains of the
    tables that apply to its family (``ip``/``inet``, ``ip6``/``inet``); see the module
    docstring for what is modeled. Raises :class:`~netguard.errors.InputError` listing every
    problem found (up to 200).
    """
    # The reader builds a large graph of objects without cycles (decoded JSON, then the
    # model): the cyclic garbage collector would re-scan it many times while it grows.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Reader(path).read()
    finally:
        if was_enabled:
            gc.enable()


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[tuple[Location, str]] = []
        self.tables: dict[tuple[str, str], _Table] = {}
        # message -> (first location, count, families): notes counted like the iptables reader's
        self.notes: dict[str, tuple[Location, int, set[int]]] = {}
        self.set_cache: dict[tuple[str, str, str, str], list[tuple[int, int]]] = {}

    # -- bookkeeping --

    def problem(self, location: Location, message: str) -> None:
        self.problems.append((location, message))
        if len(self.problems) >= _MAX_PROBLEMS:
            raise _TooMany

    def note(self, location: Location, message: str, families: Iterable[int] = (4, 6)) -> None:
        found = self.notes.get(message)
        if found is None:
            self.notes[message] = (location, 1, set(families))
        else:
            found[2].update(families)
            self.notes[message] = (found[0], found[1] + 1, found[2])

    def table(self, family: str, name: str) -> _Table:
        key = (family, name)
        table = self.tables.get(key)
        if table is None:
            table = self.tables[key] = _Table(family, name)
        return table

    # -- reading --

    def read(self) -> list[RuleSet]:
        raw = self.path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")  # skips a leading byte-order mark (Windows editors)
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise InputError.at(Location(self.path, line), "not UTF-8 text") from None
        items, offsets = _decode(text, self.path)
        lines = _Lines(text) if offsets is not None else None
        result: list[RuleSet] = []
        try:
            for i, item in enumerate(items):
                if lines is not None and offsets is not None:
                    location = Location(self.path, *lines.at(offsets[i]))
                else:
                    location = Location(self.path)
                try:
                    self._object(item, location)
                except _Problem as p:
                    self.problem(location, p.message)
            result = self._rulesets()
        except _TooMany:
            self.problems.append((Location(self.path), "too many problems: stopped after 200"))
        if self.problems:
            raise InputError(self.problems)
        return result

    def _object(self, item: Json, location: Location) -> None:
        if not isinstance(item, dict) or len(item) != 1:
            raise _Problem(
                "expected an object with one property (table, chain, rule, set, ...), found "
                + (f"{len(item)} properties" if isinstance(item, dict) else _kind(item))
            )
        ((kind, obj),) = item.items()
        if kind in _COMMANDS:
            raise _Problem(
                f"{kind!r} is a command (input for 'nft -j -f'): expected list output, "
                "the objects 'nft -j list ruleset' prints"
            )
        if kind == "metainfo":
            version = obj.get("json_schema_version") if isinstance(obj, dict) else None
            if isinstance(version, int) and version > 1:
                self.note(
                    location,
                    f"JSON schema version {version} is newer than the one netguard knows (1): "
                    "objects it does not know are reported",
                )
            return
        if kind not in ("table", "chain", "rule", "set", "map"):
            if kind not in _IGNORED_OBJECTS:
                self.note(location, f"object {kind!r} is not read (unknown to netguard)")
            return
        if not isinstance(obj, dict):
            raise _Problem(f"{kind} must be an object, found {_kind(obj)}")
        family = _string(obj, "family", kind)
        if kind == "table":
            table = self.table(family, _string(obj, "name", kind))
            table.location = location
            table.flags = obj.get("flags")
            return
        table = self.table(family, _string(obj, "table", kind))
        if kind == "chain":
            self._chain(table, obj, location)
        elif kind == "rule":
            chain = _string(obj, "chain", kind)
            if not isinstance(obj.get("expr"), list):
                raise _Problem(
                    f'rule object lacks "expr" (an array of statements), found '
                    f"{_kind(obj.get('expr'))}"
                )
            decl = table.chains.get(chain)
            if decl is None:
                table.orphans.append((chain, obj, location))
            else:
                decl.rules.append((obj, location))
        else:
            name = _string(obj, "name", kind)
            (table.sets if kind == "set" else table.maps)[name] = (obj, location)

    def _chain(self, table: _Table, obj: Json, location: Location) -> None:
        name = _string(obj, "name", "chain")
        if name in table.chains:
            first = table.chains[name].location
            raise _Problem(
                f"chain {name!r} of table {table.title} is listed twice (first at {first})"
            )
        decl = _ChainDecl(name, location)
        hook = obj.get("hook")
        if hook is not None:
            if not isinstance(hook, str):
                raise _Problem(f'chain "hook" must be a string, found {_kind(hook)}')
            decl.hook = hook
            decl.type = _string(obj, "type", "base chain")
            decl.priority = _priority(obj.get("prio", 0))
            policy = obj.get("policy", "accept")
            if policy not in _POLICIES:
                raise _Problem(f'chain "policy" must be accept or drop, found {_compact(policy)}')
            decl.policy = _POLICIES[policy]
        table.chains[name] = decl

    # -- building --

    def _rulesets(self) -> list[RuleSet]:
        chains: dict[int, dict[str, Chain]] = {4: {}, 6: {}}
        parsed: list[_Parsed] = []
        maybe_dormant: dict[str, tuple[Location, str]] = {}
        decls: dict[str, tuple[_Table, _ChainDecl]] = {}
        for table in self.tables.values():
            for chain, _, location in table.orphans:
                self.problem(
                    location,
                    f"rule of chain {chain!r}, which table {table.title} does not list "
                    "(expected a chain object with that name)",
                )
            where = table.location or Location(self.path)
            families = _TABLE_FAMILIES.get(table.family)
            count = table.rule_count()
            n_rules = f"{count} rule{'s' if count != 1 else ''}"
            if families is None:
                why = _OTHER_FAMILIES.get(table.family, "a family netguard does not know")
                self.note(
                    where,
                    f"table {table.title}: {len(table.chains)} chains, {n_rules} not analysed "
                    f"(netguard reads ip, ip6 and inet tables; {why})",
                )
                continue
            flags = table.flags
            flag_list = flags if isinstance(flags, list) else [flags] if flags else []
            if "dormant" in flag_list:
                self.note(
                    where,
                    f"table {table.title} is dormant (flags dormant): its {n_rules} are not "
                    "evaluated and not analysed",
                    families,
                )
                continue
            unknown = [f for f in flag_list if f not in ("owner", "persist")]
            if unknown:
                # nftables 1.0.6 prints a single table flag wrongly (here: the table's name), so
                # "dormant" cannot be told from "owner" or "persist": each base chain of the
                # table gets a first rule that may accept everything (the table may be off)
                maybe_dormant[table.title] = (
                    where,
                    f"table {table.title} may be dormant: nft printed its flags as "
                    f"{_compact(flags)} (nftables 1.0.6 prints a single table flag wrongly; "
                    "'nft list table' shows it)",
                )
                self.note(
                    where,
                    maybe_dormant[table.title][1] + ": its base chains may accept every packet",
                    families,
                )
            included = self._included(table, families)
            for decl in included:
                decls[table.qualified(decl.name)] = (table, decl)
            for decl in included:
                for obj, location in decl.rules:
                    try:
                        found = _RuleParser(self, table, families, decl, obj, location).parse()
                    except _Problem as exc:
                        self.problem(location, exc.message)
                        continue
                    if found is not None:
                        parsed.append(found)
        if self.problems:
            return []
        by_chain: dict[tuple[int, str], list[_Parsed]] = {}
        for p in parsed:
            for family in p.families:
                by_chain.setdefault((family, p.chain), []).append(p)
        out: list[RuleSet] = []
        for family in (4, 6):
            reach = _hooks_reaching(decls, parsed, family)
            for name, (table, decl) in decls.items():
                if family not in _TABLE_FAMILIES[table.family]:
                    continue
                hook = _HOOKS.get(decl.hook) if decl.hook else None
                kept = by_chain.get((family, name), [])
                rules = [
                    Rule(
                        name,
                        position,
                        _ipsec_match(p, reach.get(name, set())),
                        p.action,
                        p.text,
                        p.location,
                        p.comment,
                    )
                    for position, p in enumerate(kept, 1)
                ]
                if hook is not None and table.title in maybe_dormant:
                    where, why = maybe_dormant[table.title]
                    rules = [
                        Rule(
                            name,
                            1,
                            Match(unmodeled=(why,)),
                            Action(ActionKind.ACCEPT, None, "accept"),
                            f"# {why}",
                            where,
                        ),
                        *(replace(r, position=r.position + 1) for r in rules),
                    ]
                chains[family][name] = Chain(
                    name,
                    tuple(rules),
                    hook=hook,
                    policy=decl.policy if hook is not None else None,
                    priority=decl.priority if hook is not None else 0,
                    location=decl.location,
                )
            notes = [
                Note(location, message + (f" ({count} times)" if count > 1 else ""))
                for message, (location, count, families) in self.notes.items()
                if family in families
            ]
            if not any(c.hook is not None for c in chains[family].values()):
                tables = "ip or inet" if family == 4 else "ip6 or inet"
                notes.insert(
                    0,
                    Note(
                        Location(self.path),
                        f"no filter base chain for IPv{family} (no {tables} table with a chain "
                        "of type filter on hook input, output or forward): nothing is filtered",
                    ),
                )
            out.append(RuleSet(family, chains[family], str(self.path), tuple(notes)))
        return out

    def _included(self, table: _Table, families: frozenset[int]) -> list[_ChainDecl]:
        """The chains of ``table`` that the RuleSet keeps: filter base chains on input, output
        and forward, and regular chains; the others are noted."""
        kept: list[_ChainDecl] = []
        for decl in table.chains.values():
            if decl.hook is None or (decl.type == "filter" and decl.hook in _HOOKS):
                kept.append(decl)
                continue
            count = len(decl.rules)
            rules = f"{count} rule{'s' if count != 1 else ''}"
            if decl.type != "filter":
                why = _CHAIN_TYPE_NOTES.get(decl.type or "", "a chain type netguard does not know")
                what = f"type {decl.type} on hook {decl.hook}"
            else:
                why = (
                    "netguard analyses the input, output and forward hooks; a drop there only "
                    "removes packets, an accept does not skip the later hooks"
                )
                what = f"type filter on hook {decl.hook}"
            self.note(
                decl.location,
                f"chain {table.qualified(decl.name)} ({what}, priority {decl.priority}): "
                f"{rules} not analysed ({why})",
                families,
            )
        return kept


def _hooks_reaching(
    decls: dict[str, tuple[_Table, _ChainDecl]], parsed: list[_Parsed], family: int
) -> dict[str, set[Hook]]:
    """For each chain of ``family``, the hooks whose base chains reach it (jumps, gotos and
    verdict-map targets)."""
    edges: dict[str, set[str]] = {}
    for p in parsed:
        if family in p.families:
            edges.setdefault(p.chain, set()).update(p.targets)
    reach: dict[str, set[Hook]] = {}
    for name, (table, decl) in decls.items():
        hook = _HOOKS.get(decl.hook) if decl.hook else None
        if hook is None or family not in _TABLE_FAMILIES[table.family]:
            continue
        stack, seen = [name], {name}
        while stack:
            chain = stack.pop()
            reach.setdefault(chain, set()).add(hook)
            for nxt in edges.get(chain, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
    return reach


#: The hook at which each ipsec key tells what Match.ipsec means (IPsec-processed): meta ipsec
#: (the packet has a secpath: it came in decrypted) at INPUT, rt ipsec (its route carries an
#: xfrm: it will leave encrypted) at OUTPUT.
_IPSEC_HOOK = {"meta": Hook.INPUT, "rt": Hook.OUTPUT}


def _ipsec_match(p: _Parsed, hooks: set[Hook]) -> Match:
    """``p.match`` with its ipsec conditions as ``Match.ipsec`` where every hook reaching the
    chain is the one its key speaks for, and as unmodeled text elsewhere."""
    if not p.ipsec:
        return p.match
    value: bool | None = None
    texts: list[str] = []
    where = ", ".join(sorted(h.value.upper() for h in hooks))
    for kind, exists, text in p.ipsec:
        if all(h == _IPSEC_HOOK[kind] for h in hooks) and value in (None, exists):
            value = exists
        elif value is not None and value != exists and all(h == _IPSEC_HOOK[kind] for h in hooks):
            texts.append(f"{text} (contradicts an earlier ipsec condition)")
        else:
            texts.append(f"{text} (reached from {where}: the ipsec flag cannot say the direction)")
    return replace(p.match, ipsec=value, unmodeled=p.match.unmodeled + tuple(texts))


# --- one rule ------------------------------------------------------------------------------


class _RuleParser:
    """Reads the statements of one rule object (libnftables-json(5) "RULE", "STATEMENTS")."""

    def __init__(
        self,
        reader: _Reader,
        table: _Table,
        families: frozenset[int],
        decl: _ChainDecl,
        obj: Json,
        location: Location,
    ) -> None:
        self.reader = reader
        self.table = table
        self.inet = table.family == "inet"
        self.table_families = families
        self.families = set(families)
        self.decl = decl
        self.obj = obj
        self.location = location
        self.proto_in: frozenset[int] | None = None
        self.proto_out: set[int] = set()
        self.sources: list[AddressMatch] = []
        self.destinations: list[AddressMatch] = []
        self.sports: list[PortMatch] = []
        self.dports: list[PortMatch] = []
        self.th: list[tuple[str, PortMatch, str]] = []
        self.icmp: list[IcmpMatch] = []
        self.ct: list[tuple[frozenset[CtState], bool]] = []
        self.in_if: list[InterfaceMatch] = []
        self.out_if: list[InterfaceMatch] = []
        self.ipsec: list[tuple[str, bool, str]] = []
        self.unmodeled: list[str] = []
        self.notes: list[str] = []
        self.targets: list[str] = []
        self.action: Action | None = None
        self.log: str | None = None
        self.foreign_icmp = False
        self.nexthdr = False

    # -- driving --

    def parse(self) -> _Parsed | None:
        texts: list[str] = []
        for stmt in self.obj["expr"]:
            if not isinstance(stmt, dict) or len(stmt) != 1:
                raise _Problem(
                    f"a statement is an object with one property, found {_compact(stmt)[:80]}"
                )
            text = _statement_text(stmt)
            texts.append(text)
            if self.action is not None:
                raise _Problem(f"statement {text!r} after the verdict {self.action.text!r}")
            ((key, value),) = stmt.items()
            self._statement(key, value, text)
        comment = self.obj.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise _Problem(f'rule "comment" must be a string, found {_kind(comment)}')
        rule_text = " ".join(texts)
        if comment is not None:
            rule_text += f" comment {_quote(comment)}"
        handle = self.obj.get("handle")
        if isinstance(handle, int):
            rule_text += f" # handle {handle}"
        chain = self.table.qualified(self.decl.name)
        families = frozenset(self.families)
        for message in self.notes:
            self.reader.note(self.location, message, families or self.table_families)
        if self.nexthdr:
            self.reader.note(
                self.location,
                "ip6 nexthdr is read as the layer-4 protocol: a packet with IPv6 extension "
                "headers has another next header there (the engine has no extension headers)",
                (6,),
            )
        if not families:
            self.reader.note(
                self.location,
                f"rule in {chain} never matches (its conditions need both IPv4 and IPv6, or "
                f"the other family than table {self.table.title} holds): left out",
                self.table_families,
            )
            return None
        action = self.action
        if action is None:
            action = (
                Action(ActionKind.LOG, None, self.log) if self.log else Action(ActionKind.CONTINUE)
            )
        return _Parsed(
            chain,
            families,
            self._match(),
            self.ipsec,
            action,
            tuple(self.targets),
            rule_text,
            self.location,
            comment,
        )

    def _match(self) -> Match:
        for fld, pm, text in self.th:
            # th reads the transport header without a protocol dependency: it is a port only
            # when every protocol the rule admits carries ports
            protos = None if self.proto_in is None else self.proto_in - self.proto_out
            if protos is not None and protos <= _PORT_PROTOCOLS:
                (self.sports if fld == "sport" else self.dports).append(pm)
            else:
                self.unmodeled.append(
                    f"{text} (without tcp, udp, udplite, sctp or dccp, th reads two bytes of "
                    "any transport header)"
                )
        protocols: frozenset[int] | None = None
        negated = False
        if self.proto_in is not None:
            protocols = self.proto_in - self.proto_out
        elif self.proto_out:
            protocols, negated = frozenset(self.proto_out), True
        ct_states: frozenset[CtState] | None = None
        ct_negated = False
        if len(self.ct) == 1:
            ct_states, ct_negated = self.ct[0]
        elif self.ct:
            allowed = frozenset(CtState)
            for states, neg in self.ct:
                allowed &= (frozenset(CtState) - states) if neg else states
            ct_states = allowed
        return Match(
            protocols,
            negated,
            tuple(self.sources),
            tuple(self.destinations),
            tuple(self.sports),
            tuple(self.dports),
            tuple(self.icmp),
            ct_states,
            ct_negated,
            tuple(self.in_if),
            tuple(self.out_if),
            None,
            tuple(self.unmodeled),
        )

    # -- statements --

    def _statement(self, key: str, value: Json, text: str) -> None:
        # nft adds a dependency for every header a statement reads or writes (``ip saddr .
        # tcp dport @set`` needs IPv4 and TCP), modeled or not: they hold either way
        inner = value
        if key in ("match", "vmap"):  # their values are constants: only the left side reads
            inner = (
                value.get("left" if key == "match" else "key") if isinstance(value, dict) else None
            )
        for proto in _payload_protocols(inner):
            self._payload_dependency(proto)
        if key == "match":
            if not isinstance(value, dict) or not {"op", "left", "right"} <= value.keys():
                raise _Problem('a match statement has "op", "left" and "right"')
            self._check_references(value.get("right"))
            try:
                self._condition(value["left"], value["op"], value["right"])
            except _Unmodeled as u:
                self._unmodeled(text, u)
        elif key == "counter":
            pass  # counts packets: no effect on what matches
        elif key == "log":
            self.log = text
        elif key in _VERDICTS:
            self.action = Action(_VERDICTS[key], None, text)
        elif key in ("jump", "goto"):
            self.action = self._verdict({key: value}, text)
        elif key == "reject":
            self._reject(value)
            self.action = Action(ActionKind.REJECT, None, text)
        elif key == "vmap":
            self._vmap(value, text)
        elif key in _TERMINAL_UNMODELED:
            self.action = Action(ActionKind.UNMODELED, None, text)
        elif (
            key == "xt"
            and isinstance(value, dict)
            and value.get("type") == "match"
            and (value.get("name") == "comment")
        ):
            pass  # iptables' comment match selects every packet (iptables-extensions(8))
        elif key in _STATEMENT_NOTES:
            self.notes.append(f"{key}: {_STATEMENT_NOTES[key]}")
            if key == "xt" and isinstance(value, dict) and value.get("type") == "target":
                # An iptables target: one that only logs, marks or mangles lets evaluation go
                # on (iptables-extensions(8), TARGET EXTENSIONS); any other may decide.
                name = value.get("name")
                if name in _XT_LOG:
                    self.action = Action(ActionKind.LOG, None, text)
                elif name in _XT_CONTINUE:
                    self.action = Action(ActionKind.CONTINUE, None, text)
                elif name in _XT_DENY:
                    self.action = Action(ActionKind.REJECT, None, text)
                else:
                    self.action = Action(ActionKind.UNMODELED, None, text)
            else:
                self.unmodeled.append(text)
        elif key in _SIDE_EFFECTS:
            self.unmodeled.append(text)
        else:
            self.unmodeled.append(text)
            self.notes.append(f"statement {key!r} is unknown to netguard: kept as unmodeled text")

    def _unmodeled(self, text: str, u: _Unmodeled) -> None:
        self.unmodeled.append(f"{text} ({u.reason})" if u.reason else text)
        if u.note:
            self.notes.append(f"{u.note}: the condition is kept as unmodeled text")

    def _verdict(self, verdict: Json, text: str) -> Action:
        """A verdict object (libnftables-json(5) "VERDICT") as an Action; checks jump targets."""
        if isinstance(verdict, dict) and len(verdict) == 1:
            ((key, value),) = verdict.items()
            if key in _VERDICTS and value is None:
                return Action(_VERDICTS[key], None, text)
            if key in ("jump", "goto"):
                target = value.get("target") if isinstance(value, dict) else None
                if not isinstance(target, str):
                    raise _Problem(f'{key} needs {{"target": CHAIN}}, found {_compact(value)}')
                if target not in self.table.chains:
                    raise _Problem(
                        f"{key} to chain {target!r}, which table {self.table.title} does not list"
                    )
                qualified = self.table.qualified(target)
                self.targets.append(qualified)
                kind = ActionKind.JUMP if key == "jump" else ActionKind.GOTO
                return Action(kind, qualified, text)
            if key == "queue":
                return Action(ActionKind.UNMODELED, None, text)
        raise _Problem(f"expected a verdict (accept, drop, jump, ...), found {_compact(verdict)}")

    def _reject(self, value: Json) -> None:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "tcp reset":
            self._restrict_protocols(frozenset({6}))  # nft adds 'meta l4proto tcp'
        elif kind in ("icmp", "icmpv6") and self.inet:
            self.families &= {4 if kind == "icmp" else 6}  # nft adds 'meta nfproto ...'

    def _vmap(self, value: Json, text: str) -> None:
        """``key vmap { k : verdict, ... }`` or ``vmap @map``: exact when every entry has the
        same verdict; otherwise its key condition with an UNMODELED action."""
        if not isinstance(value, dict) or "key" not in value or "data" not in value:
            raise _Problem('a vmap statement has "key" and "data"')
        data = value["data"]
        pairs: Json
        if isinstance(data, str) and data.startswith("@"):
            name = data[1:]
            entry = self.table.maps.get(name)
            if entry is None:
                raise _Problem(
                    f"map @{name} is not in table {self.table.title} (expected a map object "
                    f"named {name!r})"
                )
            obj, _ = entry
            if obj.get("map") != "verdict":
                raise _Problem(f"map @{name} maps to {_compact(obj.get('map'))}, not verdicts")
            pairs = obj.get("elem", [])
        elif isinstance(data, dict) and "set" in data:
            pairs = data["set"]
        else:
            raise _Problem(
                f"vmap data must be a set of key : verdict pairs or @map, found "
                f"{_compact(data)[:80]}"
            )
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in pairs
        ):
            raise _Problem(
                f"vmap entries must be [key, verdict] pairs, found {_compact(pairs)[:80]}"
            )
        actions = [self._verdict(p[1], _text(p[1])) for p in pairs]
        try:
            self._condition(value["key"], "==", {"set": [p[0] for p in pairs]})
        except _Unmodeled as u:
            self._unmodeled(text, u)
        distinct = {(a.kind, a.chain) for a in actions}
        if len(distinct) == 1:
            ((kind, chain),) = distinct
            self.action = Action(kind, chain, text)
        elif not actions:
            self.action = Action(ActionKind.CONTINUE, None, text)  # no entry: never matches
        else:
            self.action = Action(ActionKind.UNMODELED, None, text)

    def _check_references(self, right: Json) -> None:
        """A named set on the right must exist, even when the condition is not modeled."""
        if isinstance(right, str) and right.startswith("@"):
            name = right[1:]
            if name not in self.table.sets and name not in self.table.maps:
                raise _Problem(
                    f"set @{name} is not in table {self.table.title} (expected a set object "
                    f"named {name!r})"
                )

    # -- conditions --

    def _condition(self, left: Json, op: Json, right: Json) -> None:
        if op not in ("==", "!=", "in", "<", ">", "<=", ">="):
            raise _Unmodeled()
        if not isinstance(left, dict) or len(left) != 1:
            raise _Unmodeled()
        ((kind, spec),) = left.items()
        if not isinstance(spec, dict):
            raise _Unmodeled()
        negated = op == "!="
        if kind == "payload" and "protocol" in spec:
            proto, fld = spec.get("protocol"), spec.get("field")
            self._payload_dependency(proto)
            if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
                version = 4 if proto == "ip" else 6
                intervals = self._values(_ADDR4 if version == 4 else _ADDR6, op, right)
                side = self.sources if fld == "saddr" else self.destinations
                side.append(AddressMatch(_address_set(version, intervals), negated))
            elif (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
                self.nexthdr = self.nexthdr or proto == "ip6"
                self._protocols(op, right, negated)
            elif proto in _PORT_PAYLOADS and fld in ("sport", "dport"):
                pm = PortMatch(tuple(self._values(_PORTS, op, right)), negated)
                (self.sports if fld == "sport" else self.dports).append(pm)
            elif proto == "th" and fld in ("sport", "dport"):
                pm = PortMatch(tuple(self._values(_PORTS, op, right)), negated)
                self.th.append(
                    (str(fld), pm, _match_text({"left": left, "op": op, "right": right}))
                )
            elif proto in ("icmp", "icmpv6") and fld in ("type", "code"):
                self._icmp(proto == "icmpv6", fld == "type", op, right, negated)
            else:
                raise _Unmodeled()
            return
        key = spec.get("key")
        if kind == "meta":
            if key == "l4proto":
                self._protocols(op, right, negated)
            elif key in ("nfproto", "protocol"):
                self._family(_NFPROTO if key == "nfproto" else _ETHERTYPES, op, right, negated)
            elif key in _INTERFACE_KEYS:
                self._interfaces(_INTERFACE_KEYS[key], op, right, negated)
            elif key in ("ipsec", "secpath"):
                self._ipsec("meta", op, right, left)
            else:
                raise _Unmodeled()
        elif kind == "rt" and key == "ipsec":
            self._ipsec("rt", op, right, left)
        elif kind == "ct" and key == "state" and "dir" not in spec:
            self._ct_state(op, right, negated)
        else:
            raise _Unmodeled()

    def _payload_dependency(self, proto: Json) -> None:
        """What nft's dependency for a header implies (it holds for unmodeled fields too)."""
        if not isinstance(proto, str):
            return
        l4 = _PAYLOAD_L4.get(proto)
        if l4 is not None:
            self._restrict_protocols(frozenset({l4}))
        family = _PAYLOAD_FAMILY.get(proto)
        if family is None:
            return
        if proto in ("icmp", "icmpv6") and not self.inet:
            # no nfproto dependency in ip/ip6 tables: ICMP of the other family stays possible
            self.foreign_icmp = family not in _TABLE_FAMILIES[self.table.family]
            return
        self.families &= {family}

    def _restrict_protocols(self, protocols: frozenset[int]) -> None:
        self.proto_in = protocols if self.proto_in is None else self.proto_in & protocols

    def _items(self, right: Json) -> list[Json]:
        if isinstance(right, str) and right.startswith("@"):
            return self._named_set(right[1:])
        if isinstance(right, dict) and "set" in right:
            value = right["set"]
            return value if isinstance(value, list) else [value]
        if isinstance(right, list):
            return right
        return [right]

    def _named_set(self, name: str) -> list[Json]:
        entry = self.table.sets.get(name)
        if entry is None:
            if name in self.table.maps:
                raise _Problem(f"@{name} is a map: a lookup needs a set")
            raise _Problem(
                f"set @{name} is not in table {self.table.title} (expected a set object named "
                f"{name!r})"
            )
        obj, location = entry
        kind = obj.get("type")
        if isinstance(kind, list):
            raise _Unmodeled(f"set of concatenated type {' . '.join(map(str, kind))}")
        flags = obj.get("flags", [])
        flag_list = flags if isinstance(flags, list) else [flags]
        dynamic = [f for f in flag_list if f in ("timeout", "dynamic")]
        if dynamic or "timeout" in obj:
            raise _Unmodeled(
                f"set @{name} has flags {','.join(dynamic or ['timeout'])}: its elements change "
                "while the firewall runs"
            )
        if "elem" not in obj:
            self.reader.note(
                location,
                f"set @{name} of table {self.table.title} lists no elements: read as empty "
                "(if it was listed with 'nft -t' / --terse, list it again without)",
            )
            return []
        elem = obj["elem"]
        return elem if isinstance(elem, list) else [elem]

    def _values(self, domain: _Domain, op: str, right: Json) -> list[tuple[int, int]]:
        """Intervals of the values ``right`` admits (``!=`` is the caller's negation)."""
        if op in ("<", ">", "<=", ">="):
            if isinstance(right, dict | list) or (isinstance(right, str) and right.startswith("@")):
                raise _Problem(f"{op} compares with one value, found {_text(right)}")
            return _compare(domain, op, domain.value(right))
        if isinstance(right, str) and right.startswith("@"):
            key = (self.table.family, self.table.name, right, domain.what)
            cached = self.reader.set_cache.get(key)
            if cached is None:
                cached = self.reader.set_cache[key] = _intervals(domain, self._named_set(right[1:]))
            return cached
        return _intervals(domain, self._items(right))

    def _protocols(self, op: str, right: Json, negated: bool) -> None:
        numbers = frozenset(
            n for lo, hi in self._values(_PROTOS, op, right) for n in range(lo, hi + 1)
        )
        if negated:
            self.proto_out |= numbers
        else:
            self._restrict_protocols(numbers)

    def _icmp(self, v6: bool, is_type: bool, op: str, right: Json, negated: bool) -> None:
        if is_type:
            domain = _ICMPV6_TYPE if v6 else _ICMP_TYPE
        else:
            domain = _ICMPV6_CODE if v6 else _ICMP_CODE
        intervals = self._values(domain, op, right)
        if self.foreign_icmp:
            header, family = ("ICMPv6", 4) if v6 else ("ICMP", 6)
            raise _Unmodeled(f"{header} fields of IPv{family} packets: table {self.table.title}")
        if is_type:
            types = sorted({t for lo, hi in intervals for t in range(lo, hi + 1)})
            if negated:
                self.icmp.extend(IcmpMatch(t, negated=True) for t in types)
            elif len(types) == 1:
                self.icmp.append(IcmpMatch(types[0]))
            else:  # one of several types: ICMP and none of the others
                chosen = set(types)
                self.icmp.extend(IcmpMatch(t, negated=True) for t in range(256) if t not in chosen)
        elif negated:
            self.icmp.extend(IcmpMatch(None, lo, hi, negated=True) for lo, hi in intervals)
        elif len(intervals) == 1:
            self.icmp.append(IcmpMatch(None, *intervals[0]))
        else:
            self.icmp.extend(
                IcmpMatch(None, lo, hi, negated=True) for lo, hi in _complement(intervals, 255)
            )

    def _family(self, names: dict[Any, int], op: str, right: Json, negated: bool) -> None:
        if op not in ("==", "!=", "in"):
            raise _Unmodeled()
        found: set[int] = set()
        for item in self._items(right):
            value = _element_value(item)
            family = names.get(value) if isinstance(value, str | int) else None
            if family is None:
                raise _Unmodeled()  # arp, bridge, ...: never an IPv4/IPv6 packet, or unknown
            found.add(family)
        if negated:
            self.families -= found
        else:
            self.families &= found

    def _interfaces(self, direction: str, op: str, right: Json, negated: bool) -> None:
        if op not in ("==", "!=", "in"):
            raise _Unmodeled()
        matches = [_interface(_element_value(i)) for i in self._items(right)]
        target = self.in_if if direction == "in" else self.out_if
        if negated:
            target.extend(replace(m, negated=True) for m in matches)
        elif len(matches) == 1:
            target.append(matches[0])
        else:
            raise _Unmodeled("one of several interfaces: Match has no interface sets")

    def _ipsec(self, kind: str, op: str, right: Json, left: Json) -> None:
        if op not in ("==", "!=") or right not in (True, False, "exists", "missing"):
            raise _Unmodeled()
        exists = right in (True, "exists")
        if op == "!=":
            exists = not exists
        self.ipsec.append((kind, exists, f"{_text(left)} {'exists' if exists else 'missing'}"))

    def _ct_state(self, op: str, right: Json, negated: bool) -> None:
        if op not in ("==", "!=", "in"):
            raise _Unmodeled()
        states: set[CtState] = set()
        for item in self._items(right):
            value = _element_value(item)
            state = None
            if isinstance(value, str):
                state = _CT_STATES.get(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                state = _CT_BITS.get(value)
            if state is None:
                raise _Unmodeled(note=f"ct state {_compact(value)} is unknown to netguard")
            states.add(state)
        self.ct.append((frozenset(states), negated))
