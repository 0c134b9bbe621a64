"""Write generated files all-or-nothing, atomically, and only when their content changed.

Two phases. First every changed file is written in full to a temporary file in its target's
directory, flushed and fsynced; any failure there removes the temporary files and leaves every
existing file untouched. Then each temporary file is renamed over its target (rename(2) is
atomic within one filesystem, and a rename within one directory does not fail for lack of
space). A file whose content is already identical is left alone, so its mtime does not change.
"""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from pathlib import Path, PurePosixPath

from netguard.errors import OutputError


class WriteStatus(StrEnum):
    """What happened to one output file."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or not name:
        raise OutputError(f"refusing to write outside the output directory: {name!r}")
    return rel


def _stage(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    staged = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        staged.chmod(0o644)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def write_outputs(out_dir: Path, files: dict[str, str]) -> list[tuple[Path, WriteStatus]]:
    """Write ``files`` (relative path -> text) under ``out_dir``; return each path's status.

    Raises ``OutputError`` (exit 3) when a file cannot be written; then no existing file has
    changed. Directories created on the way may remain.
    """
    targets = [(out_dir.joinpath(*_safe_relative(n).parts), files[n]) for n in sorted(files)]
    for path, _ in targets:
        # Never write through a symbolic link inside the output directory (it could point at
        # /etc); the output directory itself may be a link.
        parent = path.parent
        while parent != out_dir and parent != parent.parent:
            if parent.is_symlink():
                raise OutputError(f"refusing to write through the symbolic link {parent}")
            parent = parent.parent
    results: list[tuple[Path, WriteStatus]] = []
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in targets:
            data = text.encode("utf-8")
            try:
                if path.is_file() and path.read_bytes() == data:
                    results.append((path, WriteStatus.UNCHANGED))
                    continue
                staged.append((_stage(path, data), path))
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
            results.append((path, WriteStatus.WRITTEN))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for i, (tmp, path) in enumerate(staged):
        try:
            tmp.replace(path)
        except OSError as exc:
            for rest, _ in staged[i:]:
                rest.unlink(missing_ok=True)
            done = ", ".join(str(p) for _, p in staged[:i]) or "none"
            raise OutputError(
                f"cannot replace {path}: {exc.strerror or exc} (already replaced: {done})"
            ) from exc
    return results
