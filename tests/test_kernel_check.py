"""``netguard check`` on configurations read back from the real kernel, and the engine's verdicts
against real connections (DESIGN.md, "Real components in tests").

Round trips: the generated files are loaded into a fresh customer namespace (tests/netns.py),
read back with ``iptables-save``, ``ip6tables-save`` and ``ipset save`` (or ``nft -j list
ruleset``) into files and checked with ``netguard check`` in a separate process. The unchanged
rules are compliant (exit 0). Then a mutation made in the kernel with ``iptables`` / ``ipset``
/ ``nft`` commands must be found (exit 1): the JSON report has a finding of the expected kind,
whose example packet is the one reasoned by hand below and whose rule location is the mutated
line of the saved file. The example packet is then sent as a real connection: it passes the
mutated rules and is dropped by the unchanged ones.

Engine against kernel: with the kernel profile's rules plus four hand-added rules loaded, a
fixed-seed sample of TCP flows (egress and ingress, IPv4 and IPv6, among the harness's addresses
and :data:`PORTS`) gets a verdict from netguard's engine (the saved rules read with
netguard.readers and evaluated with netguard.space, as netguard/check.py does) and from a real
connection; ACCEPT must be "connected" and DROP "timeout" for every sample.

Every address is from the documentation ranges; no packet leaves the two namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netns
import pytest
from click.testing import CliRunner
from netns import (
    CONNECTED,
    FAMILIES,
    IPV4,
    IPV6,
    REFUSED,
    TIMEOUT,
    Attempt,
    Family,
    Namespace,
    NetnsPair,
)

from netguard.cli import main
from netguard.model.ruleset import CtState, Hook
from netguard.readers import read_ipset_save, read_iptables_save
from netguard.space import Approx, Engine, Evaluation, Packet, evaluate

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"
KERNEL_PROFILE = Path(__file__).parent / "profiles" / "kernel" / "public-https.yaml"
TOOLS = (
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "ipset",
    "nft",
)
#: Exceptions are judged as of this date (generate and check): the example's ntp exception
#: expires 2027-06-30, so the outcomes do not depend on the day the tests run.
AS_OF = "2026-06-01"
#: Ports every listener serves and the sampled flows use.
PORTS = (22, 80, 443, 8443, 9443)
#: Profiles: name -> (deployment file, overrides). "kernel-ipset" matches every two-prefix
#: list through an ipset (see tests/test_kernel_iptables.py).
PROFILES: dict[str, tuple[Path, dict[str, Any]]] = {
    "example": (EXAMPLE, {}),
    "kernel": (KERNEL_PROFILE, {}),
    "kernel-ipset": (KERNEL_PROFILE, {"iptables": {"ipset_threshold": 1}}),
}
CHECK_TIMEOUT = 120.0
TCP = 6


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def _in(addr: object, *nets: str) -> bool:
    a = ipaddress.ip_address(str(addr))
    return any(a in _net(n) for n in nets if _net(n).version == a.version)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(kernel: None) -> Iterator[NetnsPair]:
    """Customer and vendor namespaces; every address of both sides listens on every port of
    :data:`PORTS`, so an accepted SYN always connects."""
    netns.require_kernel(TOOLS)
    with NetnsPair() as p:
        for f in FAMILIES:
            vendor = [f.api, f.api_b, f.non_vendor, f.webhook, f.webhook_b, f.outside]
            p.vendor.listen(vendor, PORTS)
            p.customer.listen([f.customer, f.receiver_b, f.non_receiver], PORTS)
        yield p


@pytest.fixture
def customer(pair: NetnsPair) -> Iterator[Namespace]:
    """The customer namespace with an empty firewall before and after the test."""
    netns.reset_firewall(pair.customer)
    yield pair.customer
    netns.reset_firewall(pair.customer)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each profile of :data:`PROFILES` generated; name -> output directory (iptables/ and
    nftables/ below it)."""
    base = tmp_path_factory.mktemp("generated")
    out: dict[str, Path] = {}
    for name, (deployment, overrides) in PROFILES.items():
        if overrides:
            deployment = netns.write_profile(deployment, base / f"{name}.yaml", overrides)
        for target in ("iptables", "nftables"):
            _generate(deployment, base / name / target, target)
        out[name] = base / name
    return out


