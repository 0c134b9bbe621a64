"""``netguard probe``: build the targets, probe them all at once, report, return the exit code.

Targets come from a deployment profile (every ``vendor.endpoints`` entry: host, port; the
profile's ``tls.min_version`` and ``families``) or from ``--endpoint HOST:PORT`` (repeatable).
Per target: DNS (:mod:`netguard.probe.dns`); per address, concurrently: TCP connect, a TLS
handshake with certificate checks and the optional HTTP GET, then one connection per TLS
version below the minimum to prove it refused. Each connection is one probe with its own
deadline (``--timeout``: connect, handshake and read together).

Egress (``--egress TARGET``): TCP connects from this host to a cooperative target on a port
list; a port that is not allowed and gets through (open, or closed = a reset came back) FAILs.
The allowed ports are ``--allow``, else what the profile's compiled egress TCP rules allow to
the target's address (endpoint ports to the vendor ranges, 53 to its DNS resolvers, each
exception to its own peers: :class:`Allowance`), else 443; with ``--egress`` the profile's
endpoints are not probed.
Run from a vantage point outside, the same probe answers the inbound question (which ports of a
host are reachable from there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from netguard.errors import InputError, Location
from netguard.probe.certs import TrustStore, check_certificates, load_trust_store
from netguard.probe.conn import (
    Connected,
    ConnectFailure,
    Limiter,
    connect,
    handshake,
    http_get,
    offer_version,
)
from netguard.probe.dns import resolve
from netguard.probe.model import (
    AddressResult,
    Check,
    EgressPort,
    EgressResult,
    ProbeReport,
    Status,
    Target,
    TargetResult,
)

__all__ = [
    "DEFAULT_EGRESS_PORTS",
    "ProbeOptions",
    "parse_endpoint",
    "probe_all",
    "run_probe",
]

DEFAULT_EGRESS_PORTS = (443, 22, 25, 53, 80, 3389, 8080, 8443)
_BELOW = {"1.3": ("1.2", "1.1", "1.0"), "1.2": ("1.1", "1.0")}
_NO_TLS_IN_TIME = "no TLS answer within the deadline (see tls.version)"
_NOT_TLS = "the server does not speak TLS (see tls.version)"


@dataclass
class ProbeOptions:
    """Options of one run (see ``netguard probe --help``). Times in seconds, days in days."""

    deployment: Path | None = None
    endpoints: Sequence[str] = ()
    sni: str | None = None
    ca_bundle: Path | None = None
    format: str = "text"
    timeout: float = 5.0
    concurrency: int = 100
    per_host: int = 4
    retries: int = 1
    warn_days: int = 30
    fail_days: int = 7
    http_path: str | None = None
    expect_status: int = 200
    min_tls: str | None = None
    resolvers: Sequence[str] = ()
    egress: str | None = None
    ports: Sequence[int] = ()
    allow: Sequence[int] = ()
    as_of: dt.date | None = None
    now: dt.datetime | None = None  # certificate time; default: the current UTC time
    mozilla_modern: bool = False
    progress: bool | None = None  # None: on when stderr and stdout are TTYs and not JSON
    families: tuple[int, ...] = field(default=(4, 6))


def _port_number(text: str, where: Location) -> int:
    """``text`` as a TCP port 1-65535, ASCII digits only (``int()`` would also take "٤٤٣",
    "+443" or " 443"); raises ``InputError`` (exit 2) at ``where``."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise InputError.at(where, f"expected a port from 1 to 65535 (got {text!r})")
    return int(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _host(text: str, where: Location, *, brackets: bool = True) -> tuple[str, bool]:
    """A host given on the command line: an IP literal (an IPv6 one optionally in brackets,
    RFC 3986 3.2.2, when ``brackets``) or a DNS name (as in the profile's ``vendor.endpoints``).
    Returns ``(host without brackets, is an IP literal)``; raises ``InputError`` (exit 2)."""
    if brackets and text.startswith("["):
        if not text.endswith("]") or not _is_ipv6(text[1:-1]):
            raise InputError.at(where, "only an IPv6 address goes in brackets, as [2001:db8::1]")
        return text[1:-1], True
    try:
        ipaddress.ip_address(text)
        return text, True
    except ValueError:
        pass
    from netguard.schema import _hostname

    try:
        _hostname(text)
    except ValueError as exc:
        raise InputError.at(where, str(exc)) from None
    return text, False


def _host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 literal in brackets (RFC 3986 3.2.2)."""
    return f"[{host}]:{port}" if _is_ipv6(host) else f"{host}:{port}"


def parse_endpoint(text: str, sni: str | None, min_tls: str) -> Target:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` or ``[IPv6]`` (port 443) as a :class:`Target`.

    The SNI is ``sni`` if given, else the host when it is a name (an IP literal sends none).
    Raises ``InputError`` (exit 2) naming ``--endpoint`` for anything else: a port outside
    1-65535 or not in ASCII digits, brackets around anything but an IPv6 address (RFC 3986
    3.2.2), an IPv6 address with a port but without brackets, a malformed name.
    """
    where = Location(f"--endpoint {text}")
    host, port = text, 443
    if text.startswith("["):
        inner, bracket, rest = text.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InputError.at(where, "expected [IPv6]:PORT, as [2001:db8::1]:443")
        host = inner + bracket
        if rest:
            port = _port_number(rest[1:], where)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port_number(port_text, where)
    elif text.count(":") > 1:
        raise InputError.at(where, "an IPv6 address with a port is written [2001:db8::1]:443")
    host, is_ip = _host(host, where)
    name = sni if sni is not None else (None if is_ip else host)
    return Target(_host_port(host, port), host, port, _server_name(name), min_tls)


def _server_name(name: str | None) -> str | None:
    """The SNI to send: a name without its trailing dot (RFC 6066 section 3: "without a
    trailing dot"; the ``ssl`` module would send it as given)."""
    return None if name is None else name.removesuffix(".")


def parse_resolver(text: str) -> tuple[str, int]:
    """``--resolver`` value ``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address ->
    ``(IP, port)`` (port 53 by default, RFC 1035 4.2); raises ``InputError`` (exit 2)."""
    where = Location(f"--resolver {text}")
    port = 53
    host = text
    if text.startswith("["):
        inner, bracket, rest = text.partition("]")
        if rest and not rest.startswith(":"):
            raise InputError.at(where, "expected [IPv6]:PORT, as [2001:db8::53]:53")
        host = inner + bracket
        if rest:
            port = _port_number(rest[1:], where)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port_number(port_text, where)
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not (_is_ipv6(address) if host.startswith("[") else _is_ip(address)):
        raise InputError.at(
            where,
            "expected the resolver's IP address, as 192.0.2.53, 192.0.2.53:5353 or "
            "[2001:db8::53]:53",
        )
    return address, port


_HTTP_PATH = re.compile(r"/[!-~]*")


def _check_http_path(path: str) -> None:
    """Refuse an ``--http-path`` that is not an origin-form request target (RFC 9112 3.2.1:
    "/" then visible ASCII; no spaces, no CR/LF that would inject header lines)."""
    if not _HTTP_PATH.fullmatch(path):
        raise InputError.at(
            Location(f"--http-path {path!r}"),
            "expected a path starting with '/' in visible ASCII (percent-encode anything else,"
            " RFC 3986 2.1), as /healthz",
        )


def _check_sni(sni: str) -> None:
    """Refuse an ``--sni`` that is neither a DNS name nor an IP literal (exit 2)."""
    _host(sni, Location(f"--sni {sni}"), brackets=False)


@dataclass(frozen=True)
class Allowance:
    """Which egress TCP ports may get through to a given address.

    ``fixed`` is one port set for every address (``--allow``, or 443 without a profile);
    otherwise ``rules`` are the profile's egress TCP rules as compiled for the firewall
    (:func:`netguard.compile.compile_policy`): ``(rule id, peer prefixes, ports)`` with
    ``ports`` ``None`` for every port. A port is allowed to an address only by a rule whose
    peers hold that address (endpoint ports to the vendor ranges, TCP 53 to the DNS resolvers,
    an exception to its own peers), in the profile's address families.
    """

    fixed: frozenset[int] | None
    rules: tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                       frozenset[int] | None], ...] = ()  # fmt: skip
    origin: str = "--allow"

    @classmethod
    def from_profile(cls, profile: Any) -> Allowance:
        """The egress TCP rules of a validated ``DeploymentProfile``."""
        from netguard.compile import compile_policy
        from netguard.model.policy import Direction, Protocol

        policy = compile_policy(profile)
        rules = []
        for r in policy.rules_for(Direction.EGRESS):
            if r.protocol is not Protocol.TCP:
                continue
            ports = (
                frozenset(p for pr in r.ports for p in range(pr.first, pr.last + 1))
                if r.ports
                else None
            )
            peers = tuple(n for v in r.families(policy.families) for n in r.peer.for_family(v))
            rules.append((r.id, peers, ports))
        return cls(None, tuple(rules), "the profile's egress rules")

    def for_address(self, address: str) -> tuple[frozenset[int] | None, tuple[str, ...]]:
        """``(allowed ports or None for all, ids of the profile rules that allow them)``."""
        if self.fixed is not None:
            return self.fixed, ()
        ip = ipaddress.ip_address(address)
        ports: set[int] = set()
        ids: list[str] = []
        every = False
        for rule_id, peers, rule_ports in self.rules:
            if any(ip.version == n.version and ip in n for n in peers):
                ids.append(rule_id)
                if rule_ports is None:
                    every = True
                else:
                    ports |= rule_ports
        return (None if every else frozenset(ports)), tuple(ids)


