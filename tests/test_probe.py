"""``netguard probe`` against real TLS servers on 127.0.0.1 made here, with a test PKI.

The PKI (made with ``cryptography``): a root CA, an intermediate CA signed by it, and leaves
signed by the intermediate for ``api.vendor.example``; the CA bundle given to the probe holds
the root only. Each server is an ``ssl``-wrapped socket server in a thread with its own
:class:`ssl.SSLContext` (protocol range, certificate chain), so each case differs from the good
one in exactly one way and the expected verdicts are reasoned from that one difference:

=================  =====================================================================
server             differs from "good" by                      expected FAIL checks
=================  =====================================================================
good               (TLS 1.3 only; leaf + intermediate)         none
tls12              TLS 1.2 only                                tls.version, tls.refuse-1.2
both               TLS 1.2 and 1.3                             tls.refuse-1.2
expired            leaf notAfter 10 days ago                   cert.expiry
notyet             leaf notBefore in 10 days                   cert.expiry
wronghost          leaf SAN other.vendor.example               cert.hostname
selfsigned         self-signed leaf, not in the bundle         cert.chain
nointermediate     sends the leaf without the intermediate     cert.chain, cert.intermediates
rsa1024            leaf key RSA 1024                           cert.key
=================  =====================================================================

Misbehaving servers (plain TCP): one accepts and never answers, one sends HTTP text instead
of TLS, one resets every connection; each probe must end in its verdict within the run.
Oracles: the versions each server's context allows (set here), the certificate fields set
here, RFC 8446 section 6 (a TLS 1.3-only OpenSSL server answers an older ClientHello with
alert 70 protocol_version), and ``openssl s_client`` for the negotiated group.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netguard.cli import main
from netguard.probe.run import ProbeOptions, run_probe
from netguard.probe.wire import client_hello

SNI = "api.vendor.example"
NOW = dt.datetime.now(dt.UTC)


# --- PKI -------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: object


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make(
    cn: str,
    issuer: Issued | None,
    *,
    ca: bool,
    key: object | None = None,
    sans: tuple[str, ...] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    key = key or ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()  # type: ignore[attr-defined]
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=89))  # a 90-day lifespan
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)  # type: ignore[arg-type]


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- servers ---------------------------------------------------------------------------------


class Server:
    """A TCP server on 127.0.0.1 (ephemeral port) handling each connection in a thread."""

    def __init__(self, mode: str, ctx: ssl.SSLContext | None = None) -> None:
        self.mode, self.ctx = mode, ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.requests: list[bytes] = []  # HTTP requests received over TLS
        self.response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.mode == "silent":
                self.conns.append(conn)  # held open, never answered, closed at teardown
                return
            if self.mode == "hold":  # never answers; counts connections open at once
                with self.lock:
                    self.active += 1
                    self.max_active = max(self.max_active, self.active)
                try:
                    while conn.recv(4096):
                        pass
                finally:
                    with self.lock:
                        self.active -= 1
                conn.close()
                return
            if self.mode == "garbage":
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.stop.wait(10)
            elif self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "tls-mute":  # completes the TLS handshake, then never answers
                assert self.ctx is not None
                with self.ctx.wrap_socket(conn, server_side=True):
                    self.stop.wait(10)
            elif self.mode == "hello13":  # answers any ClientHello with a TLS 1.3 ServerHello
                conn.recv(4096)
                conn.sendall(_server_hello_13())
                self.stop.wait(10)
            else:
                assert self.ctx is not None
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = tls.recv(4096)
                        if not chunk:
                            return
                        request += chunk
                    self.requests.append(request)
                    tls.sendall(self.response)
            conn.close()
        except (OSError, ssl.SSLError, ValueError):
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        for c in self.conns:
            c.close()


def _server_hello_13() -> bytes:
    """A plaintext TLS record holding a ServerHello that selects TLS 1.3 through the
    supported_versions extension (RFC 8446 4.1.3: legacy_version 0x0303, random, empty
    session id, cipher TLS_AES_128_GCM_SHA256 0x1301, compression 0; extension 43 = 0x0304)."""
    ext = struct.pack("!HHH", 43, 2, 0x0304)
    body = b"\x03\x03" + bytes(range(32)) + b"\x00\x13\x01\x00" + struct.pack("!H", len(ext)) + ext
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(handshake)) + handshake


@dataclass
class Lab:
    root: Issued
    inter: Issued
    bundle: Path
    servers: dict[str, Server]

    def endpoint(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"


def _context(
    tmp: Path, name: str, chain: list[x509.Certificate], key: object, versions: tuple[str, str]
) -> ssl.SSLContext:
    cert_file, key_file = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_file.write_bytes(_pem(*chain))
    key_file.write_bytes(_key_pem(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = getattr(ssl.TLSVersion, versions[0])
    ctx.maximum_version = getattr(ssl.TLSVersion, versions[1])
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the RSA 1024 leaf load; others are unaffected
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("pki")
    # CA validity spans every leaf's (the expired and not-yet-valid leaves included)
    ca_life = {
        "not_before": NOW - dt.timedelta(days=365),
        "not_after": NOW + dt.timedelta(days=365),
    }
    root = _make("Test Root CA", None, ca=True, **ca_life)  # type: ignore[arg-type]
    inter = _make("Test Intermediate CA", root, ca=True, **ca_life)  # type: ignore[arg-type]
    bundle = tmp / "ca.pem"
    bundle.write_bytes(_pem(root.cert))

    def leaf(**kw: object) -> Issued:
        kw.setdefault("sans", (SNI,))
        return _make(SNI, inter, ca=False, **kw)  # type: ignore[arg-type]

    good = leaf()
    t13, t12 = ("TLSv1_3", "TLSv1_3"), ("TLSv1_2", "TLSv1_2")
    both = ("TLSv1_2", "TLSv1_3")
    self_signed = _make(SNI, None, ca=False, sans=(SNI,))
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the case under test)
    cases = {
        "good": ([good.cert, inter.cert], good.key, t13),
        "tls12": ([good.cert, inter.cert], good.key, t12),
        "both": ([good.cert, inter.cert], good.key, both),
        "expired": (
            [(e := leaf(not_before=NOW - dt.timedelta(days=100),
                        not_after=NOW - dt.timedelta(days=10))).cert, inter.cert],
            e.key, t13,
        ),
        "notyet": (
            [(n := leaf(not_before=NOW + dt.timedelta(days=10),
                        not_after=NOW + dt.timedelta(days=100))).cert, inter.cert],
            n.key, t13,
        ),
        "wronghost": (
            [(w := leaf(sans=("other.vendor.example",))).cert, inter.cert], w.key, t13
        ),
        "selfsigned": ([self_signed.cert], self_signed.key, t13),
        "nointermediate": ([good.cert], good.key, t13),
        "rsa1024": ([(r := leaf(key=weak)).cert, inter.cert], r.key, t13),
    }  # fmt: skip
    servers = {
        name: Server("tls", _context(tmp, name, chain, key, versions))
        for name, (chain, key, versions) in cases.items()
    }
    servers["good"].ctx.set_alpn_protocols(["http/1.1"])  # type: ignore[union-attr]
    for mode in ("silent", "garbage", "reset"):
        servers[mode] = Server(mode)
    yield Lab(root, inter, bundle, servers)
    for s in servers.values():
        s.close()


def _probe(lab: Lab, *names: str, **kw: object) -> tuple[int, dict[str, object], str]:
    settings: dict[str, object] = {"timeout": 2.0, "retries": 0, **kw}
    options = ProbeOptions(
        endpoints=[lab.endpoint(n) for n in names],
        sni=SNI,
        ca_bundle=lab.bundle,
        format="json",
        **settings,  # type: ignore[arg-type]
    )
    out, err = io.StringIO(), io.StringIO()
    code = run_probe(options, out, err)
    return code, json.loads(out.getvalue()), err.getvalue()


def _statuses(doc: dict[str, object], index: int = 0) -> dict[str, str]:
    target = doc["targets"][index]  # type: ignore[index]
    (address,) = target["addresses"]
    return {c["name"]: c["status"] for c in address["checks"]}


ALL_TLS_SERVERS = (
    "good", "tls12", "both", "expired", "notyet", "wronghost", "selfsigned", "nointermediate",
    "rsa1024",
)  # fmt: skip
PASS_ALL = {
    "tcp.connect": "PASS",
    "tls.version": "PASS",
    "cert.leaf": "PASS",
    "cert.chain": "PASS",
    "cert.intermediates": "PASS",
    "cert.hostname": "PASS",
    "cert.expiry": "PASS",
    "cert.key": "PASS",
    "cert.signature": "PASS",
    "tls.refuse-1.2": "PASS",
    "tls.refuse-1.1": "PASS",
    "tls.refuse-1.0": "PASS",
}
EXPECTED = {
    "good": {},
    "tls12": {"tls.version": "FAIL", "tls.refuse-1.2": "FAIL"},
    "both": {"tls.refuse-1.2": "FAIL"},
    "expired": {"cert.expiry": "FAIL"},
    "notyet": {"cert.expiry": "FAIL"},
    "wronghost": {"cert.hostname": "FAIL"},
    "selfsigned": {"cert.chain": "FAIL"},
    "nointermediate": {"cert.chain": "FAIL", "cert.intermediates": "FAIL"},
    "rsa1024": {"cert.key": "FAIL"},
}


@pytest.fixture(scope="module")
def all_servers(lab: Lab) -> tuple[int, dict[str, object]]:
    """One run over every TLS server at once (hundreds-at-once path, shared by the tests)."""
    code, doc, _ = _probe(lab, *ALL_TLS_SERVERS)
    return code, doc


@pytest.mark.parametrize("name", ALL_TLS_SERVERS)
def test_each_server_gets_its_exact_verdict(
    all_servers: tuple[int, dict[str, object]], name: str
) -> None:
    _, doc = all_servers
    index = ALL_TLS_SERVERS.index(name)
    assert _statuses(doc, index) == {**PASS_ALL, **EXPECTED[name]}


def test_run_over_all_servers_exits_1(all_servers: tuple[int, dict[str, object]]) -> None:
    code, doc = all_servers
    assert code == 1
    assert doc["verdict"] == "FAIL" and doc["exit_code"] == 1
    assert doc["schema_version"] == 1


def test_json_report_matches_its_published_schema(
    all_servers: tuple[int, dict[str, object]],
) -> None:
    import jsonschema

    import netguard.probe

    schema_path = Path(netguard.probe.__file__).with_name("report.schema.json")
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(all_servers[1], schema)


def test_good_server_evidence(lab: Lab) -> None:
    """Good server alone: exit 0; evidence matches what the server context and PKI set."""
    code, doc, err = _probe(lab, "good")
    assert code == 0, doc
    checks = {c["name"]: c for c in doc["targets"][0]["addresses"][0]["checks"]}  # type: ignore[index]
    ev = checks["tls.version"]["evidence"]
    assert ev["version"] == "TLSv1.3"
    assert ev["cipher"] in {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                            "TLS_CHACHA20_POLY1305_SHA256"}  # fmt: skip
    assert ev["alpn"] == "http/1.1"  # the only protocol the good server accepts (RFC 7301)
    assert ev["sni"] == SNI
    # the key-exchange group, independently: what openssl s_client reports for this server
    if shutil.which("openssl"):
        s_client = subprocess.run(
            ["openssl", "s_client", "-connect", lab.endpoint("good"), "-servername", SNI],
            input="", capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        text = s_client.stdout + s_client.stderr
        assert f"Negotiated TLS1.3 group: {ev['group']}".lower() in text.lower() or (
            f"Server Temp Key: {ev['group'].upper()}".lower() in text.lower()
        ), text
    leaf = checks["cert.leaf"]["evidence"]
    assert leaf["issuer"] == "CN=Test Intermediate CA"
    assert checks["cert.key"]["evidence"] == {"type": "EC secp256r1", "bits": 256}
    assert checks["cert.signature"]["evidence"]["algorithm"] == "ecdsa-with-SHA256"
    days = checks["cert.expiry"]["evidence"]["days_left"]
    assert days in (87, 88)  # notAfter was set to NOW + 89 days at fixture time
    assert checks["cert.chain"]["evidence"]["path"] == [
        f"CN={SNI}",
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
    ]
    for v in ("1.2", "1.1", "1.0"):
        refusal = checks[f"tls.refuse-{v}"]["evidence"]
        assert refusal["alert"] == 70, refusal  # protocol_version, RFC 8446 section 6
    assert "0 FAIL" in err


def test_expiry_thresholds(lab: Lab) -> None:
    """Leaf valid 89 more days: --warn-days 100 gives a PASS with a warning, --fail-days 100
    a FAIL."""
    _, doc, _ = _probe(lab, "good", warn_days=100)
    checks = {c["name"]: c for c in doc["targets"][0]["addresses"][0]["checks"]}  # type: ignore[index]
    assert checks["cert.expiry"]["status"] == "PASS" and checks["cert.expiry"]["warning"]
    code, doc, _ = _probe(lab, "good", fail_days=100)
    assert _statuses(doc)["cert.expiry"] == "FAIL" and code == 1


def test_http_status(lab: Lab) -> None:
    """The test servers answer every GET with 200."""
    code, doc, _ = _probe(lab, "good", http_path="/healthz")
    assert _statuses(doc)["http.status"] == "PASS" and code == 0
    code, doc, _ = _probe(lab, "good", http_path="/healthz", expect_status=204)
    assert _statuses(doc)["http.status"] == "FAIL" and code == 1


def test_system_store_does_not_trust_the_test_root(lab: Lab) -> None:
    options = ProbeOptions(endpoints=[lab.endpoint("good")], sni=SNI, format="json", timeout=2)
    out = io.StringIO()
    assert run_probe(options, out, io.StringIO()) == 1
    assert _statuses(json.loads(out.getvalue()))["cert.chain"] == "FAIL"


def test_min_tls_12_checks_only_older_refusals(lab: Lab) -> None:
    """--min-tls 1.2: the both-versions server passes (TLS 1.3 negotiated, 1.1/1.0 refused)."""
    code, doc, _ = _probe(lab, "both", min_tls="1.2")
    statuses = _statuses(doc)
    assert "tls.refuse-1.2" not in statuses
    assert statuses["tls.refuse-1.1"] == statuses["tls.refuse-1.0"] == "PASS"
    assert code == 0


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("silent", "deadline"),
        ("garbage", "not TLS"),
        ("reset", "reset"),
    ],
)
def test_misbehaving_servers_end_in_a_fail(lab: Lab, name: str, needle: str) -> None:
    """Accept-and-silence, garbage and reset: a FAIL naming why, refusals UNTESTABLE (never
    PASS), and the run ends (the silent one at its 1 s deadline). The reset server resets as
    soon as it accepts, which the client sees during the TLS handshake or, when the RST beats
    the connect call's return, as the connect's outcome: either is a FAIL naming the reset."""
    start = time.monotonic()
    code, doc, _ = _probe(lab, name, timeout=1.0)
    assert time.monotonic() - start < 30  # generous: "finishes", not a timing assertion
    checks = {c["name"]: c for c in doc["targets"][0]["addresses"][0]["checks"]}  # type: ignore[index]
    failed = [c for c in checks.values() if c["status"] == "FAIL"]
    assert len(failed) == 1, checks
    assert failed[0]["name"] in ("tls.version", "tcp.connect")
    if name != "reset":
        assert failed[0]["name"] == "tls.version"
    assert needle in failed[0]["message"], failed
    for v in ("1.2", "1.1", "1.0"):
        assert checks[f"tls.refuse-{v}"]["status"] == "UNTESTABLE"
    assert code == 1


def test_connections_per_host_are_bounded() -> None:
    """Four targets naming the same address and port, --per-host 1: the server never sees more
    than one connection at a time (two at most, should the next connect reach it before it
    read the previous close); without the bound all four would be open at once."""
    server = Server("hold")
    try:
        options = ProbeOptions(
            endpoints=[f"127.0.0.1:{server.port}"] * 4, format="json", timeout=0.3, retries=0,
            per_host=1,
        )  # fmt: skip
        out = io.StringIO()
        assert run_probe(options, out, io.StringIO()) == 1
        doc = json.loads(out.getvalue())
        assert [_statuses(doc, i)["tls.version"] for i in range(4)] == ["FAIL"] * 4
        assert 1 <= server.max_active <= 2
    finally:
        server.close()


def test_closed_port_fails_tcp(lab: Lab) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # bound, never listened: the kernel answers a SYN with RST
    options = ProbeOptions(endpoints=[f"127.0.0.1:{port}"], format="json", timeout=1, retries=1)
    out = io.StringIO()
    assert run_probe(options, out, io.StringIO()) == 1
    checks = json.loads(out.getvalue())["targets"][0]["addresses"][0]["checks"]
    assert checks[0]["name"] == "tcp.connect" and checks[0]["status"] == "FAIL"
    assert checks[0]["evidence"] == {"kind": "refused", "attempts": 2}


def test_tls_version_the_local_library_cannot_offer_is_untestable() -> None:
    """OpenSSL 3 has no SSLv3: no ClientHello, a reason instead (so UNTESTABLE, never PASS);
    TLS 1.0 needs @SECLEVEL=0 but is offered here when the build has it."""
    hello, reason = client_hello("ssl3", SNI)
    assert hello is None and reason
    hello, reason = client_hello("1.2", SNI)
    assert hello is not None and hello[0] == 22 and hello[9:11] == b"\x03\x03"


# --- CLI -------------------------------------------------------------------------------------


def test_cli_text_and_junit(lab: Lab) -> None:
    runner = CliRunner()
    args = ["probe", "--endpoint", lab.endpoint("good"), "--endpoint", lab.endpoint("tls12"),
            "--sni", SNI, "--ca-bundle", str(lab.bundle), "--timeout", "2"]  # fmt: skip
    text = runner.invoke(main, args)
    assert text.exit_code == 1
    assert "FAIL       tls.version: negotiated TLSv1.2" in text.stdout
    junit = runner.invoke(main, [*args, "--format", "junit"])
    assert junit.exit_code == 1
    root = ET.fromstring(junit.stdout)  # noqa: S314 (our own output)
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "2"]  # tls.version, tls.refuse-1.2
    assert root.get("tests") == str(2 * len(PASS_ALL))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "api.vendor.example:99999"], "expected a port from 1 to 65535"),
        (["--endpoint", "2001:db8::1:443"], "[2001:db8::1]:443"),
        (["--endpoint", "bad_name:443"], "expected a DNS hostname"),
        ([], "expected a DEPLOYMENT file, --endpoint or --egress"),
        (["--endpoint", "127.0.0.1:1", "--ca-bundle", "/nonexistent/ca.pem"], "cannot read"),
        (["--egress", "127.0.0.1", "--ports", "22,x"], "expected ports 1-65535"),
        (["--endpoint", "127.0.0.1:443", "--sni", "bad name"], "--sni bad name: expected"),
        (["--endpoint", "127.0.0.1:443", "--timeout", "0"], "--timeout: expected a positive"),
    ],
)
def test_cli_invalid_input_exits_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["probe", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_ca_bundle_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    result = CliRunner().invoke(
        main, ["probe", "--endpoint", "127.0.0.1:1", "--ca-bundle", str(bad)]
    )
    assert result.exit_code == 2
    assert f"{bad}:1: expected PEM certificates" in result.output


# --- DNS -------------------------------------------------------------------------------------


class DnsServer:
    """A UDP DNS server on 127.0.0.1 answering from ``zone`` ({name: {"A": [...], ...}}) with
    dnspython's message codec; unknown names get NXDOMAIN (RFC 1035 4.1.1 RCODE 3)."""

    def __init__(self, zone: dict[str, dict[str, list[str]]], ignore: tuple[str, ...] = ()) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset

        self.zone = zone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    data, peer = self.sock.recvfrom(4096)
                except (TimeoutError, OSError):
                    continue
                query = dns.message.from_wire(data)
                reply = dns.message.make_response(query)
                question = query.question[0]
                name = question.name.to_text().rstrip(".")
                rdtype = dns.rdatatype.to_text(question.rdtype)
                if rdtype in ignore:  # never answered, as by a broken middlebox
                    continue
                if name not in self.zone:
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                else:
                    values = self.zone[name].get(rdtype, [])
                    if values:
                        reply.answer.append(
                            dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values)
                        )
                self.sock.sendto(reply.to_wire(), peer)

        import dns.rdatatype

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer(
        {
            # two A records (only 127.0.0.1 has a server) and one AAAA record
            "api.vendor.example": {"A": ["127.0.0.1", "127.0.0.2"], "AAAA": ["::1"]},
            "v4only.vendor.example": {"A": ["127.0.0.1"]},
            "empty.vendor.example": {},
        }
    )
    yield server
    server.close()