def _generate(deployment: Path, out_dir: Path, target: str) -> None:
    """``netguard generate DEPLOYMENT -o OUT_DIR -t TARGET --as-of AS_OF`` (in process).

    Like ``netns.generate`` but with ``--as-of``: generate refuses an expired exception, and
    the example's expires on 2027-06-30."""
    result = CliRunner().invoke(
        main, ["generate", str(deployment), "-o", str(out_dir), "-t", target, "--as-of", AS_OF]
    )
    assert result.exit_code == 0, (
        f"netguard generate -t {target} exited {result.exit_code}: {result.output.strip()}"
    )


def _deployment(name: str, generated: dict[str, Path]) -> Path:
    deployment, overrides = PROFILES[name]
    return generated[name].parent / f"{name}.yaml" if overrides else deployment


def _load_iptables(ns: Namespace, name: str, generated: dict[str, Path]) -> None:
    """Empty firewall, then the profile's generated iptables files, the documented way."""
    netns.reset_firewall(ns)
    netns.load_iptables(ns, generated[name] / "iptables" / "iptables")


def _load_nftables(ns: Namespace, name: str, generated: dict[str, Path]) -> None:
    netns.reset_firewall(ns)
    netns.load_nftables(ns, generated[name] / "nftables" / "nftables" / "netguard.nft")


# --- reading the kernel back and checking --------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """What ``iptables-save``, ``ip6tables-save`` and ``ipset save`` printed, as files."""

    v4: Path
    v6: Path
    ipset: Path

    @property
    def has_sets(self) -> bool:
        return bool(self.ipset.read_text(encoding="utf-8").strip())

    @property
    def configs(self) -> list[Path]:
        """The ``--config`` files. An empty ``ipset save`` (no set exists) is left out:
        ``netguard check`` refuses an empty file as "empty configuration" (exit 2)."""
        return [self.v4, self.v6, *([self.ipset] if self.has_sets else [])]

    def path(self, family: int) -> Path:
        return self.v4 if family == 4 else self.v6

    def lines(self, family: int) -> list[str]:
        return self.path(family).read_text(encoding="utf-8").splitlines()


def _save_iptables(ns: Namespace, directory: Path) -> Saved:
    directory.mkdir(parents=True, exist_ok=True)
    saved = Saved(
        directory / "iptables-save.v4", directory / "ip6tables-save.v6", directory / "ipset.save"
    )
    for argv, path in (
        (["iptables-save"], saved.v4),
        (["ip6tables-save"], saved.v6),
        (["ipset", "save"], saved.ipset),
    ):
        path.write_text(ns.run(argv).stdout, encoding="utf-8")
    return saved


def _save_nft(ns: Namespace, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ns.run(["nft", "-j", "list", "ruleset"]).stdout, encoding="utf-8")
    return path


