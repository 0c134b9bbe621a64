"""``netguard aggregate``: the exact aggregated prefix list of address lists (like iprange).

Reads every file (``-``: standard input) as an address list (:func:`parse_list`: one address
or CIDR per line, ``#`` comments), takes the union and prints the unique minimal list of CIDR
blocks covering exactly it, IPv4 then IPv6, each sorted by address, one ``a.b.c.d/len`` per
line (``/32`` and ``/128`` included; ``iprange`` prints host addresses bare). Entries with host
bits set count as their network and are reported on stderr with file and line (exit 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from netguard.drift.addrs import AddrSet, iter_prefix_lines, parse_list
from netguard.drift.sources import read_source_bytes
from netguard.errors import EXIT_FINDINGS, EXIT_OK, InputError, OutputError

__all__ = ["aggregate_sources", "run_aggregate"]


def aggregate_sources(sources: Sequence[str], err: TextIO) -> tuple[AddrSet, int]:
    """Union of the lists in ``sources``; findings printed to ``err``. Returns the set and the
    number of host-bits findings. Raises :class:`InputError` (exit 2) for bad lines."""
    total = AddrSet()
    problems = []
    host_bits = 0
    for source in sources:
        try:
            parsed = parse_list(read_source_bytes(source), source)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for f in parsed.findings:
            err.write(f"warning: {f.location}: {f.message()}\n")
            host_bits += f.kind == "host-bits"
        total = parsed.addrs if total.is_empty() else total.union(parsed.addrs)
    if problems:
        raise InputError(problems)
    return total, host_bits


def run_aggregate(sources: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Run ``netguard aggregate``: prefixes to ``out`` (module docstring). Returns 0, or 1 when
    an entry had host bits set. Raises :class:`InputError` (exit 2) for bad input and
    :class:`OutputError` (exit 3) when ``out`` cannot be written (disk full)."""
    total, host_bits = aggregate_sources(sources, err)
    buffer = getattr(out, "buffer", None)
    try:
        out.flush()
        for chunk in iter_prefix_lines(total):
            if buffer is not None:
                buffer.write(chunk)
            else:
                out.write(chunk.decode("ascii"))
        if buffer is not None:
            buffer.flush()
        else:
            out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # disk full, I/O error: could not run (exit 3), not a crash
        raise OutputError(f"cannot write the prefixes: {exc.strerror or exc}") from None
    return EXIT_FINDINGS if host_bits else EXIT_OK