def test_dns_every_record_is_probed(lab: Lab, dns_server: DnsServer) -> None:
    """Both A records and the AAAA record are listed and each address is probed on its own:
    127.0.0.1 has the good server, 127.0.0.2 and ::1 refuse (nothing listens there)."""
    port = lab.servers["good"].port
    options = ProbeOptions(
        endpoints=[f"{SNI}:{port}"], ca_bundle=lab.bundle, format="json", timeout=1,
        retries=0, resolvers=[f"127.0.0.1:{dns_server.port}"],
    )  # fmt: skip
    out = io.StringIO()
    code = run_probe(options, out, io.StringIO())
    target = json.loads(out.getvalue())["targets"][0]
    (dns_check,) = target["checks"]
    assert dns_check["status"] == "PASS"
    records = dns_check["evidence"]["records"]
    assert {k: sorted(v) for k, v in records.items()} == {
        "A": ["127.0.0.1", "127.0.0.2"],
        "AAAA": ["::1"],
    }
    assert dns_check["evidence"]["resolver"] == f"127.0.0.1:{dns_server.port} (--resolver)"
    by_address = {a["address"]: {c["name"]: c for c in a["checks"]} for a in target["addresses"]}
    assert sorted(by_address) == ["127.0.0.1", "127.0.0.2", "::1"]
    assert by_address["127.0.0.1"]["tls.version"]["status"] == "PASS"
    assert by_address["127.0.0.2"]["tcp.connect"]["evidence"]["kind"] == "refused"
    # the server listens on 127.0.0.1 only: ::1 refuses (or, without IPv6 on lo, errors)
    assert by_address["::1"]["tcp.connect"]["status"] in ("FAIL", "ERROR")
    assert code == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.vendor.example", "NXDOMAIN"),
        ("empty.vendor.example", "has no A or AAAA record"),
    ],
)
def test_dns_failures_are_named(dns_server: DnsServer, name: str, message: str) -> None:
    options = ProbeOptions(
        endpoints=[f"{name}:443"], format="json", timeout=1,
        resolvers=[f"127.0.0.1:{dns_server.port}"],
    )  # fmt: skip
    out = io.StringIO()
    assert run_probe(options, out, io.StringIO()) == 1
    target = json.loads(out.getvalue())["targets"][0]
    assert target["addresses"] == []
    assert target["checks"][0]["status"] == "FAIL"
    assert message in target["checks"][0]["message"]


