"""The packet-space engine: set algebra, matches, examples, rectangles, evaluation and trace.

Expected values are worked out by hand from the semantics in ``netguard/space``; the property
tests compare the engine with a plain first-match interpreter written here, one packet at a
time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netguard.cidr import PrefixSet
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
    PortMatch,
    Rule,
    RuleSet,
)
from netguard.space import (
    Approx,
    Engine,
    HeaderSpace,
    Packet,
    Rectangle,
    RuleKey,
    Slicer,
    UnmodeledError,
    evaluate,
    trace,
)

ip = ipaddress.ip_address
ENGINE = Engine(["eth0", "eth+", "wlan0"])


def pset(*cidrs: str) -> PrefixSet:
    return PrefixSet.from_prefixes(ipaddress.ip_network(c) for c in cidrs)


def pkt(text: str) -> Packet:
    return Packet.parse(text)


def rule(
    chain: str, pos: int, action: ActionKind, target: str | None = None, **match: object
) -> Rule:
    return Rule(
        chain=chain,
        position=pos,
        match=Match(**match),  # type: ignore[arg-type]
        action=Action(action, target),
        text=f"-A {chain} rule {pos} -j {target or action}",
        location=Location("rules.v4", pos),
    )


def ruleset(*chains: Chain, family: int = 4) -> RuleSet:
    return RuleSet(family=family, chains={c.name: c for c in chains}, source="rules.v4")


def base(
    name: str, rules: Iterable[Rule], policy: ActionKind = ActionKind.DROP, **kw: object
) -> Chain:
    return Chain(name, tuple(rules), hook=Hook.INPUT, policy=policy, **kw)  # type: ignore[arg-type]


def user(name: str, rules: Iterable[Rule]) -> Chain:
    return Chain(name, tuple(rules))


# --- set algebra ----


def test_set_algebra_laws() -> None:
    e = ENGINE
    a = e.space(protocols=[6], dport=[(20, 30)])
    b = e.space(dst=["198.51.100.0/24"])
    everything = e.all()
    assert (a | ~a) == everything
    assert (a & ~a).is_empty()
    assert ~~a == a
    assert (a - b) == (a & ~b)
    assert ~(a | b) == (~a & ~b)
    assert (a ^ b) == ((a - b) | (b - a))
    assert a & b <= a <= a | b
    assert a < everything and not everything < everything
    assert e.none().is_empty() and not e.none()
    assert bool(a)
    assert e.all(4) | e.all(6) == everything
    assert e.all(4).isdisjoint(e.all(6))
    assert everything.is_all() and e.all(4).is_all(4) and not e.all(4).is_all()


def test_spaces_from_different_engines_do_not_mix() -> None:
    with pytest.raises(ValueError, match="different engines"):
        _ = ENGINE.all() | Engine().all()


def test_port_range_contains_22() -> None:
    e = ENGINE
    r = e.space(protocols=[6], dport=[(20, 30)])
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:22") in r
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:20") in r
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:30") in r
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:31") not in r
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:19") not in r
    assert pkt("udp 192.0.2.1:40000 -> 198.51.100.1:22") not in r
    assert e.space(protocols=[6], dport=22) < r
    # 20:30 is 11 ports, each as many packets as port 22 alone.
    assert r.count() == 11 * e.space(protocols=[6], dport=22).count()


def test_two_halves_are_all_of_ipv4_and_ipv6() -> None:
    e = ENGINE
    assert e.space(dst=["0.0.0.0/1"]) | e.space(dst=["128.0.0.0/1"]) == e.all(4)
    assert e.space(src=["::/1"]) | e.space(src=["8000::/1"]) == e.all(6)
    assert e.space(dst=["0.0.0.0/0"]) == e.all(4)
    # Without the other half it is not everything.
    assert e.space(dst=["0.0.0.0/1"]) != e.all(4)


def test_counts_by_hand() -> None:
    e = Engine()  # interface universe {other}: one class per direction
    one = e.packet(pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:443"))
    assert one.count() == 1
    # TCP to 198.51.100.0/24 port 443: 256 destinations x 2^32 sources x 65536 source ports
    # x 5 conntrack states x 2 (IPsec or not).
    s = e.space(protocols=[6], dst=["198.51.100.0/24"], dport=443)
    assert s.count() == 256 * 2**32 * 65536 * 5 * 2
    # ESP from one host to another: no ports, no ICMP fields: 5 states x 2 IPsec flags.
    esp = e.space(protocols=[50], src=["192.0.2.1/32"], dst=["203.0.113.5/32"])
    assert esp.count() == 10
    # ICMP echo request between two hosts: codes 0-255.
    echo = e.space(protocols=[1], src=["192.0.2.1/32"], dst=["192.0.2.2/32"], icmp_type=8)
    assert echo.count() == 256 * 5 * 2


def test_address_negation() -> None:
    e = ENGINE
    m = Match(sources=(AddressMatch(pset("192.0.2.0/24"), negated=True),))
    s = e.match(m, 4)
    assert s == e.all(4) - e.space(src=["192.0.2.0/24"])
    assert pkt("tcp 192.0.2.7:40000 -> 198.51.100.1:443") not in s
    assert pkt("tcp 192.0.3.7:40000 -> 198.51.100.1:443") in s
    # The negation stays within the family of the rule set.
    assert e.match(m, 4).isdisjoint(e.all(6))


def test_port_negation_implies_a_port_protocol() -> None:
    e = ENGINE
    m = Match(
        protocols=frozenset({6}),
        destination_ports=(PortMatch(((22, 22),), negated=True),),
    )
    s = e.match(m, 4)
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:80") in s
    assert pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:22") not in s
    assert pkt("udp 192.0.2.1:40000 -> 198.51.100.1:80") not in s
    # A port condition alone (nft `th dport != 22`) never matches ICMP or ESP.
    bare = e.match(Match(destination_ports=(PortMatch(((22, 22),), negated=True),)), 4)
    assert pkt("udp 192.0.2.1:40000 -> 198.51.100.1:80") in bare
    assert pkt("icmp 192.0.2.1 -> 198.51.100.1 type 8") not in bare
    assert pkt("esp 192.0.2.1 -> 198.51.100.1") not in bare


def test_protocol_negation() -> None:
    e = ENGINE
    s = e.match(Match(protocols=frozenset({6, 17}), protocols_negated=True), 4)
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 8") in s
    assert pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2") not in s
    assert s | e.space(family=4, protocols=[6, 17]) == e.all(4)


def test_icmp_type_and_code() -> None:
    e = ENGINE
    echo = e.match(Match(protocols=frozenset({1}), icmp=(IcmpMatch(8),)), 4)
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 8 code 0") in echo
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 0 code 0") not in echo
    unreach = e.match(Match(icmp=(IcmpMatch(3, 1, 3),)), 4)
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 3 code 1") in unreach
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 3 code 3") in unreach
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 3 code 4") not in unreach
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 3 code 0") not in unreach
    # Negated: ICMP of any other type; never TCP.
    not_echo = e.match(Match(icmp=(IcmpMatch(8, negated=True),)), 4)
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 0") in not_echo
    assert pkt("icmp 192.0.2.1 -> 192.0.2.2 type 8 code 7") not in not_echo
    assert pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2") not in not_echo
    # ICMPv6 in IPv6: protocol 58.
    v6 = e.match(Match(protocols=frozenset({58}), icmp=(IcmpMatch(128),)), 6)
    assert pkt("icmpv6 2001:db8::1 -> 2001:db8::2 type 128") in v6
    assert pkt("icmpv6 2001:db8::1 -> 2001:db8::2 type 129") not in v6


def test_conntrack_states() -> None:
    e = ENGINE
    est = e.match(Match(ct_states=frozenset({CtState.ESTABLISHED, CtState.RELATED})), 4)
    rest = e.match(
        Match(ct_states=frozenset({CtState.ESTABLISHED, CtState.RELATED}), ct_states_negated=True),
        4,
    )
    assert est | rest == e.all(4) and est.isdisjoint(rest)
    assert rest == e.space(family=4, ct_states=[CtState.NEW, CtState.INVALID, CtState.UNTRACKED])
    assert pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2 state ESTABLISHED") in est
    assert pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2 (UNTRACKED)") in rest


def test_interfaces_with_wildcards() -> None:
    e = ENGINE  # universe: eth0, wlan0, "eth+" (other eth names), other
    eth_any = e.match(Match(in_interfaces=(InterfaceMatch("eth", wildcard=True),)), 4)
    base_pkt = "tcp 192.0.2.1:40000 -> 198.51.100.1:443"
    assert pkt(f"{base_pkt} in eth0") in eth_any
    assert pkt(f"{base_pkt} in eth7") in eth_any  # not named by the rules: class "eth+"
    assert pkt(f"{base_pkt} in wlan0") not in eth_any
    assert pkt(f"{base_pkt} in lo") not in eth_any
    assert pkt(base_pkt) not in eth_any  # no / another interface
    eth0 = e.match(Match(in_interfaces=(InterfaceMatch("eth0"),)), 4)
    assert pkt(f"{base_pkt} in eth0") in eth0 and pkt(f"{base_pkt} in eth7") not in eth0
    not_eth = e.match(Match(in_interfaces=(InterfaceMatch("eth", True, negated=True),)), 4)
    assert not_eth == e.all(4) - eth_any
    assert pkt(f"{base_pkt} in lo") in not_eth
    everyone = e.match(Match(out_interfaces=(InterfaceMatch("", wildcard=True),)), 4)
    assert everyone == e.all(4)
    with pytest.raises(ValueError, match="not in this engine's interface universe"):
        e.match(Match(in_interfaces=(InterfaceMatch("ppp0"),)), 4)
    with pytest.raises(ValueError, match="universe"):
        e.match(Match(in_interfaces=(InterfaceMatch("et", wildcard=True),)), 4)


def test_interface_universe_classes() -> None:
    e = Engine(["eth0", "eth+", "eth1+", "lo"])
    u = e.universe
    assert u.labels == (None, "eth0", "lo", "eth+", "eth1+")
    assert u.classify("eth0") == 1
    assert u.classify("eth12") == u.code_of_label("eth1+")
    assert u.classify("eth2") == u.code_of_label("eth+")
    assert u.classify("wlan0") == 0 and u.classify(None) == 0
    # `eth+` matches eth0, the eth+ class and the eth1+ class; `eth1+` only its own class.
    eth = e.space(in_interfaces=["eth+"])
    assert pkt("udp 192.0.2.1:1 -> 192.0.2.2:2 in eth12") in eth
    eth1 = e.match(Match(in_interfaces=(InterfaceMatch("eth1", wildcard=True),)), 4)
    assert pkt("udp 192.0.2.1:1 -> 192.0.2.2:2 in eth12") in eth1
    assert pkt("udp 192.0.2.1:1 -> 192.0.2.2:2 in eth2") not in eth1
    assert pkt("udp 192.0.2.1:1 -> 192.0.2.2:2 in eth0") not in eth1


def test_ipsec_flag() -> None:
    e = ENGINE
    s = e.match(Match(ipsec=True), 4)
    assert pkt("esp 192.0.2.1 -> 192.0.2.2 ipsec") in s
    assert pkt("esp 192.0.2.1 -> 192.0.2.2") not in s


def test_unmodeled_conditions_by_approximation() -> None:
    e = ENGINE
    m = Match(protocols=frozenset({6}), unmodeled=("-m recent --rcheck",))
    with pytest.raises(UnmodeledError, match="recent"):
        e.match(m, 4)
    assert e.match(m, 4, Approx.MAY) == e.space(family=4, protocols=[6])
    assert e.match(m, 4, Approx.MUST).is_empty()


# --- packets and examples ----


def test_packet_text_forms() -> None:
    p = pkt("tcp 192.0.2.10:40000 -> 198.51.100.5:443")
    assert p == Packet(4, ip("192.0.2.10"), ip("198.51.100.5"), 6, 40000, 443)
    assert str(p) == "tcp 192.0.2.10:40000 -> 198.51.100.5:443 (NEW)"
    u = pkt("udp [2001:db8::1]:5353 -> [2001:db8::2]:53")
    assert str(u) == "udp [2001:db8::1]:5353 -> [2001:db8::2]:53 (NEW)"
    i = pkt("icmp 192.0.2.1 -> 192.0.2.2 type 8 code 0")
    assert (i.protocol, i.icmp_type, i.icmp_code) == (1, 8, 0)
    assert str(i) == "icmp 192.0.2.1 -> 192.0.2.2 type 8 code 0 (NEW)"
    esp = pkt("esp 192.0.2.1 -> 203.0.113.5 state ESTABLISHED in eth0 out eth1")
    assert esp.protocol == 50 and esp.ct_state is CtState.ESTABLISHED
    assert (esp.in_interface, esp.out_interface) == ("eth0", "eth1")
    assert str(esp) == "esp 192.0.2.1 -> 203.0.113.5 (ESTABLISHED) in eth0 out eth1"
    assert pkt("47 192.0.2.1 -> 192.0.2.2").protocol == 47


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tcp 192.0.2.1 -> 192.0.2.2:80", "needs ports"),
        ("tcp 192.0.2.1:1 192.0.2.2:80", "PROTO SRC -> DST"),
        ("foo 192.0.2.1 -> 192.0.2.2", "unknown protocol"),
        ("tcp 192.0.2.1:99999 -> 192.0.2.2:80", "out of range"),
        ("tcp 192.0.2.1:1 -> [2001:db8::1]:80", "different families"),
        ("icmp 192.0.2.1 -> 192.0.2.2", "needs 'type N'"),
        ("esp 192.0.2.1:5 -> 192.0.2.2", "no ports"),
        ("tcp 192.0.2.1:1 -> 192.0.2.2:80 state BOGUS", "expected one of NEW"),
        ("tcp 192.0.2.1:1 -> 192.0.2.2:80 color red", "unexpected 'color'"),
        ("tcp 192.0.2.300:1 -> 192.0.2.2:80", "expected an IP address"),
        ("icmp [2001:db8::1] -> [2001:db8::2] type 128", "icmpv6"),
        # Digits of other scripts and superscripts are not decimal numbers here (int() and
        # str.isdigit() would take them).
        ("tcp 192.0.2.1:\u0661 -> 192.0.2.2:80", "decimal number"),
        ("tcp 192.0.2.1:1 -> 192.0.2.2:\u00b2", "decimal number"),
        ("icmp 192.0.2.1 -> 192.0.2.2 type \u0668", "decimal number"),
        ("\u0664\u0667 192.0.2.1 -> 192.0.2.2", "unknown protocol"),
        ("tcp [fe80::1%eth0]:1 -> [fe80::2]:80", "zone id"),
    ],
)
def test_packet_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Packet.parse(text)


def test_packet_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="no ports"):
        Packet(4, ip("192.0.2.1"), ip("192.0.2.2"), 50, dport=80)
    with pytest.raises(ValueError, match="not an IPv4"):
        Packet(4, ip("2001:db8::1"), ip("192.0.2.2"), 6)
    with pytest.raises(ValueError, match="ICMP"):
        Packet(4, ip("192.0.2.1"), ip("192.0.2.2"), 6, 1, 2, icmp_type=3)


@st.composite
def _any_packets(draw: st.DrawFn) -> Packet:
    family = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([1, 6, 17, 47, 50, 58, 132, 253]))
    pool = (
        ["192.0.2.1", "198.51.100.200", "203.0.113.77", "0.0.0.0", "255.255.255.255"]
        if family == 4
        else ["2001:db8::1", "2001:db8:ffff::42", "::", "ffff::1"]
    )
    ports = proto in (6, 17, 132)
    icmp = proto == (1 if family == 4 else 58)
    return Packet(
        family,
        ip(draw(st.sampled_from(pool))),
        ip(draw(st.sampled_from(pool))),
        proto,
        draw(st.integers(0, 65535)) if ports else 0,
        draw(st.integers(0, 65535)) if ports else 0,
        draw(st.integers(0, 255)) if icmp else 0,
        draw(st.integers(0, 255)) if icmp else 0,
        draw(st.sampled_from(list(CtState))),
        draw(st.sampled_from([None, "eth0", "wlan0"])),
        draw(st.sampled_from([None, "eth1"])),
        draw(st.booleans()),
    )


_PACKETS = _any_packets()


@given(_PACKETS)
def test_packet_text_round_trip(p: Packet) -> None:
    assert Packet.parse(str(p)) == p


@given(_PACKETS)
@settings(deadline=None)
def test_single_packet_space(p: Packet) -> None:
    s = ENGINE.packet(p)
    assert p in s and s.count() == 1 and s.example() == p


def test_example_prefers_https_from_an_ephemeral_port() -> None:
    e = ENGINE
    assert str(e.all().example()) == "tcp 192.0.2.10:40000 -> 198.51.100.5:443 (NEW)"
    s = e.space(dst=["203.0.113.0/24"]) - e.space(protocols=[6], dport=443)
    ex = s.example()
    assert ex is not None and ex in s
    assert (ex.protocol, ex.dport, ex.sport) == (6, 22, 40000)
    assert str(ex) == "tcp 192.0.2.10:40000 -> 203.0.113.5:22 (NEW)"


def test_example_falls_back_in_order() -> None:
    e = ENGINE
    udp = e.space(protocols=[17], dport=53, sport=[(1024, 2000)])
    assert str(udp.example()) == "udp 192.0.2.10:1024 -> 198.51.100.5:53 (NEW)"
    est = e.space(protocols=[6], dport=[(5000, 6000)], ct_states=[CtState.ESTABLISHED])
    assert str(est.example()) == "tcp 192.0.2.10:40000 -> 198.51.100.5:5000 (ESTABLISHED)"
    one = e.space(dst=["8.8.8.8/32"], src=["10.1.2.3/32"], protocols=[17], dport=53)
    assert str(one.example()) == "udp 10.1.2.3:40000 -> 8.8.8.8:53 (NEW)"
    v6 = e.space(family=6, protocols=[6], dport=443)
    assert str(v6.example()) == "tcp [2001:db8::10]:40000 -> [2001:db8::5]:443 (NEW)"
    icmp = e.space(protocols=[1])
    assert str(icmp.example()) == "icmp 192.0.2.10 -> 198.51.100.5 type 8 code 0 (NEW)"
    gre = e.space(protocols=[47], in_interfaces=["eth+"])
    ex = gre.example()
    assert ex is not None and ex in gre and ex.in_interface == "eth0"
    assert e.none().example() is None


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.sampled_from([6, 17, 1, 50]))
@settings(max_examples=50, deadline=None)
def test_example_is_in_the_set(addr: int, plen: int, proto: int) -> None:
    net = ipaddress.IPv4Network((addr >> (32 - plen) << (32 - plen) if plen else 0, plen))
    s = ENGINE.space(dst=[net], protocols=[proto]) - ENGINE.space(dport=443)
    ex = s.example()
    assert ex is not None and ex in s and ex.dst in net


# --- rectangles ----


def _union_of(rects: Iterable[Rectangle]) -> HeaderSpace:
    out = ENGINE.none()
    for r in rects:
        out = out | ENGINE.rectangle(r)
    return out


def test_difference_is_one_rectangle() -> None:
    e = ENGINE
    s = e.space(protocols=[6], dport=443, dst=["198.51.100.0/24"]) - e.space(
        dst=["198.51.100.0/25"]
    )
    rects = s.rectangles()
    assert not rects.truncated
    assert len(rects) == 1
    r = rects[0]
    assert r.dst == pset("198.51.100.128/25")
    assert r.protocols == ((6, 6),) and r.dport == ((443, 443),)
    assert r.src is None and r.sport is None and r.ct_states is None
    assert str(r) == "ipv4 tcp dst 198.51.100.128/25 dport 443"
    assert _union_of(rects) == s


def test_rectangles_cover_exactly() -> None:
    e = ENGINE
    sets = [
        e.all(),
        e.none(),
        e.space(protocols=[6], dport=22) | e.space(protocols=[17], dport=53, src=["192.0.2.0/24"]),
        ~(e.space(protocols=[6], dport=22) | e.space(protocols=[17], dport=53)),
        e.space(in_interfaces=["eth+"], ct_states=[CtState.NEW]) - e.space(dst=["10.0.0.0/8"]),
        e.space(protocols=[1], icmp_type=[(3, 3), (11, 11)]) | e.space(family=6, ipsec=True),
    ]
    for s in sets:
        rects = s.rectangles(50)
        assert not rects.truncated
        assert _union_of(rects) == s


def test_rectangle_text() -> None:
    e = ENGINE
    assert str(e.all().rectangles()) == "any"
    assert str(e.none().rectangles()) == "(empty)"
    not_dns = e.space(family=4, protocols=[17]) - e.space(dport=53)
    assert str(not_dns.rectangles()) == "ipv4 udp dport not 53"
    icmp = e.space(protocols=[1], icmp_type=8, ct_states=[CtState.NEW])
    # ICMP type 8 exists only in IPv4 (ICMPv6 is protocol 58), so no family is printed.
    assert str(icmp.rectangles()) == "icmp icmp-type 8 state NEW"


def test_rectangles_truncate() -> None:
    e = ENGINE
    # Every other /32 of a /28: eight separate destinations, no two mergeable.
    s = e.none()
    for i in range(0, 16, 2):
        s = s | e.space(protocols=[6], dport=443 + i, dst=[f"198.51.100.{i}/32"])
    full = s.rectangles(8)
    assert len(full) == 8 and not full.truncated
    cut = s.rectangles(3)
    assert len(cut) == 3 and cut.truncated
    assert _union_of(cut) < s


# --- evaluation ----


def _web_ruleset() -> RuleSet:
    """INPUT (policy DROP):
    1 ESTABLISHED,RELATED -> ACCEPT
    2 tcp dport 22 -> jump SSH
    3 tcp dport 443 -> ACCEPT
    4 tcp dport 443 from 192.0.2.0/24 -> DROP   (shadowed by 3)
    SSH:
    1 src 192.0.2.0/24 -> ACCEPT
    2 -> RETURN
    """
    return ruleset(
        base(
            "INPUT",
            [
                rule(
                    "INPUT",
                    1,
                    ActionKind.ACCEPT,
                    ct_states=frozenset({CtState.ESTABLISHED, CtState.RELATED}),
                ),
                rule(
                    "INPUT",
                    2,
                    ActionKind.JUMP,
                    "SSH",
                    protocols=frozenset({6}),
                    destination_ports=(PortMatch(((22, 22),)),),
                ),
                rule(
                    "INPUT",
                    3,
                    ActionKind.ACCEPT,
                    protocols=frozenset({6}),
                    destination_ports=(PortMatch(((443, 443),)),),
                ),
                rule(
                    "INPUT",
                    4,
                    ActionKind.DROP,
                    protocols=frozenset({6}),
                    destination_ports=(PortMatch(((443, 443),)),),
                    sources=(AddressMatch(pset("192.0.2.0/24")),),
                ),
            ],
        ),
        user(
            "SSH",
            [
                rule("SSH", 1, ActionKind.ACCEPT, sources=(AddressMatch(pset("192.0.2.0/24")),)),
                rule("SSH", 2, ActionKind.RETURN),
            ],
        ),
    )


def test_evaluate_jump_return_and_attribution() -> None:
    rs = _web_ruleset()
    ev = evaluate(rs, Hook.INPUT, ENGINE)
    e = ENGINE
    new = [CtState.NEW, CtState.INVALID, CtState.UNTRACKED]
    expected = (
        e.space(family=4, ct_states=[CtState.ESTABLISHED, CtState.RELATED])
        | e.space(family=4, protocols=[6], dport=443)
        | e.space(protocols=[6], dport=22, src=["192.0.2.0/24"])
    )
    assert ev.accepted == expected
    assert ev.denied == e.all(4) - expected
    assert ev.uncertain.is_empty()
    ssh_ok = pkt("tcp 192.0.2.9:40000 -> 198.51.100.1:22")
    ssh_no = pkt("tcp 203.0.113.9:40000 -> 198.51.100.1:22")
    assert ev.accepts(ssh_ok) and not ev.accepts(ssh_no)
    assert ev.deciding_rules(ssh_ok) == (RuleKey("SSH", 1),)
    assert ev.deciding_rules(ssh_no) == (RuleKey("INPUT", 0),)
    assert RuleKey("INPUT", 0).is_policy and str(RuleKey("INPUT", 0)) == "INPUT policy"
    # The RETURNed SSH packets reach rule 3 again; the accepted ones do not.
    assert ssh_no in ev.reached[RuleKey("INPUT", 3)]
    assert ssh_ok not in ev.reached[RuleKey("INPUT", 3)]
    assert ev.entered["SSH"] == e.space(family=4, protocols=[6], dport=22, ct_states=new)
    # decided_by partitions the family.
    total = e.none()
    for space in ev.decided_by.values():
        assert total.isdisjoint(space)
        total = total | space
    assert total == e.all(4)
    # Rule 4 is shadowed by rule 3.
    shadows = ev.shadowed()
    assert [s.rule for s in shadows] == [RuleKey("INPUT", 4)]
    assert shadows[0].covered_by == (RuleKey("INPUT", 1), RuleKey("INPUT", 3))


def test_goto_does_not_return_to_the_caller() -> None:
    """INPUT (ACCEPT): 1 goto G; 2 DROP. G: 1 tcp -> RETURN.
    With goto, G's RETURN applies INPUT's policy (ACCEPT) and rule 2 is never reached; with
    jump, the packet comes back and rule 2 drops it."""
    for kind, accepted in ((ActionKind.GOTO, True), (ActionKind.JUMP, False)):
        rs = ruleset(
            base(
                "INPUT",
                [rule("INPUT", 1, kind, "G"), rule("INPUT", 2, ActionKind.DROP)],
                ActionKind.ACCEPT,
            ),
            user("G", [rule("G", 1, ActionKind.RETURN, protocols=frozenset({6}))]),
        )
        ev = evaluate(rs, Hook.INPUT, ENGINE)
        p = pkt("tcp 192.0.2.1:40000 -> 198.51.100.1:80")
        assert ev.accepts(p) is accepted
        # UDP falls off the end of G: returns like RETURN.
        assert ev.accepts(pkt("udp 192.0.2.1:40000 -> 198.51.100.1:80")) is accepted
        steps = trace(rs, Hook.INPUT, p)
        assert (steps[-1].verdict is ActionKind.ACCEPT) is accepted


def test_return_in_base_chain_applies_policy() -> None:
    rs = ruleset(
        base(
            "INPUT",
            [
                rule("INPUT", 1, ActionKind.RETURN, protocols=frozenset({17})),
                rule("INPUT", 2, ActionKind.ACCEPT),
            ],
        )
    )
    ev = evaluate(rs, Hook.INPUT, ENGINE)
    assert ev.accepted == ENGINE.all(4) - ENGINE.space(protocols=[17])


def test_several_base_chains_must_all_accept() -> None:
    """nftables: two base chains on input; a packet passes only if both accept it."""
    a = base("a", [rule("a", 1, ActionKind.ACCEPT, protocols=frozenset({6}))], priority=-10)
    b = base(
        "b",
        [rule("b", 1, ActionKind.DROP, destination_ports=(PortMatch(((22, 22),)),))],
        ActionKind.ACCEPT,
        priority=0,
    )
    ev = evaluate(ruleset(a, b), Hook.INPUT, ENGINE)
    assert ev.accepted == ENGINE.space(family=4, protocols=[6]) - ENGINE.space(dport=22)
    # Packets dropped by a never reach b.
    assert ev.reached[RuleKey("b", 1)] == ENGINE.space(family=4, protocols=[6])
    steps = trace(ruleset(a, b), Hook.INPUT, pkt("tcp 192.0.2.1:1 -> 192.0.2.2:22"))
    assert [(s.chain, s.position, s.verdict) for s in steps] == [
        ("a", 1, ActionKind.ACCEPT),
        ("b", 1, ActionKind.DROP),
    ]


def test_no_base_chain_accepts_everything() -> None:
    ev = evaluate(ruleset(user("X", [])), Hook.OUTPUT, ENGINE)
    assert ev.accepted == ENGINE.all(4)


def test_jump_loop_is_reported() -> None:
    rs = ruleset(
        base("INPUT", [rule("INPUT", 1, ActionKind.JUMP, "A")]),
        user("A", [rule("A", 1, ActionKind.JUMP, "B")]),
        user("B", [rule("B", 1, ActionKind.GOTO, "A")]),
    )
    with pytest.raises(InputError, match=r"chain loop: A -> B -> A"):
        evaluate(rs, Hook.INPUT, ENGINE)
    missing = ruleset(base("INPUT", [rule("INPUT", 1, ActionKind.JUMP, "NOPE")]))
    with pytest.raises(InputError, match=r"rules.v4:1: JUMP to undefined chain 'NOPE'"):
        evaluate(missing, Hook.INPUT, ENGINE)


def test_engine_must_know_the_interfaces() -> None:
    rs = ruleset(
        base(
            "INPUT", [rule("INPUT", 1, ActionKind.ACCEPT, in_interfaces=(InterfaceMatch("ppp0"),))]
        )
    )
    with pytest.raises(ValueError, match="ppp0"):
        evaluate(rs, Hook.INPUT, ENGINE)
    ev = evaluate(rs, Hook.INPUT)  # builds its own engine from the rule set
    assert ev.accepts(pkt("tcp 192.0.2.1:1 -> 192.0.2.2:3 in ppp0"))
    assert not ev.accepts(pkt("tcp 192.0.2.1:1 -> 192.0.2.2:3 in ppp1"))


def test_unmodeled_accept_may_and_must() -> None:
    """INPUT (DROP): 1 tcp + unknown -> ACCEPT. MAY: all TCP; MUST: nothing; EXACT refuses."""
    rs = ruleset(
        base(
            "INPUT",
            [
                rule(
                    "INPUT",
                    1,
                    ActionKind.ACCEPT,
                    protocols=frozenset({6}),
                    unmodeled=("-m recent",),
                )
            ],
        )
    )
    tcp = ENGINE.space(family=4, protocols=[6])
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MAY).accepted == tcp
    must = evaluate(rs, Hook.INPUT, ENGINE, Approx.MUST)
    assert must.accepted.is_empty()
    assert must.uncertain == tcp
    with pytest.raises(UnmodeledError, match=r"rules.v4:1: -m recent"):
        evaluate(rs, Hook.INPUT, ENGINE, Approx.EXACT)


def test_unmodeled_drop_never_hides_an_accept() -> None:
    """INPUT (DROP): 1 tcp + unknown -> DROP; 2 ACCEPT. MAY accepts all; MUST only non-TCP."""
    rs = ruleset(
        base(
            "INPUT",
            [
                rule(
                    "INPUT", 1, ActionKind.DROP, protocols=frozenset({6}), unmodeled=("-m string",)
                ),
                rule("INPUT", 2, ActionKind.ACCEPT),
            ],
        )
    )
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MAY).accepted == ENGINE.all(4)
    must = evaluate(rs, Hook.INPUT, ENGINE, Approx.MUST).accepted
    assert must == ENGINE.all(4) - ENGINE.space(protocols=[6])


def test_unmodeled_return_is_followed_both_ways() -> None:
    """INPUT (DROP): 1 jump U; 2 ACCEPT.  U: 1 unknown -> RETURN; 2 DROP.
    Packets satisfying the unknown condition are accepted, the others dropped: MAY must say
    everything may be accepted; MUST that nothing must be."""
    rs = ruleset(
        base(
            "INPUT", [rule("INPUT", 1, ActionKind.JUMP, "U"), rule("INPUT", 2, ActionKind.ACCEPT)]
        ),
        user(
            "U",
            [rule("U", 1, ActionKind.RETURN, unmodeled=("-m foo",)), rule("U", 2, ActionKind.DROP)],
        ),
    )
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MAY).accepted == ENGINE.all(4)
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MUST).accepted.is_empty()


def test_unmodeled_target() -> None:
    rs = ruleset(
        base(
            "INPUT",
            [
                Rule(
                    "INPUT",
                    1,
                    Match(),
                    Action(ActionKind.UNMODELED, text="NFQUEUE"),
                    "-j NFQUEUE",
                    Location("r", 1),
                )
            ],
        )
    )
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MAY).accepted == ENGINE.all(4)
    assert evaluate(rs, Hook.INPUT, ENGINE, Approx.MUST).accepted.is_empty()
    with pytest.raises(UnmodeledError, match="NFQUEUE"):
        evaluate(rs, Hook.INPUT, ENGINE)


# --- trace ----


def test_trace_through_jump_and_return() -> None:
    rs = _web_ruleset()
    steps = trace(rs, Hook.INPUT, pkt("tcp 203.0.113.9:40000 -> 198.51.100.1:22"))
    assert [(s.chain, s.position, s.matched, s.verdict) for s in steps] == [
        ("INPUT", 1, False, None),
        ("INPUT", 2, True, None),  # jump SSH
        ("SSH", 1, False, None),
        ("SSH", 2, True, None),  # RETURN
        ("INPUT", 3, False, None),
        ("INPUT", 4, False, None),
        ("INPUT", 0, None, ActionKind.DROP),  # policy
    ]
    assert steps[1].text == "-A INPUT rule 2 -j SSH"
    assert steps[1].location == Location("rules.v4", 2)
    assert str(steps[-1]) == "INPUT: policy DROP => DROP"
    ok = trace(rs, Hook.INPUT, pkt("tcp 192.0.2.9:40000 -> 198.51.100.1:22"))
    assert [(s.chain, s.position, s.verdict) for s in ok][-1] == ("SSH", 1, ActionKind.ACCEPT)


def test_trace_end_of_user_chain() -> None:
    rs = ruleset(
        base(
            "INPUT", [rule("INPUT", 1, ActionKind.JUMP, "U"), rule("INPUT", 2, ActionKind.ACCEPT)]
        ),
        user("U", [rule("U", 1, ActionKind.DROP, protocols=frozenset({17}))]),
    )
    steps = trace(rs, Hook.INPUT, pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2"))
    assert [s.text for s in steps][2] == "end of chain U: return to INPUT"
    assert steps[-1].verdict is ActionKind.ACCEPT


def test_trace_assumes_unmodeled_conditions() -> None:
    rs = ruleset(
        base(
            "INPUT",
            [
                rule(
                    "INPUT",
                    1,
                    ActionKind.ACCEPT,
                    protocols=frozenset({6}),
                    unmodeled=("-m recent",),
                )
            ],
        )
    )
    p = pkt("tcp 192.0.2.1:1 -> 192.0.2.2:2")
    may = trace(rs, Hook.INPUT, p)
    assert may[0].matched is True and may[0].assumed == ("-m recent",)
    assert may[-1].verdict is ActionKind.ACCEPT
    must = trace(rs, Hook.INPUT, p, Approx.MUST)
    assert must[-1].verdict is ActionKind.DROP
    with pytest.raises(UnmodeledError):
        trace(rs, Hook.INPUT, p, Approx.EXACT)
    with pytest.raises(ValueError, match="IPv6"):
        trace(rs, Hook.INPUT, pkt("udp [2001:db8::1]:1 -> [2001:db8::2]:2"))


# --- property: the engine agrees with a one-packet interpreter ----


def _oracle_match(m: Match, p: Packet, unknown: bool) -> bool:
    """Straight from iptables(8): every condition must hold."""
    if m.protocols is not None and (p.protocol in m.protocols) == m.protocols_negated:
        return False
    for matches, addr in ((m.sources, p.src), (m.destinations, p.dst)):
        for am in matches:
            inside = any(addr in net for net in am.addresses.all_prefixes())
            if inside == am.negated:
                return False
    for pmatches, port in ((m.source_ports, p.sport), (m.destination_ports, p.dport)):
        for pm in pmatches:
            if p.protocol not in (6, 17, 33, 132, 136):
                return False
            if any(lo <= port <= hi for lo, hi in pm.ranges) == pm.negated:
                return False
    for im in m.icmp:
        if p.protocol != (1 if p.family == 4 else 58):
            return False
        ok = (
            im.type is None or im.type == p.icmp_type
        ) and im.code_first <= p.icmp_code <= im.code_last
        if ok == im.negated:
            return False
    if m.ct_states is not None and (p.ct_state in m.ct_states) == m.ct_states_negated:
        return False
    for imatches, name in ((m.in_interfaces, p.in_interface), (m.out_interfaces, p.out_interface)):
        for iface in imatches:
            if iface.wildcard:
                hit = name is not None and name.startswith(iface.name)
            else:
                hit = name == iface.name
            if hit == iface.negated:
                return False
    if m.ipsec is not None and m.ipsec != p.ipsec:
        return False
    return not m.unmodeled or unknown


def _oracle(rs: RuleSet, p: Packet, unknown: dict[RuleKey, bool]) -> tuple[bool, RuleKey]:
    """(accepted, deciding rule) by recursive first-match interpretation."""

    def run(name: str) -> tuple[str, RuleKey | None]:
        for r in rs.chains[name].rules:
            key = RuleKey(name, r.position)
            if not _oracle_match(r.match, p, unknown.get(key, False)):
                continue
            kind = r.action.kind
            if kind in (ActionKind.ACCEPT, ActionKind.DROP, ActionKind.REJECT):
                return kind.value, key
            if kind is ActionKind.UNMODELED:
                return ("ACCEPT" if unknown.get(key, False) else "DROP"), key
            if kind is ActionKind.RETURN:
                return "RETURN", None
            if kind is ActionKind.JUMP:
                assert r.action.chain is not None
                verdict = run(r.action.chain)
                if verdict[0] != "RETURN":
                    return verdict
            if kind is ActionKind.GOTO:
                assert r.action.chain is not None
                return run(r.action.chain)
        return "RETURN", None

    chain = rs.chains["INPUT"]
    verdict, key = run("INPUT")
    if verdict == "RETURN":
        assert chain.policy is not None
        verdict, key = chain.policy.value, RuleKey("INPUT", 0)
    assert key is not None
    return verdict == "ACCEPT", key


_NETS = [
    f"192.0.2.{i}/{plen}"
    for plen in (24, 25, 26, 28, 30, 32)
    for i in (0, 64, 128, 192)
    if i % (1 << (32 - plen)) == 0
] + [
    f"198.51.100.{i}/{plen}"
    for plen in (24, 25, 27, 32)
    for i in (0, 128, 32, 7)
    if i % (1 << (32 - plen)) == 0
]
_PORT_SETS = [((22, 22),), ((20, 30),), ((80, 80), (443, 443)), ((1000, 2000),), ((0, 1023),)]


@st.composite
def _matches(draw: st.DrawFn, unmodeled: bool) -> Match:
    proto_choice = draw(st.sampled_from([None, None, (6,), (17,), (1,), (6, 17)]))
    protocols = None if proto_choice is None else frozenset(proto_choice)
    negated = protocols is not None and draw(st.booleans()) and draw(st.booleans())
    kw: dict[str, object] = {"protocols": protocols, "protocols_negated": negated}
    if protocols is not None and not negated and 1 not in protocols:
        for field in ("destination_ports", "source_ports"):
            if draw(st.booleans()):
                kw[field] = (PortMatch(draw(st.sampled_from(_PORT_SETS)), draw(st.booleans())),)
    if protocols == frozenset({1}) and not negated and draw(st.booleans()):
        t = draw(st.sampled_from([None, 0, 3, 8]))
        lo, hi = draw(st.sampled_from([(0, 255), (0, 0), (1, 3)]))
        kw["icmp"] = (IcmpMatch(t, lo, hi, draw(st.booleans())),)
    for field in ("sources", "destinations"):
        n = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))  # mostly none: rules must match often
        kw[field] = tuple(
            AddressMatch(
                pset(*draw(st.lists(st.sampled_from(_NETS), min_size=1, max_size=2))),
                draw(st.booleans()),
            )
            for _ in range(n)
        )
    if draw(st.integers(0, 2)) == 0:
        kw["ct_states"] = frozenset(draw(st.sets(st.sampled_from(list(CtState)), min_size=1)))
        kw["ct_states_negated"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        name, wild = draw(st.sampled_from([("eth0", False), ("eth", True), ("wlan0", False)]))
        kw["in_interfaces"] = (InterfaceMatch(name, wild, draw(st.booleans())),)
    kw["ipsec"] = draw(st.sampled_from([None, None, None, None, True, False]))
    if unmodeled and draw(st.integers(0, 3)) == 0:
        kw["unmodeled"] = ("-m unknown",)
    return Match(**kw)  # type: ignore[arg-type]


@st.composite
def _rulesets(draw: st.DrawFn, unmodeled: bool = False) -> RuleSet:
    names = ["INPUT", "U1", "U2"]
    chains = []
    for ci, name in enumerate(names):
        callees = names[ci + 1 :] if ci < 2 else []
        kinds = [
            ActionKind.ACCEPT,
            ActionKind.DROP,
            ActionKind.REJECT,
            ActionKind.RETURN,
            ActionKind.LOG,
        ]
        if unmodeled:
            kinds.append(ActionKind.UNMODELED)
        n = draw(st.integers(0, 6 if ci == 0 else 4))
        rules = []
        for pos in range(1, n + 1):
            if callees and draw(st.integers(0, 3)) == 0:
                kind = draw(st.sampled_from([ActionKind.JUMP, ActionKind.GOTO]))
                target: str | None = draw(st.sampled_from(callees))
            else:
                kind, target = draw(st.sampled_from(kinds)), None
            rules.append(
                Rule(
                    name,
                    pos,
                    draw(_matches(unmodeled)),
                    Action(kind, target),
                    f"{name} {pos}",
                    Location("r", pos),
                )
            )
        if ci == 0:
            policy = draw(st.sampled_from([ActionKind.ACCEPT, ActionKind.DROP]))
            chains.append(Chain(name, tuple(rules), hook=Hook.INPUT, policy=policy))
        else:
            chains.append(Chain(name, tuple(rules)))
    return ruleset(*chains)


_ADDRS = [
    "192.0.2.0",
    "192.0.2.1",
    "192.0.2.77",
    "192.0.2.130",
    "192.0.2.200",
    "198.51.100.7",
    "198.51.100.40",
    "198.51.100.129",
    "203.0.113.5",
]
_PORTS = [0, 20, 22, 25, 30, 31, 80, 443, 1000, 1500, 2001, 40000]


@st.composite
def _v4_packets(draw: st.DrawFn) -> Packet:
    proto = draw(st.sampled_from([6, 17, 1, 50]))
    ports = proto in (6, 17)
    icmp = proto == 1
    return Packet(
        4,
        ip(draw(st.sampled_from(_ADDRS))),
        ip(draw(st.sampled_from(_ADDRS))),
        proto,
        draw(st.sampled_from(_PORTS)) if ports else 0,
        draw(st.sampled_from(_PORTS)) if ports else 0,
        draw(st.sampled_from([0, 3, 8, 11])) if icmp else 0,
        draw(st.sampled_from([0, 1, 3, 5])) if icmp else 0,
        draw(st.sampled_from(list(CtState))),
        draw(st.sampled_from([None, "eth0", "eth1", "wlan0", "lo"])),
        None,
        draw(st.booleans()),
    )


@given(_rulesets(), st.lists(_v4_packets(), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_agrees_with_first_match_interpreter(rs: RuleSet, packets: list[Packet]) -> None:
    """Random packets, plus a witness of every region the engine names (each rule's decided,
    reached and matched packets): wherever the engine and the interpreter differ, some
    region holds a packet they classify differently."""
    ev = evaluate(rs, Hook.INPUT, ENGINE)
    regions = [*ev.decided_by.values(), *ev.reached.values(), *ev.matched.values()]
    witnesses = [p for p in (r.example() for r in regions) if p is not None]
    for p in packets + witnesses:
        accepted, key = _oracle(rs, p, {})
        assert ev.accepts(p) == accepted, p
        assert (p in ev.denied) != accepted
        assert ev.deciding_rules(p) == (key,)
        steps = trace(rs, Hook.INPUT, p, Approx.EXACT)
        assert (steps[-1].verdict is ActionKind.ACCEPT) == accepted
        last_rule = [s for s in steps if s.verdict is not None][-1]
        assert RuleKey(last_rule.chain, last_rule.position) == key


@given(
    _rulesets(unmodeled=True),
    st.lists(_v4_packets(), min_size=1, max_size=6),
    st.dictionaries(
        st.builds(RuleKey, st.sampled_from(["INPUT", "U1", "U2"]), st.integers(1, 6)), st.booleans()
    ),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_may_and_must_bound_every_reading(
    rs: RuleSet, packets: list[Packet], reading: dict[RuleKey, bool]
) -> None:
    """Whatever the unmodeled conditions and targets turn out to be, the real verdict lies
    between MUST and MAY."""
    may = evaluate(rs, Hook.INPUT, ENGINE, Approx.MAY)
    must = evaluate(rs, Hook.INPUT, ENGINE, Approx.MUST)
    assert must.accepted <= may.accepted
    assert may.accepted - must.accepted == may.uncertain
    for p in packets:
        accepted, _ = _oracle(rs, p, reading)
        if accepted:
            assert p in may.accepted
        else:
            assert p not in must.accepted


@given(_rulesets())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rectangles_and_counts_of_evaluated_sets(rs: RuleSet) -> None:
    """The rectangles of an accepted set cover it exactly; counts add up."""
    ev = evaluate(rs, Hook.INPUT, ENGINE)
    rects = ev.accepted.rectangles(500)
    if not rects.truncated:
        assert _union_of(rects) == ev.accepted
    else:
        assert _union_of(rects) <= ev.accepted
    assert ev.accepted.count() + ev.denied.count() == ENGINE.all(4).count()


@given(_rulesets(unmodeled=True), st.sampled_from(list(Approx)[1:]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rule_slices_equal_the_whole_walk(rs: RuleSet, approx: Approx) -> None:
    """The whole evaluation equals one restricted to every packet (verdict unions derived
    from the decided sets either way), and a rule's slice (``Slicer.for_rule``: only the
    rules whose boxes meet that rule's box are walked) equals the whole evaluation
    intersected with that rule's match."""
    slicer = Slicer(rs, Hook.INPUT, ENGINE, approx)
    whole = slicer.evaluate()
    walked = slicer.evaluate(ENGINE.all(4))
    assert whole.accepted == walked.accepted and whole.denied == walked.denied
    assert whole.uncertain == walked.uncertain
    assert whole.entered.keys() == walked.entered.keys()
    for name, space in whole.entered.items():
        assert space == walked.entered[name], name
    for table in ("decided_by", "matched", "consumed", "reached"):
        mine, theirs = getattr(whole, table), getattr(walked, table)
        assert set(mine) == set(theirs), table
        for key in theirs:
            assert mine[key] == theirs[key], (table, key)
    for key in slicer.reachable():
        part = slicer.for_rule(key)
        match = whole.match_space(key)
        assert part.matched[key] == whole.matched[key] & match, key
        assert part.decided_by.get(key) == whole.decided_by.get(key), key
        assert part.accepted == whole.accepted & match, key


