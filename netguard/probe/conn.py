"""Connections of a probe: TCP connect with retries, a TLS handshake driven by hand, refusals.

Vocabulary: a *deadline* is an absolute ``loop.time()`` by which one probe (connect, handshake
and read together) must be over; a *limiter* bounds the connections open at once, in all and
per ``(address, port)``.

The TLS client is :class:`ssl.SSLObject` on memory BIOs (Python docs, "Memory BIO Support"):
netguard moves the bytes itself, so every byte the server sends passes through a
:class:`~netguard.probe.wire.ServerFlight` first. That is how the negotiated key-exchange group
is read (the ServerHello key_share, RFC 8446 4.2.8), and how a refusal is proven only by what
the wire shows (an alert, or a ServerHello of an older version), never by a timeout or reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from netguard.probe.wire import (
    ALERTS,
    EVERY_CIPHER,
    GROUPS,
    TLS_VERSIONS,
    ServerFlight,
    client_hello,
)

__all__ = [
    "ConnectFailure",
    "Connected",
    "HandshakeResult",
    "Limiter",
    "RefusalResult",
    "connect",
    "handshake",
    "http_get",
    "offer_version",
]


class Limiter:
    """At most ``total`` connections open at once, and at most ``per_host`` to one
    ``(address, port)`` (so that hundreds of probes never flood one server)."""

    def __init__(self, total: int, per_host: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[tuple[str, int], asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def slot(self, address: str, port: int) -> AsyncIterator[None]:
        """Hold one connection slot for ``address``:``port`` while the block runs."""
        sem = self._hosts.setdefault((address, port), asyncio.Semaphore(self._per_host))
        async with sem, self._total:
            yield


@dataclass
class ConnectFailure(Exception):
    """A TCP connect that did not succeed: ``kind`` is ``refused`` (RST), ``reset`` (accepted,
    then reset before the connect call returned), ``timeout``,
    ``unreachable`` (ICMP unreachable), ``blocked`` (a local filter refused: EPERM/EACCES) or
    ``error``; ``detail`` names the errno; ``attempts`` made."""

    kind: str
    detail: str
    attempts: int

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail} after {self.attempts} attempt(s)"


@dataclass
class Connected:
    """An open TCP connection: its streams, connect time in milliseconds and attempts."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    connect_ms: float
    attempts: int

    async def close(self) -> None:
        """Close the connection (bounded: a peer that never answers cannot hold it)."""
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}
_BLOCKED = {errno.EPERM, errno.EACCES}


def classify_oserror(exc: OSError) -> tuple[str, str]:
    """``(kind, detail)`` of a connect error (see :class:`ConnectFailure`)."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused (RST)"
    if isinstance(exc, ConnectionResetError):
        return "reset", "connection reset by the server as soon as it was accepted"
    if exc.errno in _UNREACHABLE:
        return "unreachable", f"{name} (ICMP unreachable or no route)"
    if exc.errno in _BLOCKED:
        return "blocked", f"{name} (refused by a local packet filter)"
    return "error", f"{name}: {exc.strerror or exc}"


async def connect(address: str, port: int, deadline: float, retries: int) -> Connected:
    """Open TCP to ``address``:``port`` by ``deadline``, retrying a failed connect up to
    ``retries`` times (the time left is shared among the attempts still possible; nothing
    after the connect is ever retried). Raises :class:`ConnectFailure`."""
    loop = asyncio.get_running_loop()
    attempts = 0
    last: tuple[str, str] = ("timeout", "no attempt fitted in the deadline")
    for attempt in range(retries + 1):
        left = deadline - loop.time()
        if left <= 0:
            break
        budget = left / (retries + 1 - attempt)
        attempts += 1
        start = time.perf_counter()
        try:
            async with asyncio.timeout(budget):
                reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:
            last = ("timeout", f"no answer to SYN within {budget:.2f} s")
            continue
        except OSError as exc:
            last = classify_oserror(exc)
            if last[0] == "refused" or last[0] == "blocked":
                # wait a little before retrying a fast failure, within the budget
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
            continue
        return Connected(reader, writer, (time.perf_counter() - start) * 1000, attempts)
    raise ConnectFailure(last[0], last[1], attempts)


@dataclass
class HandshakeResult:
    """What a TLS handshake showed. ``error`` is ``None`` when it completed; then ``version``
    (``TLSv1.3``...), ``cipher``, ``group`` (or ``None`` with ``group_note``), ``alpn`` and
    ``chain`` (DER, leaf first, as sent; ``chain_complete`` False when only the leaf could be
    read). ``flight`` holds the raw facts either way. ``obj`` is the live SSLObject."""

    flight: ServerFlight
    error: str | None = None
    stage: str = "handshake"
    version: str | None = None
    cipher: str | None = None
    group: str | None = None
    group_note: str = ""
    alpn: str | None = None
    chain: list[bytes] = field(default_factory=list)
    chain_complete: bool = True
    obj: ssl.SSLObject | None = None
    incoming: ssl.MemoryBIO | None = None
    outgoing: ssl.MemoryBIO | None = None

    def evidence(self) -> dict[str, object]:
        """JSON-ready facts for the report."""
        out: dict[str, object] = {
            "version": self.version,
            "cipher": self.cipher,
            "group": self.group,
            "alpn": self.alpn,
            "bytes_received": self.flight.received,
        }
        if self.group_note:
            out["group_note"] = self.group_note
        if self.flight.alert is not None:
            level, desc = self.flight.alert
            out["alert"] = {"level": level, "description": desc, "name": ALERTS.get(desc)}
        if self.error is not None:
            out["error"] = self.error
            out["stage"] = self.stage
            if self.flight.first_bytes:
                out["first_bytes"] = self.flight.first_bytes.hex(" ")
        return out


def _client_context(alpn: list[str]) -> ssl.SSLContext:
    """A client context that offers TLS 1.2 (every suite) and 1.3 and verifies nothing itself:
    the certificate is judged by :mod:`netguard.probe.certs` with evidence, not by a refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # every TLS 1.2 suite (TLS 1.3 suites are set apart): a TLS 1.2 server with only legacy
    # suites then shows its version, suite and certificate instead of a bare handshake_failure
    ctx.set_ciphers(EVERY_CIPHER)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