def test_dns_resolver_without_answer_is_an_error() -> None:
    """A resolver that never answers: ERROR (no evidence either way), exit 3."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        options = ProbeOptions(
            endpoints=["api.vendor.example:443"], format="json", timeout=0.5,
            resolvers=[f"127.0.0.1:{silent.getsockname()[1]}"],
        )  # fmt: skip
        out = io.StringIO()
        assert run_probe(options, out, io.StringIO()) == 3
        check = json.loads(out.getvalue())["targets"][0]["checks"][0]
        assert check["status"] == "ERROR" and "timeout" in check["message"]
    finally:
        silent.close()


def test_profile_endpoints_are_probed(lab: Lab, dns_server: DnsServer, tmp_path: Path) -> None:
    """``netguard probe DEPLOYMENT``: the profile's endpoint (v4only.vendor.example, A
    127.0.0.1 only, on the both-versions server's port), its families (IPv4 only) and its
    ``tls.min_version: "1.2"`` (so TLS 1.2 may be accepted; 1.1 and 1.0 must be refused)."""
    import yaml

    base = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "examples/public-https/deployment.yaml").read_text()
    )
    base["families"] = ["ipv4"]
    base["tls"] = {"min_version": "1.2"}
    base["vendor"]["endpoints"] = [
        {"name": "api", "host": "v4only.vendor.example", "port": lab.servers["both"].port}
    ]
    profile = tmp_path / "deployment.yaml"
    profile.write_text(yaml.safe_dump(base, sort_keys=False))
    result = CliRunner().invoke(
        main,
        ["probe", str(profile), "--sni", SNI, "--ca-bundle", str(lab.bundle), "--format", "json",
         "--resolver", f"127.0.0.1:{dns_server.port}", "--timeout", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (target,) = doc["targets"]
    assert (target["name"], target["host"], target["min_tls"]) == (
        "api", "v4only.vendor.example", "1.2",
    )  # fmt: skip
    assert target["checks"][0]["evidence"]["records"] == {"A": ["127.0.0.1"]}  # no AAAA asked
    statuses = _statuses(doc)
    assert statuses["tls.version"] == "PASS"
    assert "tls.refuse-1.2" not in statuses
    assert statuses["tls.refuse-1.1"] == statuses["tls.refuse-1.0"] == "PASS"


def _run_in_pty(args: list[str]) -> tuple[int, str]:
    """Run ``python -m netguard.cli ARGS`` with stdout and stderr on a pseudo-terminal."""
    import os
    import pty
    import select
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "netguard.cli", *args], stdout=slave, stderr=slave,
        stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(30), b"".join(chunks).decode(errors="replace")


def test_progress_bar_only_on_a_terminal(lab: Lab) -> None:
    """On a terminal the rich progress bar ("probing") is drawn; with --format json it is not,
    and it never is when output is captured (every other test)."""
    args = ["probe", "--endpoint", lab.endpoint("good"), "--endpoint", lab.endpoint("both"),
            "--sni", SNI, "--ca-bundle", str(lab.bundle), "--timeout", "2"]  # fmt: skip
    code, text = _run_in_pty(args)
    assert code == 1  # the both-versions server accepts TLS 1.2
    assert "probing" in text
    code, text = _run_in_pty([*args, "--format", "json"])
    assert code == 1
    assert "probing" not in text


@pytest.mark.parametrize(
    ("sans", "name", "expected"),
    [
        # RFC 6125 6.4.1: case-insensitive; IDNA names compared as A-labels (RFC 5891)
        (("API.Vendor.Example",), "api.vendor.example", True),
        (("xn--bcher-kva.example",), "bücher.example", True),
        (("xn--bcher-kva.example",), "xn--bcher-kva.example", True),
        (("bucher.example",), "bücher.example", False),
        # RFC 6125 6.4.3: a wildcard is the whole left-most label and covers exactly one label
        (("*.vendor.example",), "api.vendor.example", True),
        (("*.vendor.example",), "a.b.vendor.example", False),
        (("*.vendor.example",), "vendor.example", False),
        (("*.example",), "vendor.example", False),  # no wildcard directly under a TLD-like label
        (("api.vendor.example",), "api.vendor.example.evil.example", False),
    ],
)
def test_hostname_matching(sans: tuple[str, ...], name: str, expected: bool) -> None:
    from netguard.probe.certs import hostname_matches

    leaf = _make("leaf", None, ca=False, sans=sans)
    assert hostname_matches(leaf.cert, name)[0] is expected


def test_hostname_ip_literal_matches_ip_san() -> None:
    import ipaddress

    from netguard.probe.certs import hostname_matches

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("ip"))
        .issuer_name(_name("ip"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    assert hostname_matches(cert, "192.0.2.7") == (True, ["192.0.2.7"])
    assert hostname_matches(cert, "192.0.2.8")[0] is False


def test_mozilla_modern_profile(lab: Lab) -> None:
    """Mozilla Server Side TLS 5.6 "modern": the good server (TLS 1.3 only, AES-GCM suite,
    x25519, ECDSA P-256, 90-day leaf) holds every item; the both-versions server accepts
    TLS 1.2; the rsa1024 server has an RSA certificate."""
    _, doc, _ = _probe(lab, "good", "both", "rsa1024", mozilla_modern=True)
    results = {}
    for i, name in enumerate(("good", "both", "rsa1024")):
        (address,) = doc["targets"][i]["addresses"]  # type: ignore[index]
        (modern,) = [c for c in address["checks"] if c["name"] == "mozilla.modern"]
        results[name] = modern
    assert results["good"]["status"] == "PASS", results["good"]
    assert "Server Side TLS 5.6" in results["good"]["message"]
    assert results["both"]["status"] == "FAIL"
    assert results["both"]["message"].endswith("fails protocols: TLS 1.3 only")
    assert results["rsa1024"]["status"] == "FAIL"
    assert results["rsa1024"]["message"].endswith("fails certificate type ECDSA P-256")


# --- regressions found by a fresh tester -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # int() takes Unicode digits: "٤٤٣" is 443 to Python, not to a user reading the report
        (["--endpoint", "127.0.0.1:\u0664\u0664\u0663"], "expected a port from 1 to 65535"),
        (["--endpoint", "127.0.0.1:\u00b2"], "expected a port from 1 to 65535"),  # isdigit only
        (["--egress", "127.0.0.1", "--ports", "443,\u00b2"], "expected ports 1-65535"),
        (["--egress", "127.0.0.1", "--allow", "\u0664\u0664\u0663"], "expected ports 1-65535"),
        # brackets are for IPv6 literals only (RFC 3986 3.2.2), and must close
        (["--endpoint", "[127.0.0.1]:443"], "only an IPv6 address goes in brackets"),
        (["--endpoint", "[api.vendor.example]:443"], "only an IPv6 address goes in brackets"),
        (["--endpoint", "[2001:db8::1"], "expected [IPv6]:PORT"),
        # NaN compares false with everything, inf never expires: neither is a deadline
        (["--endpoint", "127.0.0.1:443", "--timeout", "nan"], "expected a positive number"),
        (["--endpoint", "127.0.0.1:443", "--timeout", "inf"], "expected a positive number"),
        # a request target is "/" then visible ASCII (RFC 9112 3.2.1): no header injection
        (["--endpoint", "127.0.0.1:443", "--http-path", "healthz"], "--http-path 'healthz'"),
        (["--endpoint", "127.0.0.1:443", "--http-path", "/a\r\nX: y"], "expected a path"),
        (["--endpoint", "127.0.0.1:443", "--http-path", "/caf\u00e9"], "percent-encode"),
        # --resolver is IP[:PORT] and is checked before anything is sent
        (["--endpoint", "127.0.0.1:443", "--resolver", "garbage"], "resolver's IP address"),
        (["--endpoint", "127.0.0.1:443", "--resolver", "ns.vendor.example"], "IP address"),
        (["--endpoint", "127.0.0.1:443", "--resolver", "192.0.2.53:99999"], "1 to 65535"),
        (["--endpoint", "127.0.0.1:443", "--resolver", ""], "resolver's IP address"),
        # --egress is a host, not a host:port or an empty string
        (["--egress", "192.0.2.5:443"], "--egress 192.0.2.5:443: expected a DNS hostname"),
        (["--egress", ""], "expected a DNS hostname"),
        (["--egress", "[192.0.2.5]"], "only an IPv6 address goes in brackets"),
    ],
)
def test_cli_more_invalid_input_exits_2(args: list[str], message: str) -> None:
    """Each of these once crashed (exit 3 or a traceback), was sent to a server or resolver
    as is, or was silently reinterpreted; each is invalid input: exit 2, named, nothing sent."""
    result = CliRunner().invoke(main, ["probe", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_ipv6_endpoint_name_and_http_host() -> None:
    """An IPv6 literal is written in brackets in the endpoint name and in the Host header
    (RFC 3986 3.2.2); the Host header carries the port unless it is https's 443 (RFC 9110
    7.2, 4.2.2)."""
    from netguard.probe.run import _authority, parse_endpoint

    target = parse_endpoint("[2001:db8::1]:8443", None, "1.3")
    assert (target.name, target.host, target.port, target.sni) == (
        "[2001:db8::1]:8443", "2001:db8::1", 8443, None,
    )  # fmt: skip
    assert parse_endpoint("[2001:db8::1]", None, "1.3").name == "[2001:db8::1]:443"
    assert _authority("2001:db8::1", 443) == "[2001:db8::1]"
    assert _authority("2001:db8::1", 8443) == "[2001:db8::1]:8443"
    assert _authority(SNI, 443) == SNI


def test_http_host_header_names_the_port(lab: Lab) -> None:
    """The GET goes to an ephemeral port, so the Host header is ``SNI:PORT`` (RFC 9110 7.2)."""
    server = lab.servers["good"]
    before = len(server.requests)
    code, _, _ = _probe(lab, "good", http_path="/healthz")
    assert code == 0
    (request,) = server.requests[before:]
    assert f"\r\nHost: {SNI}:{server.port}\r\n".encode() in request
    assert request.startswith(b"GET /healthz HTTP/1.1\r\n")


def test_http_timeout_keeps_the_tls_verdicts(lab: Lab) -> None:
    """A server that completes a TLS 1.3 handshake and never answers the GET: the handshake
    evidence stands (tls.version PASS, certificate checks run, refusals probed on their own
    connections) and only http.status is an ERROR (no answer either way), so exit 3. It was
    reported as "tls.version FAIL: no complete TLS handshake" with the rest UNTESTABLE."""
    mute = Server("tls-mute", lab.servers["good"].ctx)
    try:
        options = ProbeOptions(
            endpoints=[f"127.0.0.1:{mute.port}"], sni=SNI, ca_bundle=lab.bundle,
            format="json", timeout=1.0, retries=0, http_path="/healthz",
        )  # fmt: skip
        out = io.StringIO()
        code = run_probe(options, out, io.StringIO())
    finally:
        mute.close()
    doc = json.loads(out.getvalue())
    statuses = _statuses(doc)
    # the mute server wraps the good server's context (TLS 1.3 only, good chain)
    assert statuses == {**PASS_ALL, "http.status": "ERROR"}
    assert code == 3
    (tcp,) = (c for c in doc["targets"][0]["addresses"][0]["checks"] if c["name"] == "tcp.connect")
    assert tcp["evidence"]["attempts"] == 1  # retries=0: one attempt, an int as on failure


def test_serverhello_of_a_version_never_offered_is_no_refusal() -> None:
    """Offering only TLS 1.2 (or 1.1, 1.0) and getting a ServerHello of TLS 1.3 breaks
    version negotiation (RFC 8446 4.2.1, RFC 5246 E.1): it proves nothing, so ERROR, never a
    PASS "refused"."""
    import asyncio

    from netguard.probe.conn import connect, offer_version

    server = Server("hello13")

    async def offer(version: str) -> tuple[str, str | None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        conn = await connect("127.0.0.1", server.port, deadline, 0)
        try:
            async with asyncio.timeout_at(deadline):
                res = await offer_version(conn, version, SNI)
        finally:
            await conn.close()
        return res.verdict, res.server_version

    try:
        for version in ("1.2", "1.1", "1.0"):
            if client_hello(version, SNI)[0] is None:
                continue  # the local library cannot offer it (UNTESTABLE, tested elsewhere)
            assert asyncio.run(offer(version)) == ("error", "TLSv1.3")
    finally:
        server.close()


def test_each_resolver_keeps_its_own_port(dns_server: DnsServer) -> None:
    """Two ``--resolver``s on different ports: the first (the zone server) answers. All
    queries once went to the last one's port (a silent socket here), so the name timed out."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent_port = silent.getsockname()[1]
    try:
        options = ProbeOptions(
            endpoints=["v4only.vendor.example:1"], format="json", timeout=2, retries=0,
            resolvers=[f"127.0.0.1:{dns_server.port}", f"127.0.0.1:{silent_port}"],
        )  # fmt: skip
        out = io.StringIO()
        run_probe(options, out, io.StringIO())
    finally:
        silent.close()
    check = json.loads(out.getvalue())["targets"][0]["checks"][0]
    assert check["status"] == "PASS", check
    assert check["evidence"]["records"]["A"] == ["127.0.0.1"]
    assert check["evidence"]["resolver"] == (
        f"127.0.0.1:{dns_server.port}, 127.0.0.1:{silent_port} (--resolver)"
    )


