"""Benchmark ``netguard check`` on big iptables-save files, next to ``iptables-restore --test``.

A realistic IPv4 ``iptables-save`` file is generated from a fixed seed
(``random.Random(20261129)``) for each size (default 10,000 and 100,000 rules): a filter table
with INPUT/OUTPUT/FORWARD policy DROP, user chains reached by jumps (some with RETURN rules,
small logging chains jumped to from everywhere), source and destination prefixes mostly inside
the documentation ranges plus random public-looking prefixes /8-/32, TCP/UDP destination ports
(single, ``a:b`` ranges, multiport lists), conntrack states, comments, ``!`` negations and the
targets ACCEPT, DROP, REJECT, LOG and RETURN. Every file must be accepted by
``iptables-restore --test`` (in a throwaway network namespace) and by netguard's reader.

For each size, in one run on one machine:

- the whole-process wall time of ``netguard check examples/public-https/deployment.yaml
  --config FILE --format json`` (the anomaly scan always runs), its exit code (1 is expected:
  the file is not compliant; 2 or 3 fail the benchmark) and its findings by code;
- the wall time of ``ip netns exec NS iptables-restore --test < FILE`` on the same file;
- the peak RSS of both (GNU ``time``); the median of ``--repeats`` runs (default 3; sizes above
  10,000 rules run once when the first run takes over 60 s);
- where netguard spends the time: each phase of ``run_check`` timed through the Python API in
  a fresh process (``--phase-worker``), and a cProfile of the whole command (``--profile``,
  10,000 rules by default).

Bounds: a size above 10,000 rules whose check runs longer than ``--stop-after`` seconds
(default 600) is stopped and reported as not finished, with the time and memory extrapolated
from the smaller sizes; every other command has ``--timeout`` (default 3600). A command whose
process group holds more than ``--max-rss`` GiB (default: 16, at most 70% of the RAM) is
stopped too, so an oversized case cannot take the machine down.

The results go to ``--markdown`` (default ``bench/results-check-PLAN.md``; ``--quick`` writes none
unless asked). Text after the line ``<!-- hand-written below -->`` in an existing file is kept.
Exit status: 0 when every run behaved (netguard exit 0 or 1 or stopped at a bound,
iptables-restore exit 0), 1 otherwise, 3 when a tool or root is missing.

Run as root from the repository root: ``python bench/bench_check.py [--quick] [--rules N ...]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import ipaddress
import itertools
import json
import math
import os
import platform
import pstats
import random
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENT = Path("examples") / "public-https" / "deployment.yaml"
SEED = 20261129
AS_OF = "2026-11-29"  # pins the date exceptions expire against, so findings do not drift
DEFAULT_SIZES = (10_000, 100_000)
QUICK_SIZES = (2_000,)
BIG = 10_000  # sizes above this are bounded by --stop-after and may run once
LONG_RUN = 60.0  # a big size whose first run takes longer than this is measured once
MARKER = "<!-- hand-written below -->"
EXIT_FAILED = 1
EXIT_MISSING_TOOL = 3

# --- the rule file ----------------------------------------------------------------------------

DOC_NETS = (
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
    ipaddress.IPv4Network("192.0.2.0/24"),
)
# First octets that do not look public (RFC 1918, loopback, CGN, link-local, multicast, ...).
NOT_PUBLIC = {0, 10, 100, 127, 169, 172, 192, 198, 203} | set(range(224, 256))
PUBLIC_FIRST = tuple(o for o in range(1, 224) if o not in NOT_PUBLIC)
SERVICE_PORTS = (22, 25, 53, 80, 110, 123, 143, 389, 443, 465, 587, 636, 993, 995, 1194, 1433,
                 1521, 2049, 3000, 3306, 3389, 5000, 5432, 5601, 5672, 6379, 6443, 8000, 8080,
                 8443, 8883, 9000, 9090, 9092, 9200, 9300, 10250, 11211, 15672, 27017)  # fmt: skip
TEAMS = ("web", "api", "billing", "search", "ops", "data", "ml", "edge", "partner", "backup")


@dataclass(frozen=True)
class ChainPlan:
    """A chain's random rules: their share, targets, and what the jump into it implies."""

    name: str
    weight: float  # share of the random rules
    jumps: tuple[str, ...] = ()  # chains its rules may jump to (only later ones: no loop)
    returns: bool = False  # may hold RETURN rules
    ports: tuple[int, ...] = ()  # TCP ports the jump into the chain selects (empty: any)
    sources: str | None = None  # the network the jump into the chain selects
    verdicts: tuple[tuple[str, float], ...] = (("ACCEPT", 55), ("DROP", 22), ("REJECT", 12),
                                               ("LOG", 5))  # fmt: skip


