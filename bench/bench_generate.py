"""Benchmark ``netguard generate`` on big vendor allowlists, against ``iprange`` as peer and oracle.

Three cases, each a public-https deployment whose ``vendor.api_ranges`` is a big list:

- ``synthetic-100k``: 100,000 IPv4 prefixes (/16 to /32, random, overlapping, adjacent and
  duplicated entries included) plus 10,000 IPv6 prefixes in 2001:db8::/32, from a fixed seed;
- ``aws-2021``: the 4,190 real, overlapping, unsorted AWS IPv4 prefixes of
  ``shared/data/aws-ranges-2021.txt``;
- ``aws-2021-prefix-list``: the same with AWS settings under which the AWS targets fit.

For each case it measures, in one run on one machine, the whole-process wall time of
``netguard generate`` (all targets, or every target that accepts the input, and
``-t iptables -t allowlist``), the time of each phase through the Python API (load+validate,
compile, render per target, write), the peak RSS of each child process, and the wall time of
``iprange`` (the FireHOL tool) merging the same IPv4 input.
netguard's aggregated list (``allowlist/egress-destinations.txt``) must be identical, line by
line, to iprange's output, and to ``netaddr.cidr_merge`` (a second opinion, IPv4 and IPv6).
Exit status: 0 when every comparison agrees, 1 when one differs or a measured run fails, 3 when
a tool is missing.

Run from the repository root: ``python bench/bench_generate.py [--quick] [--markdown FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import ipaddress
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "public-https" / "deployment.yaml"
AWS_DATA_NAME = "aws-ranges-2021.txt"
AWS_DATA_DEFAULT = REPO.parent / "shared" / "data" / AWS_DATA_NAME
AWS_DATA_FALLBACK = Path("/work/shared/data") / AWS_DATA_NAME
SEED = 20261129
N_V4 = 100_000
N_V6 = 10_000
EXIT_DIFFERENT = 1
EXIT_MISSING_TOOL = 3

# Prefix length mix of the synthetic IPv4 list, weights in percent: mostly /24 and /32 as in
# real vendor feeds (the AWS 2021 list: 22% /24, 13% /32, 11% /31, 11% /16-/19).
# fmt: off
V4_LENGTHS = {16: 2, 17: 1, 18: 1, 19: 2, 20: 3, 21: 3, 22: 5, 23: 5, 24: 30, 25: 3, 26: 4,
              27: 4, 28: 5, 29: 4, 30: 2, 31: 2, 32: 24}
# fmt: on
# IPv6: /44 to /64 and single addresses, inside the one /32 the documentation range gives.
V6_LENGTHS = {44: 3, 48: 40, 52: 7, 56: 20, 60: 5, 64: 15, 128: 10}
# Public-looking first octets (no traffic is ever sent: the prefixes are data only). Real vendor
# ranges cluster in a few /8s, which is also what makes overlaps and adjacency common.
# fmt: off
V4_FIRST_OCTETS = (3, 13, 15, 18, 34, 35, 44, 50, 52, 54, 63, 64, 76, 99, 104, 107, 108, 130,
                   150, 157, 175, 176, 184, 185)
# fmt: on
# AWS settings under which the 989 aggregated AWS prefixes fit every AWS target.
AWS_FITS = {"prefix_lists": True, "quotas": {"rules_per_group": 1000, "groups_per_interface": 1}}
V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))  # RFC 3849 documentation prefix, a /32


# --------------------------------------------------------------------------------------------
# inputs


def _network(value: int, length: int, bits: int) -> int:
    """``value`` with its host bits cleared: the profile refuses prefixes with host bits set."""
    return value & ~((1 << (bits - length)) - 1)


def _random_prefixes(
    rng: random.Random, n: int, bits: int, lengths: dict[int, int], fresh_address: Callable[[], int]
) -> list[tuple[int, int]]:
    """``n`` (address, length) pairs, unsorted. About 10% are derived from an earlier entry
    (its sibling, a prefix inside it, or an exact duplicate) so that aggregation has merging
    and containment to do, as in real feeds; the rest are fresh random networks."""
    choices, weights = zip(*lengths.items(), strict=True)
    out: list[tuple[int, int]] = []
    while len(out) < n:
        roll = rng.random()
        if out and roll < 0.04:  # the sibling of an earlier prefix: the two merge
            addr, length = rng.choice(out)
            out.append((addr ^ (1 << (bits - length)), length))
        elif out and roll < 0.08:  # a prefix inside an earlier one: containment
            addr, length = rng.choice(out)
            sub = rng.randint(length, min(bits, length + 16))
            out.append((_network(addr + rng.randrange(1 << (bits - length)), sub, bits), sub))
        elif out and roll < 0.10:  # an exact duplicate
            out.append(rng.choice(out))
        else:
            length = rng.choices(choices, weights)[0]
            out.append((_network(fresh_address(), length, bits), length))
    return out


def synthetic_prefixes(rng: random.Random, n_v4: int, n_v6: int) -> tuple[list[str], list[str]]:
    """``n_v4`` IPv4 prefixes in a few public-looking /8s and ``n_v6`` IPv6 prefixes in
    2001:db8::/32, as text, unsorted, with overlaps, adjacent pairs and duplicates."""
    v4 = _random_prefixes(
        rng,
        n_v4,
        32,
        V4_LENGTHS,
        lambda: (rng.choice(V4_FIRST_OCTETS) << 24) | rng.getrandbits(24),
    )
    v6 = _random_prefixes(rng, n_v6, 128, V6_LENGTHS, lambda: V6_BASE | rng.getrandbits(96))
    return (
        [f"{ipaddress.IPv4Address(a)}/{n}" for a, n in v4],
        [f"{ipaddress.IPv6Address(a)}/{n}" for a, n in v6],
    )


def read_prefix_file(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a prefix list."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def deployment_yaml(name: str, api_ranges: Sequence[str], aws: dict[str, Any] | None = None) -> str:
    """The public-https example deployment with ``api_ranges`` replaced by the given list.

    The example's DNS resolvers and egress exceptions are left out: ``egress-destinations`` is
    the union of every egress rule's peers, and without them it is exactly the aggregate of
    ``api_ranges``, the input iprange and netaddr get. Everything else (endpoints, webhooks,
    receivers, AWS settings) stays what the example says; ``aws`` overrides AWS settings.
    """
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["name"] = name
    data["customer"].pop("dns_resolvers", None)
    data["exceptions"] = [e for e in data.get("exceptions", []) if e["direction"] != "egress"]
    if not data["exceptions"]:
        del data["exceptions"]
    data["vendor"]["api_ranges"] = list(api_ranges)
    data["aws"].update(aws or {})
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------------------------
# measuring


@dataclass
class Run:
    """One finished (or timed-out) child process."""

    argv: list[str]
    seconds: float
    returncode: int
    stderr: str
    timed_out: bool = False

    @property
    def message(self) -> str:
        """The last line the child wrote to stderr (netguard's error), or the timeout."""
        if self.timed_out:
            return f"did not finish within {self.seconds:.0f} s; stopped"
        last = (self.stderr.strip().splitlines() or ["(no message)"])[-1]
        return textwrap.shorten(last, 240, placeholder=" ...")


DEFAULT_TIMEOUT = 600.0  # a measured command
DEFAULT_PROBE_TIMEOUT = 60.0  # a probe of one target: a quadratic target must not stall the run
TIMEOUT = [DEFAULT_TIMEOUT]  # set by --timeout
PROBE_TIMEOUT = [DEFAULT_PROBE_TIMEOUT]  # set by --probe-timeout


def _spawn(argv: Sequence[str], stdout: Any, timeout: float) -> tuple[int, bytes, bool]:
    """Run ``argv`` in its own session; on timeout stop that session (the child and anything it
    started) and report ``timed_out``."""
    proc = subprocess.Popen(
        list(argv), stdout=stdout, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return proc.returncode, err, True


def run_child(
    argv: Sequence[str], stdout_path: Path | None = None, timeout: float | None = None
) -> Run:
    """Run ``argv`` and time it, wall clock from spawn to exit."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(stdout_path.open("wb")) if stdout_path else subprocess.DEVNULL
        start = time.perf_counter()
        code, err, timed_out = _spawn(argv, out, timeout or TIMEOUT[0])
        seconds = time.perf_counter() - start
    return Run(list(argv), seconds, code, err.decode(errors="replace"), timed_out)


_RSS_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
"""
GNU_TIME = Path("/usr/bin/time")


def peak_rss_kib(argv: Sequence[str]) -> int:
    """Peak resident set size of one run of ``argv``, in KiB (0 when it could not be had).

    A child's ``ru_maxrss`` includes the memory of the process it was forked from (Linux keeps
    the high-water mark across exec, and ``subprocess`` spawns with vfork), so the child is
    started from a small launcher, never from this process: GNU time when present, else a
    Python launcher (whose own ~10 MiB then sets a floor).
    """
    with tempfile.NamedTemporaryFile(prefix="netguard-bench-rss-") as out:
        if GNU_TIME.is_file():
            cmd = [str(GNU_TIME), "-f", "%M", "-o", out.name, *argv]
            if _spawn(cmd, subprocess.DEVNULL, TIMEOUT[0])[2]:
                return 0
            text = Path(out.name).read_text()
        else:
            proc = subprocess.Popen(
                [sys.executable, "-c", _RSS_LAUNCHER, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                text = proc.communicate(timeout=TIMEOUT[0])[0].decode()
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return 0
    words = text.split()
    return int(words[-1]) if words and words[-1].isdigit() else 0


@dataclass
class Timing:
    """Repeated measurements of one command."""

    label: str
    command: str
    runs: list[Run] = field(default_factory=list)
    rss_kib: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.returncode == 0 for r in self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        seconds = [r.seconds for r in self.runs]
        return min(seconds), max(seconds)


def repeat(
    label: str, make_argv: Callable[[int], list[str]], times: int, stdout_path: Path | None = None
) -> Timing:
    """Run a command ``times`` times (``make_argv(i)`` gives the argv of run ``i``); stop at
    the first failure, whose stderr is kept for the report."""
    timing = Timing(label, shlex.join(make_argv(0)))
    for i in range(times):
        run = run_child(make_argv(i), stdout_path)
        timing.runs.append(run)
        if run.returncode != 0:
            return timing
    timing.rss_kib = peak_rss_kib(make_argv(times))
    return timing


def in_process_median(func: Callable[[], Any], times: int) -> tuple[float, Any]:
    """Median wall time of ``func()`` over ``times`` calls, and its last result."""
    seconds: list[float] = []
    result: Any = None
    for _ in range(times):
        result = None  # one copy alive at a time: a bigger heap makes each GC pass slower
        gc.collect()
        start = time.perf_counter()
        result = func()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def phase_times(
    deployment: Path, targets: Sequence[str], out_dir: Path, times: int
) -> list[tuple[str, float]]:
    """Median seconds of each phase of ``run_generate``, through the public calls it makes,
    then of ``run_generate`` itself; what the phases leave out (the manifest, the deployment
    file's hash) shows as the difference.

    Runs in this process: call it from a fresh child (``--phases-of``), so that neither the
    benchmark's own heap nor modules it imported earlier colour the numbers.
    """
    import io

    from netguard.compile import compile_policy, profile_digest
    from netguard.generate import GenerateOptions, run_generate
    from netguard.profiles import load_deployment
    from netguard.render import Target, render_targets
    from netguard.render.write import write_outputs

    # The whole call first, on a clean heap: the phases below keep their results alive, and
    # more live objects make every cyclic-GC pass slower.
    def whole() -> None:
        shutil.rmtree(out_dir, ignore_errors=True)
        options = GenerateOptions(
            deployment=deployment, out_dir=out_dir, targets=[Target(n) for n in targets]
        )
        run_generate(options, io.StringIO())

    t_whole, _ = in_process_median(whole, times)
    gc.disable()
    try:
        t_no_gc, _ = in_process_median(whole, times)
    finally:
        gc.enable()
    phases: list[tuple[str, float]] = []
    t, loaded = in_process_median(lambda: load_deployment(deployment), times)
    phases.append(("load + validate (YAML, merge, pydantic)", t))
    t, digest = in_process_median(lambda: profile_digest(loaded.profile), times)
    phases.append(("profile digest (sha256 of canonical JSON)", t))
    t, policy = in_process_median(
        lambda: compile_policy(loaded.profile, source_digest=digest), times
    )
    phases.append(("compile (aggregate into a Policy)", t))

    # Turning each set's merged intervals into CIDR prefixes happens once per set (cached) in
    # whichever renderer asks first; timed here on fresh policies so no render row carries it.
    def derive() -> float:
        fresh = compile_policy(loaded.profile, source_digest=digest)
        sets = [*fresh.address_sets, *fresh.allowlists.values()]
        start = time.perf_counter()
        for aset in sets:
            aset.for_family(4)
            aset.for_family(6)
        return time.perf_counter() - start

    phases.append(
        ("derive CIDR lists from intervals", statistics.median(derive() for _ in range(times)))
    )
    for aset in [*policy.address_sets, *policy.allowlists.values()]:
        aset.for_family(4)
        aset.for_family(6)
    files: dict[str, str] = {}
    for name in targets:
        target = Target(name)
        t, produced = in_process_median(
            lambda target=target: render_targets(policy, [target]), times
        )
        phases.append((f"render {name}", t))
        files.update(produced)

    def write() -> None:
        shutil.rmtree(out_dir, ignore_errors=True)
        write_outputs(out_dir, files)

    t, _ = in_process_median(write, times)
    phases.append(("write the files (atomic, fsync'd)", t))
    phases.append((WHOLE_PHASE, t_whole))
    phases.append((NO_GC_PHASE, t_no_gc))
    shutil.rmtree(out_dir, ignore_errors=True)
    return phases


WHOLE_PHASE = "run_generate: all of the above in one call (manifest included)"
NO_GC_PHASE = "run_generate again, with the cyclic garbage collector off (gc.disable())"


def child_phase_times(
    deployment: Path, targets: Sequence[str], out_dir: Path, times: int
) -> tuple[list[tuple[str, float]], str]:
    """:func:`phase_times` in a fresh Python process; ``([], error)`` when it fails."""
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phases-of",
        str(deployment),
        "--phases-out",
        str(out_dir),
        "--repeats",
        str(times),
    ]
    argv += [a for t in targets for a in ("--phase-target", t)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return [], (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
    return [(label, float(s)) for label, s in json.loads(proc.stdout)], ""


def known_targets() -> tuple[list[str], list[str]]:
    """Every target name, and those with a registered renderer, asked of a fresh process:
    targets may be added while a run goes on, and every ``netguard`` child sees the new code."""
    code = (
        "from netguard.render import RENDERERS, Target\n"
        "print(' '.join(t.value for t in Target))\n"
        "print(' '.join(t.value for t in Target if t in RENDERERS))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, registered = [*proc.stdout.splitlines(), "", ""][:2]
    return names.split(), registered.split()


# --------------------------------------------------------------------------------------------
# comparing


def iprange_lines(text: str) -> list[str]:
    """iprange's merge output with ``/32`` made explicit (it prints single IPs bare)."""
    return [line if "/" in line else f"{line}/32" for line in text.split()]


def netguard_list(path: Path, version: int) -> list[str]:
    """One family's prefixes from a generated ``allowlist/*.txt`` (comment lines skipped)."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prefixes = [line for line in lines if line and not line.startswith("#")]
    return [p for p in prefixes if (":" in p) == (version == 6)]


def netaddr_merge(prefixes: Sequence[str]) -> list[str]:
    """``netaddr.cidr_merge``, printed like netguard prints prefixes."""
    import netaddr

    return [str(ipaddress.ip_network(str(n))) for n in netaddr.cidr_merge(prefixes)]


def by_address(prefixes: Sequence[str]) -> list[str]:
    """Prefixes sorted numerically (address, then length): the one order both tools use."""
    return sorted(
        prefixes,
        key=lambda p: (ipaddress.ip_network(p).network_address, ipaddress.ip_network(p).prefixlen),
    )


def first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    """Where two prefix lists first part, for the report."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: {x} vs {y}"
    return f"lengths {len(a)} vs {len(b)}" if len(a) != len(b) else "none"


# --------------------------------------------------------------------------------------------
# one case


@dataclass
class Comparison:
    what: str
    netguard_count: int
    peer_count: int
    identical: bool
    detail: str


@dataclass
class CaseResult:
    name: str
    description: str
    n_v4: int
    n_v6: int
    deployment: Path
    timings: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    target_status: dict[str, str] = field(default_factory=dict)
    netaddr_seconds: float = 0.0


NETGUARD: list[str] = [sys.executable, "-m", "netguard.cli"]  # set by main()


def run_case(
    name: str,
    description: str,
    v4: list[str],
    v6: list[str],
    work: Path,
    repeats: int,
    with_phases: bool,
    aws: dict[str, Any] | None = None,
) -> CaseResult:
    case_dir = work / name
    case_dir.mkdir()
    deployment = case_dir / "deployment.yaml"
    deployment.write_text(deployment_yaml(name, v4 + v6, aws), encoding="utf-8")
    v4_input = case_dir / "input-v4.txt"
    v4_input.write_text("".join(f"{p}\n" for p in v4), encoding="ascii")
    result = CaseResult(name, description, len(v4), len(v6), deployment)

    def generate_argv(out: Path, targets: Sequence[str]) -> list[str]:
        options = [a for t in targets for a in ("-t", t)]
        return [*NETGUARD, "generate", str(deployment), "-o", str(out), *options]

    def generate(label: str, targets: Sequence[str]) -> Timing:
        slug = "-".join(targets) or "all"
        # A fresh output directory each time: no run may skip "unchanged" files.
        timing = repeat(
            label, lambda i: generate_argv(case_dir / f"out-{slug}-{i}", targets), repeats
        )
        for i in range(1, repeats + 1):  # keep run 0's output for the comparison
            shutil.rmtree(case_dir / f"out-{slug}-{i}", ignore_errors=True)
        return timing

    # Which targets work at all on this input: one probe each. An AWS target refuses a list
    # that does not fit the security-group quotas (RenderError, exit 2); a target still being
    # written may fail; a run past --timeout is stopped.
    names, registered = known_targets()
    for target in names:
        if target not in registered:
            result.target_status[target] = "not registered yet (target being written)"
    working: list[str] = []
    for target in registered:
        probe = run_child(
            generate_argv(case_dir / f"probe-{target}", [target]), timeout=PROBE_TIMEOUT[0]
        )
        shutil.rmtree(case_dir / f"probe-{target}", ignore_errors=True)
        if probe.returncode == 0:
            working.append(target)
            result.target_status[target] = f"ok ({_s(probe.seconds)})"
        elif probe.timed_out:
            result.target_status[target] = f"TIMED OUT ({probe.message})"
        else:
            kind = "refused the input" if probe.returncode == 2 else "failed"
            result.target_status[target] = (
                f"{kind} after {_s(probe.seconds)}, exit {probe.returncode}: {probe.message}"
            )

    if working == registered:
        result.timings.append(
            generate(f"netguard generate (all targets: {', '.join(registered)})", [])
        )
    elif working:
        failing = [t for t in registered if t not in working]
        result.notes.append(
            f"`netguard generate` with all targets cannot succeed on this input "
            f"({', '.join(failing)}: see above); measured every target that works instead: "
            f"`-t {' -t '.join(working)}`."
        )
        result.timings.append(
            generate(f"netguard generate -t {' -t '.join(working)} (every working target)", working)
        )
    if {"iptables", "allowlist"} <= set(working) and len(working) > 2:
        result.timings.append(
            generate("netguard generate -t iptables -t allowlist", ["iptables", "allowlist"])
        )
    if "allowlist" in working:
        result.timings.append(generate("netguard generate -t allowlist", ["allowlist"]))
    # The fixed cost every run pays before reading the profile: interpreter and imports.
    startup = [sys.executable, "-c", "import netguard.cli, netguard.generate"]
    result.timings.append(
        repeat("python: import netguard (startup only)", lambda i: startup, repeats)
    )
    iprange_out = case_dir / "iprange.txt"
    iprange = repeat(
        "iprange (merge, IPv4)", lambda i: ["iprange", str(v4_input)], repeats, iprange_out
    )
    result.timings.append(iprange)
    if not iprange.ok:
        result.notes.append(f"iprange failed: {iprange.runs[-1].message}")

    # Correctness: the aggregated egress-destinations list against iprange and netaddr.
    produced = None
    for timing in result.timings:
        if timing.ok and timing.label.startswith("netguard"):
            out_dir = Path(timing.runs[0].argv[timing.runs[0].argv.index("-o") + 1])
            candidate = out_dir / "allowlist" / "egress-destinations.txt"
            if candidate.is_file():
                produced = candidate
                break
    if produced is None:
        result.comparisons.append(
            Comparison(
                "egress-destinations.txt", 0, 0, False, "no netguard run produced the allowlist"
            )
        )
    else:
        ours4 = netguard_list(produced, 4)
        ours6 = netguard_list(produced, 6)
        if iprange.ok:
            theirs = iprange_lines(iprange_out.read_text())
            same = ours4 == theirs
            detail = "line by line" if same else first_difference(ours4, theirs)
            if not same and by_address(ours4) == by_address(theirs):
                detail = "same prefixes, different order"
            result.comparisons.append(
                Comparison("IPv4 vs iprange", len(ours4), len(theirs), same, detail)
            )
        start = time.perf_counter()
        merged4 = netaddr_merge(v4)
        merged6 = netaddr_merge(v6) if v6 else []
        result.netaddr_seconds = time.perf_counter() - start
        for what, ours, theirs in (
            ("IPv4 vs netaddr.cidr_merge", ours4, merged4),
            ("IPv6 vs netaddr.cidr_merge", ours6, merged6),
        ):
            if what.startswith("IPv6") and not v6:
                continue
            same = ours == theirs
            result.comparisons.append(
                Comparison(
                    what,
                    len(ours),
                    len(theirs),
                    same,
                    "line by line" if same else first_difference(ours, theirs),
                )
            )

    if with_phases and working:
        result.phases, error = child_phase_times(deployment, working, case_dir / "phases", repeats)
        if error:
            result.notes.append(f"per-phase timing failed: {error}")
    return result


# --------------------------------------------------------------------------------------------
# reporting


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    iprange_version = "missing"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["iprange", "--version"], capture_output=True, text=True, check=False)
        iprange_version = out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
    import netaddr

    from netguard import __version__

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "netguard": __version__,
        "iprange": iprange_version,
        "netaddr": netaddr.__version__,
        "commit": _git_commit(),
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rss": "GNU time's %M" if GNU_TIME.is_file() else "os.wait4 from a Python launcher",
        "measured": _measured(),
    }


def _measured() -> str:
    """Which netguard the children ran, for the report."""
    code = "import netguard; print(netguard.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    where = Path(proc.stdout.strip()).parent if proc.returncode == 0 else "?"
    how = shlex.join(NETGUARD) if NETGUARD[0] != sys.executable else "python -m netguard.cli"
    return f"`netguard` is `{how}` with the package at {where}"


def _git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "status",
                "--porcelain",
                "--",
                "netguard",
                "templates",
                "profiles",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    return "unknown"


def render_markdown(
    results: list[CaseResult], info: dict[str, str], command: str, repeats: int
) -> str:
    lines = [
        f"Command: `{command}` (from the repository root); {repeats} runs per row, median shown; "
        f"{info['measured']}.",
        "",
        f"Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Python {info['python']}, "
        f"{info['os']}; netguard {info['netguard']} at {info['commit']}, {info['iprange']}, "
        f"netaddr {info['netaddr']}; measured {info['date']}; load average at the start "
        f"{info['load_start']}, at the end {info['load']} (1/5/15 min). Peak RSS: one extra "
        f"run under {info['rss']}.",
        "",
    ]
    for r in results:
        lines += [
            f"## {r.name}",
            "",
            r.description,
            "",
            f"Input: {r.n_v4:,} IPv4 + {r.n_v6:,} IPv6 prefixes in `vendor.api_ranges`.",
            "",
        ]
        peer = next((t for t in r.timings if t.label.startswith("iprange") and t.ok), None)
        lines += [
            "| command | median | min-max | peak RSS | vs iprange |",
            "|---|---:|---:|---:|---:|",
        ]
        for t in r.timings:
            if not t.ok:
                lines.append(f"| `{t.label}` | failed: {t.runs[-1].message} | | | |")
                continue
            ratio = "1x" if t is peer else "-"
            if peer and t.label.startswith("netguard generate"):
                ratio = f"{t.median / peer.median:,.0f}x"
            lo, hi = t.spread
            lines.append(
                f"| `{t.label}` | {_s(t.median)} | {_s(lo)}-{_s(hi)} | "
                f"{t.rss_kib / 1024:,.0f} MiB | {ratio} |"
            )
        lines += [
            "",
            f"netaddr.cidr_merge (in-process, IPv4 and IPv6, one run): {_s(r.netaddr_seconds)}.",
            "",
        ]
        lines += [
            "| aggregated list | netguard prefixes | peer prefixes | identical |",
            "|---|---:|---:|---|",
        ]
        for c in r.comparisons:
            lines.append(
                f"| {c.what} | {c.netguard_count:,} | {c.peer_count:,} | "
                f"{'yes' if c.identical else 'NO'} ({c.detail}) |"
            )
        lines += ["", "Targets on this input (one probe run each):", ""]
        lines += [f"- {target}: {status}" for target, status in r.target_status.items()]
        lines.append("")
        for note in r.notes:
            lines += [f"Note: {note}", ""]
        if r.phases:
            wholes = (WHOLE_PHASE, NO_GC_PHASE)
            parts = [(label, s) for label, s in r.phases if label not in wholes]
            total = sum(s for _, s in parts)
            lines += ["| phase (Python API, in-process) | median | share |", "|---|---:|---:|"]
            for label, s in parts:
                lines.append(f"| {label} | {_s(s)} | {100 * s / total:.0f}% |")
            lines.append(f"| sum of the phases | {_s(total)} | |")
            lines += [f"| {label} | {_s(s)} | |" for label, s in r.phases if label in wholes]
            lines.append("")
    return "\n".join(lines)


def _s(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


# --------------------------------------------------------------------------------------------
# main


def find_aws_data(given: Path | None) -> Path:
    for candidate in (given, AWS_DATA_DEFAULT, AWS_DATA_FALLBACK):
        if candidate is not None and candidate.is_file():
            return candidate
    raise SystemExit(
        f"{AWS_DATA_NAME} not found (tried {AWS_DATA_DEFAULT}, {AWS_DATA_FALLBACK});"
        " pass --aws-ranges PATH"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10,000 + 1,000 synthetic prefixes, one run each (a smoke test)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs per measurement (default 5, or 1 with --quick)",
    )
    parser.add_argument(
        "--aws-ranges",
        type=Path,
        default=None,
        help=f"the AWS prefix file (default ../shared/data/{AWS_DATA_NAME} "
        "beside the repository, then /work/shared/data)",
    )
    parser.add_argument("--no-phases", action="store_true", help="skip the per-phase timing")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="measure the `netguard` on PATH (default: this checkout, via python -m netguard.cli)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"stop a measured command after this many seconds (default {DEFAULT_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=DEFAULT_PROBE_TIMEOUT,
        help="stop the first, probing run of one target after this many seconds "
        f"(default {DEFAULT_PROBE_TIMEOUT:.0f}); a target that times out is left out",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the results as Markdown to this file",
    )
    parser.add_argument("--phases-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phases-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase-target", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phases_of:  # the child of child_phase_times
        phases = phase_times(args.phases_of, args.phase_target, args.phases_out, args.repeats or 1)
        print(json.dumps(phases))
        return 0
    repeats = args.repeats or (1 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if shutil.which("iprange") is None:
        print("iprange is missing: apt-get install iprange", file=sys.stderr)
        return EXIT_MISSING_TOOL
    TIMEOUT[0] = args.timeout
    PROBE_TIMEOUT[0] = args.probe_timeout
    if args.installed:
        installed = shutil.which("netguard")
        if installed is None:
            print("netguard is not on PATH: pip install -e .", file=sys.stderr)
            return EXIT_MISSING_TOOL
        NETGUARD[:] = [installed]
    else:
        # Measure this checkout whatever is installed: a non-editable `pip install .` elsewhere
        # (a CI rehearsal) would otherwise make `netguard` run an older copy.
        paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
        sys.path.insert(0, str(REPO))

    n_v4, n_v6 = (10_000, 1_000) if args.quick else (N_V4, N_V6)
    syn4, syn6 = synthetic_prefixes(random.Random(SEED), n_v4, n_v6)
    aws_path = find_aws_data(args.aws_ranges)
    aws4 = read_prefix_file(aws_path)
    cases = [
        (
            f"synthetic-{n_v4 // 1000}k",
            f"Synthetic vendor list, `random.Random({SEED})`: {n_v4:,} IPv4 prefixes /16-/32 "
            f"(10% siblings, sub-prefixes or duplicates of earlier ones) and {n_v6:,} IPv6 "
            "prefixes in 2001:db8::/32.",
            syn4,
            syn6,
            None,
        ),
        (
            "aws-2021",
            f"`{AWS_DATA_NAME}`: real AWS IPv4 prefixes, overlapping and unsorted.",
            aws4,
            [],
            None,
        ),
        (
            "aws-2021-prefix-list",
            f"`{AWS_DATA_NAME}` again, with the AWS settings under which every target fits: "
            "`aws: {prefix_lists: true, quotas: {rules_per_group: 1000, groups_per_interface: 1}}`"
            ". The aggregated "
            "list goes into one customer-managed prefix list (at most 1,000 entries), which "
            "counts its max-entries against the group's rule quota; AWS allows 1,000 rules per "
            "group when an interface takes one group (rules x groups <= 1,000).",
            aws4,
            [],
            AWS_FITS,
        ),
    ]
    command = shlex.join(
        ["python", "bench/bench_generate.py", *(sys.argv[1:] if argv is None else argv)]
    )
    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    commit_start = _git_commit()
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="netguard-bench-") as tmp:
        for name, description, v4, v6, aws in cases:
            print(f"== {name}: {len(v4):,} IPv4 + {len(v6):,} IPv6 prefixes", file=sys.stderr)
            results.append(
                run_case(name, description, v4, v6, Path(tmp), repeats, not args.no_phases, aws)
            )
    info = machine()
    info["load_start"] = load_start
    if info["commit"] != commit_start:
        info["commit"] = (
            f"{commit_start} at the start and {info['commit']} at the end (the checkout changed "
            "during the run: the numbers mix both)"
        )
    text = render_markdown(results, info, command, repeats)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    bad = [c for r in results for c in r.comparisons if not c.identical]
    failed = [t for r in results for t in r.timings if not t.ok]
    for c in bad:
        print(f"DIFFERENT: {c.what}: {c.detail}", file=sys.stderr)
    for t in failed:
        print(f"FAILED: {t.command}: {t.runs[-1].message}", file=sys.stderr)
    for r in results:
        for target, status in r.target_status.items():
            if not status.startswith(("ok", "not registered")):
                print(f"note: {r.name}: {target}: {status}", file=sys.stderr)
    return EXIT_DIFFERENT if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