def _profile_with_exception(tmp_path: Path, port: int) -> Path:
    """The public-https example plus a TCP egress exception to 192.0.2.5/32 on ``port``."""
    import yaml

    base = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "examples/public-https/deployment.yaml").read_text()
    )
    base["exceptions"].append(
        {"name": "bastion", "reason": "ssh to the bastion", "ticket": "SEC-9",
         "expires": dt.date(2027, 6, 30), "direction": "egress", "protocol": "tcp",
         "ports": [port], "peers": ["192.0.2.5/32"]}
    )  # fmt: skip
    profile = tmp_path / "deployment.yaml"
    profile.write_text(yaml.safe_dump(base, sort_keys=False))
    return profile


def test_profile_allows_a_port_only_to_its_rules_peers(tmp_path: Path) -> None:
    """Which ports may get out depends on the destination, as in the generated firewall: the
    example profile allows TCP 443 to its api_ranges (198.51.100.0/25, 2001:db8:100::/48),
    TCP 53 to its DNS resolvers (192.0.2.53, 2001:db8:10::53) and, here, an exception TCP 22
    to 192.0.2.5 only. Every port of every rule was once allowed to any target."""
    from netguard.probe.run import Allowance
    from netguard.profiles import load_deployment

    allowance = Allowance.from_profile(
        load_deployment(_profile_with_exception(tmp_path, 22)).profile
    )
    assert allowance.for_address("198.51.100.5")[0] == {443}
    assert allowance.for_address("2001:db8:100::5")[0] == {443}
    assert allowance.for_address("198.51.100.200")[0] == set()  # outside the /25 and /26
    assert allowance.for_address("192.0.2.53")[0] == {53}
    assert allowance.for_address("192.0.2.5")[0] == {22}
    assert allowance.for_address("203.0.113.9") == (set(), ())