def _targets_from_profile(
    options: ProbeOptions,
) -> tuple[list[Target], str, Allowance, str]:
    from netguard.profiles import load_deployment

    assert options.deployment is not None
    loaded = load_deployment(options.deployment, as_of=options.as_of)
    p = loaded.profile
    min_tls = options.min_tls or p.tls.min_version
    targets = [
        Target(e.name, e.host, e.port, _server_name(options.sni or e.host), min_tls)
        for e in p.vendor.endpoints
    ]
    fams = tuple(sorted(4 if f.value == "ipv4" else 6 for f in p.families))
    options.families = fams
    source = f"{options.deployment} ({p.name}, {p.mode})"
    return targets, source, Allowance.from_profile(p), p.tls.min_version


class _Context:
    def __init__(
        self, options: ProbeOptions, store: Callable[[], TrustStore], tick: Callable[[], None]
    ) -> None:
        self.options = options
        self.limiter = Limiter(options.concurrency, options.per_host)
        self._store = store
        self.tick = tick
        self.now = options.now or dt.datetime.now(dt.UTC)

    @property
    def store(self) -> TrustStore:
        return self._store()


async def _probe_connection(
    ctx: _Context, address: str, port: int, body: Callable[[Connected, float], Any]
) -> Any:
    """Connect (with retries) and run ``body(conn, deadline)`` under one deadline; the
    connection is held in the limiter and closed afterwards. ``ConnectFailure`` and
    ``TimeoutError`` propagate."""
    loop = asyncio.get_running_loop()
    async with ctx.limiter.slot(address, port):
        deadline = loop.time() + ctx.options.timeout
        async with asyncio.timeout_at(deadline):
            conn = await connect(address, port, deadline, ctx.options.retries)
            try:
                return await body(conn, deadline)
            finally:
                await conn.close()


