"""Benchmark ``netguard diff`` on two big iptables-save snapshots, next to ``diff -u``.

OLD is the fixed-seed random ``iptables-save`` file of bench/bench_check.py (``generate``,
seed 20261129: user chains, jumps, RETURN, multiport, conntrack, negations, comments). NEW is
OLD with exactly ``--changes`` rules changed (default 50), chosen with ``random.Random(6)``
among the rules of the user chains (never the base chains' header rules or the logging
chains): a third modified (a port or prefix rewritten), a third removed and a third added
(a copy of another rule of the chain with another port, inserted at a random position);
every packet counter of NEW differs from OLD (``[p:b]``), which the diff must ignore. Both
are stored as snapshots (``netguard snapshot --source FILE``).

Measured in one run on one machine, for each size (default 10,000 rules; ``--rules`` to
choose):

- the wall time of ``netguard diff OLD NEW --format json`` (a fresh process, end to end:
  load and verify both snapshots, read the rules, structural diff, semantic diff at every
  hook, JSON) and its exit code (1 expected: the changes open and close flows);
- the wall time of ``diff -u`` on the two rule files (the line diff a review uses today);
- with ``--whole``, the semantic diff timed in process twice, over the change region (what
  ``netguard diff`` does) and over every packet (``restrict=False``: both rule sets evaluated
  whole), checking that both give the same flows; the whole one is stopped after
  ``--stop-after`` seconds (default 1200) and reported as not finished;
- the structural counts (must be exactly the changes made: ``changes/3`` modified, removed,
  added, give or take what the aligner reports as moved) and the number of rectangles.

Results go to ``--markdown`` (default ``bench/results-review.md``); text after the line
``<!-- hand-written below -->`` in an existing file is kept. Exit 0 when every run
behaved, 1 otherwise.

Run from the repository root: ``python bench/bench_review.py [--rules N ...] [--changes K]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_check
from bench_check import BASE, LEAF_RULES, generate

REPO = Path(__file__).resolve().parent.parent
MUTATION_SEED = 6
MARKER = "<!-- hand-written below -->"
_DPORT = re.compile(r"--dport (\d+)(?=\s)")


def mutate(text: str, changes: int, seed: int = MUTATION_SEED) -> tuple[str, dict[str, int]]:
    """NEW from OLD: ``changes`` rules modified/removed/added (module docstring), every
    counter changed. Returns the text and how many of each kind were made."""
    rng = random.Random(seed)
    lines = text.splitlines()
    skip = set(BASE) | set(LEAF_RULES)
    candidates = [
        i
        for i, line in enumerate(lines)
        if line.startswith("-A ") and line.split()[1] not in skip and _DPORT.search(line)
    ]
    chosen = rng.sample(candidates, changes)
    kinds = ["modified", "removed", "added"]
    plan = {i: kinds[n % 3] for n, i in enumerate(chosen)}
    out: list[str] = []
    made = {"modified": 0, "removed": 0, "added": 0}
    for i, line in enumerate(lines):
        kind = plan.get(i)
        if kind == "removed":
            made["removed"] += 1
            continue
        if kind == "modified":
            new = _DPORT.sub(lambda m: f"--dport {int(m.group(1)) % 60000 + 1001}", line, count=1)
            assert new != line
            out.append(new)
            made["modified"] += 1
            continue
        out.append(line)
        if kind == "added":
            extra = _DPORT.sub(lambda m: f"--dport {int(m.group(1)) % 50000 + 7}", line, count=1)
            out.append(extra)
            made["added"] += 1
    counted = [
        f"[{rng.randrange(1, 10**6)}:{rng.randrange(1, 10**8)}] {x}" if x.startswith("-A ") else x
        for x in out
    ]
    return "\n".join(counted) + "\n", made


def _machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu or platform.processor(),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
    }


def _timed(argv: list[str], timeout: float) -> tuple[float, int, str, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - start, proc.returncode, proc.stdout, proc.stderr


_PHASES = r"""
import json, sys, time
from pathlib import Path
from netguard.review.load import materialise
from netguard.review.semantic import semantic_diff
from netguard.review.snapshot import load_snapshot
from netguard.review.structural import structural_diff
old, new = load_snapshot(Path(sys.argv[1])), load_snapshot(Path(sys.argv[2]))
restrict = sys.argv[3] == "1"
with materialise(old) as a, materialise(new) as b:
    start = time.perf_counter()
    s = structural_diff(a, b)
    mid = time.perf_counter()
    sem = semantic_diff(s.pairs, a, b, restrict=restrict)
    end = time.perf_counter()
