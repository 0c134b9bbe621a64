"""``netguard probe``: build the targets, probe them all at once, report, return the exit code.

Targets come from a deployment profile (every ``vendor.endpoints`` entry: host, port; the
profile's ``tls.min_version`` and ``families``) or from ``--endpoint HOST:PORT`` (repeatable).
Per target: DNS (:mod:`netguard.probe.dns`); per address, concurrently: TCP connect, a TLS
handshake with certificate checks and the optional HTTP GET, then one connection per TLS
version below the minimum to prove it refused. Each connection is one probe with its own
deadline (``--timeout``: connect, handshake and read together).

Egress (``--egress TARGET``): TCP connects from this host to a cooperative target on a port
list; a port that is not allowed and gets through (open, or closed = a reset came back) FAILs.
The allowed ports are ``--allow``, else the profile's (its endpoints' ports and the ports of
its TCP egress exceptions), else 443; with ``--egress`` the profile's endpoints are not probed.
Run from a vantage point outside, the same probe answers the inbound question (which ports of a
host are reachable from there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
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


def parse_endpoint(text: str, sni: str | None, min_tls: str) -> Target:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``HOST`` (port 443) as a :class:`Target`.

    The SNI is ``sni`` if given, else the host when it is a name (an IP literal sends none).
    Raises ``InputError`` (exit 2) naming ``--endpoint`` for anything else.
    """
    where = Location(f"--endpoint {text}")
    host, port_text = text, "443"
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise InputError.at(where, "expected [IPv6]:PORT")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        raise InputError.at(where, "an IPv6 address with a port is written [2001:db8::1]:443")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError.at(where, f"expected a port from 1 to 65535 (got {port_text!r})")
    is_ip = True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        is_ip = False
    if not is_ip:
        from netguard.schema import _hostname

        try:
            _hostname(host)
        except ValueError as exc:
            raise InputError.at(where, str(exc)) from None
    name = sni if sni is not None else (None if is_ip else host)
    return Target(f"{host}:{port_text}", host, int(port_text), name, min_tls)


def _check_sni(sni: str) -> None:
    """Refuse an ``--sni`` that is neither a DNS name nor an IP literal (exit 2)."""
    from netguard.schema import _hostname

    try:
        ipaddress.ip_address(sni)
        return
    except ValueError:
        pass
    try:
        _hostname(sni)
    except ValueError as exc:
        raise InputError.at(Location(f"--sni {sni}"), str(exc)) from None


def _targets_from_profile(options: ProbeOptions) -> tuple[list[Target], str, set[int], str]:
    from netguard.profiles import load_deployment

    assert options.deployment is not None
    loaded = load_deployment(options.deployment, as_of=options.as_of)
    p = loaded.profile
    min_tls = options.min_tls or p.tls.min_version
    targets = [
        Target(e.name, e.host, e.port, options.sni or e.host, min_tls) for e in p.vendor.endpoints
    ]
    allowed = {e.port for e in p.vendor.endpoints}
    for exc in p.exceptions:
        if exc.direction == "egress" and exc.protocol == "tcp":
            allowed.update(exc.ports)
    fams = tuple(sorted(4 if f.value == "ipv4" else 6 for f in p.families))
    options.families = fams
    return targets, f"{options.deployment} ({p.name}, {p.mode})", allowed, p.tls.min_version


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
    alpn = ["http/1.1"] if opts.http_path else ["h2", "http/1.1"]

    async def main(conn: Connected, deadline: float) -> tuple[Connected, Any, Any]:
        stage["at"] = "handshake"
        stage["connect_ms"] = f"{conn.connect_ms:.1f}"
        stage["attempts"] = str(conn.attempts)
        res = await handshake(conn, target.sni, alpn)
        http: Any = None
        if res.error is None and opts.http_path:
            stage["at"] = "http"
            try:
                http = await http_get(conn, res, target.sni or address, opts.http_path)
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
        if stage["at"] == "connect":
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
        checks.append(
            Check("tls.version", Status.FAIL, f"no TLS handshake: {res.error}", res.evidence())
        )
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


def _tcp_pass(target: Target, stage: dict[str, str], conn: Connected | None = None) -> Check:
    ms = f"{conn.connect_ms:.1f}" if conn is not None else stage.get("connect_ms", "?")
    attempts = str(conn.attempts) if conn is not None else stage.get("attempts", "?")
    return Check(
        "tcp.connect",
        Status.PASS,
        f"port {target.port} connected in {ms} ms",
        {"connect_ms": float(ms) if ms != "?" else None, "attempts": attempts},
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
        checks = (Check("dns.resolve", status, f"{res.message} via {res.resolver}", evidence),)
        addresses = res.addresses
    results = await asyncio.gather(*(_guarded(ctx, target, a) for a in addresses))
    ctx.tick()
    return TargetResult(target, checks, tuple(results))


async def _guarded(ctx: _Context, target: Target, address: str) -> AddressResult:
    """:func:`_probe_address`, with any unexpected exception turned into an ERROR check for
    this address only, so that one endpoint can never abort the others' probes."""
    try:
        return await _probe_address(ctx, target, address)
    except InputError:
        raise
    except Exception as exc:
        message = f"internal error while probing: {type(exc).__name__}: {exc}"
        return AddressResult(address, (Check("probe.internal", Status.ERROR, message),))


async def _probe_egress(
    ctx: _Context, target: str, ports: Sequence[int], allowed: set[int]
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
            return EgressPort(port, state, port in allowed, exc.detail, None)
        await conn.close()
        ms = (time.perf_counter() - start) * 1000
        return EgressPort(port, "open", port in allowed, "connected", ms)

    results = await asyncio.gather(*(one(p) for p in ports))
    checks = []
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
    return EgressResult(target, address, tuple(results), tuple(checks))


async def probe_all(
    targets: Sequence[Target],
    options: ProbeOptions,
    *,
    egress: tuple[str, Sequence[int], set[int]] | None = None,
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

    if options.timeout <= 0:
        raise InputError.at(Location("--timeout"), "expected a positive number of seconds")
    allowed: set[int] = set(options.allow)
    targets: list[Target] = []
    if options.deployment is not None:
        targets, source, profile_allowed, _ = _targets_from_profile(options)
        if not options.allow:
            allowed = profile_allowed
        if options.egress is not None:
            targets = []  # an egress run takes the allowed ports from the profile, no more
    else:
        source = "--endpoint" if options.endpoints else "--egress"
        if not options.allow:
            allowed = {443}
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
        egress = (options.egress, list(options.ports) or list(DEFAULT_EGRESS_PORTS), allowed)
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
        "allowed_egress_ports": sorted(allowed) if egress else None,
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