def test_addresses_projects_a_set_on_one_address_field() -> None:
    """The destinations some packet of a set has: 198.51.100.0/25 on TCP and
    198.51.100.128/26 on UDP project to one interval .0-.191; sources are unconstrained
    (every IPv4 address); no IPv6 packet, no IPv6 address."""
    space = ENGINE.space(family=4, protocols=[6], dst=[ipaddress.ip_network("198.51.100.0/25")])
    space = space | ENGINE.space(
        family=4, protocols=[17], dst=[ipaddress.ip_network("198.51.100.128/26")]
    )
    low, high = int(ip("198.51.100.0")), int(ip("198.51.100.191"))
    assert space.addresses("dst", 4) == ((low, high),)
    assert space.addresses("src", 4) == ((0, 2**32 - 1),)
    assert space.addresses("dst", 6) == ()


@given(_rulesets(unmodeled=True))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exact_slicers_have_equal_may_and_must(rs: RuleSet) -> None:
    """``Slicer.exact`` (nothing unmodeled decides a packet) is what lets ``check`` reuse the
    MAY evaluation as the MUST one: whenever it holds, the two evaluations agree."""
    slicer = Slicer(rs, Hook.INPUT, ENGINE, Approx.MAY)
    may = slicer.evaluate()
    must = Slicer(rs, Hook.INPUT, ENGINE, Approx.MUST).evaluate()
    if slicer.exact:
        assert may.accepted == must.accepted and may.denied == must.denied
    else:  # something unmodeled decides: the bounds may differ, MUST within MAY
        assert must.accepted <= may.accepted


def test_unmodeled_log_rule_keeps_the_hook_exact() -> None:
    """INPUT (DROP): 1 LOG with an unmodeled rate limit; 2 ACCEPT. A LOG rule never decides,
    so the hook is exact (MAY = MUST: everything accepted); an unmodeled DROP is not."""
    logging = ruleset(
        base(
            "INPUT",
            [
                rule("INPUT", 1, ActionKind.LOG, unmodeled=("-m limit",)),
                rule("INPUT", 2, ActionKind.ACCEPT),
            ],
        )
    )
    slicer = Slicer(logging, Hook.INPUT, ENGINE, Approx.MAY)
    assert slicer.exact
    assert Slicer(logging, Hook.INPUT, ENGINE, Approx.MUST).evaluate().accepted == ENGINE.all(4)
    dropping = ruleset(
        base(
            "INPUT",
            [
                rule("INPUT", 1, ActionKind.DROP, unmodeled=("-m limit",)),
                rule("INPUT", 2, ActionKind.ACCEPT),
            ],
        )
    )
    assert not Slicer(dropping, Hook.INPUT, ENGINE, Approx.MAY).exact