def test_egress_exception_port_to_another_target_fails(tmp_path: Path) -> None:
    """End to end: the exception allows port P to 192.0.2.5 only; P gets through to
    127.0.0.1 (a listener), so it FAILs (it was PASS "allowed"). The port listed twice is
    probed once."""
    listener = Server("hold")
    try:
        port = listener.port
        profile = _profile_with_exception(tmp_path, port)
        result = CliRunner().invoke(
            main,
            ["probe", str(profile), "--egress", "127.0.0.1", "--ports", f"{port},{port}",
             "--format", "json", "--timeout", "2"],
        )  # fmt: skip
    finally:
        listener.close()
    assert result.exit_code == 1, result.output
    (egress,) = json.loads(result.stdout)["egress"]
    assert [(p["port"], p["state"], p["allowed"]) for p in egress["ports"]] == [
        (port, "open", False)
    ]
    assert [c["status"] for c in egress["checks"]] == ["FAIL"]


def test_server_chosen_text_cannot_drive_the_terminal_or_break_junit(
    lab: Lab, tmp_path: Path
) -> None:
    """A server picks its certificate's subject and SANs and its HTTP status line; control
    characters there (ESC sequences, NUL, BEL, BIDI override) once went raw into the text
    report (driving the reader's terminal) and into the JUnit XML (ill-formed: XML 1.0
    section 2.2 allows no NUL or ESC). They are escaped in both; JSON keeps the raw text (its
    own escaping is lossless, RFC 8259 section 7)."""
    cn = "EVIL\x1b[31mRED\x07\u202e"
    hostile = _make(cn, lab.inter, ca=False, sans=(SNI, "x\x00y.vendor.example"))
    ctx = _context(tmp_path, "hostile", [hostile.cert, lab.inter.cert], hostile.key,
                   ("TLSv1_3", "TLSv1_3"))  # fmt: skip
    server = Server("tls", ctx)
    server.response = b"HTTP/1.1 200 OK\x1b[2J\x00\r\nConnection: close\r\n\r\n"
    outputs = {}
    try:
        for fmt in ("text", "junit", "json"):
            result = CliRunner().invoke(
                main,
                ["probe", "--endpoint", f"127.0.0.1:{server.port}", "--sni", SNI,
                 "--ca-bundle", str(lab.bundle), "--http-path", "/", "--format", fmt],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            outputs[fmt] = result.stdout
    finally:
        server.close()
    for fmt in ("text", "junit"):
        assert not any(ch in outputs[fmt] for ch in "\x1b\x00\x07\u202e"), fmt
    assert "CN=EVIL\\x1b[31mRED\\x07\\u202e" in outputs["text"]
    assert "HTTP/1.1 200 OK\\x1b[2J\\x00 (expected 200)" in outputs["text"]
    ET.fromstring(outputs["junit"])  # noqa: S314 (our own output) -- well-formed
    (address,) = json.loads(outputs["json"])["targets"][0]["addresses"]
    checks = {c["name"]: c for c in address["checks"]}
    assert checks["cert.leaf"]["evidence"]["subject"] == f"CN={cn}"
    assert "x\x00y.vendor.example" in checks["cert.hostname"]["evidence"]["san"]


def test_http_status_code_is_three_ascii_digits(lab: Lab) -> None:
    """RFC 9112 4: status-code = 3DIGIT. "HTTP/1.1 ٢٠٠ OK" (Arabic-Indic digits, which
    int() reads as 200) is no status line, so the expected 200 is not met: FAIL."""
    server = Server("tls", lab.servers["good"].ctx)
    server.response = "HTTP/1.1 \u0662\u0660\u0660 OK\r\n\r\n".encode()
    try:
        options = ProbeOptions(
            endpoints=[f"127.0.0.1:{server.port}"], sni=SNI, ca_bundle=lab.bundle,
            format="json", timeout=2.0, retries=0, http_path="/",
        )  # fmt: skip
        out = io.StringIO()
        code = run_probe(options, out, io.StringIO())
    finally:
        server.close()
    assert _statuses(json.loads(out.getvalue()))["http.status"] == "FAIL"
    assert code == 1


def test_sni_is_sent_without_a_trailing_dot() -> None:
    """RFC 6066 section 3: the server name is sent "without a trailing dot" (Python's ssl
    would send it as given); the name itself may be written fully qualified."""
    from netguard.probe.run import parse_endpoint

    assert parse_endpoint(f"{SNI}.:8443", None, "1.3").sni == SNI
    assert parse_endpoint("192.0.2.7:443", f"{SNI}.", "1.3").sni == SNI
    assert parse_endpoint("192.0.2.7:443", None, "1.3").sni is None  # an IP literal sends none


def test_chain_is_judged_past_a_malformed_san(lab: Lab) -> None:
    """The chain is validated for a name the leaf holds, so that a hostname mismatch is
    reported once (cert.hostname). A first SAN the verifier refuses as a name ("*.*.example":
    a wildcard only as the whole left-most label, RFC 6125 6.4.3) once stopped the validation
    with an ERROR; the next SAN serves, and the chain (leaf, intermediate, root in the
    store) verifies."""
    from cryptography.hazmat.primitives import serialization as ser

    from netguard.probe.certs import TrustStore, check_certificates

    leaf = _make(SNI, lab.inter, ca=False, sans=("*.*.example", "other.vendor.example"))
    checks = check_certificates(
        [c.public_bytes(ser.Encoding.DER) for c in (leaf.cert, lab.inter.cert)],
        SNI,
        TrustStore((lab.root.cert,), "test root"),
        now=NOW,
        warn_days=30,
        fail_days=7,
    )
    statuses = {c.name: c.status.value for c in checks}
    assert statuses["cert.chain"] == "PASS"
    assert statuses["cert.hostname"] == "FAIL"


def test_dns_record_type_without_answer_is_named() -> None:
    """A resolver that answers A and never AAAA: the A address is probed (PASS), but the
    check says AAAA got no answer and carries a warning: IPv6 addresses may exist unprobed.
    It used to read as a plain "1 address(es)" PASS."""
    server = DnsServer({"v4only.vendor.example": {"A": ["127.0.0.1"]}}, ignore=("AAAA",))
    try:
        options = ProbeOptions(
            endpoints=["v4only.vendor.example:1"], format="json", timeout=1, retries=0,
            resolvers=[f"127.0.0.1:{server.port}"],
        )  # fmt: skip
        out = io.StringIO()
        run_probe(options, out, io.StringIO())
    finally:
        server.close()
    check = json.loads(out.getvalue())["targets"][0]["checks"][0]
    assert (check["status"], check["warning"]) == ("PASS", True)
    assert "no answer for AAAA" in check["message"]
    assert check["evidence"]["records"] == {"A": ["127.0.0.1"], "AAAA": []}


def test_mozilla_modern_is_reported_on_every_address(lab: Lab) -> None:
    """--mozilla-modern asks about every address; where no TLS handshake happened (the
    reset server) it is UNTESTABLE rather than silently missing from the report."""
    code, doc, _ = _probe(lab, "reset", mozilla_modern=True)
    assert _statuses(doc)["mozilla.modern"] == "UNTESTABLE"
    assert code == 1  # tls.version FAILs on the reset, as without the option


def test_oversized_handshake_message_is_refused_at_once() -> None:
    """A handshake header may announce up to 16 MiB (24-bit length, RFC 8446 4). A server
    that announces that and streams fragments used to be buffered (quadratically) until the
    deadline; the parser now gives up at the header, so the refusal probe is over at once
    (ERROR, never a refusal)."""
    from netguard.probe.wire import MAX_HANDSHAKE_MESSAGE, ServerFlight

    flight = ServerFlight()
    header = b"\x02\xff\xff\xff" + bytes(16380)  # ServerHello of 16,777,215 bytes announced
    flight.feed(b"\x16\x03\x03" + struct.pack("!H", len(header)) + header)
    assert flight.done and flight.hello is None and flight.alert is None
    assert flight.garbage is not None and "16777215 bytes" in flight.garbage
    assert MAX_HANDSHAKE_MESSAGE < 0xFFFFFF
    # a legitimate message just under the limit is still waited for, not refused
    ok = ServerFlight()
    ok.feed(b"\x16\x03\x03\x00\x04\x0b" + (200 * 1024).to_bytes(3, "big"))
    assert not ok.done


def test_bad_certificate_in_ca_bundle_is_named_by_its_line(lab: Lab, tmp_path: Path) -> None:
    """A bundle of a good root (lines 1-N) and then a block that does not parse: the error
    names the line where the bad block begins (N + 1), not line 1."""
    good = _pem(lab.root.cert)
    bad_line = good.count(b"\n") + 1
    bundle = tmp_path / "bundle.pem"
    garbage = b"-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"
    bundle.write_bytes(good + garbage)
    result = CliRunner().invoke(
        main, ["probe", "--endpoint", "127.0.0.1:1", "--ca-bundle", str(bundle)]
    )
    assert result.exit_code == 2
    assert f"{bundle}:{bad_line}: this PEM certificate does not parse" in result.output


def test_intermediate_as_trust_anchor_is_no_missing_intermediate(lab: Lab) -> None:
    """--ca-bundle may hold the intermediate itself (RFC 5280 6.1: any CA certificate can be
    the trust anchor). The server sends leaf + intermediate: the chain reaches the store, so
    nothing is missing. This was "missing intermediate" because only the last certificate's
    issuer was looked up in the store."""
    from cryptography.hazmat.primitives import serialization as ser

    from netguard.probe.certs import TrustStore, check_certificates

    leaf = _make(SNI, lab.inter, ca=False, sans=(SNI,))
    checks = check_certificates(
        [c.public_bytes(ser.Encoding.DER) for c in (leaf.cert, lab.inter.cert)],
        SNI,
        TrustStore((lab.inter.cert,), "intermediate only"),
        now=NOW,
        warn_days=30,
        fail_days=7,
    )
    statuses = {c.name: c.status.value for c in checks}
    assert statuses["cert.intermediates"] == "PASS"
    assert statuses["cert.chain"] == "PASS"


def test_tls12_with_only_a_legacy_suite_is_not_refused(lab: Lab, tmp_path: Path) -> None:
    """A server speaking TLS 1.3 and TLS 1.2, the latter with ECDHE-ECDSA-AES128-SHA only
    (a common legacy configuration). The TLS 1.2 probe once offered Python's default suites
    (no SHA-1 MAC suites), got alert 40 handshake_failure, and reported "TLS 1.2 refused":
    PASS for a server that accepts TLS 1.2. Offering every suite, it sees the ServerHello."""
    leaf = _make(SNI, lab.inter, ca=False, sans=(SNI,))
    ctx = _context(tmp_path, "legacy", [leaf.cert, lab.inter.cert], leaf.key,
                   ("TLSv1_2", "TLSv1_3"))  # fmt: skip
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
    server = Server("tls", ctx)
    try:
        # independent oracle: a plain ssl client offering that suite gets TLS 1.2
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        client.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=SNI) as tls,
        ):
            assert tls.version() == "TLSv1.2"
        options = ProbeOptions(
            endpoints=[f"127.0.0.1:{server.port}"], sni=SNI, ca_bundle=lab.bundle,
            format="json", timeout=2.0, retries=0,
        )  # fmt: skip
        out = io.StringIO()
        code = run_probe(options, out, io.StringIO())
    finally:
        server.close()
    statuses = _statuses(json.loads(out.getvalue()))
    assert statuses["tls.version"] == "PASS"  # TLS 1.3 when both are offered
    assert statuses["tls.refuse-1.2"] == "FAIL"
    assert code == 1
