"""Benchmark ``netguard probe`` next to sslyze on 100 local TLS 1.3 endpoints, in one run.

Setup: a test PKI made with ``cryptography`` (a root CA and one EC P-256 leaf for
``api.vendor.example`` per endpoint); a server process (this script with ``--serve``) listens on
``--endpoints`` ports of 127.0.0.1 (default 100), each a TLS server that accepts
TLS 1.3 only (so TLS 1.2 must be refused).

The same question is asked of both tools: is TLS 1.3 accepted, is TLS 1.2 refused, and what is
the certificate (subject, serial, notAfter, SHA-256 fingerprint, key size, hostname match,
chain trusted by the given CA file)?

- netguard: ``netguard probe --endpoint 127.0.0.1:P ... --sni api.vendor.example
  --ca-bundle ca.pem --format json``; it also proves TLS 1.1 and 1.0 refused (work sslyze is
  not asked to do here), those checks are not compared;
- sslyze: ``sslyze --tlsv1_3 --tlsv1_2 --certinfo --certinfo_ca_file ca.pem --json_out F
  api.vendor.example:P{127.0.0.1} ...`` (the ``{ip}`` form sends SNI api.vendor.example to
  127.0.0.1).

Both are timed as whole processes (wall time, median of ``--repeats`` runs, alternated), and
their verdicts are compared endpoint by endpoint. Exit status: 0 when every verdict agrees,
1 when any differs, 3 when sslyze is missing (``--sslyze PATH`` or ``sslyze`` on PATH;
``pip install '.[bench]'``, ideally in its own virtualenv since sslyze pins cryptography).

Run from the repository root: ``python bench/bench_probe.py [--sslyze PATH] [--markdown F]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SNI = "api.vendor.example"
ROOT = Path(__file__).resolve().parents[1]


def make_pki(tmp: Path) -> tuple[Path, Path, Path]:
    """Root CA (ca.pem) and a leaf for SNI signed by it (leaf.pem with the root, leaf.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("Bench Root CA"))
        .issuer_name(name("Bench Root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(SNI))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SNI)]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(root.public_bytes(pem))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"


def serve(cert: str, key: str, count: int) -> None:
    """Server process: ``count`` TLS 1.3-only listeners on 127.0.0.1; prints the ports as one
    JSON line, serves until stdin closes. One selector thread accepts; a pool of 16 threads
    runs the blocking handshakes (``SSLContext.wrap_socket``), which send their alerts
    (an asyncio TLS server closes a failed handshake without sending the alert, so a client
    that wants proof of refusal sees none)."""
    import selectors
    import socket
    import ssl
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
        except (OSError, ValueError):
            conn.close()

    sel = selectors.DefaultSelector()
    ports = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(256)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        ports.append(s.getsockname()[1])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print(json.dumps(ports), flush=True)
    with ThreadPoolExecutor(16) as pool:
        while not stop.is_set():
            for k, _ in sel.select(0.2):
                try:
                    conn, _ = k.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                conn.setblocking(True)
                pool.submit(handle, conn)


def timed(argv: list[str], timeout: float = 600) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - start, proc


def netguard_verdicts(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for t in doc["targets"]:
        checks = {c["name"]: c for c in t["addresses"][0]["checks"]}
        leaf = checks["cert.leaf"]["evidence"]
        out[t["port"]] = {
            "tls13_accepted": checks["tls.version"]["evidence"].get("version") == "TLSv1.3",
            "tls12_refused": checks["tls.refuse-1.2"]["status"] == "PASS",
            "subject": leaf["subject"],
            "serial": int(leaf["serial"], 16),
            "not_after": dt.datetime.fromisoformat(leaf["not_after"]).strftime("%Y-%m-%dT%H:%M:%S"),
            "sha256": leaf["sha256"],
            "key_bits": checks["cert.key"]["evidence"]["bits"],
            # sslyze 6 validates the path and the hostname together: compare the conjunction
            "trusted_for_sni": checks["cert.chain"]["status"] == "PASS"
            and checks["cert.hostname"]["status"] == "PASS",
        }
    return out


def sslyze_verdicts(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r in doc["server_scan_results"]:
        port = r["server_location"]["port"]
        res = r["scan_result"]
        if r.get("scan_status") != "COMPLETED" or res is None:
            out[port] = {"error": r.get("connectivity_error_trace") or r.get("scan_status")}
            continue
        t13 = res["tls_1_3_cipher_suites"]["result"]
        t12 = res["tls_1_2_cipher_suites"]["result"]
        dep = res["certificate_info"]["result"]["certificate_deployments"][0]
        leaf = dep["received_certificate_chain"][0]
        trusted = any(
            v.get("was_validation_successful")
            for v in dep["path_validation_results"]
            if v["trust_store"]["name"] == "Supplied CA file"
        )
        out[port] = {
            "tls13_accepted": bool(t13["accepted_cipher_suites"]),
            "tls12_refused": not t12["accepted_cipher_suites"],
            "subject": leaf["subject"]["rfc4514_string"],
            "serial": int(leaf["serial_number"]),
            "not_after": leaf["not_valid_after"][:19],
            "sha256": base64.b64decode(leaf["fingerprint_sha256"]).hex(),
            "key_bits": leaf["public_key"]["key_size"],
            "trusted_for_sni": trusted,
        }
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(x.split()[1]) // 1024
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem = 0
    return (
        f"nproc {os.cpu_count()}, {cpu}, {mem / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sslyze", default=shutil.which("sslyze"))
    parser.add_argument(
        "--markdown",
        default=str(ROOT / "bench" / "results-probe.md"),
        help="results file ('' for none)",
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("CERT", "KEY", "COUNT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if not args.sslyze or not Path(args.sslyze).exists():
        print("sslyze not found: pip install sslyze (or --sslyze PATH)", file=sys.stderr)
        return 3
    version = subprocess.run(
        [str(Path(args.sslyze).parent / "python"), "-c",
         "import importlib.metadata as m; print(m.version('sslyze'))"],
        capture_output=True, text=True, check=False,
    ).stdout.strip() or "unknown"  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-probe-"))
    ca, cert, key = make_pki(tmp)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(cert), str(key), str(args.endpoints)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        netguard = [sys.executable, "-m", "netguard.cli", "probe", "--sni", SNI,
                    "--ca-bundle", str(ca), "--format", "json"]  # fmt: skip
        for p in ports:
            netguard += ["--endpoint", f"127.0.0.1:{p}"]
        sslyze_out = tmp / "sslyze.json"
        sslyze = [args.sslyze, "--tlsv1_3", "--tlsv1_2", "--certinfo", "--certinfo_ca_file",
                  str(ca), "--json_out", str(sslyze_out), "--quiet"]  # fmt: skip
        sslyze += [f"{SNI}:{p}{{127.0.0.1}}" for p in ports]
        env_cmd = {"PYTHONPATH": str(ROOT)}
        os.environ.update(env_cmd)
        times: dict[str, list[float]] = {"netguard": [], "sslyze": []}
        ng_doc: dict[str, Any] = {}
        ss_doc: dict[str, Any] = {}
        for _ in range(args.repeats):
            t, proc = timed(netguard)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
            ng_doc = json.loads(proc.stdout)
            times["netguard"].append(t)
            t, proc = timed(sslyze)
            ss_doc = json.loads(sslyze_out.read_text())
            times["sslyze"].append(t)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    ours, theirs = netguard_verdicts(ng_doc), sslyze_verdicts(ss_doc)
    differ = [
        (p, k, ours.get(p, {}).get(k), theirs.get(p, {}).get(k))
        for p in ports
        for k in sorted(set(ours.get(p, {})) | set(theirs.get(p, {})))
        if ours.get(p, {}).get(k) != theirs.get(p, {}).get(k)
    ]
    ng, ss = statistics.median(times["netguard"]), statistics.median(times["sslyze"])
    agree = len(ports) - len({p for p, *_ in differ})
    sample = ours[ports[0]]
    lines = [
        "## probe: 100 local TLS 1.3 endpoints, netguard next to sslyze",
        "",
        f"Date: {dt.date.today().isoformat()}. Machine: {machine()}.",
        f"sslyze {version}; netguard from this checkout; {ng_doc.get('notes', [''])[0]}.",
        "",
        f"Command: `python bench/bench_probe.py --sslyze {args.sslyze}` "
        f"({args.endpoints} endpoints, median of {args.repeats} alternated runs, whole-process "
        "wall time).",
        "",
        "| tool | command | wall time (s) | runs |",
        "|---|---|---:|---|",
        f"| netguard | `netguard probe --endpoint 127.0.0.1:P x{len(ports)} --sni {SNI} "
        f"--ca-bundle ca.pem --format json` | {ng:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times['netguard'])} |",
        f"| sslyze | `sslyze --tlsv1_3 --tlsv1_2 --certinfo --certinfo_ca_file ca.pem "
        f"--json_out F {SNI}:P{{127.0.0.1}} x{len(ports)}` | {ss:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times['sslyze'])} |",
        "",
        f"Ratio: sslyze / netguard = **{ss / ng:.1f}x**.",
        "",
        f"Verdicts compared per endpoint (TLS 1.3 accepted, TLS 1.2 refused, leaf subject, "
        f"serial, notAfter, SHA-256, key bits, chain trusted by ca.pem for the SNI name): "
        f"{agree} of {len(ports)} endpoints agree on every field"
        + (f"; differences: {differ[:10]}" if differ else "")
        + ".",
        "",
        f"Example (both tools): {json.dumps(sample, default=str)}",
        "",
        f"netguard exit code: {ng_doc.get('exit_code')} (counts {ng_doc.get('counts')}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        md = Path(args.markdown)
        marker = "<!-- hand-written below -->"
        old = md.read_text() if md.exists() else ""
        kept = old[old.index(marker) :] if marker in old else ""
        md.write_text(text + ("\n" + kept if kept else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