def _check(deployment: Path, configs: Sequence[Path]) -> tuple[int, dict[str, Any]]:
    """``netguard check DEPLOYMENT --config ... --format json --as-of AS_OF`` in its own
    process; (exit code, report). Exit codes other than 0 and 1 fail the test."""
    argv = [sys.executable, "-m", "netguard.cli", "check", str(deployment)]
    for path in configs:
        argv += ["--config", str(path)]
    argv += ["--format", "json", "--as-of", AS_OF]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False)
    assert proc.returncode in (0, 1), (
        f"netguard check exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["compliant"] is (proc.returncode == 0), proc.stderr
    return proc.returncode, report


def _blocking(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("high", "medium")]


def _describe(findings: Sequence[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {f['id']} IPv{f['family']} {f['hook']}: {f['example']} at {f['location']}; "
        f"rules {[(r['line'], r['text']) for r in f['rules']]}"
        for f in findings
    )


# --- sending example packets ---------------------------------------------------------------


def _has_address(ns: Namespace, ifname: str, addr: str) -> bool:
    shown = json.loads(ns.run(["ip", "-j", "addr", "show", "dev", ifname]).stdout)
    return any(
        ipaddress.ip_address(info["local"]) == ipaddress.ip_address(addr)
        for link in shown
        for info in link.get("addr_info", [])
    )


@contextmanager
def _example_addresses(pair: NetnsPair, packets: Sequence[Packet]) -> Iterator[None]:
    """Make each packet's source an address of the customer interface and its destination one
    of the vendor interface (added as /32 or /128 for the duration, when missing). Only
    documentation-range addresses are ever added; on-link routes to them exist already."""
    added: list[tuple[Namespace, str, str]] = []
    try:
        for p in packets:
            for ns, ifname, addr in (
                (pair.customer, NetnsPair.CUSTOMER_IF, str(p.src)),
                (pair.vendor, NetnsPair.VENDOR_IF, str(p.dst)),
            ):
                assert any(ipaddress.ip_address(addr) in r for r in netns.DOCUMENTATION_RANGES), (
                    f"example packet {p} leaves the documentation ranges"
                )
                if (ns, ifname, addr) in added or _has_address(ns, ifname, addr):
                    continue
                length = 32 if p.family == 4 else 128
                extra = ["nodad"] if p.family == 6 else []
                ns.ip("addr", "add", f"{addr}/{length}", "dev", ifname, *extra)
                added.append((ns, ifname, addr))
        yield
    finally:
        for ns, ifname, addr in added:
            length = 32 if ":" not in addr else 128
            ns.ip("addr", "del", f"{addr}/{length}", "dev", ifname)


def _send(pair: NetnsPair, packets: Sequence[Packet]) -> list[str]:
    """Each TCP example packet as a real connection from the customer namespace."""
    return netns.probe([(pair.customer, Attempt(str(p.dst), p.dport, str(p.src))) for p in packets])


def _assert_examples_are_real(
    pair: NetnsPair, packets: Sequence[Packet], restore: Callable[[], None]
) -> None:
    """The example packets pass the mutated rules now loaded (connected, or refused where no
    listener serves the destination: the SYN passed either way) and time out after
    ``restore()`` reloaded the unchanged rules (the mutation is what let them through)."""
    assert packets and all(p.protocol == TCP for p in packets)
    with _example_addresses(pair, packets):
        mutated = _send(pair, packets)
        restore()
        unchanged = _send(pair, packets)
    text = [str(p) for p in packets]
    assert all(o in (CONNECTED, REFUSED) for o in mutated), (
        f"example packets {text} did not pass the mutated rules: {mutated}"
    )
    assert unchanged == [TIMEOUT] * len(packets), (
        f"example packets {text} were not dropped by the unchanged rules: {unchanged}"
    )


# --- 1. iptables round trip -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "has_sets"), [("example", False), ("kernel", False), ("kernel-ipset", True)]
)
def test_iptables_read_back_from_kernel_is_compliant(
    customer: Namespace, generated: dict[str, Path], tmp_path: Path, name: str, has_sets: bool
) -> None:
    """Generated rules loaded into the kernel and saved back are compliant (exit 0): the
    reader copes with the kernel's rewriting (rule order by chain, ``RELATED,ESTABLISHED``,
    defaults such as ``--limit-burst 5`` dropped, unquoted comments). Only kernel-ipset has
    ipsets (its lists exceed threshold 1; the others' lists are below 16)."""
    _load_iptables(customer, name, generated)
    saved = _save_iptables(customer, tmp_path / "saved")
    assert saved.lines(4)[0].startswith("# Generated by iptables-save")
    assert saved.lines(6)[0].startswith("# Generated by ip6tables-save")
    assert saved.has_sets is has_sets
    code, report = _check(_deployment(name, generated), saved.configs)
    assert code == 0, f"not compliant:\n{_describe(_blocking(report))}"
    assert report["summary"]["high"] == report["summary"]["medium"] == 0
    formats = [(c["format"], c["families"]) for c in report["configs"]]
    expected = [("iptables-save", [4]), ("iptables-save", [6])]
    assert formats == expected + ([("ipset", [])] if has_sets else [])


#: The example profile's IPv4 egress (examples/public-https/deployment.yaml), by hand: TCP 443
#: to api_ranges, TCP and UDP 53 to the resolver 192.0.2.53, UDP 123 to 192.0.2.123 (ntp).
API_V4 = ("198.51.100.0/25", "198.51.100.128/26")


def _example_permits_v4_egress(p: Packet) -> bool:
    return (
        (p.protocol == TCP and p.dport == 443 and _in(p.dst, *API_V4))
        or (p.protocol in (TCP, 17) and p.dport == 53 and _in(p.dst, "192.0.2.53/32"))
        or (p.protocol == 17 and p.dport == 123 and _in(p.dst, "192.0.2.123/32"))
    )


@dataclass(frozen=True)
class Mutation:
    """Commands run in the customer namespace after the example profile's rules were loaded.

    ``before``: (tool, chain, position, text) the rule at that position must contain first
    (the position the commands rely on). ``example``: the hand-reasoned property of the
    example packet of the finding that proves the mutation (IPv ``family``, hook output).
    ``new_lines``: how many rule lines of the saved file the mutation adds or changes; every
    blocking finding must cite only those (each accepting rule has its own findings).
    """

    id: str
    commands: tuple[str, ...]
    example: Callable[[Packet], bool]
    reasoning: str
    family: int = 4
    before: tuple[str, str, int, str] | None = None
    new_lines: int = 1


MUTATIONS = [
    Mutation(
        "ssh",
        ("iptables -I ng-egress 1 -p tcp --dport 22 -j ACCEPT",),
        lambda p: p.protocol == TCP and p.dport == 22,
        "TCP dport 22 (the rule's only port)",
    ),
    Mutation(
        "widen-25-to-24",
        (
            "iptables -R ng-egress 1 -d 198.51.100.0/24 -p tcp -m tcp --dport 443 "
            "-m conntrack --ctstate NEW -m comment --comment egress-vendor-api -j ACCEPT",
        ),
        lambda p: p.protocol == TCP and p.dport == 443 and _in(p.dst, "198.51.100.192/26"),
        "TCP 443 to 198.51.100.192/26 = .0/24 minus the api ranges .0/25 and .128/26",
        before=("iptables", "ng-egress", 1, "-d 198.51.100.0/25 "),
    ),
    Mutation(
        "accept-above-drop",
        ("iptables -I OUTPUT 4 -j ACCEPT",),
        lambda p: (
            p.protocol == TCP
            and _in(p.dst, "198.51.100.0/24")
            and not _example_permits_v4_egress(p)
        ),
        "TCP to the vendor's /24 that the profile does not permit (everything reaches ACCEPT)",
        before=("iptables", "OUTPUT", 4, "-A OUTPUT -j ng-drop"),
    ),
    Mutation(
        "split-slash-1",
        (
            "iptables -I ng-egress 1 -d 0.0.0.0/1 -p tcp --dport 443 -j ACCEPT",
            "iptables -I ng-egress 2 -d 128.0.0.0/1 -p tcp --dport 443 -j ACCEPT",
        ),
        lambda p: p.protocol == TCP and p.dport == 443 and not _in(p.dst, *API_V4),
        "TCP 443 to a destination outside the api ranges (each /1 rule is its own finding)",
        new_lines=2,
    ),
    Mutation(
        "port-range-20-30",
        ("iptables -I ng-egress 1 -p tcp --dport 20:30 -j ACCEPT",),
        # Examples prefer destination ports 443, 22, 80, ... (netguard.space.engine
        # PREFERRED_PORTS); 443 is outside 20:30, 22 is the first preferred port inside.
        lambda p: p.protocol == TCP and p.dport == 22,
        "TCP dport 22 (first preferred example port within 20:30)",
    ),
    Mutation(
        "ssh-ipv6",
        ("ip6tables -I ng-egress 1 -p tcp --dport 22 -j ACCEPT",),
        lambda p: p.protocol == TCP and p.dport == 22,
        "TCP dport 22 over IPv6",
        family=6,
    ),
]


def _rule_at(ns: Namespace, tool: str, chain: str, position: int) -> str:
    """Rule ``position`` (1-based) of ``chain`` as ``iptables -S`` prints it."""
    lines = ns.run([tool, "-S", chain]).stdout.splitlines()
    rules = [ln for ln in lines if ln.startswith("-A ")]
    return rules[position - 1] if position <= len(rules) else ""


def _new_lines(before: Sequence[str], after: Sequence[str]) -> dict[int, str]:
    """1-based line number -> text of each rule line of ``after`` that ``before`` lacks."""
    old = set(before)
    return {n: t for n, t in enumerate(after, start=1) if t.startswith("-A ") and t not in old}


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_iptables_mutation_in_kernel_is_found(
    pair: NetnsPair,
    customer: Namespace,
    generated: dict[str, Path],
    tmp_path: Path,
    m: Mutation,
) -> None:
    """A rule mutated in the kernel with iptables commands is found in the saved rules: exit
    1, every blocking finding is NG101 at the mutated line(s), one has the hand-reasoned
    example packet, and that packet really passes the mutated kernel rules (and is dropped by
    the unchanged ones)."""
    _load_iptables(customer, "example", generated)
    before = _save_iptables(customer, tmp_path / "before")
    if m.before is not None:
        tool, chain, position, text = m.before
        got = _rule_at(customer, tool, chain, position)
        assert text in got, f"{chain} rule {position} is {got!r}, expected it to contain {text!r}"
    for command in m.commands:
        customer.run(command.split())
    after = _save_iptables(customer, tmp_path / "after")
    mutated = _new_lines(before.lines(m.family), after.lines(m.family))
    assert len(mutated) == m.new_lines, f"mutated lines of the saved file: {mutated}"

    code, report = _check(EXAMPLE, after.configs)
    findings = _blocking(report)
    assert code == 1 and findings, "the mutation was not found"
    path = str(after.path(m.family))
    wrong = [
        f
        for f in findings
        if (f["id"], f["family"], f["hook"]) != ("NG101", m.family, "output")
        or f["location"] != {"file": path, "line": f["location"]["line"]}
        or f["location"]["line"] not in mutated
        or not {r["line"] for r in f["rules"]} <= set(mutated)
        or any(r["text"] != mutated[r["line"]] for r in f["rules"])
    ]
    assert not wrong, (
        f"findings other than NG101 IPv{m.family} output at the mutated lines {mutated}:\n"
        + _describe(wrong)
    )
    proving = [f for f in findings if m.example(Packet.parse(f["example"]))]
    assert proving, f"no finding with example {m.reasoning}:\n{_describe(findings)}"

    # Sent for real below, so take an example inside the documentation ranges (the 0.0.0.0/1
    # half of split-slash-1 has none: its example is proven by the engine alone).
    def sendable(f: dict[str, Any]) -> bool:
        q = Packet.parse(f["example"])
        return all(
            any(ipaddress.ip_address(a) in r for r in netns.DOCUMENTATION_RANGES)
            for a in (q.src, q.dst)
        )

    packet = Packet.parse(next(f for f in proving if sendable(f))["example"])
    _assert_examples_are_real(
        pair, [packet], lambda: _load_iptables(customer, "example", generated)
    )


def test_ipset_member_added_in_kernel_is_found(
    pair: NetnsPair, customer: Namespace, generated: dict[str, Path], tmp_path: Path
) -> None:
    """kernel-ipset: ``ipset add ng4-vendor-api 198.51.100.192/26`` changes no rule line, only
    the set; the saved ipset file makes the check find NG101 with an example TCP 443 to
    198.51.100.192/26 at the egress rule matching that set."""
    _load_iptables(customer, "kernel-ipset", generated)
    customer.run(["ipset", "add", "ng4-vendor-api", "198.51.100.192/26"])
    saved = _save_iptables(customer, tmp_path / "saved")
    (line,) = [
        n for n, t in enumerate(saved.lines(4), start=1) if "--match-set ng4-vendor-api dst" in t
    ]
    code, report = _check(_deployment("kernel-ipset", generated), saved.configs)
    findings = _blocking(report)
    assert code == 1, "the added set member was not found"
    assert [(f["id"], f["family"], f["hook"], f["location"]) for f in findings] == [
        ("NG101", 4, "output", {"file": str(saved.v4), "line": line})
    ], _describe(findings)
    packet = Packet.parse(findings[0]["example"])
    assert packet.protocol == TCP and packet.dport == 443, packet
    assert _in(packet.dst, "198.51.100.192/26"), packet
    _assert_examples_are_real(
        pair, [packet], lambda: _load_iptables(customer, "kernel-ipset", generated)
    )


# --- 2. nftables round trip -----------------------------------------------------------------

#: The nftables mutation (an inet rule: both families).
NFT_MUTATION = "nft insert rule inet netguard output tcp dport 22 accept"


@pytest.mark.parametrize("name", ["example", "kernel"])
def test_nftables_read_back_from_kernel_is_compliant(
    customer: Namespace, generated: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """``nft -f`` of the generated file, ``nft -j list ruleset`` back: compliant (exit 0),
    one nft-json configuration holding both families."""
    _load_nftables(customer, name, generated)
    saved = _save_nft(customer, tmp_path / "ruleset.json")
    code, report = _check(_deployment(name, generated), [saved])
    assert code == 0, f"not compliant:\n{_describe(_blocking(report))}"
    assert [(c["format"], c["families"]) for c in report["configs"]] == [("nft-json", [4, 6])]


def test_nftables_mutation_in_kernel_is_found(
    pair: NetnsPair, customer: Namespace, generated: dict[str, Path], tmp_path: Path
) -> None:
    """``nft insert rule inet netguard output tcp dport 22 accept`` (an inet rule: both
    families) is found: exit 1, NG101 for IPv4 and IPv6 with example TCP dport 22, citing
    rule 1 of inet netguard/output by the handle the kernel gave it; both examples pass the
    mutated ruleset and are dropped by the reloaded file."""
    _load_nftables(customer, "example", generated)
    customer.run(NFT_MUTATION.split())
    saved = _save_nft(customer, tmp_path / "ruleset.json")
    objects = json.loads(saved.read_text(encoding="utf-8"))["nftables"]
    output = [o["rule"] for o in objects if "rule" in o and o["rule"]["chain"] == "output"]
    assert output[0]["expr"] == [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                "right": 22,
            }
        },
        {"accept": None},
    ]
    handle = output[0]["handle"]

    code, report = _check(EXAMPLE, [saved])
    findings = _blocking(report)
    assert code == 1, "the mutation was not found"
    assert sorted((f["id"], f["family"], f["hook"]) for f in findings) == [
        ("NG101", 4, "output"),
        ("NG101", 6, "output"),
    ], _describe(findings)
    packets = []
    for f in findings:
        assert f["location"]["file"] == str(saved), f
        assert [(r["chain"], r["position"], r["verdict"]) for r in f["rules"]] == [
            ("inet netguard/output", 1, "ACCEPT")
        ], f
        assert f["rules"][0]["text"].endswith(f"# handle {handle}"), f["rules"][0]
        packet = Packet.parse(f["example"])
        assert (packet.family, packet.protocol, packet.dport) == (f["family"], TCP, 22), packet
        packets.append(packet)
    _assert_examples_are_real(pair, packets, lambda: _load_nftables(customer, "example", generated))