# Base chains first (their headers are written by HEADERS), then the user chains. Jumps go
# only to chains later in this order, so there is no loop; the logging chains are leaves.
PLANS = (
    ChainPlan("INPUT", 0.12, jumps=("LOG-DROP",)),
    ChainPlan("FORWARD", 0.06, jumps=("LOG-DROP",)),
    ChainPlan("OUTPUT", 0.12, jumps=("LOG-REJECT",)),
    ChainPlan("blocklist", 0.08, returns=True),  # rules made by _blocklist_rule
    ChainPlan("in-web", 0.14, jumps=("partners", "LOG-DROP", "LOG-REJECT"), ports=(80, 443, 8443)),
    ChainPlan("in-mgmt", 0.04, jumps=("LOG-DROP",), ports=(22,), sources="192.0.2.0/24"),
    ChainPlan("in-svc", 0.10, jumps=("partners", "LOG-DROP")),
    ChainPlan("out-api", 0.12, jumps=("LOG-REJECT",), ports=(443, 8443)),
    ChainPlan("out-svc", 0.06, jumps=("LOG-DROP",)),
    ChainPlan("fwd-dmz", 0.10, returns=True, jumps=("LOG-DROP",)),
    ChainPlan("partners", 0.06, returns=True, jumps=("LOG-DROP",)),
)
BASE = ("INPUT", "FORWARD", "OUTPUT")
LEAF_RULES = {
    "LOG-DROP": [
        '-m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix "DROP: " --log-level 4',
        "-j DROP",
    ],
    "LOG-REJECT": [
        '-m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix "REJECT: " --log-level 4',
        "-p tcp -j REJECT --reject-with tcp-reset",
        "-j REJECT --reject-with icmp-port-unreachable",
    ],
}
# Header rules of the base chains: the usual skeleton, and the jumps into the user chains.
HEADERS = {
    "INPUT": [
        "-i lo -j ACCEPT",
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-m conntrack --ctstate INVALID -j DROP",
        "-j blocklist",
        "-p icmp -m icmp --icmp-type 8 -j ACCEPT",
        "-i eth0 -p tcp -m multiport --dports 80,443,8443 -j in-web",
        "-s 192.0.2.0/24 -i eth1 -p tcp -m tcp --dport 22 -j in-mgmt",
        "-i eth0 -j in-svc",
    ],
    "FORWARD": [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-m conntrack --ctstate INVALID -j DROP",
        "-j blocklist",
        "-i eth1 -o eth0 -j fwd-dmz",
    ],
    "OUTPUT": [
        "-o lo -j ACCEPT",
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-p tcp -m multiport --dports 443,8443 -j out-api",
        "-o eth0 -j out-svc",
    ],
}
TRAILERS = {"INPUT": ["-j LOG-DROP"], "FORWARD": ["-j LOG-DROP"], "OUTPUT": ["-j LOG-REJECT"]}


#: Where the internal addresses of the rules lie (``--addresses``): ``spread``, an enterprise
#: plan of 16,384 /24 subnets in 10.0.0.0/10 (RFC 1918), so rules name many different hosts
#: and subnets, as in real large rule sets; ``dense``, the three documentation /24s only, so
#: thousands of rules overlap on the same 768 addresses (a stress case for exact analysis).
ADDRESS_PLANS = ("spread", "dense")
ADDRESSES = "spread"
INTERNAL = ipaddress.IPv4Network("10.0.0.0/8")


def _internal(rng: random.Random) -> ipaddress.IPv4Network:
    if ADDRESSES == "dense":
        return rng.choice(DOC_NETS)
    return ipaddress.IPv4Network(f"10.{rng.randrange(64)}.{rng.randrange(256)}.0/24")


def _prefix(rng: random.Random, public: float = 0.3, within: str | None = None) -> str:
    """A prefix: internal (mostly long, see ``ADDRESSES``) or, with probability ``public``,
    a public-looking one /8-/32; inside ``within`` when given."""
    if within is not None:
        net = ipaddress.IPv4Network(within)
        length = rng.choice((net.prefixlen + 4, 29, 30, 32, 32, 32, 32, 32))
    elif rng.random() >= public:
        net = _internal(rng)
        length = rng.choice((24, 26, 27, 28, 28, 29, 29, 30, 30, *(32,) * 11))
    else:
        net = ipaddress.IPv4Network(f"{rng.choice(PUBLIC_FIRST)}.0.0.0/8")
        length = rng.choice((8, 12, 16, 18, 20, 22, 23, 24, 24, 24, 26, 27, 28, 29, 32, 32, 32))
    offset = rng.randrange(net.num_addresses >> (32 - length)) << (32 - length)
    return f"{ipaddress.IPv4Address(int(net.network_address) + offset)}/{length}"


def _port_range(rng: random.Random) -> str:
    low = rng.choice((*SERVICE_PORTS, 1024, 30000, 49152))
    return f"{low}:{min(65535, low + rng.choice((1, 1, 3, 7, 9, 15, 99, 999)))}"


def _multiport(rng: random.Random, ports: Sequence[int] = ()) -> str:
    if ports:
        return ",".join(str(p) for p in rng.sample(list(ports), rng.randint(2, len(ports))))
    items: list[str] = []
    used = 0
    while used < rng.randint(2, 12):  # multiport takes at most 15 ports, a range counts twice
        if rng.random() < 0.1:
            items.append(_port_range(rng))
            used += 2
        else:
            items.append(str(rng.choice(SERVICE_PORTS)))
            used += 1
    return ",".join(dict.fromkeys(items))


def _comment(rng: random.Random, number: int) -> list[str]:
    if rng.random() >= 0.3:
        return []
    return ["-m", "comment", "--comment", f'"{rng.choice(TEAMS)} OPS-{1000 + number}"']


