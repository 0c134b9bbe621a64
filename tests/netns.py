"""Network-namespace harness for kernel tests: two namespaces, a veth pair, listeners, probes.

The harness builds a small, closed network in which generated firewall files are loaded into the
real Linux packet filter and judged by real TCP connections (DESIGN.md, "Real components in
tests")::

    ngk-<pid>-<n>-cust                              ngk-<pid>-<n>-vend
    +------------------------------+   veth(4)   +----------------------------------+
    | ngc: 192.0.2.10/24 (+.20 .30)| ----------- | ngv: 198.51.100.5 .130 .200      |
    |      2001:db8:10::10/64 ...  |             |      203.0.113.5 .40 .100        |
    |  firewall under test         |             |      2001:db8:{100,102,300,...}  |
    +------------------------------+             +----------------------------------+

- ``ip netns add`` / ``ip -n NS ...`` / ``ip netns exec NS CMD`` (ip-netns(8)) create the
  namespaces and run commands inside; ``ip link add ... type veth peer name ... netns ...``
  (veth(4)) creates the pair directly inside them, so no interface ever appears in the host's
  namespace. Each name carries the test process id and a counter, so parallel runs never share.
- Every address is from the documentation ranges 192.0.2.0/24, 198.51.100.0/24 (RFC 5737),
  203.0.113.0/24 and 2001:db8::/32 (RFC 3849); :class:`NetnsPair` refuses any other. Routes are
  on-link over the veth, there is no default route, so no packet can leave the two namespaces.
- IPv6 addresses are added with ``nodad`` and duplicate address detection is off in both
  namespaces, so addresses are usable at once (ip-address(8)).

Probes report one of :data:`CONNECTED`, :data:`REFUSED` (a TCP RST or ICMP reject came back),
:data:`TIMEOUT` (nothing came back: the SYN or its answer was dropped) or ``"error:<ERRNO>"``.
A listener answers on every address and port a test asks about, so with no firewall every probe
connects (the control that makes a TIMEOUT meaningful).

Gate: :func:`require_kernel` skips a test when it cannot run here (not root, ``ip netns``
unusable, a tool missing) and fails it instead when the environment says ``CI=true``.

Also here, shared by tests/test_kernel_*.py: loading generated files (:func:`load_iptables`,
:func:`load_nftables`), reading ipsets and chain counters back, generating from a profile with
overrides (:func:`write_profile`, :func:`generate`), and the flows that
tests/profiles/kernel/public-https.yaml permits, reasoned by hand (:func:`public_https_cases`).

Everything is bounded: each command has a timeout, each wait a deadline, and
:meth:`NetnsPair.close` kills the listeners and deletes both namespaces even after a failure.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

CONNECTED = "connected"
REFUSED = "refused"
TIMEOUT = "timeout"

#: Timeout of one probe connection in seconds: long enough for ARP/ND and one SYN retransmit
#: (Linux retransmits an unanswered SYN after 1 s), short enough to keep the suite fast.
CONNECT_TIMEOUT = 1.5
#: Upper bound for any single command run by the harness (ip, iptables-restore, nft, ...).
COMMAND_TIMEOUT = 30.0
#: How long a listener may take to report that it is listening.
LISTEN_DEADLINE = 10.0

DOCUMENTATION_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)

_counter = itertools.count()
DAD_OFF = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")


# --- the gate ------------------------------------------------------------------------------


def kernel_unavailable_reason(tools: Iterable[str] = ("ip",)) -> str | None:
    """Why namespace tests cannot run here, or ``None`` when they can.

    Checks: effective uid 0, every command in ``tools`` on PATH, and that a namespace can be
    created and deleted (``ip netns add`` fails in unprivileged containers).
    """
    if os.geteuid() != 0:
        return "kernel tests need root (network namespaces, iptables, nft)"
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        return f"kernel tests need these commands on PATH: {', '.join(sorted(set(missing)))}"
    probe = f"ngk-{os.getpid()}-probe"
    try:
        added = _run(["ip", "netns", "add", probe], check=False)
        if added.returncode != 0:
            return f"'ip netns add' failed: {added.stderr.strip()}"
        deleted = _run(["ip", "netns", "del", probe], check=False)
        if deleted.returncode != 0:
            return f"'ip netns del' failed: {deleted.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"'ip netns' is unusable: {exc}"
    return None


def require_kernel(tools: Iterable[str] = ()) -> None:
    """Skip the calling test when namespace tests cannot run; fail it when ``CI=true``.

    A test that cannot run where it must (CI) is a failure, not a skip (DESIGN.md).
    """
    reason = kernel_unavailable_reason(tools)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


# --- commands ------------------------------------------------------------------------------


def _run(
    argv: Sequence[str],
    *,
    check: bool = True,
    stdin: Path | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with a timeout; with ``check``, raise ``AssertionError`` carrying stderr."""
    if stdin is None:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    else:
        with stdin.open("rb") as fh:
            raw = subprocess.run(list(argv), stdin=fh, capture_output=True, timeout=timeout)
        proc = subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            raw.stdout.decode(errors="replace"),
            raw.stderr.decode(errors="replace"),
        )
    if check and proc.returncode != 0:
        where = f" < {stdin}" if stdin is not None else ""
        raise AssertionError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}{where}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