# --- 3. engine against kernel ---------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One TCP connection: egress (customer -> vendor, hook output of the customer) or
    ingress (vendor -> customer, hook input)."""

    direction: str
    src: str
    dst: str
    port: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.src else 4

    @property
    def hook(self) -> Hook:
        return Hook.OUTPUT if self.direction == "egress" else Hook.INPUT

    def packet(self) -> Packet:
        iface = NetnsPair.CUSTOMER_IF
        return Packet(
            family=self.family,
            src=ipaddress.ip_address(self.src),
            dst=ipaddress.ip_address(self.dst),
            protocol=TCP,
            sport=40000,
            dport=self.port,
            ct_state=CtState.NEW,
            in_interface=iface if self.direction == "ingress" else None,
            out_interface=iface if self.direction == "egress" else None,
        )

    def __str__(self) -> str:
        return f"{self.direction} {self.packet()}"


def _all_flows(f: Family) -> list[Flow]:
    """Every flow among the harness's addresses of family ``f`` and :data:`PORTS`."""
    customers = (f.customer, f.receiver_b, f.non_receiver)
    vendors = (f.api, f.api_b, f.non_vendor, f.webhook, f.webhook_b, f.outside)
    egress = [Flow("egress", s, d, p) for s in customers for d in vendors for p in PORTS]
    ingress = [Flow("ingress", s, d, p) for s in vendors for d in customers for p in PORTS]
    return egress + ingress


