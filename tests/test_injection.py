"""No string in a profile can change the meaning of what is generated, in any target.

Every free-text field of each example profile is set once to a plain marker and once to a
hostile payload (quotes, template syntax, nft/iptables/JSON/YAML metacharacters, Unicode). The
two outputs must have the same structure: JSON and YAML documents equal except in the leaves
that held the marker; text files with the same lines except that the marker's line keeps its
prefix and suffix and the payload inside holds no quote. Control characters are refused by the
schema (exit 2) before any target sees them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from netguard.cli import main
from netguard.render import RENDERERS, Target

ROOT = Path(__file__).resolve().parents[1]
MODES = ["public-https", "vpn", "privatelink"]
MARKER = "BENIGNTEXT"
PAYLOADS = [
    'x" -j ACCEPT -m comment --comment "y',
    "'; } accept; chain evil { type filter hook output priority 0; policy accept; } #",
    "{{ 7*7 }} {% raw %} {# c #} ${jndi:ldap://x} $(id) `id`",
    '"}], "IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "x": [{"a": "',
    '"\n-A OUTPUT -j ACCEPT',  # refused by the schema: control character
    "ünïcödé ‮ RTL 'quote' \\ back\\slash */ /* -- # ; & | < >",
    "astral 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0010fffd",
]


def _free_text_paths(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = [("description",), ("vendor", "name")]
    for i, _ in enumerate(doc["vendor"]["endpoints"]):
        paths.append(("vendor", "endpoints", i, "description"))
    for i, _ in enumerate(doc["customer"]["webhook_receivers"]):
        paths.append(("customer", "webhook_receivers", i, "description"))
    doc.setdefault("exceptions", [])
    if not doc["exceptions"]:
        doc["exceptions"].append(
            {
                "name": "probe",
                "reason": "x",
                "expires": "2099-01-01",
                "direction": "egress",
                "protocol": "tcp",
                "ports": [8080],
                "peers": ["192.0.2.99/32"],
            }
        )
    for i, _ in enumerate(doc["exceptions"]):
        paths.append(("exceptions", i, "reason"))
        paths.append(("exceptions", i, "ticket"))
    return paths


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: str) -> None:
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _profile(tmp: Path, mode: str, text: str) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / mode / "deployment.yaml").read_text())
    doc = copy.deepcopy(doc)
    for path in _free_text_paths(doc):
        _set(doc, path, text)
    out = tmp / f"{mode}-{abs(hash(text))}.yaml"
    out.write_text(json.dumps(doc, default=str, ensure_ascii=False), encoding="utf-8")
    return out


def _generate(profile: Path, out: Path) -> Any:
    return CliRunner().invoke(main, ["generate", str(profile), "-o", str(out)])


def _same_tree(benign: Any, hostile: Any, where: str) -> None:
    if isinstance(benign, str) and MARKER in benign:
        assert isinstance(hostile, str), where
        return
    assert type(benign) is type(hostile), where
    if isinstance(benign, dict):
        assert list(benign) == list(hostile), where
        for key in benign:
            _same_tree(benign[key], hostile[key], f"{where}.{key}")
    elif isinstance(benign, list):
        assert len(benign) == len(hostile), where
        for i, (b, h) in enumerate(zip(benign, hostile, strict=True)):
            _same_tree(b, h, f"{where}[{i}]")
    else:
        assert benign == hostile, where


def _same_lines(benign: str, hostile: str, where: str) -> None:
    b_lines, h_lines = benign.splitlines(), hostile.splitlines()
    assert len(b_lines) == len(h_lines), where
    for n, (b, h) in enumerate(zip(b_lines, h_lines, strict=True), 1):
        if MARKER not in b:
            assert b == h, f"{where}:{n}"
            continue
        before, _, after = b.partition(MARKER)
        assert h.startswith(before), f"{where}:{n}"
        assert h.endswith(after), f"{where}:{n}"
        inside = h[len(before) : len(h) - len(after)]
        if not before.lstrip().startswith("#"):
            assert '"' not in inside, f"{where}:{n}: quote escaped into {h!r}"


def _compare(benign_dir: Path, hostile_dir: Path) -> int:
    files = sorted(p.relative_to(benign_dir) for p in benign_dir.rglob("*") if p.is_file())
    hostile_files = sorted(
        p.relative_to(hostile_dir) for p in hostile_dir.rglob("*") if p.is_file()
    )
    assert files == hostile_files
    for rel in files:
        if rel.name == "manifest.json":
            continue  # hashes of the files compared here
        b = (benign_dir / rel).read_text(encoding="utf-8")
        h = (hostile_dir / rel).read_text(encoding="utf-8")
        if rel.suffix == ".json":
            _same_tree(json.loads(b), json.loads(h), str(rel))
        elif rel.suffix in (".yaml", ".yml"):
            _same_tree(yaml.safe_load(b), yaml.safe_load(h), str(rel))
            _same_lines(b, h, str(rel))
        else:
            _same_lines(b, h, str(rel))
    return len(files)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("payload", range(len(PAYLOADS)))
def test_free_text_cannot_change_any_target(tmp_path: Path, mode: str, payload: int) -> None:
    text = PAYLOADS[payload]
    benign = _generate(_profile(tmp_path, mode, MARKER), tmp_path / "benign")
    assert benign.exit_code == 0, benign.stderr
    hostile = _generate(_profile(tmp_path, mode, text), tmp_path / "hostile")
    if any(ord(c) < 0x20 for c in text):
        assert hostile.exit_code == 2
        assert "expected a single line of text without control characters" in hostile.stderr
        assert not (tmp_path / "hostile").exists()
        return
    assert hostile.exit_code == 0, hostile.stderr
    compared = _compare(tmp_path / "benign", tmp_path / "hostile")
    assert compared >= 2 * len(RENDERERS)
    for side in ("benign", "hostile"):
        text_of = {
            p.relative_to(tmp_path / side): p.read_text()
            for p in (tmp_path / side).rglob("*")
            if p.is_file() and p.name != "manifest.json"
        }
        if side == "benign":
            benign_text = text_of
    for rel, text in text_of.items():  # {{ 7*7 }} was never evaluated
        assert text.count("49") == benign_text[rel].count("49"), rel


def test_every_target_is_covered() -> None:
    assert set(RENDERERS) == set(Target)
