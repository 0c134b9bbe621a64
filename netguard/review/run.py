"""``netguard snapshot``, ``netguard diff`` and ``netguard review``: options and ``run_*``.

Exit codes (README "Exit codes"): ``snapshot`` 0 written, 2 invalid input or the name exists
in the store, 3 a command or AWS failed. ``diff`` 0 when what the network allows is proven
unchanged (structural changes only, or none), 1 when it changed or cannot be proven unchanged
(conditions netguard does not model decide packets where the rules changed). ``review`` 0
when the NEW end is compliant with the deployment, 1 when not. Invalid input (a damaged
snapshot, a bad file, a bad profile) is 2 for every command, whatever ``--format``.

Ends (OLD, NEW, ``--since``, ``--until``): a snapshot file, a store directory (its newest
snapshot) or one plain configuration file. ``review --until`` defaults to ``local``: a fresh
snapshot of this host taken now (not stored; ``netguard snapshot --source local`` first to
keep it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from netguard.errors import EXIT_FINDINGS, EXIT_OK, InputError, Location
from netguard.render.write import write_outputs
from netguard.review.document import build_document
from netguard.review.load import materialise
from netguard.review.render import render_document
from netguard.review.semantic import semantic_diff
from netguard.review.snapshot import (
    Snapshot,
    is_snapshot_text,
    resolve_end,
    save_snapshot,
    snapshot_from_files,
    take_aws_snapshot,
    take_local_snapshot,
)
from netguard.review.structural import structural_diff
from netguard.schema import default_as_of

__all__ = [
    "DiffOptions",
    "ReviewOptions",
    "SnapshotOptions",
    "run_diff",
    "run_review",
    "run_snapshot",
]

LOCAL = "local"
AWS = "aws"


@dataclass(frozen=True)
class SnapshotOptions:
    """``sources``: ``("local",)``, ``("aws",)`` or file paths; ``store`` the directory;
    ``netns`` runs the local commands in that network namespace (``ip netns exec``);
    ``region``/``vpc_id`` for AWS."""

    sources: Sequence[str]
    store: Path
    netns: str | None = None
    region: str | None = None
    vpc_id: str | None = None


@dataclass(frozen=True)
class DiffOptions:
    """``old``/``new`` ends (see the module docstring), report ``format`` (text, markdown,
    html, json), ``output`` file (None: stdout), ``limit`` rectangles per change."""

    old: Path
    new: Path
    format: str = "text"
    output: Path | None = None
    limit: int = 8


@dataclass(frozen=True)
class ReviewOptions:
    """``deployment`` profile, ``since`` end, ``until`` end or ``"local"``, format, output,
    ``as_of`` (the review date; default ``$NETGUARD_AS_OF`` or today), ``reviewer`` name
    pre-filled in the sign-off, ``netns`` for ``--until local``."""

    deployment: Path
    since: Path
    until: str = LOCAL
    format: str = "text"
    output: Path | None = None
    as_of: dt.date | None = None
    reviewer: str | None = None
    netns: str | None = None
    limit: int = 8


def _take(
    sources: Sequence[str], netns: str | None, region: str | None, vpc: str | None
) -> Snapshot:
    if not sources:
        raise InputError.at(Location("--source"), "expected local, aws or at least one FILE")
    kinds = {s for s in sources if s in (LOCAL, AWS)}
    if kinds and len(sources) > 1:
        raise InputError.at(
            Location("--source"),
            "give --source local, --source aws, or files, not several of them",
        )
    if sources[0] == LOCAL:
        prefix = ("ip", "netns", "exec", netns) if netns else ()
        return take_local_snapshot(prefix=prefix, host=f"netns {netns}" if netns else None)
    if netns:
        raise InputError.at(Location("--netns"), "--netns applies to --source local only")
    if sources[0] == AWS:
        return take_aws_snapshot(region=region, vpc_id=vpc)
    return snapshot_from_files([Path(s) for s in sources])


def run_snapshot(options: SnapshotOptions, out: TextIO, err: TextIO) -> int:
    """Take a snapshot and add it to the store; print its path on ``out``. Returns 0.

    Raises ``InputError`` (exit 2: bad source, name exists), ``SnapshotError``/``OutputError``
    (exit 3)."""
    snap = _take(options.sources, options.netns, options.region, options.vpc_id)
    path = save_snapshot(snap, options.store)
    out.write(f"{path}\n")
    out.flush()
    parts = ", ".join(p.name for p in snap.parts)
    err.write(f"snapshot {path.name}: {len(snap.parts)} parts ({parts})\n")
    return EXIT_OK


def _check_output(output: Path | None, ends: Sequence[Path]) -> None:
    """Refuse an ``-o`` that would replace a snapshot or an input, or add a report to a
    store read as an end (it would become that store's "newest snapshot"). Checked before
    any work. Raises ``InputError`` (exit 2)."""
    if output is None:
        return
    target = output.resolve()
    for end in ends:
        where = end.resolve()
        if target == where:
            raise InputError.at(
                Location(output), "is an input of this command: choose another output file"
            )
        if where.is_dir() and target.parent == where:
            raise InputError.at(
                Location(output),
                "is inside the snapshot store given as an input: write the report elsewhere",
            )
    try:
        with output.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return  # missing (the usual case) or unreadable: write_outputs reports what fails
    if is_snapshot_text(head):
        raise InputError.at(
            Location(output),
            "is a snapshot: snapshots are never overwritten; choose another output file",
        )


def _emit(text: str, output: Path | None, out: TextIO) -> None:
    if output is None:
        out.write(text)
        out.flush()
        return
    if not output.name or output.is_dir():
        raise InputError.at(Location(output), "expected an output file name, got a directory")
    write_outputs(output.parent if str(output.parent) else Path(), {output.name: text})


def run_diff(options: DiffOptions, out: TextIO, err: TextIO) -> int:
    """Compare two ends; the document goes to ``out`` (or ``options.output``). Returns 0 when
    the semantics are proven unchanged, 1 when they changed or may have changed (unmodeled
    conditions, see :mod:`netguard.review.semantic`). Raises ``InputError`` (exit 2)."""
    _check_output(options.output, (options.old, options.new))
    old = resolve_end(options.old)
    new = resolve_end(options.new)
    with materialise(old) as a, materialise(new) as b:
        structural = structural_diff(a, b)
        semantic = semantic_diff(structural.pairs, a, b, limit=options.limit)
        doc = build_document(
            kind="diff",
            old=a,
            new=b,
            structural=structural,
            semantic=semantic,
            review_date=default_as_of(),
        )
    _emit(render_document(doc, options.format), options.output, out)
    s = doc["summary"]
    unproven = semantic.unproven or bool(structural.unanalysed)
    err.write(
        f"{_semantic_word(semantic.changed, unproven)}: "
        f"{s['newly_permitted']} newly permitted, {s['newly_denied']} newly denied"
        f"{_unproven_note(s['unproven'])}; "
        f"{sum(v for k, v in s['structural'].items())} structural changes\n"
    )
    # Not proven unchanged counts as changed: a gate must not pass what it cannot prove.
    return EXIT_FINDINGS if semantic.changed or unproven else EXIT_OK


def _semantic_word(changed: bool, unproven: bool) -> str:
    if changed:
        return "semantic change"
    return "semantic change not excluded" if unproven else "no semantic change"


def _unproven_note(count: int) -> str:
    return f", {count} possibly changed (unmodeled conditions)" if count else ""


def run_review(options: ReviewOptions, out: TextIO, err: TextIO) -> int:
    """Build the review document of ``since`` -> ``until`` against the deployment; it goes
    to ``out`` (or ``options.output``). Returns 0 when the NEW end is compliant, 1 when not.
    Raises ``InputError``/``ProfileError`` (exit 2), ``SnapshotError`` (exit 3)."""
    review_date = options.as_of or default_as_of()
    ends = [options.since, options.deployment]
    if options.until != LOCAL:
        ends.append(Path(options.until))
    _check_output(options.output, ends)
    old = resolve_end(options.since)
    if options.until == LOCAL:
        prefix = ("ip", "netns", "exec", options.netns) if options.netns else ()
        new = take_local_snapshot(
            prefix=prefix, host=f"netns {options.netns}" if options.netns else None
        )
        err.write(f"--until local: took a fresh snapshot of {new.host} ({new.taken_at})\n")
    else:
        if options.netns:
            raise InputError.at(Location("--netns"), "--netns applies to --until local only")
        new = resolve_end(Path(options.until))
    with materialise(old) as a, materialise(new) as b:
        structural = structural_diff(a, b)
        semantic = semantic_diff(structural.pairs, a, b, limit=options.limit)
        doc = build_document(
            kind="review",
            old=a,
            new=b,
            structural=structural,
            semantic=semantic,
            review_date=review_date,
            deployment=options.deployment,
            reviewer=options.reviewer,
        )
    _emit(render_document(doc, options.format), options.output, out)
    s = doc["summary"]
    err.write(
        f"{'compliant' if s['compliant'] else 'NOT compliant'}; "
        f"{_semantic_word(semantic.changed, semantic.unproven or bool(structural.unanalysed))}; "
        f"{s['violations_appeared']} finding(s) appeared, {s['violations_resolved']} went away; "
        f"{s['exceptions_expiring']} exception(s) expiring before the next review\n"
    )
    return EXIT_OK if s["compliant"] else EXIT_FINDINGS