#: Rules added by hand after the kernel profile's generated rules were loaded.
HAND_RULES = (
    # A vendor API address blocked although its /26 is permitted.
    "iptables -I ng-egress 1 -d 198.51.100.130/32 -p tcp --dport 443 -j DROP",
    # 22 and 80 opened to the non-vendor /26 (appended: after the generated accepts).
    "iptables -A ng-egress -d 198.51.100.192/26 -p tcp -m multiport --dports 22,80 -j ACCEPT",
    # Ports 9000-9999 from 2001:db8:300::/64 to any local address.
    "ip6tables -I ng-ingress 1 -s 2001:db8:300::/64 -p tcp --dport 9000:9999 -j ACCEPT",
    # 8443 dropped from every source outside 2001:db8:200::/47 (inserted first).
    "ip6tables -I ng-ingress 1 ! -s 2001:db8:200::/47 -p tcp --dport 8443 -j DROP",
)
#: Flows that exercise each hand-added rule, with the verdict reasoned by hand (True: ACCEPT).
SENTINELS: tuple[tuple[Flow, bool], ...] = (
    # 198.51.100.130 is in .128/26 but the hand DROP comes first.
    (Flow("egress", IPV4.customer, IPV4.api_b, 443), False),
    # 198.51.100.5 is untouched: the generated .0/25 accept.
    (Flow("egress", IPV4.customer, IPV4.api, 443), True),
    # 198.51.100.200 is in .192/26: multiport 22,80 accepts 80 but not 443.
    (Flow("egress", IPV4.customer, IPV4.non_vendor, 80), True),
    (Flow("egress", IPV4.customer, IPV4.non_vendor, 443), False),
    # 2001:db8:300::6 is in 2001:db8:300::/64: 9443 to a non-receiver is accepted.
    (Flow("ingress", IPV6.outside, IPV6.non_receiver, 9443), True),
    # 2001:db8:202::5 (a webhook range) is outside 2001:db8:200::/47: the ! -s DROP.
    (Flow("ingress", IPV6.webhook_b, IPV6.customer, 8443), False),
    # 2001:db8:200::5 is inside the /47: on to the generated webhook accept.
    (Flow("ingress", IPV6.webhook, IPV6.customer, 8443), True),
)
SEED = 20260601
SAMPLES_NEAR = 16  # from flows close to a permitted one (see _sample)
SAMPLES_ANY = 14  # from all the other flows