flows = [
    [h.label, h.hook, [f.space for f in h.permitted], [f.space for f in h.denied]]
    for h in sem.hooks
]
print(json.dumps({"structural": mid - start, "semantic": end - mid, "flows": flows}))
"""


def phase(old: str, new: str, restrict: bool, timeout: float) -> dict[str, object] | None:
    """Structural and semantic diff times in a fresh process (None: stopped at ``timeout``)."""
    argv = [sys.executable, "-c", _PHASES, old, new, "1" if restrict else "0"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"phase worker failed: {proc.stderr[-2000:]}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def bench(
    n: int, changes: int, tmp: Path, timeout: float, whole: bool, stop_after: float
) -> dict[str, object]:
    old_text = generate(n)
    new_text, made = mutate(old_text, changes)
    (tmp / f"old-{n}").mkdir()
    (tmp / f"new-{n}").mkdir()
    old_file = tmp / f"old-{n}" / "rules.v4"
    new_file = tmp / f"new-{n}" / "rules.v4"
    old_file.write_text(old_text)
    new_file.write_text(new_text)
    netguard = [sys.executable, "-m", "netguard.cli"]
    snaps = []
    for f in (old_file, new_file):
        _, code, out, err = _timed(
            [*netguard, "snapshot", "--source", str(f), "-o", str(tmp / "store")], timeout
        )
        if code != 0:
            raise SystemExit(f"snapshot failed: {err}")
        snaps.append(out.strip())
    report = tmp / f"diff-{n}.json"
    wall, code, _, err = _timed(
        [*netguard, "diff", *snaps, "--format", "json", "-o", str(report)], timeout
    )
    doc = json.loads(report.read_text()) if report.exists() else {}
    dwall, dcode, dout, _ = _timed(["diff", "-u", str(old_file), str(new_file)], timeout)
    hooks = doc.get("semantic", {}).get("hooks", [])
    region = phase(snaps[0], snaps[1], True, timeout) if whole else None
    everything = phase(snaps[0], snaps[1], False, stop_after) if whole else None
    return {
        "phase_region": region,
        "phase_whole": everything,
        "same_flows": None
        if region is None or everything is None
        else region["flows"] == everything["flows"],
        "rules": n,
        "made": made,
        "netguard_wall": wall,
        "netguard_exit": code,
        "netguard_stderr": err.strip().splitlines()[-1:] if err else [],
        "diff_wall": dwall,
        "diff_exit": dcode,
        "diff_lines": sum(
            1 for x in dout.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")
        ),
        "counts": doc.get("structural", {}).get("counts", {}),
        "permitted": sum(len(h["permitted"]) for h in hooks),
        "denied": sum(len(h["denied"]) for h in hooks),
        "hooks_changed": [f"{h['ruleset']} {h['hook']}" for h in hooks],
    }


def markdown(results: list[dict[str, object]], args: argparse.Namespace) -> str:
    m = _machine()
    lines = [
        "## Review: semantic diff of two big snapshots (`netguard diff`)",
        "",
        f"Measured {dt.date.today().isoformat()} on {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['ram']} RAM, "
        f"Python {m['python']}, with `python bench/bench_review.py --rules "
        f"{' '.join(str(r) for r in args.rules)} --changes {args.changes}"
        f"{' --whole' if args.whole else ''}`.",
        "",
        "OLD: bench/bench_check.py's fixed-seed random iptables-save file; NEW: OLD with "
        f"{args.changes} rules changed (a third modified, removed, added; seed {MUTATION_SEED}) "
        "and every counter changed. Both stored as snapshots; `netguard diff` is timed as a "
        "fresh process end to end (verify both snapshots, read, structural and semantic diff "
        "at every hook, JSON); `diff -u` on the two files is the line diff it replaces.",
        "",
        "| rules | netguard diff | exit | diff -u | ratio "
        "| structural (added/removed/moved/modified) | diff -u lines "
        "| newly permitted / denied rectangles | hooks changed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r["counts"]
        assert isinstance(c, dict)
        ratio = float(r["netguard_wall"]) / max(float(r["diff_wall"]), 1e-9)  # type: ignore[arg-type]
        lines.append(
            f"| {r['rules']:,} | {float(r['netguard_wall']):.2f} s | {r['netguard_exit']} | "  # type: ignore[arg-type]
            f"{float(r['diff_wall']) * 1000:.1f} ms | {ratio:,.0f}x | "  # type: ignore[arg-type]
            f"{c.get('added')}/{c.get('removed')}/{c.get('moved')}/{c.get('modified')} | "
            f"{r['diff_lines']} | {r['permitted']} / {r['denied']} | "
            f"{', '.join(r['hooks_changed']) or '-'} |"  # type: ignore[arg-type]
        )
    phased = [r for r in results if r.get("phase_region")]
    if phased:
        lines += [
            "",
            "Where the time goes, and what the change region saves (in process, fresh process "
            "each): semantic diff over the changed rules' region (what `netguard diff` does) "
            "against both rule sets evaluated over every packet.",
            "",
            "| rules | structural | semantic, region | semantic, every packet | same flows |",
            "|---|---|---|---|---|",
        ]
        for r in phased:
            reg = r["phase_region"]
            whole = r["phase_whole"]
            assert isinstance(reg, dict)
            w = (
                f"{whole['semantic']:.1f} s"
                if isinstance(whole, dict)
                else f"not finished in {args.stop_after:.0f} s"
            )
            lines.append(
                f"| {r['rules']:,} | {reg['structural']:.2f} s | {reg['semantic']:.1f} s | {w} "
                f"| {r['same_flows'] if r['same_flows'] is not None else '-'} |"
            )
    lines += [
        "",
        "`diff -u` shows every line as changed (the counters differ on every rule) and says "
        "nothing about what the network allows; netguard names the changed rules and proves "
        "the flows newly permitted and denied.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[10_000])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--whole", action="store_true", help="also time the unrestricted diff")
    parser.add_argument("--stop-after", type=float, default=1200.0)
    parser.add_argument("--markdown", type=Path, default=REPO / "bench" / "results-review.md")
    parser.add_argument(
        "--addresses",
        choices=bench_check.ADDRESS_PLANS,
        default="dense",
        help="address plan of bench_check's generator (default dense, as recorded)",
    )
    args = parser.parse_args(argv)
    bench_check.ADDRESSES = args.addresses
    if shutil.which("diff") is None:
        print("bench: diff (diffutils) is missing", file=sys.stderr)
        return 3
    results = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        for n in args.rules:
            r = bench(n, args.changes, Path(tmp), args.timeout, args.whole, args.stop_after)
            brief = {k: v for k, v in r.items() if not k.startswith("phase_")}
            print(json.dumps(brief), file=sys.stderr)
            ok = ok and r["netguard_exit"] == 1 and r["diff_exit"] == 1
            ok = ok and r["same_flows"] is not False
            results.append(r)
    kept = ""
    if args.markdown.exists():
        old = args.markdown.read_text()
        if MARKER in old:
            kept = "\n" + MARKER + old.split(MARKER, 1)[1]
    args.markdown.write_text(markdown(results, args) + kept)
    print(f"bench: wrote {args.markdown}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
