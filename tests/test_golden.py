"""Golden reference files for every target and mode.

``tests/golden/<mode>/<relative output path>`` holds the reviewed output for
``examples/<mode>/deployment.yaml``. On a mismatch the actual output is written beside the
reference as ``<name>.actual`` and the test fails with a diff. After a reviewed, intended change:
``NETGUARD_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py``, then read the diff in git.
Golden files alone can freeze a wrong answer: every target is also fed to its real consumer
(kernel, nft, cfn-lint, botocore) in the other test modules.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from pathlib import Path

import pytest

from netguard.generate import GenerateOptions, run_generate
from netguard.render import RENDERERS

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
MODES = ["public-https", "vpn", "privatelink"]
AS_OF = dt.date(2026, 6, 1)


@pytest.mark.parametrize("mode", MODES)
def test_golden(mode: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = GenerateOptions(
        deployment=ROOT / "examples" / mode / "deployment.yaml",
        out_dir=out,
        targets=list(RENDERERS),
        as_of=AS_OF,
    )
    with (tmp_path / "log").open("w") as log:
        assert run_generate(options, log) == 0
    produced = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    ref_dir = GOLDEN / mode
    if os.environ.get("NETGUARD_UPDATE_GOLDEN") == "1":
        for stale in ref_dir.rglob("*"):
            if stale.is_file():
                stale.unlink()
        for name, text in produced.items():
            (ref_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (ref_dir / name).write_text(text)
    expected = {
        p.relative_to(ref_dir).as_posix(): p.read_text()
        for p in ref_dir.rglob("*")
        if p.is_file() and p.suffix != ".actual"
    }
    assert sorted(produced) == sorted(expected), "set of generated files changed"
    failures = []
    for name, text in produced.items():
        actual_path = ref_dir / (name + ".actual")
        if text == expected[name]:
            actual_path.unlink(missing_ok=True)
            continue
        actual_path.write_text(text)
        diff = "\n".join(
            difflib.unified_diff(
                expected[name].splitlines(), text.splitlines(), name, name + ".actual", lineterm=""
            )
        )
        failures.append(diff)
    assert not failures, "\n".join(failures)