def _near(flow: Flow, f: Family) -> bool:
    """Egress to the vendor's /24 on 22, 80 or 443; ingress from a webhook or outside
    source to a receiver on 8443 or 9443: where the profile and the hand rules accept."""
    if flow.direction == "egress":
        return flow.dst in (f.api, f.api_b, f.non_vendor) and flow.port in (22, 80, 443)
    return (
        flow.src in (f.webhook, f.webhook_b, f.outside)
        and flow.dst in (f.customer, f.receiver_b)
        and flow.port in (8443, 9443)
    )


def _sample() -> list[Flow]:
    """:data:`SAMPLES_NEAR` flows close to permitted ones and :data:`SAMPLES_ANY` others
    (both families, both directions), chosen with :data:`SEED`, none of them a sentinel."""
    rng = random.Random(SEED)
    sentinels = {flow for flow, _ in SENTINELS}
    flows = [(fl, f) for f in FAMILIES for fl in _all_flows(f) if fl not in sentinels]
    near = [fl for fl, f in flows if _near(fl, f)]
    rest = [fl for fl, f in flows if not _near(fl, f)]
    return rng.sample(near, SAMPLES_NEAR) + rng.sample(rest, SAMPLES_ANY)


class EngineVerdicts:
    """netguard's verdicts on saved iptables files, read and evaluated as netguard check does
    (``Engine.for_rulesets`` with ``lo`` and the customer interface; MAY and MUST)."""

    def __init__(self, saved: Saved) -> None:
        ipsets = read_ipset_save(saved.ipset) if saved.has_sets else {}
        rulesets = [
            *read_iptables_save(saved.v4, ipsets=ipsets),
            *read_iptables_save(saved.v6, ipsets=ipsets),
        ]
        assert sorted(rs.family for rs in rulesets) == [4, 6]
        engine = Engine.for_rulesets(*rulesets, interfaces=["lo", NetnsPair.CUSTOMER_IF])
        self.evaluations: dict[tuple[int, Hook], tuple[Evaluation, Evaluation]] = {
            (rs.family, hook): (
                evaluate(rs, hook, engine, Approx.MAY),
                evaluate(rs, hook, engine, Approx.MUST),
            )
            for rs in rulesets
            for hook in (Hook.INPUT, Hook.OUTPUT)
        }

    def accepts(self, flow: Flow) -> bool:
        """True for ACCEPT; the verdict must not depend on unmodeled conditions."""
        may, must = self.evaluations[(flow.family, flow.hook)]
        packet = flow.packet()
        assert may.accepts(packet) == must.accepts(packet), f"uncertain verdict for {flow}"
        return may.accepts(packet)


