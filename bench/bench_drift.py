"""Benchmark ``netguard aggregate`` and ``netguard drift`` on two 1,000,000-prefix IPv4 lists,
next to ``iprange`` and ``aggregate6`` in the same run, with identical results checked.

Inputs (fixed seed): list A holds 1,000,000 random IPv4 prefixes (/20 to /32, /24 and
/32 most often, host bits clear, some bare addresses); list B is A with 1% of its lines
removed and 10,000 new random prefixes added, shuffled. Each measurement is the whole
process with its output redirected to a file, as an operator would run it:

- aggregation of A: ``netguard aggregate A``, ``iprange A``, ``aggregate6 A``;
- drift of A (desired) and B (actual): ``netguard drift --desired A --actual B --format json``
  against ``iprange B --except A`` plus ``iprange A --except B`` (the EXTRA and MISSING lists;
  aggregate6 has no difference operation).

Checks (exit 1 when one fails): netguard's aggregate equals iprange's and aggregate6's line by
line (iprange prints host addresses without ``/32``: normalised); netguard's EXTRA equals
``iprange B --except A`` and its MISSING ``iprange A --except B``.

Run from the repository root: ``python bench/bench_drift.py [--lines N] [--repeats R]
[--markdown FILE]``. Needs ``iprange`` (apt) and ``aggregate6`` (``pip install
'.[bench]'``); ``--skip-aggregate6`` leaves the slow peer out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 20261129


def make_lists(directory: Path, n: int) -> tuple[Path, Path]:
    rnd = random.Random(SEED)
    lens = [20, 21, 22, 23, 24, 24, 24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 32]
    lines = []
    for _ in range(n):
        plen = rnd.choice(lens)
        a = rnd.getrandbits(32) & ~((1 << (32 - plen)) - 1) & 0xFFFFFFFF
        text = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"
        lines.append(text if plen == 32 and rnd.random() < 0.5 else f"{text}/{plen}")
    a_path = directory / "a.txt"
    a_path.write_text("\n".join(lines) + "\n")
    kept = [x for x in lines if rnd.random() >= 0.01]
    for _ in range(n // 100):
        plen = rnd.choice(lens)
        a = rnd.getrandbits(32) & ~((1 << (32 - plen)) - 1) & 0xFFFFFFFF
        kept.append(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{plen}")
    rnd.shuffle(kept)
    b_path = directory / "b.txt"
    b_path.write_text("\n".join(kept) + "\n")
    return a_path, b_path


def timed(argv: list[str], out: Path, repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, from getrusage of the child) of
    ``argv > out`` over ``repeats`` runs (the last output kept). CPU time is the fairer
    measure on a shared machine: it does not count time spent waiting for a core."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    walls = []
    cpus = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with out.open("wb") as fh:
            start = time.perf_counter()
            proc = subprocess.run(argv, stdout=fh, stderr=subprocess.PIPE, env=env, check=False)
            walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if proc.returncode not in (0, 1):
            sys.exit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[:500]}")
    return statistics.median(walls), statistics.median(cpus)


def normalise(text: str) -> list[str]:
    return [x if "/" in x else f"{x}/32" for x in text.split()]


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return (
        f"nproc {os.cpu_count()}, {cpu}, RAM {mem_kb // 1024 // 1024} GiB, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--skip-aggregate6", action="store_true")
    args = ap.parse_args()
    for tool in ("iprange",) + (() if args.skip_aggregate6 else ("aggregate6",)):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 3
    ng = [sys.executable, "-m", "netguard.cli"]
    failures: list[str] = []
    rows: list[tuple[str, str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="ng-bench-drift-") as tmp_name:
        tmp = Path(tmp_name)
        a, b = make_lists(tmp, args.lines)
        print(f"lists: A {args.lines:,} lines, B {sum(1 for _ in b.open()):,} lines", flush=True)
        # --- aggregation ---
        t_ng = timed([*ng, "aggregate", str(a)], tmp / "ng.txt", args.repeats)
        t_ip = timed(["iprange", str(a)], tmp / "ip.txt", args.repeats)
        rows += [("aggregate A", "netguard aggregate", t_ng), ("aggregate A", "iprange", t_ip)]
        ours = (tmp / "ng.txt").read_text().split()
        if ours != normalise((tmp / "ip.txt").read_text()):
            failures.append("aggregate: netguard differs from iprange")
        if not args.skip_aggregate6:
            t_a6 = timed(["aggregate6", str(a)], tmp / "a6.txt", 1)
            rows.append(("aggregate A", "aggregate6 (1 run)", t_a6))
            if ours != normalise((tmp / "a6.txt").read_text()):
                failures.append("aggregate: netguard differs from aggregate6")
        print(f"aggregate: {len(ours):,} prefixes", flush=True)
        # --- drift ---
        t_dr = timed(
            [*ng, "drift", "--desired", str(a), "--actual", str(b), "--format", "json"],
            tmp / "drift.json",
            args.repeats,
        )
        t_ex = timed(["iprange", str(b), "--except", str(a)], tmp / "extra.txt", args.repeats)
        t_mi = timed(["iprange", str(a), "--except", str(b)], tmp / "missing.txt", args.repeats)
        rows += [
            ("drift A vs B", "netguard drift --format json", t_dr),
            ("drift A vs B", "iprange --except, both ways", (t_ex[0] + t_mi[0], t_ex[1] + t_mi[1])),
        ]
        doc = json.loads((tmp / "drift.json").read_text())
        (comp,) = [c for c in doc["comparisons"] if c["family"] == 4]
        if comp["extra"]["prefixes"] != normalise((tmp / "extra.txt").read_text()):
            failures.append("drift: EXTRA differs from iprange B --except A")
        if comp["missing"]["prefixes"] != normalise((tmp / "missing.txt").read_text()):
            failures.append("drift: MISSING differs from iprange A --except B")
        print(
            f"drift: {len(comp['extra']['prefixes']):,} EXTRA, "
            f"{len(comp['missing']['prefixes']):,} MISSING prefixes",
            flush=True,
        )
    peer = {r[0]: r[2] for r in rows if r[1].startswith("iprange")}
    lines = [
        f"## Allowlist drift and aggregation ({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}.",
        f"Command: `python bench/bench_drift.py --lines {args.lines} --repeats {args.repeats}`"
        " (whole process, output redirected to a file; median of the repeats).",
        "",
        "| task | command | wall (s) | wall vs iprange | CPU (s) | CPU vs iprange |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, cmd, (wall, cpu) in rows:
        pw, pc = peer[task]
        lines.append(
            f"| {task} | {cmd} | {wall:.2f} | {wall / pw:.1f}x | {cpu:.2f} | {cpu / pc:.1f}x |"
        )
    lines += [
        "",
        "Identical results: " + ("yes (every comparison)" if not failures else "; ".join(failures)),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