_CONTEXTS: dict[tuple[str, ...], ssl.SSLContext] = {}


async def _pump(conn: Connected, res: HandshakeResult) -> bytes:
    """Send what the SSLObject produced; read the next chunk the server sends, feeding the
    flight parser. Returns the chunk (``b""`` at EOF)."""
    assert res.outgoing is not None
    data = res.outgoing.read()
    if data:
        conn.writer.write(data)
        await conn.writer.drain()
    chunk = await conn.reader.read(65536)
    res.flight.feed(chunk)
    return chunk


def _describe_failure(flight: ServerFlight, what: str) -> str:
    if flight.alert is not None:
        level, desc = flight.alert
        return f"server sent alert {desc} {ALERTS.get(desc, '?')} (level {level})"
    if flight.garbage is not None:
        return f"the server's answer is not TLS: {flight.garbage}"
    return what


async def handshake(conn: Connected, server_name: str | None, alpn: list[str]) -> HandshakeResult:
    """A full TLS 1.2/1.3 handshake over ``conn`` sending SNI ``server_name``, offering
    ``alpn``. Never raises for what the server does: a reset, EOF, garbage or an alert is
    returned in ``error`` (the caller's deadline bounds the time)."""
    key = tuple(alpn)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = _client_context(alpn)
    res = HandshakeResult(ServerFlight())
    res.incoming, res.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(res.incoming, res.outgoing, server_hostname=server_name)
    res.obj = obj
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            try:
                chunk = await _pump(conn, res)
            except ConnectionResetError:
                res.error = _describe_failure(res.flight, "connection reset by the server")
                return res
            except OSError as exc:
                res.error = _describe_failure(res.flight, f"connection error: {exc}")
                return res
            if res.flight.garbage is not None:
                res.error = _describe_failure(res.flight, "")
                return res
            if not chunk:
                res.incoming.write_eof()
                if res.flight.alert is None:
                    res.error = (
                        "connection closed by the server before the handshake completed"
                        f" ({res.flight.received} bytes received)"
                    )
                    return res
            else:
                res.incoming.write(chunk)
        except ssl.SSLError as exc:
            res.error = _describe_failure(res.flight, f"TLS error: {exc.reason or exc}")
            return res
    # the client's Finished may still be in the outgoing BIO
    data = res.outgoing.read()
    if data:
        conn.writer.write(data)
    res.version = obj.version()
    cipher = obj.cipher()
    res.cipher = cipher[0] if cipher else None
    res.alpn = obj.selected_alpn_protocol()
    hello = res.flight.hello
    code = hello.group if hello is not None and hello.group is not None else res.flight.ske_group
    if code is not None:
        res.group = GROUPS.get(code, f"0x{code:04x}")
    else:
        res.group_note = "not visible on the wire (no key_share or named-curve ServerKeyExchange)"
    # Python 3.13+: SSLObject.get_unverified_chain() gives DER bytes; 3.10-3.12 have the same
    # accessor, private, on the _ssl object, giving _ssl.Certificate objects.
    chain_fn = getattr(obj, "get_unverified_chain", None) or getattr(
        getattr(obj, "_sslobj", None), "get_unverified_chain", None
    )
    if chain_fn is not None:
        res.chain = [
            c if isinstance(c, bytes) else c.public_bytes(2)  # 2: _ssl.ENCODING_DER
            for c in (chain_fn() or [])
        ]
    else:  # pragma: no cover - a Python without either accessor
        leaf = obj.getpeercert(binary_form=True)
        res.chain = [leaf] if leaf else []
        res.chain_complete = False
    return res