def _blocklist_rule(rng: random.Random, number: int) -> str:
    """Sources (a few destinations) to drop, public-looking; a few exempted partner ranges."""
    comment = _comment(rng, number)
    roll = rng.random()
    if roll < 0.1:
        return " ".join(["-s", _prefix(rng, public=0.0), *comment, "-j", "RETURN"])
    where = ["-s" if roll < 0.95 else "-d", _prefix(rng, public=1.0)]
    return " ".join([*where, *comment, "-j", "DROP" if rng.random() < 0.8 else "REJECT"])


def _ports(rng: random.Random, proto: str, plan: ChainPlan) -> list[str]:
    """The port options of a TCP/UDP rule, in iptables-save's order."""
    roll = rng.random()
    neg = ["!"] if rng.random() < 0.02 and not plan.ports else []
    single = ["--sport", "1024:65535"] if rng.random() < 0.05 else []
    multi: list[str] = []
    if plan.ports:
        if roll < 0.6 or len(plan.ports) == 1:
            single += ["--dport", str(rng.choice(plan.ports))]
        elif roll < 0.8:
            multi = ["-m", "multiport", "--dports", _multiport(rng, plan.ports)]
    elif roll < 0.55:
        single += [*neg, "--dport", str(rng.choice(SERVICE_PORTS))]
    elif roll < 0.7:
        single += [*neg, "--dport", _port_range(rng)]
    elif roll < 0.98:
        multi = ["-m", "multiport", *neg, "--dports", _multiport(rng)]
    return (["-m", proto, *single] if single else []) + multi


def _rule(rng: random.Random, plan: ChainPlan, number: int) -> str:
    """One random rule of ``plan``'s chain, options in iptables-save's own order."""
    if plan.name == "blocklist":
        return _blocklist_rule(rng, number)
    comment = _comment(rng, number)
    if not plan.ports and rng.random() < 0.015:  # only our networks may reach this port
        port = rng.choice(SERVICE_PORTS)
        ours = rng.choice(DOC_NETS) if ADDRESSES == "dense" else INTERNAL
        where = f"! -s {ours} -p tcp -m tcp --dport {port}"
        return " ".join([where, *comment, "-j", "DROP"])
    words: list[str] = []
    roll = rng.random()  # every rule names a source or a destination, many both
    if roll < 0.8:
        words += ["-s", _prefix(rng, within=plan.sources)]
    if roll > 0.45:
        words += ["-d", _prefix(rng)]
    if plan.name in ("INPUT", "FORWARD") and rng.random() < 0.3:
        words += ["-i", rng.choice(("eth0", "eth1", "ens+"))]
    if plan.name in ("OUTPUT", "FORWARD") and rng.random() < 0.3:
        words += ["-o", rng.choice(("eth0", "eth1", "ens+"))]
    roll = rng.random()
    if plan.ports:
        proto: str | None = "tcp"
    else:
        proto = "tcp" if roll < 0.6 else "udp" if roll < 0.88 else "icmp" if roll < 0.93 else None
    if proto is not None:
        words += ["-p", proto]
    if proto in ("tcp", "udp"):
        words += _ports(rng, proto, plan)
    elif proto == "icmp":
        words += ["-m", "icmp", "--icmp-type", rng.choice(("8", "0", "3", "11", "3/4"))]
    roll = rng.random()
    if roll < 0.4:
        words += ["-m", "conntrack", "--ctstate", "NEW"]
    elif roll < 0.45:
        words += ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
    words += comment
    verdicts = dict(plan.verdicts)
    if plan.returns:
        verdicts["RETURN"] = 8
    for target in plan.jumps:
        verdicts[target] = 4 / len(plan.jumps)
    target = rng.choices(list(verdicts), weights=list(verdicts.values()))[0]
    if target == "REJECT":
        kind = "tcp-reset" if proto == "tcp" and rng.random() < 0.5 else "icmp-port-unreachable"
        words += ["-j", "REJECT", "--reject-with", kind]
    elif target == "LOG":
        words += ["-j", "LOG", "--log-prefix", f'"{plan.name}-{number}: "']
    else:
        words += ["-j", target]
    return " ".join(words)


def generate(n_rules: int, seed: int = SEED) -> str:
    """An ``iptables-save`` file with exactly ``n_rules`` rules (``-A`` lines)."""
    rng = random.Random(seed)
    fixed = sum(len(r) for r in (*HEADERS.values(), *TRAILERS.values(), *LEAF_RULES.values()))
    if n_rules < fixed + 10:
        raise ValueError(f"at least {fixed + 10} rules")
    total = sum(p.weight for p in PLANS)
    free = n_rules - fixed
    counts = {p.name: int(free * p.weight / total) for p in PLANS}
    counts["in-web"] += free - sum(counts.values())
    body: dict[str, list[str]] = {}
    number = 0
    for plan in PLANS:
        rules = list(HEADERS.get(plan.name, []))
        for _ in range(counts[plan.name]):
            number += 1
            rules.append(_rule(rng, plan, number))
        rules += TRAILERS.get(plan.name, [])
        body[plan.name] = rules
    body.update(LEAF_RULES)
    out = [
        f"# Generated by netguard bench/bench_check.py (seed {seed}, {n_rules} rules, "
        f"addresses {ADDRESSES})",
        "*filter",
        *(f":{name} DROP [0:0]" for name in BASE),
        *(f":{name} - [0:0]" for name in body if name not in BASE),
    ]
    for name, rules in body.items():
        out.extend(f"-A {name} {rule}" for rule in rules)
    out += ["COMMIT", "# Completed", ""]
    text = "\n".join(out)
    assert text.count("\n-A ") == n_rules, (text.count("\n-A "), n_rules)
    return text


