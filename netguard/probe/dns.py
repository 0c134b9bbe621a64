"""DNS step of a probe: every A and AAAA record of a name, with the resolver named.

Resolution uses dnspython's stub resolver (``dns.asyncresolver``), with the nameservers of
``/etc/resolv.conf`` (resolv.conf(5)) or those given with ``--resolver``; both record types are
asked for at once and every address is returned, not just the first, because load balancers
differ per address. When no resolver configuration exists, the system resolver
(``getaddrinfo``, which also reads /etc/hosts) is used and named as such.

Outcomes: NXDOMAIN and "no A/AAAA record" are FAILs (the name does not lead anywhere);
a resolver timeout or refusal is an ERROR (no evidence either way).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from netguard._ascii import is_digits

__all__ = ["Resolution", "resolve"]


@dataclass(frozen=True)
class Resolution:
    """Addresses of a name (A then AAAA records, in answer order) and how they were found:
    ``resolver`` (e.g. ``192.0.2.53:53 (/etc/resolv.conf)``), per-type ``errors`` and
    ``status`` "ok", "fail" (NXDOMAIN / no address) or "error" (no answer from the resolver);
    ``partial`` when addresses were found but one record type got no answer at all."""

    addresses: tuple[str, ...]
    resolver: str
    status: str
    message: str
    records: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    partial: bool = False  # some addresses found, but a record type got no answer


def _nameservers_text(nameservers: Sequence[object], port: int, origin: str) -> str:
    """``192.0.2.53:53, [2001:db8::53]:5353 (origin)``: each nameserver with its own port."""
    import dns.nameserver

    parts = []
    for ns in nameservers:
        if isinstance(ns, dns.nameserver.Do53Nameserver):
            address, ns_port = ns.address, ns.port
        else:  # an address string (resolv.conf), asked on the resolver's port
            address, ns_port = str(ns), port
        parts.append(f"[{address}]:{ns_port}" if ":" in address else f"{address}:{ns_port}")
    return ", ".join(parts) + f" ({origin})"


async def resolve(
    name: str, families: tuple[int, ...], nameservers: list[str] | None, timeout: float
) -> Resolution:
    """Resolve ``name``'s A (family 4) and AAAA (family 6) records within ``timeout`` seconds.

    ``nameservers`` are ``host`` or ``host:port`` strings (``None``: /etc/resolv.conf).
    Never raises for DNS outcomes; see :class:`Resolution`.
    """
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    except dns.resolver.NoResolverConfiguration:
        return await _system_resolve(name, families, timeout)
    import dns.nameserver

    origin = "/etc/resolv.conf"
    if nameservers is not None:
        origin = "--resolver"
        # one Do53Nameserver per entry: each keeps its own port (Resolver.port is one for all)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(*_split_ns(n)) for n in nameservers]
    if not resolver.nameservers:
        return await _system_resolve(name, families, timeout)
    resolver.lifetime = timeout
    # each nameserver gets its share of the lifetime, so that a dead first one cannot use it
    # all up before the next is asked
    resolver.timeout = min(timeout / len(resolver.nameservers), 2.0)
    where = _nameservers_text(resolver.nameservers, resolver.port, origin)
    types = [t for f, t in ((4, "A"), (6, "AAAA")) if f in families]

    async def one(rdtype: str) -> tuple[str, list[str], str | None, str | None]:
        try:
            answer = await resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return rdtype, [], "NXDOMAIN", "fail"
        except dns.resolver.NoAnswer:
            return rdtype, [], f"no {rdtype} record (NOERROR, empty answer)", None
        except dns.resolver.LifetimeTimeout:
            return rdtype, [], f"timeout after {timeout:.1f} s", "error"
        except dns.resolver.NoNameservers as exc:
            return rdtype, [], f"no nameserver answered: {exc}", "error"
        except dns.exception.DNSException as exc:
            return rdtype, [], f"{type(exc).__name__}: {exc}", "error"
        return rdtype, [r.to_text() for r in answer], None, None

    results = await asyncio.gather(*(one(t) for t in types))
    records = {t: addrs for t, addrs, _, _ in results}
    errors = {t: err for t, _, err, _ in results if err}
    kinds = {kind for _, _, _, kind in results if kind}
    addresses = tuple(a for t in types for a in records[t])
    if addresses:
        message = f"{len(addresses)} address(es): {', '.join(addresses)}"
        # a record type that got no answer at all may hold addresses nobody probed: say so
        unanswered = [f"{t}: {e}" for t, _, e, kind in results if kind == "error"]
        if unanswered:
            message += f"; no answer for {'; '.join(unanswered)}"
        return Resolution(addresses, where, "ok", message, records, errors, bool(unanswered))
    if "error" in kinds:
        message = "; ".join(f"{t}: {e}" for t, e in errors.items())
        return Resolution((), where, "error", message, records, errors)
    if "fail" in kinds:
        return Resolution((), where, "fail", f"{name}: NXDOMAIN", records, errors)
    wanted = " or ".join(types)
    return Resolution((), where, "fail", f"{name} has no {wanted} record", records, errors)


def _split_ns(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    try:
        ipaddress.ip_address(text)
        return text, 53
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    if sep and is_digits(port):
        return host, int(port)
    return text, 53


async def _system_resolve(name: str, families: tuple[int, ...], timeout: float) -> Resolution:
    loop = asyncio.get_running_loop()
    where = "system resolver (getaddrinfo; no /etc/resolv.conf nameserver)"
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except TimeoutError:
        return Resolution((), where, "error", f"timeout after {timeout:.1f} s")
    except socket.gaierror as exc:
        status = "fail" if exc.errno in (socket.EAI_NONAME, socket.EAI_NODATA) else "error"
        return Resolution((), where, status, f"{name}: {exc.strerror}")
    out: list[str] = []
    fams = {4: socket.AF_INET, 6: socket.AF_INET6}
    for fam in families:
        for info in infos:
            addr = str(info[4][0])
            if info[0] == fams[fam] and addr not in out:
                out.append(addr)
    if not out:
        return Resolution((), where, "fail", f"{name} has no address")
    return Resolution(tuple(out), where, "ok", f"{len(out)} address(es): {', '.join(out)}")
