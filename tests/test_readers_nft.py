"""Reader for ``nft -j list ruleset`` JSON (libnftables-json(5)): netguard.readers.nft_json.

Expected values are worked out by hand from the inputs:

- tests/data/nft/features.nft: a hand-written ruleset with every construct the reader reads;
  each rule names itself in its comment. features.json is what ``nft -j list ruleset``
  (nftables 1.0.6) printed after loading it into a namespace, so the parser is tested without
  root; the kernel test below redoes the capture live.
- netguard's own nftables files for the three examples (public-https, vpn, privatelink),
  loaded into a namespace and listed back as JSON; the expected chains and matches are read
  off the example profiles in examples/*/deployment.yaml.
- small hand-written JSON documents for the family split, sets, negations and errors.

Kernel tests need root, ``ip netns`` and nft; they skip otherwise, and fail under ``CI=true``.
No traffic is sent: the namespaces only hold rulesets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import netns as harness
import pytest

from netguard.cidr import PrefixSet
from netguard.errors import InputError, Location
from netguard.model.ruleset import (
    ActionKind,
    AddressMatch,
    CtState,
    Hook,
    IcmpMatch,
    InterfaceMatch,
    Match,
    PortMatch,
    Rule,
    RuleSet,
)
from netguard.readers.nft_json import read_nft_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "nft"
FEATURES_JSON = DATA / "features.json"

TCP, UDP, SCTP, ESP, ICMP, ICMPV6 = (frozenset({n}) for n in (6, 17, 132, 50, 1, 58))
NEW = frozenset({CtState.NEW})
EST_REL = frozenset({CtState.ESTABLISHED, CtState.RELATED})

A, D, R, J, G, L, C, U = (
    ActionKind.ACCEPT,
    ActionKind.DROP,
    ActionKind.REJECT,
    ActionKind.JUMP,
    ActionKind.GOTO,
    ActionKind.LOG,
    ActionKind.CONTINUE,
    ActionKind.UNMODELED,
)


# --- helpers -------------------------------------------------------------------------------


def ps(*cidrs: str) -> PrefixSet:
    """Exact address set of the given prefixes."""
    return PrefixSet.from_prefixes(ipaddress.ip_network(c) for c in cidrs)


def span(first: str, last: str) -> PrefixSet:
    """Exact address set of an inclusive range."""
    lo, hi = ipaddress.ip_address(first), ipaddress.ip_address(last)
    interval = ((int(lo), int(hi)),)
    return PrefixSet(interval, ()) if lo.version == 4 else PrefixSet((), interval)


def am(*cidrs: str, negated: bool = False) -> AddressMatch:
    return AddressMatch(ps(*cidrs), negated)


def ports(*ranges: tuple[int, int] | int, negated: bool = False) -> PortMatch:
    return PortMatch(tuple(r if isinstance(r, tuple) else (r, r) for r in ranges), negated)


def one_of(*types: int) -> tuple[IcmpMatch, ...]:
    """How the reader writes "ICMP type in {types}" (several types): ICMP and none of the
    other 256 - len(types) types. :func:`admitted_types` checks the meaning."""
    return tuple(IcmpMatch(t, negated=True) for t in range(256) if t not in types)


def admitted_types(icmp: tuple[IcmpMatch, ...], code: int = 0) -> set[int]:
    """ICMP types whose packets (with ``code``) satisfy every IcmpMatch of a conjunction."""

    def ok(im: IcmpMatch, t: int) -> bool:
        hit = (im.type is None or im.type == t) and im.code_first <= code <= im.code_last
        return hit != im.negated

    return {t for t in range(256) if all(ok(im, t) for im in icmp)}


def by_comment(ruleset: RuleSet) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for chain in ruleset.chains.values():
        for rule in chain.rules:
            assert rule.comment is not None and rule.comment not in out, rule.text
            out[rule.comment] = rule
    return out


def write(tmp_path: Path, doc: Any, name: str = "ruleset.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def doc(*objects: dict[str, Any]) -> dict[str, Any]:
    """A list-output document: metainfo then ``objects``."""
    meta = {"metainfo": {"version": "1.0.6", "json_schema_version": 1}}
    return {"nftables": [meta, *objects]}


def table(family: str = "inet", name: str = "t") -> dict[str, Any]:
    return {"table": {"family": family, "name": name, "handle": 1}}


def chain(
    name: str, hook: str | None = None, family: str = "inet", tbl: str = "t", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"family": family, "table": tbl, "name": name, "handle": 1}
    if hook is not None:
        body |= {"type": "filter", "hook": hook, "prio": 0, "policy": "accept"}
    return {"chain": body | extra}


def rule(
    ch: str, *expr: dict[str, Any], family: str = "inet", tbl: str = "t", comment: str = ""
) -> dict[str, Any]:
    body: dict[str, Any] = {"family": family, "table": tbl, "chain": ch, "handle": 9}
    if comment:
        body["comment"] = comment
    return {"rule": body | {"expr": list(expr)}}


def match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}


def read(tmp_path: Path, *objects: dict[str, Any]) -> tuple[RuleSet, RuleSet]:
    v4, v6 = read_nft_json(write(tmp_path, doc(*objects)))
    assert (v4.family, v6.family) == (4, 6)
    return v4, v6


def problems(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[int, int, str]]:
    return [(loc.line, loc.column, msg) for loc, msg in exc.value.problems]


# --- features.nft: what every construct reads as, by hand -----------------------------------

Expected = dict[str, tuple[Match, ActionKind, str | None]]

HELPER = "inet filter/helper"
WEB4 = (
    PrefixSet.from_prefixes([ipaddress.ip_network("192.0.2.0/25")])
    .union(span("198.51.100.1", "198.51.100.9"))
    .union(ps("203.0.113.7/32"))
)
WEB6 = ps("2001:db8:1::/48").union(span("2001:db8:2::1", "2001:db8:2::9"))
SVC = ports(22, (8000, 8080))
UNMODELED_IFSET = (
    'iifname { "ppp0", "wg*" } (one of several interfaces: Match has no interface sets)'
)
NO_DIRECTION = "(reached from {}: the ipsec flag cannot say the direction)"


def tcp(port: int, **kw: Any) -> Match:
    return Match(protocols=TCP, destination_ports=(ports(port),), **kw)


def expected_features(family: int) -> dict[str, Expected]:
    """Per chain: comment -> (match, action kind, target chain), in rule order, for one family
    of features.nft. Rules that name one family (ip/ip6 headers, icmp/icmpv6, meta nfproto,
    reject with icmp/icmpv6) appear only in its RuleSet."""
    v4, v6 = family == 4, family == 6
    both: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        # comment, match, action, target, in this family
        ("loopback", Match(in_interfaces=(InterfaceMatch("lo"),)), A, None, True),
        ("established", Match(ct_states=EST_REL), A, None, True),
        ("invalid", Match(ct_states=frozenset({CtState.INVALID})), D, None, True),
        (
            "ct-not-in-set",
            Match(ct_states=frozenset({CtState.NEW, CtState.UNTRACKED}), ct_states_negated=True),
            D,
            None,
            True,
        ),
        (
            "ct-not-established",
            Match(ct_states=frozenset({CtState.ESTABLISHED}), ct_states_negated=True),
            C,
            None,
            True,
        ),
        ("ct-set-log", Match(ct_states=NEW), L, None, True),
        ("nfproto-v4", tcp(22), A, None, v4),
        ("nfproto-v6", Match(protocols=UDP, destination_ports=(ports(53),)), A, None, v6),
        ("nfproto-not-v4", tcp(23), D, None, v6),
        ("v4-host", tcp(443, sources=(am("192.0.2.1/32"),)), A, None, v4),
        (
            "v4-prefix",
            Match(
                protocols=TCP,
                sources=(am("192.0.2.0/24"),),
                destinations=(am("198.51.100.0/24", negated=True),),
                source_ports=(ports((1024, 65535)),),
            ),
            A,
            None,
            v4,
        ),
        (
            "v4-range",
            Match(sources=(AddressMatch(span("203.0.113.1", "203.0.113.20")),)),
            A,
            None,
            v4,
        ),
        (
            "v4-anon-set",
            Match(
                sources=(
                    AddressMatch(
                        ps("192.0.2.1/32", "198.51.100.0/24").union(
                            span("203.0.113.1", "203.0.113.5")
                        )
                    ),
                )
            ),
            A,
            None,
            v4,
        ),
        (
            "v4-anon-set-neg",
            Match(sources=(am("192.0.2.0/24", "198.51.100.0/24", negated=True),)),
            D,
            None,
            v4,
        ),
        (
            "v4-named",
            Match(protocols=TCP, sources=(AddressMatch(WEB4),), destination_ports=(SVC,)),
            A,
            None,
            v4,
        ),
        (
            "v4-named-neg",
            Match(
                protocols=UDP,
                destinations=(am("192.0.2.10/31", negated=True),),
                destination_ports=(replace(SVC, negated=True),),
            ),
            D,
            None,
            v4,
        ),
        ("v4-typeof", Match(destinations=(am("203.0.113.9/32"),)), A, None, v4),
        ("v6-host", Match(sources=(am("2001:db8::1/128"),)), A, None, v6),
        (
            "v6-prefix",
            Match(
                sources=(am("2001:db8::/32"),),
                destinations=(am("2001:db8:ffff::/48", negated=True),),
            ),
            A,
            None,
            v6,
        ),
        ("v6-named", Match(sources=(AddressMatch(WEB6),)), A, None, v6),
        (
            "v6-anon-set",
            Match(destinations=(am("2001:db8:1::1/128", "2001:db8:3::/64"),)),
            A,
            None,
            v6,
        ),
        (
            "ports-set",
            Match(protocols=TCP, destination_ports=(ports(22, (80, 90), 443),)),
            A,
            None,
            True,
        ),
        (
            "ports-set-neg",
            Match(protocols=TCP, destination_ports=(ports(22, (80, 90), negated=True),)),
            D,
            None,
            True,
        ),
        (
            "ports-neg",
            Match(
                protocols=TCP,
                source_ports=(ports(1024),),
                destination_ports=(ports(8080, negated=True),),
            ),
            A,
            None,
            True,
        ),
        ("ports-lt", Match(protocols=TCP, destination_ports=(ports((0, 1023)),)), D, None, True),
        (
            "ports-gt",
            Match(protocols=UDP, destination_ports=(ports((1024, 65535)),)),
            A,
            None,
            True,
        ),
        ("ports-le", Match(protocols=UDP, source_ports=(ports((0, 53)),)), A, None, True),
        (
            "ports-ge",
            Match(protocols=SCTP, destination_ports=(ports((5000, 65535)),)),
            A,
            None,
            True,
        ),
        (
            "ports-range",
            Match(protocols=TCP, destination_ports=(ports((8000, 8080)),)),
            A,
            None,
            True,
        ),
        (
            "ports-range-neg",
            Match(protocols=TCP, destination_ports=(ports((8000, 8080), negated=True),)),
            D,
            None,
            True,
        ),
        (
            "th-with-l4proto",
            Match(protocols=frozenset({6, 17}), destination_ports=(ports(53),)),
            A,
            None,
            True,
        ),
        (
            "th-alone",
            Match(
                unmodeled=(
                    "th dport 53 (without tcp, udp, udplite, sctp or dccp, th reads two bytes "
                    "of any transport header)",
                )
            ),
            A,
            None,
            True,
        ),
        ("l4proto-named", Match(protocols=frozenset({6, 132})), A, None, True),
        ("l4proto-name", Match(protocols=ESP), A, None, True),
        ("l4proto-number", Match(protocols=SCTP), A, None, True),
        ("l4proto-neg", Match(protocols=UDP, protocols_negated=True), D, None, True),
        ("ip-protocol", Match(protocols=ICMP), A, None, v4),
        ("ip6-nexthdr", Match(protocols=ICMPV6), A, None, v6),
        ("icmp-type", Match(protocols=ICMP, icmp=(IcmpMatch(8),)), A, None, v4),
        (
            "icmp-type-neg",
            Match(protocols=ICMP, icmp=(IcmpMatch(8, negated=True),)),
            D,
            None,
            v4,
        ),
        (
            "icmp-type-set",
            Match(protocols=ICMP, icmp=(*one_of(0, 8), IcmpMatch(None, 0, 0))),
            A,
            None,
            v4,
        ),
        (
            # code in {port-unreachable 3, admin-prohibited 13}: none of 0-2, 4-12, 14-255
            "icmp-code-set",
            Match(
                protocols=ICMP,
                icmp=(
                    IcmpMatch(3),
                    IcmpMatch(None, 0, 2, negated=True),
                    IcmpMatch(None, 4, 12, negated=True),
                    IcmpMatch(None, 14, 255, negated=True),
                ),
            ),
            A,
            None,
            v4,
        ),
        ("icmpv6-type-set", Match(protocols=ICMPV6, icmp=one_of(133, 135)), A, None, v6),
        (
            "icmpv6-code",
            Match(protocols=ICMPV6, icmp=(IcmpMatch(1), IcmpMatch(None, 0, 0))),
            A,
            None,
            v6,
        ),
        (
            "icmpv6-type-set-neg",
            Match(
                protocols=ICMPV6,
                icmp=(IcmpMatch(128, negated=True), IcmpMatch(129, negated=True)),
            ),
            D,
            None,
            v6,
        ),
        (
            "iifname-wildcard",
            tcp(80, in_interfaces=(InterfaceMatch("eth", wildcard=True),)),
            A,
            None,
            True,
        ),
        (
            "iifname-neg",
            tcp(81, in_interfaces=(InterfaceMatch("eth0", negated=True),)),
            A,
            None,
            True,
        ),
        ("iifname-star", tcp(82, in_interfaces=(InterfaceMatch("eth*"),)), A, None, True),
        ("iifname-set", tcp(83, unmodeled=(UNMODELED_IFSET,)), A, None, True),
        (
            "iifname-set-neg",
            tcp(
                84,
                in_interfaces=(
                    InterfaceMatch("ppp0", negated=True),
                    InterfaceMatch("wg", wildcard=True, negated=True),
                ),
            ),
            A,
            None,
            True,
        ),
        ("ipsec-in", tcp(8443, ipsec=True), A, None, True),
        ("no-ipsec-in", tcp(8444, ipsec=False), D, None, True),
        (
            # concatenations are unmodeled, but nft's dependencies (IPv4, TCP) still hold
            "concat-set",
            Match(protocols=TCP, unmodeled=("ip saddr . tcp dport @pairs",)),
            A,
            None,
            v4,
        ),
        (
            "dynamic-set",
            Match(
                unmodeled=(
                    "ip saddr @recent4 (set @recent4 has flags timeout: its elements change "
                    "while the firewall runs)",
                )
            ),
            D,
            None,
            v4,
        ),
        ("vmap-named", Match(protocols=TCP, destination_ports=(ports((22, 23)),)), U, None, True),
        ("vmap-trivial", Match(protocols=TCP, destination_ports=(ports(80, 443),)), A, None, True),
        (
            "vmap-named-trivial",
            Match(protocols=UDP, destination_ports=(ports(80, 443),)),
            A,
            None,
            True,
        ),
        (
            "vmap-mixed",
            Match(protocols=TCP, destination_ports=(ports((8080, 8081)),)),
            U,
            None,
            True,
        ),
        ("meta-mark", Match(unmodeled=("meta mark 1",)), A, None, True),
        ("tcp-flags", tcp(9000, unmodeled=("tcp flags & syn,ack == syn",)), A, None, True),
        ("fib", tcp(9001, unmodeled=("fib daddr type local",)), A, None, True),
        (
            "hoplimit",
            Match(protocols=ICMPV6, icmp=(IcmpMatch(136),), unmodeled=("ip6 hoplimit 255",)),
            A,
            None,
            v6,
        ),
        (
            "limit-verdict",
            tcp(9002, unmodeled=("limit rate 5/second burst 5 packets",)),
            A,
            None,
            True,
        ),
        ("limit-log", Match(unmodeled=("limit rate 10/minute burst 5 packets",)), L, None, True),
        ("named-counter", tcp(9003), A, None, True),
        ("mangle", tcp(9004, unmodeled=("meta mark set 2",)), A, None, True),
        ("quota", tcp(9005, unmodeled=("quota over 100 mbytes",)), D, None, True),
        ("ct-count", tcp(9006, unmodeled=("ct count over 10",)), R, None, True),
        ("reject-icmp", tcp(9007), R, None, v4),
        ("reject-icmpv6", tcp(9008), R, None, v6),
        ("reject-icmpx", tcp(9009), R, None, True),
        ("reject-tcp", Match(protocols=TCP), R, None, True),
        ("jump", tcp(9011), J, HELPER, True),
        ("goto", tcp(9012), G, HELPER, True),
        ("continue", tcp(9013), C, None, True),
        ("return", tcp(9014), ActionKind.RETURN, None, True),
        (
            "it's a comment; with {braces} and spaces",
            Match(sources=(am("192.0.2.99/32"),)),
            C,
            None,
            v4,
        ),
        ("drop", Match(), D, None, True),
    ]
    helper: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        ("helper-return", Match(sources=(am("192.0.2.50/32"),)), ActionKind.RETURN, None, v4),
        ("helper-v6", Match(sources=(am("2001:db8::50/128"),)), A, None, v6),
        (
            # reached from INPUT (jump, goto, vmap) and FORWARD: meta ipsec is right only at INPUT
            "helper-ipsec",
            Match(unmodeled=("meta ipsec exists " + NO_DIRECTION.format("FORWARD, INPUT"),)),
            A,
            None,
            True,
        ),
    ]
    output: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        ("out-loopback", Match(out_interfaces=(InterfaceMatch("lo"),)), A, None, True),
        (
            "ipsec-out",
            Match(out_interfaces=(InterfaceMatch("wg0"),), ipsec=True),
            A,
            None,
            True,
        ),
        ("no-ipsec-out", tcp(443, ipsec=False), D, None, True),
    ]
    forward: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        ("fwd-jump", Match(), J, HELPER, True),
        (
            "ipsec-fwd",
            Match(unmodeled=("meta ipsec exists " + NO_DIRECTION.format("FORWARD"),)),
            A,
            None,
            True,
        ),
    ]
    legacy: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        ("legacy-v4", Match(sources=(am("198.51.100.0/24"),)), D, None, True),
        (
            # in an ip table, icmpv6 reads ICMPv6 fields of IPv4 packets of protocol 58
            "legacy-icmpv6-in-ip",
            Match(
                protocols=ICMPV6,
                unmodeled=(
                    "icmpv6 type echo-request (ICMPv6 fields of IPv4 packets: table ip legacy)",
                ),
            ),
            A,
            None,
            True,
        ),
    ]
    legacy6: list[tuple[str, Match, ActionKind, str | None, bool]] = [
        (
            "legacy6-smtp",
            Match(
                protocols=TCP,
                destinations=(am("2001:db8:5::/64"),),
                destination_ports=(ports(25),),
            ),
            A,
            None,
            True,
        ),
    ]

    def keep(rows: list[tuple[str, Match, ActionKind, str | None, bool]]) -> Expected:
        return {c: (m, k, t) for c, m, k, t, here in rows if here}

    out = {
        "inet filter/input": keep(both),
        "inet filter/helper": keep(helper),
        "inet filter/output": keep(output),
        "inet filter/forward": keep(forward),
    }
    if v4:
        out["ip legacy/INPUT"] = keep(legacy)
    else:
        out["ip6 legacy6/FORWARD"] = keep(legacy6)
    return out


# (hook, policy, priority) of the chains of features.nft, from its chain declarations
FEATURE_CHAINS: dict[str, tuple[Hook | None, ActionKind | None, int]] = {
    "inet filter/input": (Hook.INPUT, D, 0),
    "inet filter/helper": (None, None, 0),
    "inet filter/output": (Hook.OUTPUT, A, -10),
    "inet filter/forward": (Hook.FORWARD, D, 5),
    "ip legacy/INPUT": (Hook.INPUT, A, 10),
    "ip6 legacy6/FORWARD": (Hook.FORWARD, D, 0),
}


def check_features(ruleset: RuleSet, *, exact_texts: bool = True) -> None:
    """``ruleset`` (one family of features.nft) is what :func:`expected_features` says: chain
    by chain, rule by rule in order. ``exact_texts`` False compares unmodeled conditions by
    number only (another nft may print them differently)."""
    expected = expected_features(ruleset.family)
    assert list(ruleset.chains) == list(expected)
    for name, rules in expected.items():
        got = ruleset.chains[name]
        assert (got.hook, got.policy, got.priority) == FEATURE_CHAINS[name]
        assert [r.comment for r in got.rules] == list(rules), name
        assert [r.position for r in got.rules] == list(range(1, len(rules) + 1))
        for r in got.rules:
            want, kind, target = rules[r.comment or ""]
            match = r.match
            if not exact_texts:
                assert len(match.unmodeled) == len(want.unmodeled), r.text
                match, want = replace(match, unmodeled=()), replace(want, unmodeled=())
            assert (match, r.action.kind, r.action.chain) == (want, kind, target), r.text


def test_features_snapshot() -> None:
    v4, v6 = read_nft_json(FEATURES_JSON)
    assert (v4.family, v6.family) == (4, 6)
    assert v4.source == str(FEATURES_JSON)
    check_features(v4)
    check_features(v6)


def test_features_icmp_sets_mean_what_they_say() -> None:
    v4, v6 = read_nft_json(FEATURES_JSON)
    r4, r6 = by_comment(v4), by_comment(v6)
    assert admitted_types(r4["icmp-type-set"].match.icmp) == {0, 8}
    assert admitted_types(r4["icmp-type-set"].match.icmp, code=1) == set()
    assert admitted_types(r4["icmp-code-set"].match.icmp, code=13) == {3}
    assert admitted_types(r4["icmp-code-set"].match.icmp, code=4) == set()
    assert admitted_types(r6["icmpv6-type-set"].match.icmp) == {133, 135}
    assert admitted_types(r6["icmpv6-type-set-neg"].match.icmp) == set(range(256)) - {128, 129}


def test_features_texts_and_locations() -> None:
    text = FEATURES_JSON.read_text(encoding="utf-8")
    assert text.count("\n") == 1  # nft -j prints one line: the column tells objects apart
    v4, v6 = read_nft_json(FEATURES_JSON)
    rules = by_comment(v4)
    loopback = rules["loopback"]
    column = text.index('{"rule": {"family": "inet", "table": "filter", "chain": "input"') + 1
    assert loopback.location == Location(FEATURES_JSON, 1, column)
    assert loopback.text == 'iif "lo" accept comment "loopback" # handle 19'
    assert by_comment(v6)["loopback"].location == loopback.location  # one object, two families
    chain_column = text.index('{"chain": {"family": "inet", "table": "filter", "name": "input"')
    assert v4.chains["inet filter/input"].location == Location(FEATURES_JSON, 1, chain_column + 1)
    assert rules["v4-named"].text == (
        'ip saddr @web4 tcp dport @svc accept comment "v4-named" # handle 36'
    )
    assert rules["iifname-star"].text.startswith('iifname "eth\\*" tcp dport 82 accept')
    assert rules["vmap-mixed"].action.text == "tcp dport vmap { 8080 : jump helper, 8081 : drop }"
    assert rules["ct-set-log"].action.text == 'log prefix "new: " level info'
    assert rules["jump"].action.text == "jump helper"
    assert rules["reject-tcp"].action.text == "reject with tcp reset"
    assert rules["ct-not-in-set"].text.startswith("ct state != { new, untracked } drop")
    assert rules["it's a comment; with {braces} and spaces"].comment == (
        "it's a comment; with {braces} and spaces"
    )


def test_features_notes() -> None:
    v4, v6 = read_nft_json(FEATURES_JSON)
    for ruleset in (v4, v6):
        messages = [n.message for n in ruleset.notes]
        starts = [m.split(" (")[0].split(":")[0] for m in messages]
        for expected in (
            "chain inet filter/prerouting",
            "chain inet filter/dnat_in",
            "chain inet filter/reroute",
            "table arp arpf",
            "table bridge br",
            "table netdev edge",
        ):
            assert expected in starts, (expected, messages)
        assert any("type nat on hook prerouting" in m for m in messages)
        assert any("type route on hook output" in m for m in messages)
        assert all(n.location.path == FEATURES_JSON and n.location.line == 1 for n in ruleset.notes)
    nexthdr = [n for n in v6.notes if n.message.startswith("ip6 nexthdr")]
    assert len(nexthdr) == 1
    assert not [n for n in v4.notes if n.message.startswith("ip6 nexthdr")]


# --- hand-written documents ----------------------------------------------------------------


def test_inet_split_by_family_conditions(tmp_path: Path) -> None:
    v4, v6 = read(
        tmp_path,
        table(),
        chain("in", "input"),
        rule("in", match(meta("nfproto"), {"set": ["ipv4", "ipv6"]}), ACCEPT, comment="both"),
        rule("in", match(meta("nfproto"), "ipv6", "!="), ACCEPT, comment="not-v6"),
        rule("in", match(meta("protocol"), "ip6"), ACCEPT, comment="ethertype-v6"),
        rule("in", match(payload("ip", "ttl"), 1), DROP, comment="ttl"),
        rule("in", match(payload("ip6", "hoplimit"), 1), DROP, comment="hoplimit"),
        rule(
            "in",
            match(payload("ip", "saddr"), "192.0.2.1"),
            match(payload("ip6", "daddr"), "2001:db8::1"),
            ACCEPT,
            comment="never",
        ),
        rule("in", {"reject": {"type": "icmpv6", "expr": "no-route"}}, comment="reject6"),
        rule("in", {"mangle": {"key": payload("ip", "dscp"), "value": 1}}, comment="mangle4"),
    )
    assert [r.comment for r in v4.chains["inet t/in"].rules] == ["both", "not-v6", "ttl", "mangle4"]
    assert [r.comment for r in v6.chains["inet t/in"].rules] == [
        "both",
        "ethertype-v6",
        "hoplimit",
        "reject6",
    ]
    assert [r.position for r in v6.chains["inet t/in"].rules] == [1, 2, 3, 4]
    assert by_comment(v4)["ttl"].match == Match(unmodeled=("ip ttl 1",))
    assert by_comment(v4)["both"].match == Match()
    never = [n.message for n in v4.notes if "never matches" in n.message]
    assert never == [
        "rule in inet t/in never matches (its conditions need both IPv4 and IPv6, "
        "or the other family than table inet t holds): left out"
    ]


def test_ip_and_ip6_tables_go_to_their_family(tmp_path: Path) -> None:
    v4, v6 = read(
        tmp_path,
        table("ip", "four"),
        chain("INPUT", "input", family="ip", tbl="four", prio=-5, policy="drop"),
        table("ip6", "six"),
        chain("OUT", "output", family="ip6", tbl="six"),
        table("inet", "both"),
        chain("input", "input", family="inet", tbl="both", prio=3),
        rule("INPUT", match(meta("nfproto"), "ipv6"), ACCEPT, family="ip", tbl="four"),
    )
    assert {n: (c.hook, c.policy, c.priority) for n, c in v4.chains.items()} == {
        "ip four/INPUT": (Hook.INPUT, D, -5),
        "inet both/input": (Hook.INPUT, A, 3),
    }
    assert {n: (c.hook, c.policy) for n, c in v6.chains.items()} == {
        "ip6 six/OUT": (Hook.OUTPUT, A),
        "inet both/input": (Hook.INPUT, A),
    }
    # two base chains on one hook: both kept, lowest priority first
    assert [c.name for c in v4.base_chains(Hook.INPUT)] == ["ip four/INPUT", "inet both/input"]
    assert v4.chains["ip four/INPUT"].rules == ()  # meta nfproto ipv6 never holds in an ip table


def test_named_sets_elements_and_intervals(tmp_path: Path) -> None:
    sets = [
        {"set": {"family": "inet", "table": "t", "name": name, "type": kind, "handle": 2} | extra}
        for name, kind, extra in (
            (
                "a4",
                "ipv4_addr",
                {
                    "flags": ["interval"],
                    "elem": [
                        {
                            "elem": {
                                "val": {"prefix": {"addr": "198.51.100.0", "len": 24}},
                                "comment": "vendor",
                            }
                        },
                        {"range": ["203.0.113.10", "203.0.113.12"]},
                        "192.0.2.1",
                        {"prefix": {"addr": "192.0.2.0", "len": 31}},
                    ],
                },
            ),
            ("one", "ipv4_addr", {"elem": "192.0.2.7"}),
            ("p", "inet_service", {"flags": "interval", "elem": [{"range": [1000, 1999]}, 443]}),
            ("proto", "inet_proto", {"elem": ["udp", 6]}),
            ("empty", "ipv4_addr", {}),
            ("cc", ["ipv4_addr", "inet_service"], {"elem": [{"concat": ["192.0.2.1", 22]}]}),
            ("dyn", "ipv4_addr", {"flags": ["dynamic"], "elem": ["192.0.2.9"]}),
        )
    ]
    v4, _ = read(
        tmp_path,
        table(),
        *sets,
        chain("in", "input"),
        rule("in", match(payload("ip", "saddr"), "@a4"), ACCEPT, comment="a4"),
        rule("in", match(payload("ip", "daddr"), "@one", "!="), DROP, comment="one"),
        rule(
            "in",
            match(payload("udp", "dport"), "@p"),
            match(meta("l4proto"), "@proto"),
            ACCEPT,
            comment="ports",
        ),
        rule("in", match(payload("ip", "saddr"), "@empty"), ACCEPT, comment="empty"),
        rule(
            "in",
            match({"concat": [payload("ip", "saddr"), payload("tcp", "dport")]}, "@cc"),
            ACCEPT,
            comment="concat",
        ),
        rule("in", match(payload("ip", "saddr"), "@dyn"), ACCEPT, comment="dyn"),
    )
    r = by_comment(v4)
    # 192.0.2.0/31 and 192.0.2.1 overlap; the elem wrapper's comment does not matter
    assert r["a4"].match == Match(
        sources=(
            AddressMatch(
                ps("192.0.2.0/31", "198.51.100.0/24").union(span("203.0.113.10", "203.0.113.12"))
            ),
        )
    )
    assert r["one"].match == Match(destinations=(am("192.0.2.7/32", negated=True),))
    # udp dport implies UDP; meta l4proto @proto allows {udp, tcp}: together UDP
    assert r["ports"].match == Match(protocols=UDP, destination_ports=(ports(443, (1000, 1999)),))
    assert r["empty"].match == Match(sources=(AddressMatch(PrefixSet()),))
    assert r["concat"].match == Match(
        protocols=TCP,
        unmodeled=("ip saddr . tcp dport @cc",),
    )
    assert r["dyn"].match.unmodeled == (
        "ip saddr @dyn (set @dyn has flags dynamic: its elements change while the firewall runs)",
    )
    assert any("set @empty of table inet t lists no elements" in n.message for n in v4.notes)


def test_anonymous_sets_ranges_prefixes_and_negations(tmp_path: Path) -> None:
    v4, v6 = read(
        tmp_path,
        table(),
        chain("in", "input"),
        rule(
            "in",
            match(
                payload("ip6", "saddr"),
                {
                    "set": [
                        {"prefix": {"addr": "2001:db8:a::", "len": 48}},
                        {"range": ["2001:db8:b::1", "2001:db8:b::ff"]},
                        "2001:db8:c::1",
                    ]
                },
            ),
            match(payload("tcp", "sport"), {"range": [1024, 65535]}, "!="),
            match(payload("tcp", "dport"), 22, "!="),
            ACCEPT,
            comment="six",
        ),
        rule(
            "in",
            # host bits under the prefix do not count: the kernel compares under the mask
            match(payload("ip", "daddr"), {"prefix": {"addr": "192.0.2.77", "len": 24}}, "!="),
            match(payload("ip", "saddr"), "203.0.113.5", ">="),
            match(payload("udp", "dport"), 0, "<"),
            DROP,
            comment="four",
        ),
        rule(
            "in",
            match(meta("l4proto"), {"set": ["tcp", "udp"]}, "!="),
            match(meta("l4proto"), "esp", "!="),
            DROP,
            comment="protos",
        ),
        rule(
            "in",
            match({"ct": {"key": "state"}}, ["established", "related"]),
            match({"ct": {"key": "state"}}, "related", "!="),
            ACCEPT,
            comment="ct",
        ),
        rule(
            "in",
            match(meta("iifname"), "*"),
            match(meta("oifname"), {"set": ["a", "b"]}, "!="),
            ACCEPT,
            comment="ifaces",
        ),
    )
    r6, r4 = by_comment(v6), by_comment(v4)
    assert r6["six"].match == Match(
        protocols=TCP,
        sources=(
            AddressMatch(
                ps("2001:db8:a::/48", "2001:db8:c::1/128").union(
                    span("2001:db8:b::1", "2001:db8:b::ff")
                )
            ),
        ),
        source_ports=(ports((1024, 65535), negated=True),),
        destination_ports=(ports(22, negated=True),),
    )
    assert r4["four"].match == Match(
        protocols=UDP,
        sources=(AddressMatch(span("203.0.113.5", "255.255.255.255")),),
        destinations=(am("192.0.2.0/24", negated=True),),
        destination_ports=(PortMatch((), False),),  # dport < 0: never
    )
    assert r4["protos"].match == Match(protocols=frozenset({6, 17, 50}), protocols_negated=True)
    assert r4["ct"].match == Match(ct_states=frozenset({CtState.ESTABLISHED}))  # intersected
    assert r4["ifaces"].match == Match(
        in_interfaces=(InterfaceMatch("", wildcard=True),),
        out_interfaces=(InterfaceMatch("a", negated=True), InterfaceMatch("b", negated=True)),
    )


def test_ipsec_direction_follows_the_hooks(tmp_path: Path) -> None:
    exists = {"match": {"op": "==", "left": {"rt": {"key": "ipsec"}}, "right": True}}
    missing = match(meta("ipsec"), False)
    v4, _ = read(
        tmp_path,
        table(),
        chain("in", "input"),
        chain("out", "output"),
        chain("sub"),
        rule("in", exists, ACCEPT, comment="rt-at-input"),
        rule("in", missing, DROP, comment="meta-at-input"),
        rule("out", exists, ACCEPT, comment="rt-at-output"),
        rule("out", missing, DROP, comment="meta-at-output"),
        rule("out", {"goto": {"target": "sub"}}, comment="goto"),
        rule("sub", exists, match(meta("ipsec"), "exists", "!="), ACCEPT, comment="sub"),
    )
    r = by_comment(v4)
    assert r["rt-at-input"].match == Match(
        unmodeled=("rt ipsec exists " + NO_DIRECTION.format("INPUT"),)
    )
    assert r["meta-at-input"].match == Match(ipsec=False)
    assert r["rt-at-output"].match == Match(ipsec=True)
    assert r["meta-at-output"].match == Match(
        unmodeled=("meta ipsec missing " + NO_DIRECTION.format("OUTPUT"),)
    )
    assert r["sub"].match == Match(
        ipsec=True, unmodeled=("meta ipsec missing " + NO_DIRECTION.format("OUTPUT"),)
    )


def test_verdicts_and_unmodeled_statements(tmp_path: Path) -> None:
    v4, _ = read(
        tmp_path,
        table(),
        {
            "map": {
                "family": "inet",
                "table": "t",
                "name": "m",
                "type": "inet_service",
                "map": "verdict",
                "elem": [[22, {"jump": {"target": "sub"}}], [23, {"jump": {"target": "sub"}}]],
            }
        },
        chain("in", "input"),
        chain("sub"),
        rule("in", {"queue": {"num": 3, "flags": ["bypass"]}}, comment="queue"),
        rule("in", {"synproxy": {"mss": 1460}}, comment="synproxy"),
        rule("in", {"xt": {"type": "target", "name": "TPROXY"}}, comment="xt"),
        rule("in", {"frobnicate": {"x": 1}}, ACCEPT, comment="unknown"),
        rule("in", {"notrack": None}, {"counter": None}, comment="notrack"),
        rule("in", {"vmap": {"key": payload("tcp", "dport"), "data": "@m"}}, comment="vmap"),
        rule("in", {"log": None}, DROP, comment="log-drop"),
        rule(
            "in",
            {"vmap": {"key": payload("tcp", "dport"), "data": {"set": []}}},
            comment="vmap-empty",
        ),
    )
    r = by_comment(v4)
    got = {
        c: (x.match.unmodeled, x.action.kind, x.action.chain, x.action.text) for c, x in r.items()
    }
    assert got == {
        "queue": ((), U, None, "queue num 3 bypass"),
        "synproxy": ((), U, None, '{"synproxy":{"mss":1460}}'),
        "xt": (
            (),
            U,
            None,
            '{"xt":{"type":"target","name":"TPROXY"}}',
        ),
        "unknown": (('{"frobnicate":{"x":1}}',), A, None, "accept"),
        "notrack": (("notrack",), C, None, ""),
        "vmap": ((), J, "inet t/sub", "tcp dport vmap @m"),
        "log-drop": ((), D, None, "drop"),
        "vmap-empty": ((), C, None, "tcp dport vmap { }"),
    }
    assert r["vmap"].match == Match(protocols=TCP, destination_ports=(ports((22, 23)),))
    assert r["vmap-empty"].match == Match(protocols=TCP, destination_ports=(PortMatch(()),))
    messages = [n.message for n in v4.notes]
    assert "statement 'frobnicate' is unknown to netguard: kept as unmodeled text" in messages
    assert any(m.startswith("xt: an iptables-nft") for m in messages)


def test_unknown_names_are_unmodeled_with_a_note(tmp_path: Path) -> None:
    v4, _ = read(
        tmp_path,
        table(),
        chain("in", "input"),
        rule("in", match(payload("icmp", "type"), "bogus-type"), ACCEPT),
        rule("in", match({"ct": {"key": "state"}}, "confused"), ACCEPT),
        rule("in", match(meta("l4proto"), "no-such-protocol"), ACCEPT),
    )
    rules = v4.chains["inet t/in"].rules
    assert [r.match for r in rules] == [
        Match(protocols=ICMP, unmodeled=("icmp type bogus-type",)),
        Match(unmodeled=("ct state confused",)),
        Match(unmodeled=("meta l4proto no-such-protocol",)),
    ]
    messages = {n.message for n in v4.notes}
    assert (
        "ICMP type 'bogus-type' is unknown to netguard: the condition is kept as unmodeled text"
        in messages
    )


def test_other_expressions_stay_unmodeled(tmp_path: Path) -> None:
    raw = {"payload": {"base": "th", "offset": 16, "len": 16}}
    v4, _ = read(
        tmp_path,
        table(),
        chain("in", "input"),
        rule(
            "in",
            match({"map": {"key": payload("tcp", "dport"), "data": {"set": [[22, 1]]}}}, 1),
            ACCEPT,
        ),
        rule("in", match({"exthdr": {"name": "frag"}}, True), DROP),
        rule(
            "in",
            match({"ct": {"key": "saddr", "dir": "original", "family": "ip"}}, "192.0.2.1"),
            ACCEPT,
        ),
        rule("in", match({"socket": {"key": "transparent"}}, 1), ACCEPT),
        rule("in", match(raw, 53), ACCEPT),
        rule("in", match(meta("iif"), 3), ACCEPT),
        rule("in", match(payload("tcp", "dport"), 22, "&"), ACCEPT),
    )
    assert [(r.match, r.action.kind) for r in v4.chains["inet t/in"].rules] == [
        (Match(protocols=TCP, unmodeled=("tcp dport map { 22 : 1 } 1",)), A),
        (Match(unmodeled=("exthdr frag exists",)), D),
        (Match(unmodeled=("ct original ip saddr 192.0.2.1",)), A),
        (Match(unmodeled=("socket transparent 1",)), A),
        (Match(unmodeled=("@th,16,16 53",)), A),
        (Match(unmodeled=("iif 3 (interface given by index)",)), A),
        (Match(protocols=TCP, unmodeled=("tcp dport & 22",)), A),
    ]


def test_tables_chains_and_flags_not_analysed(tmp_path: Path) -> None:
    v4, v6 = read(
        tmp_path,
        {"table": {"family": "inet", "name": "off", "handle": 1, "flags": ["dormant"]}},
        chain("in", "input", tbl="off", policy="drop"),
        {"table": {"family": "ip", "name": "odd", "handle": 2, "flags": "odd"}},
        chain("in", "input", family="ip", tbl="odd", policy="drop"),
        rule("in", DROP, family="ip", tbl="odd"),
        chain("ing", family="inet", tbl="off"),
        {"flowtable": {"family": "inet", "table": "off", "name": "ft", "hook": "ingress"}},
        {"mystery": {}},
    )
    assert "inet off/in" not in v4.chains and "inet off/in" not in v6.chains
    odd = v4.chains["ip odd/in"]
    # nftables 1.0.6 prints one table flag as garbage (here the name): the table may be dormant
    why = (
        'table ip odd may be dormant: nft printed its flags as "odd" (nftables 1.0.6 prints '
        "a single table flag wrongly; 'nft list table' shows it)"
    )
    assert [(r.position, r.match, r.action.kind, r.text) for r in odd.rules] == [
        (1, Match(unmodeled=(why,)), A, f"# {why}"),
        (2, Match(), D, "drop # handle 9"),
    ]
    notes4 = [n.message for n in v4.notes]
    assert any(m.startswith("table inet off is dormant") for m in notes4)
    assert "object 'mystery' is not read (unknown to netguard)" in notes4
    assert v6.notes[0].message.startswith("no filter base chain for IPv6")


def test_empty_ruleset_filters_nothing(tmp_path: Path) -> None:
    v4, v6 = read_nft_json(write(tmp_path, '{"nftables": []}'))
    assert v4.chains == {} and v6.chains == {}
    assert v4.notes[0].message == (
        "no filter base chain for IPv4 (no ip or inet table with a chain of type filter on hook "
        "input, output or forward): nothing is filtered"
    )


def test_pretty_printed_json_has_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path, json.dumps(doc(table(), chain("in", "input"), rule("in", DROP)), indent=1)
    )
    lines = path.read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if '"rule"' in t) - 1  # its '{' line
    assert lines[line - 1] == "  {"  # elements of the array are indented by two
    v4, _ = read_nft_json(path)
    assert v4.chains["inet t/in"].rules[0].location == Location(path, line, 3)


def test_array_not_first_key_has_path_only_locations(tmp_path: Path) -> None:
    text = json.dumps({"x": 1, **doc(table(), chain("in", "input"), rule("in", DROP))})
    v4, _ = read_nft_json(write(tmp_path, text))
    assert v4.chains["inet t/in"].rules[0].location == Location(tmp_path / "ruleset.json")


# --- errors --------------------------------------------------------------------------------

_T = '{"table": {"family": "inet", "name": "t"}}'
_CH = (
    '{"chain": {"family": "inet", "table": "t", "name": "in", "type": "filter", '
    '"hook": "input", "prio": 0}}'
)


def _rule(expr: str, chain: str = "in") -> str:
    return f'{{"rule": {{"family": "inet", "table": "t", "chain": "{chain}", "expr": [{expr}]}}}}'


def _doc(*objects: str) -> str:
    return '{"nftables": [' + ", ".join(objects) + "]}"


def _at(text: str, fragment: str) -> int:
    """1-based column of ``fragment`` in one-line ``text``."""
    return text.index(fragment) + 1


_SADDR = '{"payload": {"protocol": "ip", "field": "saddr"}}'
_DPORT = '{"payload": {"protocol": "tcp", "field": "dport"}}'


@pytest.mark.parametrize(
    ("text", "fragment", "message"),
    [
        ('{"nftables": [', None, "not JSON (Expecting value): expected the output of"),
        ("[]", None, 'not an nftables JSON document: expected an object with an "nftables" array'),
        ('{"nft": []}', None, "found an object without that key"),
        ('{"nftables": {}}', None, '"nftables" must be an array of objects, found an object'),
        (
            _doc('{"add": {"table": {"family": "inet", "name": "t"}}}'),
            '{"add"',
            "'add' is a command",
        ),
        (_doc("42"), "42", "expected an object with one property"),
        (
            _doc('{"chain": {"family": "inet", "table": "t"}}'),
            '{"chain"',
            'chain object lacks "name"',
        ),
        (
            _doc(_T, _CH, '{"rule": {"family": "inet", "table": "t", "chain": "in"}}'),
            '{"rule"',
            'rule object lacks "expr"',
        ),
        (
            _doc(_T, _rule('{"accept": null}', "nowhere")),
            '{"rule"',
            "rule of chain 'nowhere', which table inet t does not list",
        ),
        (
            _doc(_T, _CH, _rule('{"jump": {"target": "gone"}}')),
            '{"rule"',
            "jump to chain 'gone', which table inet t does not list",
        ),
        (
            _doc(
                _T, _CH, _rule(f'{{"match": {{"op": "==", "left": {_SADDR}, "right": "@nope"}}}}')
            ),
            '{"rule"',
            "set @nope is not in table inet t (expected a set object named 'nope')",
        ),
        (
            _doc(_T, _CH, _rule(f'{{"vmap": {{"key": {_DPORT}, "data": "@vm"}}}}')),
            '{"rule"',
            "map @vm is not in table inet t",
        ),
        (
            _doc(
                _T,
                _CH,
                _rule(f'{{"match": {{"op": "==", "left": {_SADDR}, "right": "192.0.2.300"}}}}'),
            ),
            '{"rule"',
            "expected an IPv4 address, found '192.0.2.300'",
        ),
        (
            _doc(_T, _CH, _rule(f'{{"match": {{"op": "==", "left": {_DPORT}, "right": 70000}}}}')),
            '{"rule"',
            "port 70000 is outside 0-65535",
        ),
        (
            _doc(
                _T,
                _CH,
                _rule(
                    f'{{"match": {{"op": "==", "left": {_SADDR}, "right": '
                    '{"prefix": {"addr": "192.0.2.0", "len": 33}}}}'
                ),
            ),
            '{"rule"',
            "prefix length must be 0-32, found 33",
        ),
        (
            _doc(
                _T,
                _CH,
                _rule(f'{{"match": {{"op": "<", "left": {_DPORT}, "right": {{"set": [1, 2]}}}}}}'),
            ),
            '{"rule"',
            "< compares with one value",
        ),
        (
            _doc(_T, _CH, _rule('{"accept": null}, {"drop": null}')),
            '{"rule"',
            "statement 'drop' after the verdict 'accept'",
        ),
        (
            _doc(
                _T,
                '{"chain": {"family": "inet", "table": "t", "name": "in", "type": "filter", '
                '"hook": "input", "prio": 0, "policy": "reject"}}',
            ),
            '{"chain"',
            'chain "policy" must be accept or drop',
        ),
    ],
)
def test_malformed(tmp_path: Path, text: str, fragment: str | None, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        read_nft_json(path)
    [(line, column, got)] = problems(exc)
    if fragment is None:
        assert line == 1 and column in (1, len(text) + 1), (line, column)
    else:
        assert (line, column) == (1, _at(text, fragment))
    assert message in got, got
    assert str(path) in str(exc.value)


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path, '{\n  "nftables": [\n    {"table": {"family": "inet",, "name": "t"}}\n  ]\n}\n'
    )
    with pytest.raises(InputError) as exc:
        read_nft_json(path)
    assert problems(exc) == [
        (
            3,
            33,  # the second comma
            "not JSON (Expecting property name enclosed in double quotes): expected the "
            "output of 'nft -j list ruleset'",
        )
    ]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"nftables": [\n{"table": {"name": "\xff"}}]}')
    with pytest.raises(InputError) as exc:
        read_nft_json(path)
    assert problems(exc) == [(2, 0, "not UTF-8 text")]


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    text = _doc(
        _T,
        _CH,
        _rule('{"jump": {"target": "a"}}'),
        _rule(f'{{"match": {{"op": "==", "left": {_SADDR}, "right": "@b"}}}}'),
        '{"set": {"family": "inet", "table": "t"}}',
    )
    with pytest.raises(InputError) as exc:
        read_nft_json(write(tmp_path, text))
    got = [m for _, _, m in problems(exc)]
    assert len(got) == 3
    assert any("jump to chain 'a'" in m for m in got)
    assert any("set @b is not in table" in m for m in got)
    assert any('set object lacks "name"' in m for m in got)


# --- netguard's own nftables files, read back from the kernel -------------------------------

EXAMPLES = ROOT / "examples"


def _ndp(family: int) -> list[tuple[str, Match, ActionKind]]:
    """The loopback, established, NDP and MLD rules every generated base chain starts with."""
    rows = [("netguard:established", Match(ct_states=EST_REL), A)]
    if family == 6:  # nd-router-solicit .. nd-neighbor-advert; mld-listener-* and mld2 report
        rows += [
            (
                "netguard:ndp",
                Match(
                    protocols=ICMPV6,
                    icmp=one_of(133, 134, 135, 136),
                    unmodeled=("ip6 hoplimit 255",),
                ),
                A,
            ),
            (
                "netguard:mld",
                Match(
                    protocols=ICMPV6, icmp=one_of(130, 131, 132, 143), unmodeled=("ip6 hoplimit 1",)
                ),
                A,
            ),
        ]
    return rows


LOG_DROP: list[tuple[str, Match, ActionKind]] = [
    ("netguard:log-drop", Match(unmodeled=("limit rate 10/minute burst 5 packets",)), L),
    ("netguard:drop", Match(), D),
]


def _new_tcp(dst: str, port: int, src: str | None = None, ipsec: bool | None = None) -> Match:
    return Match(
        protocols=TCP,
        sources=(am(src),) if src else (),
        destinations=(am(dst),),
        destination_ports=(ports(port),),
        ct_states=NEW,
        ipsec=ipsec,
    )


def _new_udp(dst: str, port: int) -> Match:
    return Match(
        protocols=UDP, destinations=(am(dst),), destination_ports=(ports(port),), ct_states=NEW
    )


def expected_example(name: str, family: int) -> dict[str, list[tuple[str, Match, ActionKind]]]:
    """input/output/forward rules of the generated nftables file of examples/<name>, by hand
    from examples/<name>/deployment.yaml (v4 and v6 addresses as the profile lists them)."""
    lo_in = [("netguard:loopback", Match(in_interfaces=(InterfaceMatch("lo"),)), A)]
    lo_out = [("netguard:loopback", Match(out_interfaces=(InterfaceMatch("lo"),)), A)]
    six = family == 6
    ingress: list[tuple[str, Match, ActionKind]]
    egress: list[tuple[str, Match, ActionKind]]
    if name == "public-https":
        # webhook_ranges 203.0.113.0/28, 2001:db8:200::/48 -> receivers .20, 2001:db8:10::20 :8443
        # api_ranges 198.51.100.0/25 + .128/26 (one interval 198.51.100.0-191), 2001:db8:100::/48
        # dns_resolvers 192.0.2.53, 2001:db8:10::53; exception ntp (IPv4 only) 192.0.2.123 udp 123
        src, rcv = (
            ("2001:db8:200::/48", "2001:db8:10::20/128")
            if six
            else ("203.0.113.0/28", "192.0.2.20/32")
        )
        ingress = [("ingress-webhook-ingest", _new_tcp(rcv, 8443, src), A)]
        dns = "2001:db8:10::53/128" if six else "192.0.2.53/32"
        api = (am("2001:db8:100::/48"),) if six else (am("198.51.100.0/25", "198.51.100.128/26"),)
        egress = [
            ("egress-vendor-api", replace(_new_tcp(dns, 443), destinations=api), A),
            ("egress-dns-tcp", _new_tcp(dns, 53), A),
            ("egress-dns-udp", _new_udp(dns, 53), A),
        ]
        if not six:
            egress.append(("exception-ntp", _new_udp("192.0.2.123/32", 123), A))
    elif name == "vpn":
        # vpn peers 203.0.113.200/32 + .201/32 = /31 (IPv4 only): IKE udp 500, NAT-T 4500, ESP;
        # api 198.51.100.0/26, 2001:db8:100:10::/64 and webhooks 198.51.100.64/28,
        # 2001:db8:100:20::/64 inside the tunnel (ipsec); dns 192.0.2.53 (IPv4 only)
        peers = am("203.0.113.200/31")
        if six:
            ingress = [
                (
                    "ingress-webhook-ingest",
                    _new_tcp("2001:db8:10::20/128", 8443, "2001:db8:100:20::/64", True),
                    A,
                )
            ]
            egress = [("egress-vendor-api", _new_tcp("2001:db8:100:10::/64", 443, ipsec=True), A)]
        else:
            ingress = [
                (
                    "ingress-ike",
                    Match(
                        protocols=UDP,
                        sources=(peers,),
                        destination_ports=(ports(500),),
                        ct_states=NEW,
                    ),
                    A,
                ),
                (
                    "ingress-nat-t",
                    Match(
                        protocols=UDP,
                        sources=(peers,),
                        destination_ports=(ports(4500),),
                        ct_states=NEW,
                    ),
                    A,
                ),
                ("ingress-esp", Match(protocols=ESP, sources=(peers,), ct_states=NEW), A),
                (
                    "ingress-webhook-ingest",
                    _new_tcp("192.0.2.20/32", 8443, "198.51.100.64/28", True),
                    A,
                ),
            ]
            egress = [
                (
                    "egress-ike",
                    Match(
                        protocols=UDP,
                        destinations=(peers,),
                        destination_ports=(ports(500),),
                        ct_states=NEW,
                    ),
                    A,
                ),
                (
                    "egress-nat-t",
                    Match(
                        protocols=UDP,
                        destinations=(peers,),
                        destination_ports=(ports(4500),),
                        ct_states=NEW,
                    ),
                    A,
                ),
                ("egress-esp", Match(protocols=ESP, destinations=(peers,), ct_states=NEW), A),
                ("egress-vendor-api", _new_tcp("198.51.100.0/26", 443, ipsec=True), A),
                ("egress-dns-tcp", _new_tcp("192.0.2.53/32", 53), A),
                ("egress-dns-udp", _new_udp("192.0.2.53/32", 53), A),
            ]
    else:  # privatelink
        # webhooks 203.0.113.0/28 -> receiver 192.0.2.20 (IPv4 only); the endpoint subnets
        # 192.0.2.64/27, 2001:db8:10:40::/64 are the API; dns 192.0.2.2 (IPv4 only)
        ingress = (
            []
            if six
            else [("ingress-webhook-ingest", _new_tcp("192.0.2.20/32", 8443, "203.0.113.0/28"), A)]
        )
        if six:
            egress = [("egress-vendor-api", _new_tcp("2001:db8:10:40::/64", 443), A)]
        else:
            egress = [
                ("egress-vendor-api", _new_tcp("192.0.2.64/27", 443), A),
                ("egress-dns-tcp", _new_tcp("192.0.2.2/32", 53), A),
                ("egress-dns-udp", _new_udp("192.0.2.2/32", 53), A),
            ]
    return {
        "inet netguard/input": lo_in + _ndp(family) + ingress + LOG_DROP,
        "inet netguard/output": lo_out + _ndp(family) + egress + LOG_DROP,
        "inet netguard/forward": LOG_DROP,
    }


def check_example(ruleset: RuleSet, name: str) -> None:
    assert ruleset.notes == ()
    assert {n: (c.hook, c.policy, c.priority) for n, c in ruleset.chains.items()} == {
        "inet netguard/input": (Hook.INPUT, D, 0),
        "inet netguard/output": (Hook.OUTPUT, D, 0),
        "inet netguard/forward": (Hook.FORWARD, D, 0),
    }
    got = {
        n: [(r.comment, r.match, r.action.kind) for r in c.rules] for n, c in ruleset.chains.items()
    }
    assert got == expected_example(name, ruleset.family)


def _run(argv: list[str], stdin: Path | None = None) -> str:
    with stdin.open("rb") if stdin else open(os.devnull, "rb") as fh:  # noqa: PTH123
        done = subprocess.run(argv, stdin=fh, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.decode(errors='replace')}"
    return done.stdout.decode()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A throwaway network namespace ``ngt-nftrd-<random>`` (no interfaces but lo), deleted
    afterwards."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for a network namespace"
    elif missing := [t for t in ("ip", "nft") if shutil.which(t) is None]:
        reason = f"needs {', '.join(missing)}"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot run under CI=true: {reason}")
        pytest.skip(reason)
    name = f"ngt-nftrd-{uuid.uuid4().hex[:10]}"
    _run(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60, check=False)


def _load_and_list(ns: str, nft_file: Path, out: Path) -> Path:
    _run(["ip", "netns", "exec", ns, "nft", "-f", str(nft_file)])
    out.write_text(_run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"]))
    return out


@pytest.mark.kernel
def test_kernel_features(namespace: str, tmp_path: Path) -> None:
    listed = _load_and_list(namespace, DATA / "features.nft", tmp_path / "features.json")
    v4, v6 = read_nft_json(listed)
    # another nft may print unmodeled conditions differently: compare those by number
    check_features(v4, exact_texts=False)
    check_features(v6, exact_texts=False)
    snapshot = read_nft_json(FEATURES_JSON)
    for live, kept in zip((v4, v6), snapshot, strict=True):
        assert [n.message for n in live.notes] == [n.message for n in kept.notes]


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["public-https", "vpn", "privatelink"])
def test_kernel_generated_examples(namespace: str, tmp_path: Path, name: str) -> None:
    out = harness.generate(EXAMPLES / name / "deployment.yaml", tmp_path / "out", "nftables")
    listed = _load_and_list(namespace, out / "nftables" / "netguard.nft", tmp_path / "list.json")
    v4, v6 = read_nft_json(listed)
    check_example(v4, name)
    check_example(v6, name)


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["public-https", "vpn"])
def test_kernel_nft_and_iptables_readings_agree(namespace: str, tmp_path: Path, name: str) -> None:
    """The same profile rendered for nftables (read back from the kernel as JSON) and for
    iptables (read from the generated files) accepts the same packets at every hook, whether
    the unmodeled conditions (limit, hop limit) are assumed to match or not."""
    space = pytest.importorskip("netguard.space")
    from netguard.readers import read_iptables_save

    deployment = EXAMPLES / name / "deployment.yaml"
    nft_out = harness.generate(deployment, tmp_path / "nft", "nftables")
    ipt_out = harness.generate(deployment, tmp_path / "ipt", "iptables")
    listed = _load_and_list(namespace, nft_out / "nftables" / "netguard.nft", tmp_path / "l.json")
    nft = read_nft_json(listed)
    ipt = [read_iptables_save(ipt_out / "iptables" / f)[0] for f in ("rules.v4", "rules.v6")]
    engine = space.Engine.for_rulesets(*nft, *ipt)
    for a, b in zip(nft, ipt, strict=True):
        for hook in Hook:
            for approx in (space.Approx.MAY, space.Approx.MUST):
                got = space.evaluate(a, hook, engine, approx).accepted
                want = space.evaluate(b, hook, engine, approx).accepted
                assert got == want, (a.family, hook, approx)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("LOG", ActionKind.LOG),
        ("NFLOG", ActionKind.LOG),
        ("MARK", ActionKind.CONTINUE),
        ("TCPMSS", ActionKind.CONTINUE),
        ("REJECT", ActionKind.REJECT),  # ends evaluation, denying (was: may accept)
        ("QUEUE", ActionKind.UNMODELED),
        ("SOMETHING-NEW", ActionKind.UNMODELED),
    ],
)
def test_xt_targets_of_iptables_nft(tmp_path: Path, name: str, kind: ActionKind) -> None:
    """iptables-nft tables show iptables targets as ``xt`` statements: those that only log
    or mark do not end evaluation (iptables-extensions(8)); others may decide (regression: a
    LOG target was read as possibly accepting, so netguard's own rules looked non-compliant
    when read through ``nft -j``)."""
    xt = {"xt": {"type": "target", "name": name}}
    v4, _ = read(tmp_path, table("ip", "filter"), chain("OUTPUT", "output", "ip", "filter"),
                 rule("OUTPUT", xt, family="ip", tbl="filter"))  # fmt: skip
    (r,) = v4.chains["ip filter/OUTPUT"].rules
    assert r.action.kind is kind


def test_xt_comment_match_is_no_condition(tmp_path: Path) -> None:
    """iptables-nft shows ``-m comment`` as an ``xt`` match; a comment selects every packet
    (iptables-extensions(8)), so it is no condition at all, not an unmodeled one; another
    xt match (conntrack: its states are not in the JSON) stays unmodeled."""
    comment = {"xt": {"type": "match", "name": "comment"}}
    conntrack = {"xt": {"type": "match", "name": "conntrack"}}
    v4, _ = read(tmp_path, table("ip", "filter"), chain("OUTPUT", "output", "ip", "filter"),
                 rule("OUTPUT", comment, ACCEPT, family="ip", tbl="filter"),
                 rule("OUTPUT", conntrack, comment, ACCEPT, family="ip", tbl="filter"))  # fmt: skip
    first, second = v4.chains["ip filter/OUTPUT"].rules
    assert first.match == Match() and first.action.kind is ActionKind.ACCEPT
    assert len(second.match.unmodeled) == 1 and "conntrack" in second.match.unmodeled[0]
