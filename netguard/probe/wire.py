"""What a TLS server says on the wire, read from its raw records (no decryption).

A TLS record (RFC 8446 section 5.1, RFC 5246 section 6.2.1) is ``type(1) version(2)
length(2) fragment``; type 21 is an alert, 22 a handshake. Before encryption starts, the
server's first flight is plaintext: its ServerHello (RFC 8446 4.1.3; RFC 5246 7.4.1.3), in
TLS 1.2 also its ServerKeyExchange (RFC 8422 5.4), or an alert ``level(1) description(1)``
(RFC 8446 section 6, RFC 5246 7.2). :class:`ServerFlight` collects those facts from the bytes
as they arrive, so a probe can tell a refusal (alert 70 protocol_version or 40
handshake_failure, or a ServerHello of an older version) from a timeout, a reset or garbage.
"""

from __future__ import annotations

import hashlib
import ssl
import warnings
from dataclasses import dataclass

__all__ = [
    "ALERTS",
    "EVERY_CIPHER",
    "GROUPS",
    "MAX_HANDSHAKE_MESSAGE",
    "TLS_VERSIONS",
    "ServerFlight",
    "ServerHello",
    "client_hello",
]

#: Wire version codes (RFC 8446 4.2.1, RFC 5246 appendix E) by name.
TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                0x0304: "TLSv1.3"}  # fmt: skip

#: Alert descriptions (RFC 8446 6.2 and RFC 5246 7.2.2) that a probe may see.
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter", 48: "unknown_ca",
    50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 109: "missing_extension", 110: "unsupported_extension",
    112: "unrecognized_name", 116: "certificate_required", 120: "no_application_protocol",
}  # fmt: skip

#: Named groups (IANA "TLS Supported Groups" registry; RFC 8446 4.2.7, RFC 7919).
GROUPS = {
    0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1", 0x001D: "x25519",
    0x001E: "x448", 0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096",
    0x0103: "ffdhe6144", 0x0104: "ffdhe8192", 0x11EB: "SecP256r1MLKEM768",
    0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
}  # fmt: skip

#: Largest plaintext handshake message read (the 24-bit length field allows 16 MiB; a
#: ServerHello is well under 1 KiB, a TLS 1.2 Certificate message under OpenSSL's 100 KiB
#: default max_cert_list, SSL_CTX_set_max_cert_list(3)).
MAX_HANDSHAKE_MESSAGE = 256 * 1024

# RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello whose random is SHA-256("HelloRetryRequest").
_HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
_ALERT, _HANDSHAKE, _CCS, _APPDATA = 21, 22, 20, 23


@dataclass(frozen=True)
class ServerHello:
    """The server's choice: ``version`` (wire code; the supported_versions extension wins over
    legacy_version, RFC 8446 4.2.1), ``cipher`` (IANA code), ``group`` (key_share group code,
    TLS 1.3 only) and ``retry`` (it was a HelloRetryRequest)."""

    version: int
    cipher: int
    group: int | None
    retry: bool

    @property
    def version_name(self) -> str:
        """``TLSv1.3`` etc., or the hex code of an unknown version."""
        return TLS_VERSIONS.get(self.version, f"0x{self.version:04x}")


