"""One concrete packet: the point of the header space, as printed in findings and parsed by
``netguard explain``.

Text form (``str(packet)``, accepted back by :meth:`Packet.parse`)::

    tcp 192.0.2.10:40000 -> 198.51.100.5:443 (NEW)
    udp [2001:db8::1]:5353 -> [2001:db8::2]:53 (NEW)
    icmp 192.0.2.1 -> 192.0.2.2 type 8 code 0 (NEW)
    esp 192.0.2.1 -> 203.0.113.5 (ESTABLISHED) in eth0 out eth1 ipsec

Field conventions (the same as the engine's, see ``netguard.space.engine``): ports exist only
for TCP, UDP, DCCP, SCTP and UDPLite and are 0 otherwise; ICMP type and code exist only for
ICMP in IPv4 (protocol 1) and ICMPv6 in IPv6 (protocol 58) and are 0 otherwise. An interface of
``None`` is one the rule set does not name (or no interface at all).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netguard.model.ruleset import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, CtState

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PROTO_DCCP = 33
PROTO_SCTP = 132
PROTO_UDPLITE = 136

#: IANA protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_DCCP, PROTO_SCTP, PROTO_UDPLITE})

#: Names printed for protocol numbers (``/etc/protocols`` spellings); others print as numbers.
PROTOCOL_NAMES: dict[int, str] = {
    PROTO_ICMP: "icmp",
    2: "igmp",
    PROTO_TCP: "tcp",
    PROTO_UDP: "udp",
    PROTO_DCCP: "dccp",
    47: "gre",
    50: "esp",
    51: "ah",
    PROTO_ICMPV6: "icmpv6",
    89: "ospf",
    112: "vrrp",
    PROTO_SCTP: "sctp",
    PROTO_UDPLITE: "udplite",
}
_PROTOCOL_NUMBERS: dict[str, int] = {name: n for n, name in PROTOCOL_NAMES.items()} | {
    "ipv6-icmp": PROTO_ICMPV6,
    "icmp6": PROTO_ICMPV6,
}

EPHEMERAL_PORT = 40000


def icmp_protocol(family: int) -> int:
    """The protocol number whose packets carry ICMP type and code in ``family`` (4 or 6)."""
    return PROTO_ICMP if family == 4 else PROTO_ICMPV6


def protocol_name(protocol: int, family: int | None = None) -> str:
    """``tcp``, ``icmpv6``, ... or the decimal number; ICMP of the other family prints as a
    number so that the text parses back to the same packet."""
    if (
        family is not None
        and protocol in (PROTO_ICMP, PROTO_ICMPV6)
        and protocol != icmp_protocol(family)
    ):
        return str(protocol)
    return PROTOCOL_NAMES.get(protocol, str(protocol))


@dataclass(frozen=True)
class Packet:
    """One packet as the filter sees it.

    ``family`` is 4 or 6 and must match both addresses. ``sport``/``dport`` must be 0 unless
    ``protocol`` is in :data:`PORT_PROTOCOLS`; ``icmp_type``/``icmp_code`` must be 0 unless the
    protocol is ICMP of the family. ``ct_state`` is the conntrack state, ``ipsec`` whether the
    packet was IPsec-processed (``-m policy --pol ipsec``). Raises ``ValueError`` when a field
    is out of range or inconsistent.
    """

    family: int
    src: IPAddress
    dst: IPAddress
    protocol: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    ct_state: CtState = CtState.NEW
    in_interface: str | None = None
    out_interface: str | None = None
    ipsec: bool = False

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {self.family!r}")
        for name, addr in (("src", self.src), ("dst", self.dst)):
            if not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise ValueError(f"{name} must be an ipaddress object, not {addr!r}")
            if addr.version != self.family:
                raise ValueError(f"{name} {addr} is not an IPv{self.family} address")
        if not 0 <= self.protocol <= 255:
            raise ValueError(f"protocol must be 0-255, not {self.protocol}")
        for name, port in (("sport", self.sport), ("dport", self.dport)):
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0-65535, not {port}")
        if self.protocol not in PORT_PROTOCOLS and (self.sport or self.dport):
            raise ValueError(f"protocol {self.protocol} has no ports; sport and dport must be 0")
        for name, value in (("icmp_type", self.icmp_type), ("icmp_code", self.icmp_code)):
            if not 0 <= value <= 255:
                raise ValueError(f"{name} must be 0-255, not {value}")
        if self.protocol != icmp_protocol(self.family) and (self.icmp_type or self.icmp_code):
            raise ValueError(
                f"protocol {self.protocol} in IPv{self.family} carries no ICMP type and code;"
                " they must be 0"
            )
        if not isinstance(self.ct_state, CtState):
            raise ValueError(f"ct_state must be a CtState, not {self.ct_state!r}")

    @property
    def has_ports(self) -> bool:
        """True for TCP, UDP, DCCP, SCTP and UDPLite."""
        return self.protocol in PORT_PROTOCOLS

    @property
    def is_icmp(self) -> bool:
        """True for ICMP in IPv4 and ICMPv6 in IPv6."""
        return self.protocol == icmp_protocol(self.family)

    def __str__(self) -> str:
        proto = protocol_name(self.protocol, self.family)
        if self.has_ports:
            text = f"{proto} {_endpoint(self.src, self.sport)} -> {_endpoint(self.dst, self.dport)}"
        else:
            text = f"{proto} {self.src} -> {self.dst}"
        if self.is_icmp:
            text += f" type {self.icmp_type} code {self.icmp_code}"
        text += f" ({self.ct_state.value})"
        if self.in_interface is not None:
            text += f" in {self.in_interface}"
        if self.out_interface is not None:
            text += f" out {self.out_interface}"
        if self.ipsec:
            text += " ipsec"
        return text

    @classmethod
    def parse(cls, text: str) -> Packet:
        """Parse the text form (see the module docstring).

        Grammar: ``PROTO SRC -> DST [type N [code M]] [state S | (S)] [in IF] [out IF]
        [ipsec]``. ``PROTO`` is a name (tcp, udp, icmp, icmpv6, esp, ...) or a number 0-255.
        For port protocols ``SRC`` and ``DST`` are ``address:port`` (IPv6 as ``[addr]:port``);
        otherwise bare addresses. ICMP needs ``type``; ``code`` defaults to 0. The state
        defaults to NEW. Raises ``ValueError`` saying what was expected.
        """
        tokens = text.split()
        if len(tokens) < 4 or tokens[2] != "->":
            raise ValueError(
                f"expected 'PROTO SRC -> DST [options]', e.g. "
                f"'tcp 192.0.2.10:40000 -> 198.51.100.5:443', got {text!r}"
            )
        protocol = _parse_protocol(tokens[0])
        src, sport = _parse_endpoint(tokens[1], "source")
        dst, dport = _parse_endpoint(tokens[3], "destination")
        if src.version != dst.version:
            raise ValueError(f"source {src} and destination {dst} are of different families")
        family = src.version
        if tokens[0].lower() == "icmp" and family == 6:
            raise ValueError("ICMP over IPv6 is 'icmpv6'")
        if protocol in PORT_PROTOCOLS:
            if sport is None or dport is None:
                raise ValueError(
                    f"{tokens[0]} needs ports: expected 'ADDRESS:PORT -> ADDRESS:PORT' "
                    "(IPv6 as '[ADDRESS]:PORT')"
                )
        elif sport is not None or dport is not None:
            raise ValueError(f"protocol {tokens[0]} has no ports; give bare addresses")
        options: dict[str, str] = {}
        flags: set[str] = set()
        rest = tokens[4:]
        i = 0
        while i < len(rest):
            word = rest[i].lower()
            if word.startswith("(") and word.endswith(")") and len(word) > 2:
                key, value = "state", rest[i][1:-1]
                i += 1
            elif word == "ipsec":
                flags.add("ipsec")
                i += 1
                continue
            elif word in ("type", "code", "state", "in", "out"):
                if i + 1 >= len(rest):
                    raise ValueError(f"expected a value after {word!r}")
                key, value = word, rest[i + 1]
                i += 2
            else:
                raise ValueError(
                    f"unexpected {rest[i]!r}: expected 'type N', 'code N', 'state S', "
                    "'in IFACE', 'out IFACE' or 'ipsec'"
                )
            if key in options:
                raise ValueError(f"{key!r} given twice")
            options[key] = value
        icmp_type = icmp_code = 0
        if protocol == icmp_protocol(family):
            if "type" not in options:
                raise ValueError("ICMP needs 'type N' (and optionally 'code N')")
            icmp_type = _parse_int(options["type"], "ICMP type", 255)
            icmp_code = _parse_int(options.get("code", "0"), "ICMP code", 255)
        elif "type" in options or "code" in options:
            raise ValueError("'type' and 'code' apply only to icmp (IPv4) and icmpv6 (IPv6)")
        state_text = options.get("state", "NEW").upper()
        try:
            ct_state = CtState(state_text)
        except ValueError:
            expected = ", ".join(s.value for s in CtState)
            raise ValueError(f"unknown state {state_text!r}: expected one of {expected}") from None
        return cls(
            family=family,
            src=src,
            dst=dst,
            protocol=protocol,
            sport=sport or 0,
            dport=dport or 0,
            icmp_type=icmp_type,
            icmp_code=icmp_code,
            ct_state=ct_state,
            in_interface=options.get("in"),
            out_interface=options.get("out"),
            ipsec="ipsec" in flags,
        )


def _endpoint(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def _parse_int(text: str, what: str, maximum: int) -> int:
    # ASCII digits only: str.isdigit() and int() also take other scripts' digits and "²".
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"expected {what} as a decimal number 0-{maximum}, got {text!r}")
    value = int(text)
    if value > maximum:
        raise ValueError(f"{what} {value} is out of range 0-{maximum}")
    return value


def _parse_protocol(text: str) -> int:
    lowered = text.lower()
    if lowered in _PROTOCOL_NUMBERS:
        return _PROTOCOL_NUMBERS[lowered]
    if lowered.isascii() and lowered.isdigit():
        return _parse_int(lowered, "protocol number", 255)
    names = ", ".join(sorted(_PROTOCOL_NUMBERS))
    raise ValueError(f"unknown protocol {text!r}: expected a number 0-255 or one of {names}")


def _parse_endpoint(text: str, what: str) -> tuple[IPAddress, int | None]:
    """``addr``, ``addr:port`` (IPv4), ``[addr]`` or ``[addr]:port`` (IPv6), or a bare IPv6."""
    addr_text, port_text = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"expected '[IPv6]:PORT' for the {what}, got {text!r}")
        addr_text, tail = text[1:close], text[close + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"expected '[IPv6]:PORT' for the {what}, got {text!r}")
            port_text = tail[1:]
    elif text.count(":") == 1:
        addr_text, port_text = text.split(":")
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ValueError(f"expected an IP address for the {what}, got {addr_text!r}") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:
        raise ValueError(
            f"a zone id (%{addr.scope_id}) names an interface, not part of the address: "
            f"give the address alone (and 'in IF' or 'out IF'), got {addr_text!r}"
        )
    if text.startswith("[") and addr.version != 6:
        raise ValueError(f"brackets are for IPv6 addresses, got {text!r}")
    port = None if port_text is None else _parse_int(port_text, f"{what} port", 65535)
    return addr, port