async def _probe_address(ctx: _Context, target: Target, address: str) -> AddressResult:
    opts = ctx.options
    checks: list[Check] = []
    stage = {"at": "connect"}
    got: dict[str, Any] = {}  # the connection and handshake, once they exist
    alpn = ["http/1.1"] if opts.http_path else ["h2", "http/1.1"]

    async def main(conn: Connected, deadline: float) -> tuple[Connected, Any, Any]:
        stage["at"] = "handshake"
        stage["connect_ms"] = f"{conn.connect_ms:.1f}"
        stage["attempts"] = str(conn.attempts)
        res = await handshake(conn, target.sni, alpn)
        got.update(conn=conn, res=res)
        http: Any = None
        if res.error is None and opts.http_path:
            stage["at"] = "http"
            try:
                authority = _authority(target.sni or address, target.port)
                http = await http_get(conn, res, authority, opts.http_path)
            except (ValueError, OSError) as exc:  # ssl.SSLError is an OSError
                http = exc
        return conn, res, http

    try:
        conn, res, http = await _probe_connection(ctx, address, target.port, main)
    except ConnectFailure as exc:
        failed = ("refused", "reset", "timeout", "unreachable")
        status = Status.FAIL if exc.kind in failed else Status.ERROR
        checks.append(
            Check(
                "tcp.connect",
                status,
                f"port {target.port}: {exc}",
                {"kind": exc.kind, "attempts": exc.attempts},
            )
        )
        reason = "no TCP connection (see tcp.connect)"
        checks.append(Check("tls.version", Status.UNTESTABLE, reason))
        return AddressResult(address, tuple(checks) + _untestable_refusals(target, reason))
    except TimeoutError:
        if stage["at"] == "http" and "res" in got:
            # the handshake finished in time: only the GET ran out of time, so the TLS and
            # certificate checks stand and http.status is an ERROR (no answer either way)
            conn, res = got["conn"], got["res"]
            http = TimeoutError(f"no status line within the {opts.timeout:g} s deadline")
        elif stage["at"] == "connect":
            checks.append(
                Check(
                    "tcp.connect",
                    Status.FAIL,
                    f"no connection within {opts.timeout:g} s",
                    {"kind": "timeout"},
                )
            )
            reason = "no TCP connection (see tcp.connect)"
            checks.append(Check("tls.version", Status.UNTESTABLE, reason))
            return AddressResult(address, tuple(checks) + _untestable_refusals(target, reason))
        else:
            checks.append(_tcp_pass(target, stage))
            checks.append(
                Check(
                    "tls.version",
                    Status.FAIL,
                    f"no complete TLS handshake within the {opts.timeout:g} s deadline "
                    f"(stopped at {stage['at']})",
                    {"stage": stage["at"]},
                )
            )
            return AddressResult(
                address,
                tuple(checks) + _untestable_refusals(target, _NO_TLS_IN_TIME),
            )
    checks.append(_tcp_pass(target, stage, conn))
    if res.error is not None:
        evidence = res.evidence()
        message = f"no TLS handshake: {res.error}"
        if res.flight.hello is not None:  # it got as far as choosing a version: say which
            evidence["server_hello_version"] = res.flight.hello.version_name
            message += f" (after a ServerHello of {res.flight.hello.version_name})"
        checks.append(Check("tls.version", Status.FAIL, message, evidence))
        if res.flight.hello is None and res.flight.alert is None:
            return AddressResult(
                address,
                tuple(checks) + _untestable_refusals(target, _NOT_TLS),
            )
    else:
        group, chosen = res.group or "unknown", res.alpn or "none"
        detail = f"{res.version}, {res.cipher}, group {group}, ALPN {chosen}"
        ok = res.version == "TLSv1.3"
        checks.append(
            Check(
                "tls.version",
                Status.PASS if ok else Status.FAIL,
                detail if ok else f"negotiated {detail}: TLS 1.3 required (guide 5.1)",
                {**res.evidence(), "sni": target.sni},
            )
        )
        checks.extend(
            check_certificates(
                res.chain,
                target.sni or address,
                ctx.store,
                now=ctx.now,
                warn_days=opts.warn_days,
                fail_days=opts.fail_days,
            )
        )
        if not res.chain_complete:
            checks = [
                Check(
                    "cert.intermediates",
                    Status.UNTESTABLE,
                    "this Python cannot read the chain the server sent",
                )
                if c.name == "cert.intermediates"
                else c
                for c in checks
            ]
        if opts.http_path:
            checks.append(_http_check(http, opts))
    checks.extend(await _refusals(ctx, target, address))
    if opts.mozilla_modern:
        from netguard.probe.mozilla import check_modern

        checks.append(check_modern(checks))
    return AddressResult(address, tuple(checks))