async def http_get(conn: Connected, res: HandshakeResult, host: str, path: str) -> tuple[int, str]:
    """Send ``GET path HTTP/1.1`` over the TLS session of ``res`` and read the status line
    (RFC 9112 4). Returns ``(status, status line)``; raises ``ValueError`` when the answer is
    not an HTTP/1.x status line, ``OSError``/``ssl.SSLError`` on connection errors."""
    obj, incoming, outgoing = res.obj, res.incoming, res.outgoing
    assert obj is not None and incoming is not None and outgoing is not None
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: netguard-probe\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    obj.write(request.encode("ascii"))
    conn.writer.write(outgoing.read())
    await conn.writer.drain()
    received = b""
    while b"\r\n" not in received and len(received) < 8192:
        try:
            received += obj.read(8192)
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            break
        data = outgoing.read()
        if data:
            conn.writer.write(data)
        chunk = await conn.reader.read(65536)
        if not chunk:
            incoming.write_eof()
            with contextlib.suppress(ssl.SSLError):
                received += obj.read(8192)
            break
        incoming.write(chunk)
    if not received:
        raise ValueError("the server closed the connection without an HTTP answer")
    line = received.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    # status-code = 3DIGIT, ASCII (RFC 9112 4; int() would also read "٢٠٠" as 200)
    code = parts[1] if len(parts) >= 2 else ""
    if not parts[0].startswith("HTTP/1.") or not (
        len(code) == 3 and code.isascii() and code.isdigit()
    ):
        raise ValueError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(parts[1]), line


@dataclass(frozen=True)
class RefusalResult:
    """Outcome of offering only one TLS version: ``verdict`` is ``refused`` (an alert 70 or 40,
    or a ServerHello of an older version), ``accepted`` (a ServerHello of that version),
    ``untestable`` (the local library cannot offer it) or ``error`` (nothing conclusive:
    timeout, reset, EOF, another alert, garbage); ``detail`` says what was seen."""

    verdict: str
    detail: str
    alert: int | None = None
    server_version: str | None = None


_HELLOS: dict[tuple[str, str | None], tuple[bytes | None, str]] = {}

_VERSION_CODES = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0304}


def hello_for(version: str, server_name: str | None) -> tuple[bytes | None, str]:
    """The ClientHello offering only ``version`` for ``server_name`` (cached per pair)."""
    key = (version, server_name)
    if key not in _HELLOS:
        _HELLOS[key] = client_hello(version, server_name)
    return _HELLOS[key]


async def offer_version(conn: Connected, version: str, server_name: str | None) -> RefusalResult:
    """Send a ClientHello offering only TLS ``version`` and read the server's plaintext answer
    until it decides. Refusal proof per RFC 8446 section 6 and RFC 5246 7.2: alert
    protocol_version (70) or handshake_failure (40), or a ServerHello of an older version (a
    newer one, never offered, is an ``error``: RFC 8446 4.2.1, RFC 5246 appendix E.1); the
    caller's deadline bounds the wait (a timeout is the caller's ``error``)."""
    hello, reason = hello_for(version, server_name)
    if hello is None:
        return RefusalResult("untestable", reason)
    flight = ServerFlight()
    try:
        conn.writer.write(hello)
        await conn.writer.drain()
        while flight.hello is None and not flight.done:
            chunk = await conn.reader.read(65536)
            if not chunk:
                return RefusalResult(
                    "error", f"connection closed without an alert ({flight.received} bytes)"
                )
            flight.feed(chunk)
    except ConnectionResetError:
        return RefusalResult("error", "connection reset without an alert")
    except OSError as exc:
        return RefusalResult("error", f"connection error: {exc}")
    if flight.hello is not None:
        got = flight.hello.version
        name = TLS_VERSIONS.get(got, f"0x{got:04x}")
        if got == _VERSION_CODES[version]:
            return RefusalResult("accepted", f"ServerHello {name}", server_version=name)
        if got > _VERSION_CODES[version]:
            # a server picks a version the client offered, at most the one offered (RFC 5246
            # E.1, RFC 8446 4.2.1); a higher one breaks the protocol and proves nothing
            return RefusalResult(
                "error",
                f"ServerHello of {name}, higher than the only version offered: the server "
                "does not follow TLS version negotiation",
                server_version=name,
            )
        return RefusalResult(
            "refused", f"ServerHello of an older version ({name})", server_version=name
        )
    if flight.alert is not None:
        level, desc = flight.alert
        text = f"alert {desc} {ALERTS.get(desc, '?')} (level {level})"
        if desc in (70, 40):
            return RefusalResult("refused", text, alert=desc)
        return RefusalResult("error", f"{text}: not a version refusal", alert=desc)
    return RefusalResult("error", f"the server's answer is not TLS: {flight.garbage}")
