"""``netguard generate``: profile -> Policy -> every selected target -> files, all or nothing.

All targets are rendered in memory first; only when every one succeeded are files written
(atomically, and only when changed). A ``manifest.json`` in the output directory records, per
target, the deployment file's sha256, the validated profile's canonical sha256 and each
file's sha256, so that the generated files themselves carry no run-specific line and a
one-prefix change stays a one-line diff.
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
AWS_TARGETS = {Target.AWS_CFN, Target.TERRAFORM, Target.AWS_API}


@dataclass(frozen=True)
class GenerateOptions:
    """Options of ``netguard generate``."""

    deployment: Path
    out_dir: Path
    targets: Sequence[Target] = field(default_factory=lambda: list(RENDERERS))
    template_dirs: Sequence[Path] = ()
    as_of: dt.date | None = None


def _read_manifest(out_dir: Path) -> dict[str, dict[str, object]]:
    """Per-target entries of an existing manifest (empty when missing or unreadable)."""
    try:
        loaded = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    targets = loaded.get("targets") if isinstance(loaded, dict) else None
    return targets if isinstance(targets, dict) else {}


def _manifest(
    existing: dict[str, dict[str, object]],
    provenance: dict[str, str],
    by_target: dict[Target, dict[str, str]],
) -> str:
    targets = dict(existing)
    for target, files in by_target.items():
        targets[target.value] = {
            **provenance,
            "files": {
                name: hashlib.sha256(text.encode("utf-8")).hexdigest()
                for name, text in sorted(files.items())
            },
        }
    doc = {
        "format": "netguard-manifest",
        "format_version": 2,
        "generator": f"netguard {__version__}",
        "about": (
            "Per target: the deployment (name, file name and the file's sha256, as sha256sum "
            "prints it), the sha256 of the validated profile merged with its base profile "
            "(canonical JSON), and the sha256 of every file written."
        ),
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
    existing = _read_manifest(options.out_dir)
    this_run = {t.value for t in targets}
    others = sorted(
        {str(e.get("deployment")) for t, e in existing.items() if t not in this_run} - {policy.name}
    )
    if others:
        err.write(
            f"warning: {options.out_dir} also holds files of deployment {', '.join(others)}; "
            "use one output directory per deployment\n"
        )
    if set(targets) & AWS_TARGETS and "vpc_id" not in loaded.profile.aws.model_fields_set:
        err.write(
            f"warning: aws.vpc_id is not set: the AWS files use the placeholder "
            f"{loaded.profile.aws.vpc_id}; set aws.vpc_id (and aws.region) in the deployment\n"
        )
    provenance = {
        "deployment": policy.name,
        "deployment_file": options.deployment.name.encode("utf-8", "surrogateescape").decode(
            "utf-8", "replace"
        ),
        "deployment_file_sha256": hashlib.sha256(options.deployment.read_bytes()).hexdigest(),
        "base_profile": loaded.profile.extends.value,
        "profile_canonical_sha256": digest,
    }
    files[MANIFEST] = _manifest(existing, provenance, by_target)
    results = write_outputs(options.out_dir, files)
    written = sum(1 for _, s in results if s == WriteStatus.WRITTEN)
    for path, status in results:
        err.write(f"{status.value:9} {path}\n")
    err.write(
        f"netguard: {policy.name} ({policy.mode}): {len(results)} files, {written} written, "
        f"{len(results) - written} unchanged\n"
    )
    return EXIT_OK