# --- running commands -------------------------------------------------------------------------


@dataclass
class Run:
    """One measured command. ``exit_code`` None: stopped at a bound (``stopped`` says which)."""

    wall: float
    rss_kb: int | None
    exit_code: int | None
    stopped: str = ""
    stderr: str = ""


@dataclass
class Measure:
    """Repeated runs of one command."""

    runs: list[Run] = field(default_factory=list)

    @property
    def stopped(self) -> str:
        return next((r.stopped for r in self.runs if r.exit_code is None), "")

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def rss_kb(self) -> int | None:
        got = [r.rss_kb for r in self.runs if r.rss_kb is not None]
        return max(got) if got else None

    @property
    def exit_codes(self) -> list[int | None]:
        return sorted({r.exit_code for r in self.runs}, key=lambda c: -1 if c is None else c)


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def _group_rss_kb(pgid: int) -> int:
    """The summed RSS of the processes of process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def run_timed(
    argv: Sequence[str],
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    timeout: float,
    max_rss_kb: int,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``argv`` under GNU time (peak RSS), measure its wall time here, and stop its process
    group at ``timeout`` seconds or when it holds more than ``max_rss_kb``."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ngb-run-")))
        timing, errors = tmp / "time", tmp / "stderr"
        full = [GNU_TIME, "-f", "%M", "-o", str(timing), *argv] if GNU_TIME else list(argv)
        fin = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        fout = stack.enter_context(stdout.open("wb")) if stdout else subprocess.DEVNULL
        ferr = stack.enter_context(errors.open("wb"))
        start = time.perf_counter()
        proc = subprocess.Popen(
            full,
            stdin=fin,
            stdout=fout,
            stderr=ferr,
            env=env,
            cwd=REPO,
            start_new_session=True,  # its own process group, stopped as a whole
        )
        stopped, peak = "", 0
        while True:
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            peak = max(peak, _group_rss_kb(proc.pid))
            if time.perf_counter() - start > timeout:
                stopped = f"stopped after {timeout:.0f} s"
            elif peak > max_rss_kb:
                stopped = f"stopped at {peak / 1024 / 1024:.1f} GiB RSS"
            if stopped:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
        wall = time.perf_counter() - start
        rss: int | None = peak or None
        if GNU_TIME and not stopped:
            lines = [ln for ln in timing.read_text().splitlines() if ln.strip()]
            with contextlib.suppress(ValueError, IndexError):
                rss = int(lines[-1])  # after "Command exited with non-zero status N"
        err = errors.read_text(errors="replace")[-3000:]
    return Run(wall, rss, None if stopped else proc.returncode, stopped, err)


@contextlib.contextmanager
def netns() -> Iterator[str]:
    """A throwaway network namespace, deleted on the way out whatever happens."""
    name = f"ngb-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["NETGUARD_AS_OF"] = AS_OF
    env["NO_COLOR"] = "1"
    return env


def _check_args(config: Path) -> list[str]:
    return ["check", str(DEPLOYMENT), "--config", str(config), "--format", "json"]


# --- phases (fresh process, Python API) -------------------------------------------------------

# (label, depth): rows of the phase table; depth 1 and 2 are part of the row above them.
PHASES: tuple[tuple[str, int], ...] = (
    ("import netguard", 0),
    ("load deployment + compile policy", 0),
    ("read config (iptables-save reader)", 0),
    ("engine setup", 0),
    ("evaluate input MAY", 0),
    ("evaluate input MUST", 0),
    ("evaluate output MAY", 0),
    ("evaluate output MUST", 0),
    ("evaluate forward MAY", 0),
    ("evaluate forward MUST", 0),
    ("compliance: check_ruleset", 0),
    ("violations NG101-103", 1),
    ("rectangles (cover)", 2),
    ("deciding rules", 2),
    ("policy ACCEPT NG104", 1),
    ("blocked flows NG110", 1),
    ("anomaly scan: find_anomalies", 0),
    ("findings NG201/202", 1),
    ("covering rules", 2),
    ("unmodeled NG401", 0),
    ("render JSON", 0),
    ("example packets (all checks)", 9),
)


def _phase_worker(config: Path, out: Path) -> None:
    """Time each phase of ``run_check`` (in this fresh process) by wrapping the functions it
    calls, and write the totals as JSON to ``out``."""
    t0 = time.perf_counter()
    import netguard.check as check
    import netguard.checks.anomalies as anomalies
    import netguard.checks.policy as policy
    import netguard.report as report
    from netguard.space import Engine, Evaluation, HeaderSpace

    times: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.defaultdict(int)
    sizes: dict[str, int] = {}
    times["import netguard"] = time.perf_counter() - t0
    calls["import netguard"] = 1

    def timed(name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                label = name(*args, **kwargs) if callable(name) else name
                times[label] += time.perf_counter() - start
                calls[label] += 1

        return wrapper

    def evaluate(ruleset: Any, hook: Any, engine: Any = None, approx: Any = None) -> Any:
        label = f"evaluate {hook.value} {approx.name}"
        start = time.perf_counter()
        ev = check_evaluate(ruleset, hook, engine, approx)
        times[label] += time.perf_counter() - start
        calls[label] += 1
        sizes[f"BDD nodes of accepted ({hook.value} {approx.name})"] = ev.accepted.node.dag_size
        return ev

    check_evaluate = check.evaluate
    check.evaluate = evaluate
    load = check.load_deployment
    check.load_deployment = timed("load deployment + compile policy", load)
    check.compile_policy = timed("load deployment + compile policy", check.compile_policy)
    check.load_configs = timed("read config (iptables-save reader)", check.load_configs)
    check.check_ruleset = timed("compliance: check_ruleset", check.check_ruleset)
    policy._violations = timed("violations NG101-103", policy._violations)
    policy._deciders = timed("deciding rules", policy._deciders)
    policy._policy_accepts = timed("policy ACCEPT NG104", policy._policy_accepts)
    policy._blocked = timed("blocked flows NG110", policy._blocked)
    check.find_anomalies = timed("anomaly scan: find_anomalies", check.find_anomalies)
    anomalies._finding = timed("findings NG201/202", anomalies._finding)
    check.unmodeled_findings = timed("unmodeled NG401", check.unmodeled_findings)
    report.render = timed("render JSON", report.render)
    HeaderSpace.rectangles = timed("rectangles (cover)", HeaderSpace.rectangles)  # type: ignore[method-assign]
    HeaderSpace.example = timed("example packets (all checks)", HeaderSpace.example)  # type: ignore[method-assign]
    Evaluation.covering = timed("covering rules", Evaluation.covering)  # type: ignore[method-assign]
    for_rulesets = Engine.for_rulesets.__func__  # type: ignore[attr-defined]
    Engine.for_rulesets = classmethod(timed("engine setup", for_rulesets))  # type: ignore[method-assign,assignment]

    sink = io.StringIO()
    options = check.CheckOptions(deployment=REPO / DEPLOYMENT, configs=[config], format="json")
    start = time.perf_counter()
    code = check.run_check(options, sink, io.StringIO())
    times["run_check"] = time.perf_counter() - start
    out.write_text(json.dumps({"times": times, "calls": calls, "sizes": sizes, "exit": code}))


def phases(config: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="ngb-") as tmp:
        dest = Path(tmp) / "phases.json"
        argv = [sys.executable, str(Path(__file__).resolve()), "--phase-worker", str(config)]
        argv += ["--phase-out", str(dest)]
        run = run_timed(argv, timeout=args.timeout, max_rss_kb=args.max_rss_kb, env=_env())
        if run.exit_code != 0:
            why = run.stopped or f"exit {run.exit_code}"
            print(f"  phases: {why}: {run.stderr.strip()[-500:]}", file=sys.stderr)
            return None
        data: dict[str, Any] = json.loads(dest.read_text())
        data["rss_kb"] = run.rss_kb
        data["wall"] = run.wall
        return data


def cprofile(config: Path, args: argparse.Namespace, top: int = 22) -> str | None:
    with tempfile.TemporaryDirectory(prefix="ngb-") as tmp:
        prof = Path(tmp) / "check.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "netguard.cli"]
        argv += _check_args(config)
        run = run_timed(argv, timeout=args.timeout, max_rss_kb=args.max_rss_kb, env=_env())
        if run.exit_code not in (0, 1):
            why = run.stopped or f"exit {run.exit_code}"
            print(f"  cProfile: {why}: {run.stderr.strip()[-500:]}", file=sys.stderr)
            return None
        buf = io.StringIO()
        stats = pstats.Stats(str(prof), stream=buf)
        stats.strip_dirs()
        buf.write(f"whole command under cProfile: {run.wall:.1f} s wall\n")
        stats.sort_stats("tottime").print_stats(top)
        kept = []
        for line in buf.getvalue().splitlines():
            if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced")):
                kept.append(line.rstrip())
        return "\n".join(kept)


# --- the benchmark ----------------------------------------------------------------------------


@dataclass
class SizeResult:
    rules: int
    file_bytes: int
    reader_seconds: float
    check: Measure
    restore: Measure
    findings: dict[str, int] | None = None
    phases: dict[str, Any] | None = None
    profile: str | None = None
    commit: str = ""  # netguard's commit while this size ran ("A -> B" when it changed)


def findings_by_code(path: Path) -> dict[str, int] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    counter = collections.Counter(f["id"] for f in data.get("findings", []))
    return dict(sorted(counter.items()))


def measure(label: str, once: Callable[[], Run], repeats: int, single_if_long: bool) -> Measure:
    m = Measure()
    for i in range(repeats):
        run = once()
        m.runs.append(run)
        state = run.stopped or f"exit {run.exit_code}"
        rss = f", {run.rss_kb / 1024:.0f} MiB" if run.rss_kb else ""
        print(f"  {label} run {i + 1}: {run.wall:.2f} s ({state}{rss})", flush=True)
        if run.exit_code is None or (single_if_long and run.wall > LONG_RUN):
            break
    return m


def bench_size(n: int, tmp: Path, ns: str, args: argparse.Namespace) -> SizeResult:
    before = _commit()
    result = _bench_size(n, tmp, ns, args)
    after = _commit()
    result.commit = before if before == after else f"{before} -> {after}"
    if before != after:
        print(f"  netguard changed during this size: {result.commit}", file=sys.stderr)
    return result


def _bench_size(n: int, tmp: Path, ns: str, args: argparse.Namespace) -> SizeResult:
    print(f"\n== {n:,} rules", flush=True)
    path = tmp / f"iptables-{ADDRESSES}-{n}.txt"
    path.write_text(generate(n))
    size = path.stat().st_size
    print(f"  generated {path} ({size / 1e6:.1f} MB)", flush=True)
    bound = {"timeout": args.timeout, "max_rss_kb": args.max_rss_kb}

    restore_argv = ["ip", "netns", "exec", ns, "iptables-restore", "--test"]
    first = run_timed(restore_argv, stdin=path, **bound)
    if first.exit_code != 0:
        raise SystemExit(f"iptables-restore --test rejects {path}: {first.stderr.strip()}")
    from netguard.readers.iptables_save import read_iptables_save

    start = time.perf_counter()
    rulesets = read_iptables_save(path)
    reader_seconds = time.perf_counter() - start
    got = sum(len(c.rules) for rs in rulesets for c in rs.chains.values())
    if got != n or len(rulesets) != 1 or rulesets[0].family != 4:
        raise SystemExit(f"netguard's reader found {got} rules in {path}, expected {n} (IPv4)")
    del rulesets
    print(f"  accepted by iptables-restore --test and netguard's reader ({got:,} rules)")

    out = tmp / f"check-{ADDRESSES}-{n}.json"
    check_argv = ["netguard", *_check_args(path)]
    big = n > BIG
    check_bound = {**bound, "timeout": args.stop_after if big else args.timeout}
    check = measure(
        "netguard check",
        lambda: run_timed(check_argv, stdout=out, env=_env(), **check_bound),
        args.repeats,
        single_if_long=big,
    )
    restore = measure(
        "iptables-restore --test",
        lambda: run_timed(restore_argv, stdin=path, **bound),
        args.repeats,
        single_if_long=big,
    )
    result = SizeResult(n, size, reader_seconds, check, restore)
    if not check.stopped:
        result.findings = findings_by_code(out)
        if args.phases:
            print("  phases (fresh process, Python API)...", flush=True)
            result.phases = phases(path, args)
        if n in args.profile:
            print("  cProfile...", flush=True)
            result.profile = cprofile(path, args)
    return result


# --- the report -------------------------------------------------------------------------------


def _sh(argv: Sequence[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return "?"


def _meminfo_kb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from netguard.space._bdd import BACKEND_NAME

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{_meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": _commit(),
        "bdd": BACKEND_NAME,
        "iptables": _sh(["iptables", "--version"]),
    }


def _commit() -> str:
    """netguard's commit, ``+`` when netguard/ differs from it (the code being measured)."""
    dirty = "+" if _sh(["git", "status", "--porcelain", "--", "netguard"]) else ""
    return _sh(["git", "rev-parse", "--short", "HEAD"]) + dirty


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _mib(kb: int | None) -> str:
    return f"{kb / 1024:,.0f} MiB" if kb else "?"