def _authority(host: str, port: int) -> str:
    """The Host header value (RFC 9110 7.2: ``uri-host [":" port]``, the port left out when
    it is https's default 443, 4.2.2; an IPv6 literal in brackets, RFC 3986 3.2.2)."""
    name = f"[{host}]" if _is_ipv6(host) else host
    return name if port == 443 else f"{name}:{port}"


def _tcp_pass(target: Target, stage: dict[str, str], conn: Connected | None = None) -> Check:
    ms = f"{conn.connect_ms:.1f}" if conn is not None else stage.get("connect_ms", "?")
    attempts = str(conn.attempts) if conn is not None else stage.get("attempts", "?")
    return Check(
        "tcp.connect",
        Status.PASS,
        f"port {target.port} connected in {ms} ms",
        # an int, as in a failed connect's evidence
        {
            "connect_ms": float(ms) if ms != "?" else None,
            "attempts": int(attempts) if attempts != "?" else None,
        },
    )


def _http_check(http: Any, opts: ProbeOptions) -> Check:
    if isinstance(http, tuple):
        code, line = http
        status = Status.PASS if code == opts.expect_status else Status.FAIL
        return Check(
            "http.status",
            status,
            f"GET {opts.http_path}: {line} (expected {opts.expect_status})",
            {"status": code, "expected": opts.expect_status},
        )
    if isinstance(http, ValueError):
        return Check("http.status", Status.FAIL, f"GET {opts.http_path}: {http}")
    return Check("http.status", Status.ERROR, f"GET {opts.http_path}: {http}")


