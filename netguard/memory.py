"""A memory bound for the exact analyses: stop with a clear message and exit 3, before the
kernel's out-of-memory killer does it with no message (or CUDD's allocator does it with exit
status 1, which would read as "findings").

The packet-space engine's BDDs can grow faster than the rule set on large unstructured rule
sets (see BENCHMARKS.md). :func:`guard` starts a daemon thread that reads the process's
resident set size from ``/proc/self/statm`` (proc(5)) a few times a second and, past the
limit, writes the message to standard error and ends the process with exit status 3
(operational failure) at once: the analysis cannot be interrupted cleanly from another
thread while CUDD is inside an operation, and nothing half-done is written (reports go to
standard output only when complete).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from netguard.errors import EXIT_OPERATIONAL

__all__ = ["DEFAULT_FRACTION", "default_limit", "guard", "parse_size"]

#: Default bound: this share of the machine's physical memory (``MemTotal``, proc(5)).
DEFAULT_FRACTION = 0.8
_POLL_SECONDS = 0.25
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE | re.ASCII)


def parse_size(text: str) -> int:
    """Bytes of a size such as ``8G``, ``512M``, ``1.5GiB`` or ``0`` (binary units; ``0``:
    no bound). Raises ``ValueError`` for anything else."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected a size such as 8G, 512M or 0, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_total() -> int | None:
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_limit() -> int:
    """:data:`DEFAULT_FRACTION` of the physical memory, or 0 (no bound) when unknown."""
    total = _meminfo_total()
    return int(total * DEFAULT_FRACTION) if total else 0


def _rss() -> int | None:
    try:
        with Path("/proc/self/statm").open(encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def guard(
    limit: int,
    what: str,
    *,
    rss: Callable[[], int | None] = _rss,
    stop: Callable[[int], None] = os._exit,
) -> threading.Event | None:
    """Bound the process's resident memory to ``limit`` bytes while ``what`` runs (0: no
    bound; also none where ``/proc/self/statm`` cannot be read). Past it: a message to
    standard error and ``stop(3)``. Returns an event that ends the watch when set (None
    when nothing is watched)."""
    if limit <= 0 or rss() is None:
        return None
    done = threading.Event()

    def watch() -> None:
        while True:
            used = rss()
            if used is not None and used > limit:
                sys.stderr.write(
                    f"error: {what} stopped: it needs more than {limit / (1 << 30):.1f} GiB "
                    "of memory (--max-memory). Exact analysis of large, unstructured rule sets "
                    "can need much more; check fewer rules at a time, or raise the bound.\n"
                )
                sys.stderr.flush()
                stop(EXIT_OPERATIONAL)
                return
            if done.wait(_POLL_SECONDS):
                return

    threading.Thread(target=watch, name="netguard-memory-guard", daemon=True).start()
    return done