def _secs(m: Measure) -> str:
    if m.stopped:
        return f"did not finish ({m.stopped})"
    walls = [r.wall for r in m.runs]
    if len(walls) == 1:
        return f"{walls[0]:.2f} s (1 run)" if walls[0] < 10 else f"{walls[0]:.0f} s (1 run)"
    fmt = "{:.2f}" if m.wall < 10 else "{:.0f}"
    spread = f"{fmt.format(min(walls))}-{fmt.format(max(walls))}"
    return f"**{fmt.format(m.wall)} s** ({spread}, {len(walls)} runs)"


def _codes(m: Measure) -> str:
    return ",".join("stopped" if c is None else str(c) for c in m.exit_codes)


def _exponent(a: SizeResult, b: SizeResult, value: Callable[[SizeResult], float]) -> float:
    return math.log(value(b) / value(a)) / math.log(b.rules / a.rules)


def _scaling(results: list[SizeResult]) -> list[str]:
    done = [r for r in results if not r.check.stopped and r.check.rss_kb]
    if len(done) < 2:
        return []
    lines = [
        "",
        "Growth between sizes: time ~ rules^k (k = log(t2/t1) / log(n2/n1)); likewise RSS.",
        "",
        "| from -> to | time exponent | RSS exponent |",
        "|---|---:|---:|",
    ]
    for a, b in itertools.pairwise(done):
        kt = _exponent(a, b, lambda r: r.check.wall)
        km = _exponent(a, b, lambda r: float(r.check.rss_kb or 1))
        lines.append(f"| {a.rules:,} -> {b.rules:,} | {kt:.2f} | {km:.2f} |")
    a, b = done[-2], done[-1]
    kt = _exponent(a, b, lambda r: r.check.wall)
    km = _exponent(a, b, lambda r: float(r.check.rss_kb or 1))
    for r in results:
        if r.check.stopped and r.rules > b.rules:
            factor = r.rules / b.rules
            t = b.check.wall * factor**kt
            mem = (b.check.rss_kb or 0) * factor**km
            lines += [
                "",
                f"Extrapolated from {a.rules:,} -> {b.rules:,} (k = {kt:.2f} for time, {km:.2f} "
                f"for RSS): {r.rules:,} rules would take about {t / 3600:.1f} h and "
                f"{mem / 1024 / 1024:.0f} GiB, on this machine.",
            ]
    return lines