def _untestable_refusals(target: Target, why: str) -> tuple[Check, ...]:
    return tuple(
        Check(
            f"tls.refuse-{v}",
            Status.UNTESTABLE,
            f"not attempted: {why}, so no refusal could be told apart",
        )
        for v in _BELOW[target.min_tls]
    )


async def _refusals(ctx: _Context, target: Target, address: str) -> list[Check]:
    async def one(version: str) -> Check:
        name = f"tls.refuse-{version}"

        async def body(conn: Connected, deadline: float) -> Any:
            return await offer_version(conn, version, target.sni)

        from netguard.probe.conn import hello_for

        hello, reason = hello_for(version, target.sni)
        if hello is None:
            return Check(
                name,
                Status.UNTESTABLE,
                f"local TLS library cannot offer TLS {version}: {reason}",
                {"reason": reason},
            )
        try:
            res = await _probe_connection(ctx, address, target.port, body)
        except ConnectFailure as exc:
            return Check(name, Status.ERROR, f"connect failed: {exc}")
        except TimeoutError:
            return Check(
                name,
                Status.ERROR,
                f"no alert or ServerHello within {ctx.options.timeout:g} s: not proof of refusal",
            )
        evidence = {"offered": f"TLSv{version}", "seen": res.detail}
        if res.alert is not None:
            evidence["alert"] = res.alert
        if res.verdict == "refused":
            return Check(name, Status.PASS, f"TLS {version} refused: {res.detail}", evidence)
        if res.verdict == "accepted":
            return Check(name, Status.FAIL, f"TLS {version} accepted: {res.detail}", evidence)
        if res.verdict == "untestable":
            return Check(name, Status.UNTESTABLE, res.detail, evidence)
        return Check(name, Status.ERROR, f"no refusal proof: {res.detail}", evidence)

    return list(await asyncio.gather(*(one(v) for v in _BELOW[target.min_tls])))


async def _probe_target(ctx: _Context, target: Target) -> TargetResult:
    opts = ctx.options
    try:
        ipaddress.ip_address(target.host)
        addresses: tuple[str, ...] = (target.host,)
        checks: tuple[Check, ...] = ()
    except ValueError:
        res = await resolve(target.host, opts.families, list(opts.resolvers) or None, opts.timeout)
        evidence: dict[str, Any] = {"resolver": res.resolver, "records": res.records}
        if res.errors:
            evidence["errors"] = res.errors
        status = {"ok": Status.PASS, "fail": Status.FAIL, "error": Status.ERROR}[res.status]
        message = f"{res.message} via {res.resolver}"
        checks = (Check("dns.resolve", status, message, evidence, warning=res.partial),)
        addresses = res.addresses
    results = await asyncio.gather(*(_guarded(ctx, target, a) for a in addresses))
    ctx.tick()
    return TargetResult(target, checks, tuple(results))


async def _guarded(ctx: _Context, target: Target, address: str) -> AddressResult:
    """:func:`_probe_address`, with any unexpected exception turned into an ERROR check for
    this address only, so that one endpoint can never abort the others' probes."""
    try:
        result = await _probe_address(ctx, target, address)
    except InputError:
        raise
    except Exception as exc:
        message = f"internal error while probing: {type(exc).__name__}: {exc}"
        return AddressResult(address, (Check("probe.internal", Status.ERROR, message),))
    if ctx.options.mozilla_modern and all(c.name != "mozilla.modern" for c in result.checks):
        # asked for on every address: where no handshake happened, it is UNTESTABLE
        from netguard.probe.mozilla import check_modern

        result = AddressResult(address, (*result.checks, check_modern(result.checks)))
    return result