@pytest.mark.parametrize("name", ["kernel", "kernel-ipset"])
def test_engine_verdicts_match_kernel_connections(
    pair: NetnsPair, customer: Namespace, generated: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """For the kernel profile's rules (prefixes, or ipsets) plus :data:`HAND_RULES`: the
    engine's ACCEPT/DROP of each sentinel is the hand-reasoned one, and for every sentinel and
    sampled flow the real connection is "connected" exactly when the engine says ACCEPT and
    "timeout" exactly when it says DROP."""
    _load_iptables(customer, name, generated)
    for command in HAND_RULES:
        customer.run(command.split())
    engine = EngineVerdicts(_save_iptables(customer, tmp_path / "saved"))

    hand_wrong = [
        f"  {flow}: hand {'ACCEPT' if want else 'DROP'}"
        for flow, want in SENTINELS
        if engine.accepts(flow) != want
    ]
    assert not hand_wrong, "engine differs from the hand-reasoned verdicts:\n" + "\n".join(
        hand_wrong
    )

    sample = _sample()
    sampled_accepts = sum(engine.accepts(flow) for flow in sample)
    assert 5 <= sampled_accepts <= len(sample) - 5, (
        f"sample too one-sided: {sampled_accepts} ACCEPT of {len(sample)}"
    )
    flows = [flow for flow, _ in SENTINELS] + sample
    verdicts = [engine.accepts(flow) for flow in flows]
    accepted = sum(verdicts)
    sides = {"egress": pair.customer, "ingress": pair.vendor}
    outcomes = netns.probe(
        [(sides[fl.direction], Attempt(fl.dst, fl.port, fl.src)) for fl in flows]
    )
    wrong = [
        f"  {flow}: engine {'ACCEPT' if ok else 'DROP'}, kernel {got}"
        for flow, ok, got in zip(flows, verdicts, outcomes, strict=True)
        if got != (CONNECTED if ok else TIMEOUT)
    ]
    assert not wrong, (
        f"engine and kernel disagree on {len(wrong)} of {len(flows)} flows "
        f"({len(SENTINELS)} sentinels + {len(flows) - len(SENTINELS)} sampled, "
        f"{accepted} ACCEPT):\n" + "\n".join(wrong)
    )