def _phase_table(results: list[SizeResult]) -> list[str]:
    with_phases = [r for r in results if r.phases]
    if not with_phases:
        return []
    last = with_phases[-1]
    head = " | ".join(f"{r.rules:,} rules" for r in with_phases)
    lines = [
        "",
        "### Where the time goes",
        "",
        "Each phase of `run_check` timed through the Python API in a fresh process "
        "(`python bench/bench_check.py --phase-worker FILE --phase-out OUT.json`, which wraps "
        "the functions `run_check` calls); seconds, and the share of `run_check` for "
        f"{last.rules:,} rules. Rows marked ↳ are part of the row above them. "
        + "; ".join(
            f"{r.rules:,} rules: process {r.phases['wall']:.1f} s, peak RSS "
            f"{_mib(r.phases['rss_kb'])}"
            for r in with_phases
            if r.phases
        )
        + ".",
        "",
        f"| phase | {head} | share ({last.rules:,}) |",
        "|---|" + "---:|" * (len(with_phases) + 1),
    ]
    total = last.phases["times"]["run_check"] if last.phases else 1.0
    rows = [*PHASES, ("run_check", 0)]
    for label, depth in rows:
        cells = []
        for r in with_phases:
            t = (r.phases or {})["times"].get(label)
            cells.append("-" if t is None else f"{t:.2f}")
        t_last = (last.phases or {})["times"].get(label)
        if all(c == "-" for c in cells):
            continue
        share = (
            "-" if t_last is None or label == "import netguard" else f"{100 * t_last / total:.0f}%"
        )
        calls = (last.phases or {})["calls"].get(label, 0)
        name = f"{label} ({calls} calls)" if calls > 1 else label
        if depth == 9:
            name = f"*{name}, inside the rows above*"
        elif depth:
            name = "&nbsp;&nbsp;" * depth + "↳ " + name
        if label == "run_check":
            name, cells, share = "**run_check total**", [f"**{c}**" for c in cells], "100%"
        lines.append(f"| {name} | {' | '.join(cells)} | {share} |")
    size_keys = sorted({k for r in with_phases for k in (r.phases or {}).get("sizes", {})})
    if size_keys:
        lines += ["", "BDD sizes (nodes):", "", f"| set | {head} |"]
        lines.append("|---|" + "---:|" * len(with_phases))
        for key in size_keys:
            cells = [f"{(r.phases or {})['sizes'].get(key, 0):,}" for r in with_phases]
            lines.append(f"| {key} | {' | '.join(cells)} |")
    return lines


