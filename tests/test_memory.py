"""The memory bound of the exact analyses (netguard.memory, ``check --max-memory``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from netguard.memory import guard, parse_size

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "examples" / "public-https" / "deployment.yaml"


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("512", 512), ("8G", 8 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29),
     ("2k", 2048), ("1T", 2**40)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "8x", "-1G", "G", "1e9", "٨G"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


def test_guard_stops_past_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    stopped = threading.Event()
    codes: list[int] = []

    def stop(code: int) -> None:
        codes.append(code)
        stopped.set()

    done = guard(2**30, "the test", rss=lambda: 2**31, stop=stop)
    assert done is not None
    assert stopped.wait(5)
    assert codes == [3]
    assert "error: the test stopped: it needs more than 1.0 GiB" in capsys.readouterr().err


def test_guard_watches_nothing_without_a_limit_or_proc() -> None:
    assert guard(0, "x") is None
    assert guard(2**30, "x", rss=lambda: None) is None


def test_below_the_limit_nothing_happens() -> None:
    codes: list[int] = []
    done = guard(2**31, "x", rss=lambda: 2**20, stop=codes.append)
    assert done is not None
    threading.Event().wait(0.6)  # a few polls
    done.set()
    assert codes == []


def test_check_past_max_memory_exits_3_with_a_message(tmp_path: Path) -> None:
    """A bound below what the interpreter itself needs: the check stops with exit 3 (an
    operational failure, not 'findings') and says why; nothing reaches stdout."""
    gen = tmp_path / "gen"
    subprocess.run(
        [sys.executable, "-m", "netguard.cli", "generate", str(PUBLIC), "-o", str(gen),
         "-t", "iptables"], check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "netguard.cli", "check", str(PUBLIC), "--config",
         str(gen / "iptables" / "rules.v4"), "--max-memory", "1M"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "stopped: it needs more than 0.0 GiB of memory (--max-memory)" in proc.stderr
    assert proc.stdout == ""