# Listener: binds every (address, port) it is given, prints "ready", accepts and closes
# connections until its stdin reaches EOF (the parent closed it or died) or an hour passed.
_LISTENER = r"""
import json, os, selectors, socket, sys, time
sel = selectors.DefaultSelector()
for host, port in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
print("ready", flush=True)
end = time.monotonic() + 3600
while time.monotonic() < end:
    for key, _ in sel.select(timeout=5):
        if key.fileobj == sys.stdin.fileno():
            if not os.read(key.fileobj, 4096):
                sys.exit(0)
            continue
        try:
            conn, _ = key.fileobj.accept()
        except OSError:
            continue
        conn.close()
"""

# Probe: one thread per attempt, all at once; prints a JSON list of outcomes in input order.
_PROBE = r"""
import errno, json, socket, sys, threading
attempts = json.loads(sys.argv[1])
out = [None] * len(attempts)
def attempt(i, dst, port, src, timeout):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((dst, port))
        out[i] = "connected"
    except ConnectionRefusedError:
        out[i] = "refused"
    except TimeoutError:
        out[i] = "timeout"
    except OSError as exc:
        out[i] = "error:" + errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        s.close()
threads = [threading.Thread(target=attempt, args=(i, *a)) for i, a in enumerate(attempts)]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
print(json.dumps([o or "error:no-result" for o in out]))
"""


@dataclass(frozen=True)
class Attempt:
    """One TCP connection attempt: to ``dst``:``port``, from source address ``src`` if given."""

    dst: str
    port: int
    src: str | None = None
    timeout: float = CONNECT_TIMEOUT


