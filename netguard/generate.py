"""``netguard generate``: profile -> Policy -> every selected target -> files, all or nothing.

All targets are rendered in memory first; only when every one succeeded are files written
(atomically, and only when changed). A ``manifest.json`` in the output directory records, per
target, the profile's sha256 and each file's sha256, so that the generated files themselves
carry no run-specific line and a one-prefix change stays a one-line diff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from netguard import __version__
from netguard.compile import compile_policy, profile_digest
from netguard.errors import EXIT_OK
from netguard.profiles import load_deployment
from netguard.render import RENDERERS, Target, render_targets
from netguard.render.write import WriteStatus, write_outputs

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class GenerateOptions:
    """Options of ``netguard generate``."""

    deployment: Path
    out_dir: Path
    targets: Sequence[Target] = field(default_factory=lambda: list(RENDERERS))
    template_dirs: Sequence[Path] = ()
    as_of: dt.date | None = None


def _manifest(
    out_dir: Path, profile_sha: str, deployment: Path, by_target: dict[Target, dict[str, str]]
) -> str:
    existing: dict[str, object] = {}
    path = out_dir / MANIFEST
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict) and isinstance(loaded.get("targets"), dict):
            existing = loaded["targets"]
    except (OSError, ValueError):
        existing = {}
    targets = dict(existing)
    for target, files in by_target.items():
        targets[target.value] = {
            "deployment": deployment.name,
            "profile_sha256": profile_sha,
            "files": {
                name: hashlib.sha256(text.encode("utf-8")).hexdigest()
                for name, text in sorted(files.items())
            },
        }
    doc = {
        "format": "netguard-manifest",
        "format_version": 1,
        "generator": f"netguard {__version__}",
        "targets": {k: targets[k] for k in sorted(targets)},
    }
    return json.dumps(doc, indent=2) + "\n"


def run_generate(options: GenerateOptions, err: TextIO) -> int:
    """Generate the selected targets. Returns the exit code; raises ``NetguardError``
    subclasses (``ProfileError``, ``RenderError``, ``OutputError``) for the CLI to report."""
    loaded = load_deployment(options.deployment, as_of=options.as_of)
    digest = profile_digest(loaded.profile)
    policy = compile_policy(loaded.profile, source_digest=digest)
    targets = list(dict.fromkeys(options.targets))
    by_target: dict[Target, dict[str, str]] = {}
    for target in targets:
        by_target[target] = render_targets(policy, [target], options.template_dirs)
    files: dict[str, str] = {}
    for produced in by_target.values():
        files.update(produced)
    files[MANIFEST] = _manifest(options.out_dir, digest, options.deployment, by_target)
    results = write_outputs(options.out_dir, files)
    written = sum(1 for _, s in results if s == WriteStatus.WRITTEN)
    for path, status in results:
        err.write(f"{status.value:9} {path}\n")
    err.write(
        f"netguard: {policy.name} ({policy.mode}): {len(results)} files, {written} written, "
        f"{len(results) - written} unchanged\n"
    )
    return EXIT_OK