class ServerFlight:
    """Incremental parser of the plaintext part of what a server sends.

    Feed bytes with :meth:`feed`; read :attr:`hello` (the last ServerHello, a
    HelloRetryRequest replaced by the real one), :attr:`alert` (``(level, description)`` of
    the first plaintext alert), :attr:`ske_group` (TLS 1.2 ECDHE named curve from the
    ServerKeyExchange), :attr:`garbage` (the bytes are not TLS records: a reason) and
    :attr:`encrypted` (records after which nothing more is plaintext were seen).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._hs = b""
        self.hello: ServerHello | None = None
        self.hello_retry: ServerHello | None = None
        self.alert: tuple[int, int] | None = None
        self.ske_group: int | None = None
        self.garbage: str | None = None
        self.encrypted = False
        self.received = 0
        self.first_bytes = b""

    @property
    def done(self) -> bool:
        """True once nothing more can be learned from the plaintext."""
        return self.encrypted or self.garbage is not None or self.alert is not None

    def feed(self, data: bytes) -> None:
        """Consume ``data`` (any split of the byte stream)."""
        self.received += len(data)
        if len(self.first_bytes) < 16:
            self.first_bytes = (self.first_bytes + data)[:16]
        if self.done:
            return
        self._buf += data
        while len(self._buf) >= 5 and not self.done:
            ctype, major = self._buf[0], self._buf[1]
            length = int.from_bytes(self._buf[3:5], "big")
            if ctype not in (_ALERT, _HANDSHAKE, _CCS, _APPDATA) or major != 3:
                self.garbage = f"not a TLS record (first bytes {self.first_bytes[:8].hex(' ')})"
                return
            if length > 16384 + 2048:
                self.garbage = f"TLS record length {length} exceeds the maximum (RFC 8446 5.2)"
                return
            if len(self._buf) < 5 + length:
                return
            fragment, self._buf = self._buf[5 : 5 + length], self._buf[5 + length :]
            if ctype == _ALERT:
                if len(fragment) >= 2:
                    self.alert = (fragment[0], fragment[1])
            elif ctype == _HANDSHAKE:
                self._hs += fragment
                self._handshake_messages()
            elif ctype == _APPDATA or (self.hello is not None and self.hello.version < 0x0304):
                self.encrypted = True

    def _handshake_messages(self) -> None:
        while len(self._hs) >= 4:
            mtype = self._hs[0]
            mlen = int.from_bytes(self._hs[1:4], "big")
            if mlen > MAX_HANDSHAKE_MESSAGE:
                # the length field allows 16 MiB; buffering that (quadratically, fragment by
                # fragment) would let a server eat memory and CPU until the deadline
                self.garbage = (
                    f"a handshake message of {mlen} bytes announced (this probe reads at most"
                    f" {MAX_HANDSHAKE_MESSAGE}; OpenSSL's own limit for a certificate chain is"
                    " 100 KiB)"
                )
                return
            if len(self._hs) < 4 + mlen:
                return
            body, self._hs = self._hs[4 : 4 + mlen], self._hs[4 + mlen :]
            if mtype == 2:
                hello = _parse_server_hello(body)
                if hello is None:
                    self.garbage = "malformed ServerHello"
                    return
                if hello.retry:
                    self.hello_retry = hello
                else:
                    self.hello = hello
            elif mtype == 12 and len(body) >= 3 and body[0] == 3:
                # ServerKeyExchange, ECParameters curve_type named_curve (RFC 8422 5.4)
                self.ske_group = int.from_bytes(body[1:3], "big")


def _parse_server_hello(body: bytes) -> ServerHello | None:
    """ServerHello fields (RFC 8446 4.1.3 / RFC 5246 7.4.1.3); ``None`` when malformed."""
    try:
        version = int.from_bytes(body[0:2], "big")
        random = body[2:34]
        sid_len = body[34]
        pos = 35 + sid_len
        cipher = int.from_bytes(body[pos : pos + 2], "big")
        pos += 3  # cipher suite and compression method
        group = None
        if len(body) >= pos + 2:
            ext_end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
            pos += 2
            while pos + 4 <= ext_end:
                etype = int.from_bytes(body[pos : pos + 2], "big")
                elen = int.from_bytes(body[pos + 2 : pos + 4], "big")
                data = body[pos + 4 : pos + 4 + elen]
                if etype == 43 and len(data) == 2:  # supported_versions (RFC 8446 4.2.1)
                    version = int.from_bytes(data, "big")
                elif etype == 51 and len(data) >= 2:  # key_share (RFC 8446 4.2.8)
                    group = int.from_bytes(data[0:2], "big")
                pos += 4 + elen
        if len(random) != 32:
            return None
    except IndexError:
        return None
    return ServerHello(version, cipher, group, random == _HRR_RANDOM)


#: Every TLS 1.2-and-below suite OpenSSL has (openssl-ciphers(1): ALL and its complement,
#: the NULL-encryption suites), at security level 0.
EVERY_CIPHER = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"

_PROTOCOLS = {
    "1.0": "TLSv1",
    "1.1": "TLSv1_1",
    "1.2": "TLSv1_2",
    "1.3": "TLSv1_3",
    "ssl3": "SSLv3",
}


def client_hello(version: str, server_name: str | None) -> tuple[bytes | None, str]:
    """A ClientHello that offers exactly TLS ``version`` ("1.0" ... "1.3"), made by the local
    OpenSSL through :class:`ssl.SSLObject` on memory BIOs (nothing is sent anywhere).

    Returns ``(hello bytes, "")``, or ``(None, reason)`` when the local library cannot offer
    that version (Python built without it, OpenSSL refusing at this security level, or the
    hello it produced does not carry the version). Below TLS 1.3 the hello offers every cipher
    suite the library has, at ``@SECLEVEL=0`` (OpenSSL 3 refuses TLS 1.0 and 1.1 at level 1
    and above, openssl-ciphers(1) "SECURITY LEVELS"): a server that speaks the version but
    shares no suite with a narrow list (Python's default omits SHA-1 and RSA key exchange
    suites) answers handshake_failure, which would read as a refusal of the version. The point
    is to ask the server, not to use the connection.
    """
    attr = _PROTOCOLS[version]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 and SSLv3
        proto = getattr(ssl.TLSVersion, attr, None)
        has = getattr(ssl, f"HAS_{attr}", False)
        if proto is None or not has:
            return None, f"this Python's ssl module ({ssl.OPENSSL_VERSION}) has no {attr}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.minimum_version = proto
            ctx.maximum_version = proto
            if version != "1.3":
                ctx.set_ciphers(EVERY_CIPHER)
        except (ValueError, ssl.SSLError) as exc:
            return None, f"{ssl.OPENSSL_VERSION} cannot be set to {attr} only: {exc}"
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:
        return None, f"{ssl.OPENSSL_VERSION} cannot offer {attr}: {exc.reason or exc}"
    hello = outgoing.read()
    code = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0303, "ssl3": 0x0300}[version]
    # ClientHello: record(5) + handshake type(1) + length(3) + legacy_version(2)
    if len(hello) < 11 or hello[5] != 1 or int.from_bytes(hello[9:11], "big") != code:
        return None, f"{ssl.OPENSSL_VERSION} produced no ClientHello offering {attr}"
    return hello, ""
