"""Write generated files atomically, and only when their content changed.

Each file is written to a temporary file in the same directory, flushed and fsynced, then
renamed over the target (rename(2) is atomic within one filesystem). A file whose content is
already identical is left untouched, so its mtime does not change.
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
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise OutputError(f"refusing to write outside the output directory: {name!r}")
    return rel


def write_outputs(out_dir: Path, files: dict[str, str]) -> list[tuple[Path, WriteStatus]]:
    """Write ``files`` (relative path -> text) under ``out_dir``; return each path's status.

    Raises ``OutputError`` (exit 3) on I/O failure; a file being written is never left
    half-written, and files already written keep their new, complete content.
    """
    results: list[tuple[Path, WriteStatus]] = []
    for name in sorted(files):
        path = out_dir.joinpath(*_safe_relative(name).parts)
        data = files[name].encode("utf-8")
        try:
            if path.is_file() and path.read_bytes() == data:
                results.append((path, WriteStatus.UNCHANGED))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                Path(tmp).chmod(0o644)
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        results.append((path, WriteStatus.WRITTEN))
    return results