def _commits(results: list[SizeResult]) -> str:
    """The commit measured, or each size's when they differ (the code changed mid-run)."""
    commits = {r.commit for r in results}
    if len(commits) == 1:
        return f"`{commits.pop()}`"
    return "**changed during the run**: " + ", ".join(
        f"{r.rules:,} rules `{r.commit}`" for r in results
    )


def markdown(
    results: list[SizeResult], info: dict[str, str], argv: Sequence[str], kept: str
) -> str:
    cmd = shlex.join(["python", "bench/bench_check.py", *argv])
    lines = [
        f"## `netguard check` on big iptables-save files (addresses: {ADDRESSES})",
        "",
        f"Measured with `{cmd}` on {info['date']}.",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, Linux "
        f"{info['kernel']}, Python {info['python']}, netguard {_commits(results)} (BDD backend "
        f"{info['bdd']}), {info['iptables']}. Load average before the run {info['load_before']}, "
        f"after {info['load_after']} (other work on the machine shows here).",
        "",
        "Input: one IPv4 `iptables-save` file per size, from `random.Random(20261129)`: filter "
        "table, INPUT/OUTPUT/FORWARD policy DROP, 10 user chains (jumps, RETURNs, two small "
        "logging chains), source/destination prefixes "
        + (
            "mostly in 198.51.100.0/24, 203.0.113.0/24 and 192.0.2.0/24 (`--addresses dense`: "
            "thousands of rules on the same 768 addresses, a stress case)"
            if ADDRESSES == "dense"
            else "mostly /24-/32 in 16,384 /24 subnets of 10.0.0.0/10 (`--addresses spread`: an "
            "enterprise address plan)"
        )
        + " plus public-looking /8-/32, TCP/UDP ports, `a:b` ranges and multiport "
        "lists, conntrack states, comments, `!` negations, ACCEPT/DROP/REJECT/LOG/RETURN. Each "
        "file is first checked to be accepted by `iptables-restore --test` and by netguard's "
        "reader (same rule count).",
        "",
        "Commands, from the repository root (`NS` is a throwaway network namespace, "
        "`ip netns add ngb-XXXXXXXX`, deleted at the end):",
        "",
        f"    NETGUARD_AS_OF={AS_OF} netguard check {DEPLOYMENT} --config FILE --format json "
        "> OUT.json",
        "    ip netns exec NS iptables-restore --test < FILE",
        "",
        "each under `/usr/bin/time -f %M` (peak RSS), wall time taken around the process; the "
        "median of the runs shown. The report goes to a file rather than `/dev/null` so the "
        "findings can be counted; `NETGUARD_AS_OF` only pins the date exceptions expire "
        "against. The deployment enables IPv4 and IPv6 and only an IPv4 file is given, hence "
        "the one NG105.",
        "",
        "| rules | file | `netguard check` | `iptables-restore --test` | ratio | peak RSS "
        "check / restore | exit check / restore | findings |",
        "|---:|---:|---|---|---:|---|---|---|",
    ]
    for r in results:
        ratio = "-" if r.check.stopped else f"{r.check.wall / r.restore.wall:,.0f}x"
        found = ", ".join(f"{k} {v}" for k, v in (r.findings or {}).items()) or "-"
        lines.append(
            f"| {r.rules:,} | {r.file_bytes / 1e6:.1f} MB | {_secs(r.check)} | "
            f"{_secs(r.restore)} | {ratio} | {_mib(r.check.rss_kb)} / "
            f"{_mib(r.restore.rss_kb)} | {_codes(r.check)} / {_codes(r.restore)} | {found} |"
        )
    lines += [
        "",
        "netguard's reader alone, in the benchmark's own process: "
        + ", ".join(f"{r.rules:,} rules {r.reader_seconds:.2f} s" for r in results)
        + ".",
    ]
    lines += _scaling(results)
    lines += _phase_table(results)
    for r in results:
        if r.profile:
            lines += [
                "",
                f"cProfile of the whole command, {r.rules:,} rules, by own time (the CUDD "
                "operations run inside the Python functions that call them and count as "
                "their own time):",
                "",
                "```",
                r.profile,
                "```",
            ]
    text = "\n".join(lines) + "\n"
    return text + (f"\n{MARKER}\n{kept}" if kept else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2,000 rules, 1 run")
    parser.add_argument("--rules", type=int, nargs="+", help="sizes (default 10000 100000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--stop-after", type=float, default=600.0, help="bound, sizes > 10,000")
    parser.add_argument("--timeout", type=float, default=3600.0, help="bound of other commands")
    parser.add_argument("--max-rss", type=float, help="GiB per command (default 16, <= 70%% RAM)")
    parser.add_argument("--profile", type=int, nargs="*", help="sizes to cProfile (10000)")
    parser.add_argument("--no-phases", dest="phases", action="store_false")
    parser.add_argument("--markdown", type=Path, help="default bench/results-check-PLAN.md")
    parser.add_argument("--keep", type=Path, help="keep the generated files in this directory")
    parser.add_argument(
        "--addresses",
        choices=ADDRESS_PLANS,
        default="spread",
        help="address plan of the rules (default spread; dense: a stress case)",
    )
    parser.add_argument("--phase-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global ADDRESSES
    ADDRESSES = args.addresses
    if args.phase_worker:
        _phase_worker(args.phase_worker.resolve(), args.phase_out)
        return 0
    sizes = args.rules or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.quick:
        args.repeats = 1
    if args.profile is None:
        args.profile = list(sizes) if args.quick else [10_000]
    if args.markdown is None and not args.quick:
        args.markdown = REPO / "bench" / f"results-check-{ADDRESSES}.md"
    ram_kb = _meminfo_kb("MemTotal")
    cap_gib = args.max_rss if args.max_rss else min(16.0, 0.7 * ram_kb / 1024 / 1024)
    args.max_rss_kb = int(cap_gib * 1024 * 1024)
    for tool in ("ip", "iptables-restore", "netguard"):
        if shutil.which(tool) is None:
            print(f"{tool} not found", file=sys.stderr)
            return EXIT_MISSING_TOOL
    if os.geteuid() != 0:
        print("network namespaces need root", file=sys.stderr)
        return EXIT_MISSING_TOOL
    info = machine()
    info["date"] = time.strftime("%Y-%m-%d")
    info["load_before"] = _load()
    results: list[SizeResult] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep.resolve()
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ngb-")))
        ns = stack.enter_context(netns())
        kept = ""
        if args.markdown and args.markdown.exists():
            old = args.markdown.read_text()
            if MARKER in old:
                kept = old.split(MARKER, 1)[1].lstrip("\n")
        for n in sizes:
            results.append(bench_size(n, tmp, ns, args))
            info["load_after"] = _load()
            if args.markdown:  # after every size, so a run cut short still leaves its numbers
                text = markdown(results, info, sys.argv[1:] if argv is None else argv, kept)
                args.markdown.write_text(text)
                print(f"  wrote {args.markdown}", flush=True)
    ok = all(c in (0, 1) for r in results for c in r.check.exit_codes if c is not None)
    ok = ok and all(c == 0 for r in results for c in r.restore.exit_codes)
    return 0 if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