async def _probe_egress(
    ctx: _Context, target: str, ports: Sequence[int], allowance: Allowance
) -> EgressResult:
    import time

    opts = ctx.options
    try:
        ipaddress.ip_address(target)
        address = target
    except ValueError:
        res = await resolve(target, opts.families, list(opts.resolvers) or None, opts.timeout)
        if not res.addresses:
            check = Check("egress.resolve", Status.ERROR, f"{target}: {res.message}")
            return EgressResult(target, "", (), (check,))
        address = res.addresses[0]
    allowed_ports, rule_ids = allowance.for_address(address)

    def is_allowed(port: int) -> bool:
        return allowed_ports is None or port in allowed_ports

    async def one(port: int) -> EgressPort:
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            async with ctx.limiter.slot(address, port):
                conn = await connect(address, port, loop.time() + opts.timeout, 0)
        except ConnectFailure as exc:
            state = {
                "refused": "closed",
                "timeout": "filtered",
                "unreachable": "filtered",
                "blocked": "filtered",
            }.get(exc.kind, "error")
            detail = exc.detail
            if exc.kind == "refused":
                # Linux turns an ICMP port-unreachable (iptables' default REJECT) into the same
                # ECONNREFUSED as a reset (icmp_err_convert): say so rather than hide it
                detail = (
                    "connection refused: a TCP reset (or an ICMP port-unreachable from a REJECT"
                    " rule, which this host cannot tell apart)"
                )
            return EgressPort(port, state, is_allowed(port), detail, None)
        await conn.close()
        ms = (time.perf_counter() - start) * 1000
        return EgressPort(port, "open", is_allowed(port), "connected", ms)

    results = await asyncio.gather(*(one(p) for p in ports))
    checks = []
    # "filtered" is evidence of a filter only if the target demonstrably answers: when no
    # probed port got through at all, a filter cannot be told from a target that is down
    answered = any(r.state in ("open", "closed") for r in results)
    if not answered:
        checks.append(
            Check(
                "egress.reachable",
                Status.ERROR,
                f"no probed port got through to {address}: the target may be down or not "
                "cooperating, so 'filtered' proves nothing (probe an allowed port it listens "
                "on as a control)",
                {"ports": [r.port for r in results]},
            )
        )
    for r in results:
        name = f"egress.port-{r.port}"
        evidence = {"state": r.state, "allowed": r.allowed, "detail": r.detail}
        if r.state == "error":
            checks.append(Check(name, Status.ERROR, f"{r.port}: {r.detail}", evidence))
        elif r.state in ("open", "closed") and not r.allowed:
            checks.append(
                Check(
                    name,
                    Status.FAIL,
                    f"{r.port} {r.state}: not allowed, but it got through ({r.detail})",
                    evidence,
                )
            )
        elif not answered:
            what = "allowed" if r.allowed else "not allowed"
            checks.append(
                Check(
                    name,
                    Status.UNTESTABLE,
                    f"{r.port} {r.state} ({what}): nothing got through to this target, so a "
                    f"filter cannot be told from a silent target ({r.detail})",
                    evidence,
                )
            )
        elif r.allowed and r.state == "filtered":
            checks.append(
                Check(
                    name,
                    Status.PASS,
                    f"{r.port} filtered: allowed, but it did not get "
                    f"through to this target ({r.detail})",
                    evidence,
                    warning=True,
                )
            )
        else:
            what = "allowed" if r.allowed else "not allowed"
            checks.append(Check(name, Status.PASS, f"{r.port} {r.state} ({what})", evidence))
    ctx.tick()
    allowed_by = allowance.origin + (f" ({', '.join(rule_ids)})" if rule_ids else "")
    if allowance.fixed is None and not rule_ids:
        allowed_by += f": none allows TCP to {address}"
    return EgressResult(
        target,
        address,
        tuple(results),
        tuple(checks),
        None if allowed_ports is None else tuple(sorted(allowed_ports)),
        allowed_by,
    )


async def probe_all(
    targets: Sequence[Target],
    options: ProbeOptions,
    *,
    egress: tuple[str, Sequence[int], Allowance] | None = None,
    tick: Callable[[], None] = lambda: None,
) -> tuple[list[TargetResult], list[EgressResult]]:
    """Probe every target (and the egress target) concurrently; results in input order."""
    cache: list[TrustStore] = []

    def store() -> TrustStore:
        if not cache:
            cache.append(load_trust_store(options.ca_bundle))
        return cache[0]

    if options.ca_bundle is not None:
        store()  # a bad bundle is an input error before anything is sent
    ctx = _Context(options, store, tick)
    jobs: list[Any] = [_probe_target(ctx, t) for t in targets]
    if egress is not None:
        jobs.append(_probe_egress(ctx, *egress))
    done = await asyncio.gather(*jobs)
    targets_out = [d for d in done if isinstance(d, TargetResult)]
    egress_out = [d for d in done if isinstance(d, EgressResult)]
    return targets_out, egress_out