class Listener:
    """A TCP listener process inside a namespace (see :meth:`Namespace.listen`)."""

    def __init__(self, proc: subprocess.Popen[bytes], binds: list[tuple[str, int]]) -> None:
        self.proc = proc
        self.binds = binds

    def wait_ready(self, deadline: float = LISTEN_DEADLINE) -> None:
        """Block until the process printed ``ready`` (all sockets listen) or raise."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        end = time.monotonic() + deadline
        try:
            while b"\n" not in buf:
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                if sel.select(timeout=left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
        finally:
            sel.close()
        if buf.strip() != b"ready":
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            self.stop()
            raise AssertionError(f"listener on {self.binds} did not start: {err.strip()}")

    def stop(self) -> None:
        """Close its stdin (it exits on EOF), then terminate and kill if needed; reap it."""
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None and not stream.closed:
                stream.close()


@dataclass
class Namespace:
    """One named network namespace (ip-netns(8)); commands run in it with ``ip netns exec``."""

    name: str
    listeners: list[Listener] = field(default_factory=list)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, stdin: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace (optionally feeding file ``stdin``)."""
        return _run(self.exec_argv(argv), check=check, stdin=stdin)

    def ip(self, *args: str) -> None:
        """``ip -n NAME args...`` (iproute2 in this namespace), checked."""
        _run(["ip", "-n", self.name, *args])

    def listen(self, addresses: Iterable[str], ports: Iterable[int]) -> Listener:
        """Start a TCP listener on every address x port and wait until all listen.

        Addresses must already be configured here. The listener accepts each connection and
        closes it at once; it is stopped by :meth:`stop_listeners` (or :meth:`NetnsPair.close`).
        """
        binds = [(a, p) for a in addresses for p in ports]
        proc = subprocess.Popen(
            self.exec_argv([sys.executable, "-c", _LISTENER, json.dumps(binds)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        listener = Listener(proc, binds)
        self.listeners.append(listener)
        listener.wait_ready()
        return listener

    def stop_listeners(self) -> None:
        """Stop every listener started in this namespace."""
        while self.listeners:
            self.listeners.pop().stop()

    def start_probe(self, attempts: Sequence[Attempt]) -> subprocess.Popen[str]:
        """Start a probe process making all ``attempts`` at once; see :func:`probe`."""
        payload = json.dumps([[a.dst, a.port, a.src, a.timeout] for a in attempts])
        return subprocess.Popen(
            self.exec_argv([sys.executable, "-c", _PROBE, payload]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def connect(self, dst: str, port: int, src: str | None = None) -> str:
        """Attempt one TCP connection from this namespace; returns its outcome."""
        return probe([(self, Attempt(dst, port, src))])[0]


def probe(attempts: Sequence[tuple[Namespace, Attempt]]) -> list[str]:
    """Make every attempt concurrently (one probe process per namespace); outcomes in order.

    All attempts run at the same time, so a batch takes about one :data:`CONNECT_TIMEOUT`
    however many attempts time out.
    """
    by_ns: dict[str, tuple[Namespace, list[int]]] = {}
    for i, (ns, _) in enumerate(attempts):
        by_ns.setdefault(ns.name, (ns, []))[1].append(i)
    started = [(ns.start_probe([attempts[i][1] for i in idx]), idx) for ns, idx in by_ns.values()]
    deadline = max((a.timeout for _, a in attempts), default=0) + COMMAND_TIMEOUT
    results: list[str] = ["error:no-result"] * len(attempts)
    for proc, idx in started:
        try:
            out, err = proc.communicate(timeout=deadline)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            raise AssertionError("probe process did not finish") from None
        if proc.returncode != 0:
            raise AssertionError(f"probe process failed (exit {proc.returncode}): {err.strip()}")
        for i, outcome in zip(idx, json.loads(out), strict=True):
            results[i] = outcome
    return results


# --- the pair ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """Addresses of the two sides (CIDR on the interface) and their on-link routes.

    Defaults: the customer holds the receivers 192.0.2.10 and .20 and a non-receiver .30 (and
    the same in 2001:db8:10::/64); the vendor holds API addresses (198.51.100.5 in /25 and .130
    in .128/26; 2001:db8:100::5, 2001:db8:102::5), a non-vendor address (198.51.100.200 in
    .192/26; 2001:db8:300::5), webhook sources (203.0.113.5 in .0/28 and .40 in .32/28;
    2001:db8:200::5, 2001:db8:202::5) and an outside source (203.0.113.100; 2001:db8:300::6).
    """

    customer: tuple[str, ...] = (
        "192.0.2.10/24",
        "192.0.2.20/24",
        "192.0.2.30/24",
        "2001:db8:10::10/64",
        "2001:db8:10::20/64",
        "2001:db8:10::30/64",
    )
    vendor: tuple[str, ...] = (
        "198.51.100.5/32",
        "198.51.100.130/32",
        "198.51.100.200/32",
        "203.0.113.5/32",
        "203.0.113.40/32",
        "203.0.113.100/32",
        "2001:db8:100::5/128",
        "2001:db8:102::5/128",
        "2001:db8:300::5/128",
        "2001:db8:200::5/128",
        "2001:db8:202::5/128",
        "2001:db8:300::6/128",
    )
    customer_routes: tuple[str, ...] = ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
    vendor_routes: tuple[str, ...] = ("192.0.2.0/24", "2001:db8::/32")

    def check_documentation_only(self) -> None:
        """Raise ``ValueError`` unless every address and route is in a documentation range."""
        for text in (*self.customer, *self.vendor, *self.customer_routes, *self.vendor_routes):
            net = ipaddress.ip_network(text, strict=False)
            inside = (
                net.subnet_of(r)  # type: ignore[arg-type]
                for r in DOCUMENTATION_RANGES
                if r.version == net.version
            )
            if not any(inside):
                raise ValueError(f"{text} is outside the documentation ranges")


@dataclass(frozen=True)
class Family:
    """The harness's addresses of one family, by role (what the test profiles are built on)."""

    version: int
    customer: str  # receiver and the customer's egress source
    receiver_b: str  # second receiver address
    non_receiver: str  # customer address that is no receiver
    api: str  # vendor API address (first api range)
    api_b: str  # vendor API address (second api range)
    non_vendor: str  # vendor-side address outside the api ranges
    webhook: str  # webhook source (first webhook range)
    webhook_b: str  # webhook source (second webhook range)
    outside: str  # vendor-side source outside the webhook ranges


IPV4 = Family(
    4,
    "192.0.2.10",
    "192.0.2.20",
    "192.0.2.30",
    "198.51.100.5",
    "198.51.100.130",
    "198.51.100.200",
    "203.0.113.5",
    "203.0.113.40",
    "203.0.113.100",
)
IPV6 = Family(
    6,
    "2001:db8:10::10",
    "2001:db8:10::20",
    "2001:db8:10::30",
    "2001:db8:100::5",
    "2001:db8:102::5",
    "2001:db8:300::5",
    "2001:db8:200::5",
    "2001:db8:202::5",
    "2001:db8:300::6",
)
FAMILIES = (IPV4, IPV6)


def sweep_stale_namespaces() -> None:
    """Delete namespaces named ``ngk-<pid>-...`` whose test process no longer exists.

    Finalizers delete every namespace of a run; only a killed run (SIGKILL) leaves some behind.
    Its listeners exit by themselves (their stdin reaches EOF). Namespaces of live processes,
    this one included, are never touched.
    """
    listed = _run(["ip", "netns", "list"], check=False).stdout
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        m = re.fullmatch(r"ngk-(\d+)-(?:\d+-(?:cust|vend)|probe)", name)
        if m and int(m.group(1)) != os.getpid() and not Path(f"/proc/{m.group(1)}").exists():
            _run(["ip", "netns", "del", name], check=False)


class NetnsPair:
    """Customer and vendor namespaces joined by a veth pair; a context manager.

    ``NetnsPair().open()`` creates both namespaces (``ngk-<pid>-<n>-cust`` / ``-vend``), the
    veth pair ``ngc`` (customer) / ``ngv`` (vendor), the addresses and on-link routes of
    ``topology``, and brings every interface, loopback included, up. :meth:`close` undoes it all
    and never raises; it is safe after a partial :meth:`open`.
    """

    CUSTOMER_IF = "ngc"
    VENDOR_IF = "ngv"

    def __init__(self, topology: Topology | None = None) -> None:
        self.topology = topology or Topology()
        self.topology.check_documentation_only()
        base = f"ngk-{os.getpid()}-{next(_counter)}"
        self.customer = Namespace(f"{base}-cust")
        self.vendor = Namespace(f"{base}-vend")
        self._created: list[Namespace] = []

    def open(self) -> NetnsPair:
        """Create the namespaces, link, addresses and routes (see class docstring)."""
        sweep_stale_namespaces()
        try:
            for ns in (self.customer, self.vendor):
                _run(["ip", "netns", "add", ns.name])
                self._created.append(ns)
                ns.ip("link", "set", "lo", "up")
                # Duplicate address detection off: addresses are usable at once.
                ns.run(["sysctl", "-qw", *DAD_OFF])
            veth = f"link add {self.CUSTOMER_IF} type veth peer name {self.VENDOR_IF}"
            self.customer.ip(*veth.split(), "netns", self.vendor.name)
            t = self.topology
            sides = (
                (self.customer, self.CUSTOMER_IF, t.customer, t.customer_routes),
                (self.vendor, self.VENDOR_IF, t.vendor, t.vendor_routes),
            )
            for ns, ifname, addresses, routes in sides:
                for cidr in addresses:
                    extra = ["nodad"] if ":" in cidr else []
                    ns.ip("addr", "add", cidr, "dev", ifname, *extra)
                ns.ip("link", "set", ifname, "up")
                for route in routes:
                    family = "-6" if ":" in route else "-4"
                    ns.ip(family, "route", "replace", route, "dev", ifname)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop listeners and delete both namespaces (the veth pair goes with them)."""
        for ns in (self.customer, self.vendor):
            try:
                ns.stop_listeners()
            except Exception as exc:  # pragma: no cover - best effort teardown
                print(f"netns: stopping listeners in {ns.name}: {exc}", file=sys.stderr)
        while self._created:
            ns = self._created.pop()
            result = _run(["ip", "netns", "del", ns.name], check=False)
            if result.returncode != 0:  # pragma: no cover - best effort teardown
                print(f"netns: deleting {ns.name}: {result.stderr.strip()}", file=sys.stderr)

    def __enter__(self) -> NetnsPair:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- firewalls -----------------------------------------------------------------------------


def reset_firewall(ns: Namespace) -> None:
    """Remove every rule and ipset from ``ns``: ``nft flush ruleset`` then ``ipset destroy``.

    iptables here is the nf_tables backend, so the flush clears iptables and nft rules alike and
    leaves the default accept-everything hooks; the sets are unreferenced afterwards.
    """
    ns.run(["nft", "flush", "ruleset"])
    if shutil.which("ipset"):
        ns.run(["ipset", "destroy"])


def load_iptables(ns: Namespace, directory: Path) -> None:
    """Load a generated ``iptables/`` directory the documented way:
    ``ipset restore -exist < ipset.restore``, ``iptables-restore < rules.v4``,
    ``ip6tables-restore < rules.v6``."""
    ns.run(["ipset", "restore", "-exist"], stdin=directory / "ipset.restore")
    ns.run(["iptables-restore"], stdin=directory / "rules.v4")
    ns.run(["ip6tables-restore"], stdin=directory / "rules.v6")


def load_nftables(ns: Namespace, path: Path) -> None:
    """Load a generated nftables file with ``nft -f`` (one transaction)."""
    ns.run(["nft", "-f", str(path)])


def ipsets(ns: Namespace) -> dict[str, set[str]]:
    """Every ipset in ``ns`` with its members, from ``ipset save``."""
    sets: dict[str, set[str]] = {}
    for line in ns.run(["ipset", "save"]).stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], set())
        elif len(words) >= 3 and words[0] == "add":
            member = str(ipaddress.ip_network(words[2]))  # "192.0.2.10" -> "192.0.2.10/32"
            sets.setdefault(words[1], set()).add(member)
    return sets


def ipset_references(ns: Namespace) -> dict[str, int]:
    """How many rules reference each ipset in ``ns`` (``References:`` of ``ipset list -t``)."""
    refs: dict[str, int] = {}
    name = None
    for line in ns.run(["ipset", "list", "-t"]).stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "References" and name is not None:
            refs[name] = int(value)
    return refs


def chain_counters(ns: Namespace, chain: str, version: int) -> list[tuple[int, str]]:
    """(packets, target) per rule of ``chain`` in the filter table, in order
    (``iptables -L CHAIN -v -x -n``; ``ip6tables`` for ``version`` 6)."""
    tool = "iptables" if version == 4 else "ip6tables"
    lines = ns.run([tool, "-L", chain, "-v", "-x", "-n"]).stdout.splitlines()
    out: list[tuple[int, str]] = []
    for line in lines[2:]:  # "Chain ..." and the column header
        words = line.split()
        if len(words) >= 3:
            out.append((int(words[0]), words[2]))
    return out


# --- generated configurations --------------------------------------------------------------


def write_profile(base: Path, path: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write ``base`` (a deployment YAML) to ``path`` with ``overrides`` deep-merged in.

    Mappings merge key by key; any other value (lists included) replaces the base value.
    """

    def merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = dict(into)
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(merge(data, overrides or {}), sort_keys=False), "utf-8")
    return path


def generate(deployment: Path, out_dir: Path, target: str) -> Path:
    """``netguard generate DEPLOYMENT -o OUT_DIR -t TARGET`` (in process); returns ``out_dir``.

    Raises ``AssertionError`` with netguard's messages when it does not exit 0.
    """
    from click.testing import CliRunner

    from netguard.cli import main

    result = CliRunner().invoke(
        main, ["generate", str(deployment), "-o", str(out_dir), "-t", target]
    )
    if result.exit_code != 0:
        raise AssertionError(
            f"netguard generate -t {target} exited {result.exit_code}: {result.output.strip()}"
        )
    return out_dir


# --- what the kernel test profiles permit --------------------------------------------------

#: Ports the listeners serve: the vendor side on its API and non-vendor addresses, the customer
#: side on its receiver and non-receiver addresses.
VENDOR_PORTS = (22, 80, 443)
CUSTOMER_PORTS = (8443, 9443)


@dataclass(frozen=True)
class Case:
    """One expected flow: ``side`` ("customer" or "vendor") makes ``attempt``; ``expected`` is
    the outcome reasoned from the profile."""

    what: str
    side: str
    attempt: Attempt
    expected: str


def start_listeners(pair: NetnsPair) -> None:
    """Listen on every address and port that :func:`public_https_cases` probes."""
    for f in FAMILIES:
        pair.vendor.listen([f.api, f.api_b, f.non_vendor], VENDOR_PORTS)
        pair.customer.listen([f.customer, f.receiver_b, f.non_receiver], CUSTOMER_PORTS)


def public_https_cases(f: Family, *, enabled: bool = True) -> list[Case]:
    """The flows of tests/profiles/kernel/public-https.yaml for family ``f``, reasoned by hand.

    The profile permits egress TCP 443 (its one endpoint's port) to api_ranges
    198.51.100.0/25 + .128/26 (2001:db8:100::/48 + 2001:db8:102::/48), and ingress TCP 8443
    from webhook_ranges 203.0.113.0/28 + .32/28 (2001:db8:200::/48 + 2001:db8:202::/48) to the
    receivers .10 and .20 (2001:db8:10::10, ::20). Everything else is dropped, never rejected,
    so a blocked attempt times out. With ``enabled=False`` (the family is not in the profile's
    ``families``) every attempt times out: a disabled family is default-deny.
    """
    ok = CONNECTED if enabled else TIMEOUT
    cust, vend = "customer", "vendor"
    rows = [
        # what, who connects, destination, port, source, expected
        ("egress 443 to vendor API", cust, f.api, 443, f.customer, ok),
        ("egress 443 to vendor API, 2nd range", cust, f.api_b, 443, f.customer, ok),
        ("egress 80 to vendor API", cust, f.api, 80, f.customer, TIMEOUT),
        ("egress 22 to vendor API", cust, f.api, 22, f.customer, TIMEOUT),
        ("egress 443 to non-vendor", cust, f.non_vendor, 443, f.customer, TIMEOUT),
        ("webhook to receiver", vend, f.customer, 8443, f.webhook, ok),
        ("webhook, 2nd range, to 2nd receiver", vend, f.receiver_b, 8443, f.webhook_b, ok),
        ("outside source to receiver", vend, f.customer, 8443, f.outside, TIMEOUT),
        ("webhook to receiver, other port", vend, f.customer, 9443, f.webhook, TIMEOUT),
        ("webhook to non-receiver", vend, f.non_receiver, 8443, f.webhook, TIMEOUT),
    ]
    return [_case(f, *row) for row in rows]


#: webhook_ranges of a second profile: the first range of each family is replaced by another.
MOVED_WEBHOOK_RANGES = [
    "203.0.113.32/28",
    "203.0.113.64/28",
    "2001:db8:202::/48",
    "2001:db8:204::/48",
]


def moved_webhook_cases(f: Family) -> list[Case]:
    """Flows after a reload with :data:`MOVED_WEBHOOK_RANGES`: the webhook source of the removed
    range (203.0.113.5, 2001:db8:200::5) is dropped, the one of the kept range (203.0.113.40,
    2001:db8:202::5) still reaches the receiver, and egress is unchanged."""
    cust, vend = "customer", "vendor"
    rows = [
        ("webhook of a removed range to receiver", vend, f.customer, 8443, f.webhook, TIMEOUT),
        ("webhook of a kept range to receiver", vend, f.customer, 8443, f.webhook_b, CONNECTED),
        ("egress 443 to vendor API", cust, f.api, 443, f.customer, CONNECTED),
    ]
    return [_case(f, *row) for row in rows]


def _case(f: Family, what: str, side: str, dst: str, port: int, src: str, expected: str) -> Case:
    label = f"IPv{f.version} {what} ({src} -> {dst}:{port})"
    return Case(label, side, Attempt(dst, port, src), expected)


def check_cases(pair: NetnsPair, cases: Sequence[Case]) -> None:
    """Make every case's attempt (all at once) and raise ``AssertionError`` listing each case
    whose outcome differs from the expected one."""
    sides = {"customer": pair.customer, "vendor": pair.vendor}
    outcomes = probe([(sides[c.side], c.attempt) for c in cases])
    wrong = [
        f"  {c.what}: expected {c.expected}, got {got}"
        for c, got in zip(cases, outcomes, strict=True)
        if got != c.expected
    ]
    if wrong:
        raise AssertionError(
            f"{len(wrong)} of {len(cases)} flows differ from the profile:\n" + "\n".join(wrong)
        )
