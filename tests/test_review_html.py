"""The review's HTML rendered by headless Chromium (Debian package ``chromium``).

The page is built from two snapshots of the public-https example's generated iptables rules,
the second with TCP port 22 opened on egress, and loaded from a ``file://`` URL with the
network features off. ``--dump-dom`` gives the DOM Chromium built: the summary comes first
and says NOT COMPLIANT and CHANGED, each section is there in order, the newly permitted flow
(TCP port 22, hand-reasoned) is a table row, and a configuration comment carrying markup stays
text. ``--print-to-pdf`` prints it: a PDF comes out. Chromium missing: skipped locally,
a failure under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from netguard.cli import main
from netguard.review.snapshot import save_snapshot, snapshot_from_files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"
TIMEOUT = 120.0


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "headless Chromium is not installed (Debian package chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("review-html")
    runner = CliRunner()
    gen = runner.invoke(main, ["generate", str(EXAMPLE), "-o", str(tmp / "gen"), "-t", "iptables"])
    assert gen.exit_code == 0, gen.stderr
    files = [tmp / "gen" / "iptables" / n for n in ("rules.v4", "rules.v6", "ipset.restore")]
    old = save_snapshot(snapshot_from_files(files), tmp / "old")
    v4 = (
        files[0]
        .read_text()
        .replace(
            "-A ng-drop -m limit",
            '-A ng-egress -p tcp -m tcp --dport 22 -m comment --comment "<b>ssh</b>" -j ACCEPT\n'
            "-A ng-drop -m limit",
        )
    )
    changed = tmp / "changed"
    changed.mkdir()
    (changed / "rules.v4").write_text(v4)
    for f in files[1:]:
        shutil.copy(f, changed / f.name)
    new = save_snapshot(
        snapshot_from_files([changed / n for n in ("rules.v4", "rules.v6", "ipset.restore")]),
        tmp / "new",
    )
    out = tmp / "review.html"
    result = runner.invoke(
        main,
        ["review", str(EXAMPLE), "--since", str(old), "--until", str(new), "--format", "html",
         "-o", str(out), "--as-of", "2027-04-15", "--reviewer", "A. Auditor"],
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    return out


def test_chromium_builds_the_document(page: Path, tmp_path: Path) -> None:
    binary = _chromium()
    proc = _run_chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<body>" in dom
    verdict = re.search(r'<p class="verdict (\w+)" id="verdict">([^<]*)</p>', dom)
    assert verdict is not None
    assert verdict.group(1) == "bad"
    assert verdict.group(2).startswith("NOT COMPLIANT; what the network allows CHANGED")
    ids = ["summary", "semantic", "structural", "compliance", "exceptions", "signoff"]
    positions = [dom.index(f'id="{i}"') for i in ids]
    assert positions == sorted(positions)
    row = re.search(r'<tr class="flow-permitted">(.*?)</tr>', dom, re.S)
    assert row is not None
    assert "ipv4 tcp dport 22 state NEW,INVALID,UNTRACKED out other" in row.group(1)
    # The comment's markup is text in the DOM, not a <b> element.
    assert "&lt;b&gt;ssh&lt;/b&gt;" in dom and "<b>ssh</b>" not in dom
    # The ntp exception (expires 2027-06-30) is within 92 days of 2027-04-15.
    assert re.search(r'<li class="exception">ntp: 2027-06-30 \(expires in 76 days\)', dom)
    assert "A. Auditor" in dom


def test_chromium_prints_it(page: Path, tmp_path: Path) -> None:
    binary = _chromium()
    pdf = tmp_path / "review.pdf"
    proc = _run_chromium(
        binary, tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
        page.as_uri(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
    assert data.count(b"/Type /Page") + data.count(b"/Type/Page") >= 1