def _allowed_setting(result: EgressResult) -> list[int] | str:
    return "all" if result.allowed_ports is None else list(result.allowed_ports)


def _want_progress(options: ProbeOptions, out: TextIO, err: TextIO) -> bool:
    if options.progress is not None:
        return options.progress
    if options.format == "json":
        return False

    def tty(stream: TextIO) -> bool:
        isatty = getattr(stream, "isatty", None)
        return bool(isatty and isatty())

    return tty(out) and tty(err)


def run_probe(options: ProbeOptions, out: TextIO, err: TextIO) -> int:
    """Run ``netguard probe``; write the report to ``out`` and progress to ``err``.

    Returns 0 when every check passes (UNTESTABLE listed, not failing), 1 when a check FAILs,
    3 when a probe ended in ERROR and none failed. Raises ``InputError`` (exit 2) for a bad
    profile, endpoint, CA bundle or option before anything is sent.
    """
    from netguard.probe.report import render

    if not (math.isfinite(options.timeout) and options.timeout > 0):
        # NaN compares false with everything and inf never expires: neither is a deadline
        raise InputError.at(
            Location("--timeout"),
            f"expected a positive number of seconds (got {options.timeout:g})",
        )
    if options.http_path is not None:
        _check_http_path(options.http_path)
    options.resolvers = [_host_port(*parse_resolver(r)) for r in options.resolvers]
    if options.egress is not None:
        options.egress = _host(options.egress, Location(f"--egress {options.egress}"))[0]
    options.ports = list(dict.fromkeys(options.ports))
    allowance = Allowance(frozenset(options.allow))
    targets: list[Target] = []
    if options.deployment is not None:
        targets, source, profile_allowance, _ = _targets_from_profile(options)
        if not options.allow:
            allowance = profile_allowance
        if options.egress is not None:
            targets = []  # an egress run takes the allowed ports from the profile, no more
    else:
        source = "--endpoint" if options.endpoints else "--egress"
        if not options.allow:
            allowance = Allowance(frozenset({443}), origin="default (443)")
    min_tls = options.min_tls or "1.3"
    if options.sni is not None:
        _check_sni(options.sni)
    targets += [parse_endpoint(e, options.sni, min_tls) for e in options.endpoints]
    if not targets and options.egress is None:
        raise InputError.at(
            Location("netguard probe"), "expected a DEPLOYMENT file, --endpoint or --egress"
        )
    egress = None
    if options.egress is not None:
        egress = (options.egress, list(options.ports) or list(DEFAULT_EGRESS_PORTS), allowance)
    total = len(targets) + (1 if egress else 0)

    def execute(tick: Callable[[], None]) -> tuple[list[TargetResult], list[EgressResult]]:
        return asyncio.run(probe_all(targets, options, egress=egress, tick=tick))

    if _want_progress(options, out, err) and total > 1:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(file=err), transient=True) as bar:
            task = bar.add_task("probing", total=total)
            results, egress_results = execute(lambda: bar.advance(task))
    else:
        results, egress_results = execute(lambda: None)
    settings: dict[str, Any] = {
        "timeout_s": options.timeout,
        "retries": options.retries,
        "concurrency": options.concurrency,
        "per_host": options.per_host,
        "warn_days": options.warn_days,
        "fail_days": options.fail_days,
        "min_tls": min_tls
        if options.deployment is None
        else (targets[0].min_tls if targets else None),
        "ca_bundle": str(options.ca_bundle) if options.ca_bundle else "system",
        # per egress target: a sorted port list, or "all" (a rule without ports)
        "allowed_egress_ports": _allowed_setting(egress_results[0]) if egress_results else None,
        "allowed_egress_by": egress_results[0].allowed_by if egress_results else None,
        "mozilla_modern": options.mozilla_modern,
    }
    import ssl

    notes = [f"local TLS library: {ssl.OPENSSL_VERSION}"]
    report = ProbeReport(source, tuple(results), tuple(egress_results), settings, tuple(notes))
    out.write(render(report, options.format))
    out.flush()
    counts = report.counts()
    scope = f"{len(results)} endpoint(s)" + (
        f", egress to {options.egress}" if options.egress is not None else ""
    )
    err.write("probe: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({scope})\n")
    return report.exit_code()
