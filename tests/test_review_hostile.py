"""``netguard diff``/``review`` against damaged, forged and hostile input (regressions).

Found by a tester, each fixed in netguard/review/ and held here with a hand-reasoned value:

- a snapshot edited *with its hashes recomputed* (the manifest's byte count ``Infinity``, a lone
  surrogate in a part, an unknown part format, markup as ``taken_at``, ``"version": true``,
  an object as host, nesting deeper than the parser) crashed with a traceback or was accepted:
  each is now refused with exit 2 naming the file;
- an empty file, or a snapshot truncated to its first few bytes, was read as a configuration
  (an empty one: "no rules", everything allowed) instead of a damaged snapshot;
- counters and time-left of ipset and nft set members (``packets``/``bytes``/``timeout``,
  ``counter``/``expires``) showed as set changes although counters are ignored;
- an nft rule's ``jump c`` changed to ``jump counterc`` was hidden by the identity (the word
  ``counter`` was stripped inside the chain name) and reported as "UNCHANGED (proven)";
- carriage returns, escapes and bidi controls in rule comments broke Markdown table rows and
  rewrote terminal lines;
- long address lists in findings made the HTML tables wider than the page (cut off in print).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

from netguard.cli import main
from netguard.review.snapshot import Part, Snapshot, save_snapshot

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"

V4 = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -d 198.51.100.0/25 -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
"""


def _cli(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    snap = Snapshot(
        taken_at="2026-06-01T10:00:00Z",
        source="files",
        host="fw1.example",
        parts=(Part("rules.v4", "iptables-save", V4),),
    )
    return save_snapshot(snap, tmp_path_factory.mktemp("store"))


def _forge(stored: Path, tmp: Path, name: str, edit: Any) -> Path:
    """A copy of ``stored`` edited by ``edit(doc)``, every hash recomputed so only the shape
    checks can catch it."""
    doc = json.loads(stored.read_text())
    edit(doc)
    listed = doc["manifest"]["parts"]
    for p in listed if isinstance(listed, list) else []:
        body = doc["parts"].get(p["name"])
        if isinstance(body, str):
            try:
                data = body.encode("utf-8")
            except UnicodeEncodeError:
                continue  # a lone surrogate: the hash cannot be recomputed honestly
            p["sha256"] = hashlib.sha256(data).hexdigest()
            if type(p["bytes"]) is int:
                p["bytes"] = len(data)
    doc["manifest_sha256"] = hashlib.sha256(_canonical(doc["manifest"]).encode()).hexdigest()
    out = tmp / name
    out.write_text(json.dumps(doc, indent=1))
    return out


def _set(path: list[Any], value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


FORGERIES = {
    "bytes-infinity": (_set(["manifest", "parts", 0, "bytes"], float("inf")), "byte count"),
    "bytes-bool": (_set(["manifest", "parts", 0, "bytes"], True), "byte count"),
    "format-unknown": (_set(["manifest", "parts", 0, "format"], "bogus"), "unknown format"),
    "taken-at-markup": (
        _set(["manifest", "taken_at"], "<script>x</script>|`"),
        "taken_at is not a UTC time",
    ),
    "taken-at-invalid-date": (_set(["manifest", "taken_at"], "2026-02-30T10:00:00Z"), "taken_at"),
    "host-object": (_set(["manifest", "host"], {"a": 1}), "host is not"),
    "host-newline": (_set(["manifest", "host"], "fw1\r\n| x |"), "host is not"),
    "source-odd": (_set(["manifest", "source"], "elsewhere"), "source is not"),
    "parts-not-list": (_set(["manifest", "parts"], "ab"), "list of parts"),
    "commands-bad": (
        _set(["manifest", "commands"], [{"argv": 5, "exit_code": 0, "part": "rules.v4"}]),
        "command",
    ),
    "command-part-unknown": (
        _set(["manifest", "commands"], [{"argv": ["x"], "exit_code": 0, "part": "nope"}]),
        "command",
    ),
    "version-true": (_set(["version"], True), "version True is not supported"),
    "lone-surrogate": (_set(["parts", "rules.v4"], V4 + "\ud800"), "not valid Unicode text"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_snapshot_refused(stored: Path, tmp_path: Path, name: str) -> None:
    edit, expected = FORGERIES[name]
    forged = _forge(stored, tmp_path, f"{name}.json", edit)
    result = _cli("diff", stored, forged, "--format", "markdown")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {forged}"), result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_deeply_nested_json_refused(stored: Path, tmp_path: Path) -> None:
    depth = 100_000  # far beyond the interpreter's recursion limit
    snapshot_like = tmp_path / "deep-snapshot.json"
    snapshot_like.write_text(
        '{"format": "netguard-snapshot", "version": 1, "x": ' + "[" * depth + "]" * depth + "}"
    )
    plain = tmp_path / "deep-nft.json"
    plain.write_text('{"nftables": ' + "[" * depth + "]" * depth + "}")
    for path in (snapshot_like, plain):
        result = _cli("diff", stored, path)
        assert result.exit_code == 2, result.stderr
        assert result.stderr.startswith(f"error: {path}") and "nested too deeply" in result.stderr
    # Inside a snapshot whose hashes match: refused when read, naming the snapshot.
    forged = _forge(
        stored,
        tmp_path,
        "deep-part.json",
        _set(["parts", "rules.v4"], '{"nftables": ' + "[" * depth + "]" * depth + "}"),
    )
    result = _cli("diff", stored, forged)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(f"error: {forged}") and "nested too deeply" in result.stderr


@pytest.mark.parametrize("size", [0, 1, 2, 5, 12, 20, 30, 40])
def test_truncated_snapshot_is_a_damaged_snapshot(stored: Path, tmp_path: Path, size: int) -> None:
    cut = tmp_path / "cut.json"
    cut.write_bytes(stored.read_bytes()[:size])
    result = _cli("diff", stored, cut)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.startswith(f"error: {cut}")
    expected = "empty file" if size == 0 else "snapshot refused: not valid JSON"
    assert expected in result.stderr


def test_whitespace_only_file_refused(stored: Path, tmp_path: Path) -> None:
    blank = tmp_path / "rules.v4"
    blank.write_text("\n  \n")
    for args in ((stored, blank), (blank, stored)):
        result = _cli("diff", *args)
        assert result.exit_code == 2
        assert f"error: {blank}: empty file" in result.stderr
    # Nor recorded as a snapshot of "no rules".
    result = _cli("snapshot", "--source", blank, "-o", tmp_path / "store")
    assert result.exit_code == 2
    assert f"error: {blank}: empty file" in result.stderr
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())


def test_snapshot_with_keys_reordered_is_still_read_as_one(stored: Path, tmp_path: Path) -> None:
    doc = json.loads(stored.read_text())
    reordered = {k: doc[k] for k in ("version", "manifest", "manifest_sha256", "parts", "format")}
    path = tmp_path / "reordered.json"
    path.write_text(json.dumps(reordered))
    result = _cli("diff", stored, path)
    assert result.exit_code == 0, result.stderr
    # One byte of a part changed in that layout is caught as tampering, not read as config.
    reordered["parts"]["rules.v4"] = V4.replace("/25", "/24")
    path.write_text(json.dumps(reordered))
    result = _cli("diff", stored, path)
    assert result.exit_code == 2 and "another sha256 than recorded" in result.stderr


# --- counters and time-left of set members are not changes ------------------------------------

IPSET_RULES = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -p tcp -m set --match-set vendor dst -m tcp --dport 443 -j ACCEPT
COMMIT
"""

IPSET_OLD = (
    "create vendor hash:net family inet hashsize 1024 maxelem 65536 timeout 0 counters "
    "bucketsize 12 initval 0x1234abcd\n"
    """\
add vendor 198.51.100.0/25 timeout 0 packets 5 bytes 300
add vendor 203.0.113.0/28 timeout 600 packets 0 bytes 0
"""
)


def _end(tmp: Path, name: str, files: dict[str, str]) -> Path:
    d = tmp / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    return d


def test_ipset_counters_and_timeouts_are_not_member_changes(tmp_path: Path) -> None:
    new = IPSET_OLD.replace("packets 5 bytes 300", "packets 9000 bytes 123456")
    new = new.replace("timeout 600", "timeout 17").replace("0x1234abcd", "0x0badcafe")
    a = _end(tmp_path, "a", {"rules.v4": IPSET_RULES, "ipset.save": IPSET_OLD})
    b = _end(tmp_path, "b", {"rules.v4": IPSET_RULES, "ipset.save": new})
    out = tmp_path / "d.json"
    sa = _cli("snapshot", "--source", a / "rules.v4", "--source", a / "ipset.save", "-o", a / "s")
    sb = _cli("snapshot", "--source", b / "rules.v4", "--source", b / "ipset.save", "-o", b / "s")
    assert sa.exit_code == 0 and sb.exit_code == 0
    result = _cli("diff", a / "s", b / "s", "--format", "json", "-o", out)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["structural"]["sets"] == []
    # A real member change is still one: 192.0.2.0/24 added (nothing else).
    c = _end(
        tmp_path,
        "c",
        {
            "rules.v4": IPSET_RULES,
            "ipset.save": new + "add vendor 192.0.2.0/24 packets 1 bytes 2\n",
        },
    )
    sc = _cli("snapshot", "--source", c / "rules.v4", "--source", c / "ipset.save", "-o", c / "s")
    assert sc.exit_code == 0
    result = _cli("diff", a / "s", c / "s", "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    (change,) = json.loads(out.read_text())["structural"]["sets"]
    assert change["kind"] == "members"
    assert change["added"] == ["192.0.2.0/24"] and change["removed"] == []


def _nft(elements: list[Any], target: str = "c") -> str:
    """A minimal ``nft -j list ruleset`` document (libnftables-json(5)): table inet t, set s
    of IPv4 prefixes, chains c (drop), counterc (accept) and output (hook output, policy
    drop) with ``ip daddr @s jump TARGET``."""
    items: list[Any] = [
        {"metainfo": {"version": "1.0.6", "release_name": "x", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {
            "set": {
                "family": "inet",
                "name": "s",
                "table": "t",
                "type": "ipv4_addr",
                "handle": 2,
                "flags": ["interval"],
                "elem": elements,
            }
        },
        {"chain": {"family": "inet", "table": "t", "name": "counterc", "handle": 3}},
        {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 4}},
        {
            "chain": {
                "family": "inet",
                "table": "t",
                "name": "output",
                "handle": 5,
                "type": "filter",
                "hook": "output",
                "prio": 0,
                "policy": "drop",
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "t",
                "chain": "counterc",
                "handle": 6,
                "expr": [{"accept": None}],
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "t",
                "chain": "c",
                "handle": 7,
                "expr": [{"drop": None}],
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "t",
                "chain": "output",
                "handle": 8,
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                            "right": "@s",
                        }
                    },
                    {"counter": {"packets": 0, "bytes": 0}},
                    {"jump": {"target": target}},
                ],
            }
        },
    ]
    return json.dumps({"nftables": items})


PREFIX = {"prefix": {"addr": "198.51.100.0", "len": 25}}


def test_nft_element_counters_and_expiry_are_not_member_changes(tmp_path: Path) -> None:
    old = _nft([{"elem": {"val": PREFIX, "counter": {"packets": 1, "bytes": 60}, "expires": 30}}])
    new = _nft([{"elem": {"val": PREFIX, "counter": {"packets": 7, "bytes": 420}, "expires": 12}}])
    plain = _nft([PREFIX])  # the same member without counter or expiry
    a, b, c = (tmp_path / n for n in ("a.json", "b.json", "c.json"))
    a.write_text(old)
    b.write_text(new)
    c.write_text(plain)
    out = tmp_path / "d.json"
    for other in (b, c):
        result = _cli("diff", a, other, "--format", "json", "-o", out)
        assert result.exit_code == 0, result.stderr
        assert json.loads(out.read_text())["structural"]["sets"] == []


def test_jump_target_change_is_never_hidden_by_the_identity(tmp_path: Path) -> None:
    # OLD: packets to 198.51.100.0/25 jump to c (drop); NEW: to counterc (accept). Everything
    # else meets the output policy (drop) at both ends. So exactly 198.51.100.0/25 is newly
    # permitted, whatever the protocol, and nothing is newly denied.
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(_nft([PREFIX], target="c"))
    b.write_text(_nft([PREFIX], target="counterc"))
    out = tmp_path / "d.json"
    result = _cli("diff", a, b, "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    doc = json.loads(out.read_text())
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output" and hook["denied"] == []
    (flow,) = hook["permitted"]
    dst = re.search(r"-> \[?([0-9.]+)\]?", flow["example"])
    assert dst is not None
    assert ipaddress.ip_address(dst.group(1)) in ipaddress.ip_network("198.51.100.0/25")
    (rule,) = doc["structural"]["rulesets"][0]["rules"]
    assert rule["kind"] == "modified"
    assert "jump c" in rule["old"]["text"] and "jump counterc" in rule["new"]["text"]


# --- invisible characters in configuration text ---------------------------------------------

HOSTILE_COMMENT = "a\r| x | y |\r\n# h\x1b[2K\u202egnp.exe\u2028<script>alert(1)</script>"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    old = json.loads(_nft([PREFIX]))
    new = copy.deepcopy(old)
    new["nftables"][-1]["rule"]["comment"] = HOSTILE_COMMENT
    a, b = tmp / "a.json", tmp / "b.json"
    a.write_text(json.dumps(old))
    b.write_text(json.dumps(new))
    return a, b


def test_markdown_rows_survive_control_characters(hostile: tuple[Path, Path]) -> None:
    result = _cli("diff", *hostile, "--format", "markdown")
    assert result.exit_code == 0, result.stderr  # a comment edit: no semantic change
    md = result.stdout
    assert not re.search("[\r\x1b\u2028\u202e]", md)
    html = MarkdownIt("commonmark").enable("table").render(md)
    (table,) = re.findall(r"<table>.*?</table>", html, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    # Header and one "modified (comment)" row, each with the 4 columns of the rules table.
    assert [len(re.findall(r"<t[dh]>", r)) for r in rows] == [4, 4]
    assert "<script>" not in html
    assert "\\x0d| x | y |\\x0d\\x0a# h\\x1b[2K\\u202egnp.exe\\u2028&lt;script&gt;" in rows[1]


def test_text_report_keeps_one_line_per_rule(hostile: tuple[Path, Path]) -> None:
    result = _cli("diff", *hostile)
    assert result.exit_code == 0
    assert not re.search("[\r\x1b\u2028\u202e]", result.stdout)
    new_lines = [line for line in result.stdout.splitlines() if line.startswith("      new: ")]
    assert len(new_lines) == 1 and new_lines[0].endswith("[b.json:1]")
    # JSON keeps the exact text.
    out = _cli("diff", *hostile, "--format", "json")
    rule = json.loads(out.stdout)["structural"]["rulesets"][0]["rules"][0]
    assert rule["new"]["comment"] == HOSTILE_COMMENT


# --- the HTML fits the page -------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "headless Chromium is not installed (Debian package chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def test_html_tables_fit_a_printed_page(tmp_path: Path) -> None:
    # A CIDR widened to a /8: the compliance finding carries a long comma-separated address
    # list without spaces, which used to widen its table past the page.
    v4 = V4.replace("198.51.100.0/25", "198.0.0.0/8")
    old, new = tmp_path / "old.v4", tmp_path / "new.v4"
    old.write_text(V4)
    new.write_text(v4)
    page = tmp_path / "review.html"
    result = _cli(
        "review", EXAMPLE, "--since", old, "--until", new, "--format", "html", "-o", page,
        "--as-of", "2027-04-15",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    html = page.read_text()
    # Measure with print rules applied to the screen, in an A4-wide window (720 CSS px): a
    # copy of the page with a probe script writing the widths into the DOM.
    probe = (
        "<script>document.body.insertAdjacentHTML('beforeend', '<p id=probe>' + "
        "document.documentElement.scrollWidth + ' ' + document.documentElement.clientWidth "
        "+ '</p>');</script></body>"
    )
    measured = tmp_path / "measured.html"
    measured.write_text(html.replace("@media print", "@media all").replace("</body>", probe))
    argv = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=720,1000", "--dump-dom", measured.as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<p id="probe">(\d+) (\d+)</p>', proc.stdout)
    assert found is not None, proc.stdout[-2000:]
    scroll, client = int(found.group(1)), int(found.group(2))
    assert 0 < client <= 720 and scroll <= client


# --- unmodeled conditions: "unchanged" only when proven ---------------------------------------

OWNER_V4 = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --dport 443 -m owner --uid-owner 1000 -j ACCEPT
COMMIT
"""


def test_changed_unmodeled_condition_is_not_proven_unchanged(tmp_path: Path) -> None:
    # OLD lets uid 1000 reach 198.51.100.0/24 on TCP 443, NEW lets uid 0: the same header
    # space, other packets (the owner is not a header field). Nothing can be proven about
    # TCP 443 to 198.51.100.0/24 either way; everything else is dropped at both ends.
    old, new = tmp_path / "old.v4", tmp_path / "new.v4"
    old.write_text(OWNER_V4)
    new.write_text(OWNER_V4.replace("--uid-owner 1000", "--uid-owner 0"))
    out = tmp_path / "d.json"
    result = _cli("diff", old, new, "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    assert "semantic change not excluded" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["semantic"]["proven"] is False and doc["summary"]["proven_unchanged"] is False
    assert doc["summary"]["newly_permitted"] == 0 and doc["summary"]["newly_denied"] == 0
    (hook,) = doc["semantic"]["hooks"]
    assert hook["hook"] == "output"
    for key in ("unproven_permitted", "unproven_denied"):
        (flow,) = hook[key]
        found = re.search(r"tcp \S+ -> ([0-9.]+):(\d+)", flow["example"])
        assert found is not None, flow["example"]
        assert ipaddress.ip_address(found.group(1)) in ipaddress.ip_network("198.51.100.0/24")
        assert found.group(2) == "443"
    text = _cli("diff", old, new)
    assert "NOT PROVEN unchanged" in text.stdout and "UNCHANGED (proven)" not in text.stdout


def test_comment_edit_on_unmodeled_rule_is_proven_unchanged(tmp_path: Path) -> None:
    old, new = tmp_path / "old.v4", tmp_path / "new.v4"
    rule = "-m owner --uid-owner 1000 -j ACCEPT"
    old.write_text(
        OWNER_V4.replace(rule, '-m owner --uid-owner 1000 -m comment --comment "a" -j ACCEPT')
    )
    new.write_text(
        OWNER_V4.replace(rule, '-m owner --uid-owner 1000 -m comment --comment "b" -j ACCEPT')
    )
    result = _cli("diff", old, new)
    assert result.exit_code == 0, result.stdout
    assert "UNCHANGED (proven)" in result.stdout and "rule modified (comment)" in result.stdout


# --- what the writer records, the reader reads; errors name the user's files -------------------


def test_snapshot_of_a_dash_named_file_reads_back(tmp_path: Path) -> None:
    odd = tmp_path / "-rules.v4"
    odd.write_text(V4)
    made = _cli("snapshot", "--source", odd, "-o", tmp_path / "store")
    assert made.exit_code == 0, made.stderr
    result = _cli("diff", tmp_path / "store", odd)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(Path(made.stdout.strip()).read_text())
    assert [p["name"] for p in doc["manifest"]["parts"]] == ["rules.v4"]


def test_errors_name_the_given_file_not_a_temporary_copy(tmp_path: Path) -> None:
    loop = tmp_path / "loop.v4"
    loop.write_text(
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:a - [0:0]\n"
        ":b - [0:0]\n-A OUTPUT -d 198.51.100.0/24 -j a\n-A a -j b\n-A b -j a\nCOMMIT\n"
    )
    good = tmp_path / "good.v4"
    good.write_text(V4)
    result = _cli("diff", good, loop)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {loop}:9") and "netguard-review-" not in result.stderr
    # No address and no family-specific match: the family cannot be told.
    bare = tmp_path / "bare.v4"
    bare.write_text(V4.replace("-d 198.51.100.0/25 ", ""))
    made = _cli("snapshot", "--source", bare, "-o", tmp_path / "store")
    assert made.exit_code == 0
    stored = Path(made.stdout.strip())
    for end, named in ((bare, f"{bare}:"), (stored, f"{stored} part bare.v4:")):
        result = _cli("diff", good, end)
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {named}"), result.stderr
        assert "netguard-review-" not in result.stderr


def test_output_never_replaces_a_snapshot_or_an_input(stored: Path, tmp_path: Path) -> None:
    before = stored.read_bytes()
    copy_of_snapshot = tmp_path / "kept.json"
    copy_of_snapshot.write_bytes(before)
    plain = tmp_path / "rules.v4"
    plain.write_text(V4)
    cases = [
        (("diff", stored, plain, "-o", stored), "is an input of this command"),
        (("diff", plain, plain, "-o", plain), "is an input of this command"),
        (("diff", plain, plain, "-o", copy_of_snapshot), "is a snapshot"),
        (("diff", stored, stored.parent, "-o", stored.parent / "r.json"), "inside the snapshot"),
        (
            ("review", EXAMPLE, "--since", stored, "--until", plain, "-o", stored),
            "is an input of this command",
        ),
    ]
    for args, expected in cases:
        result = _cli(*args, "--format", "json")
        assert result.exit_code == 2, (args, result.stderr)
        assert expected in result.stderr
    assert stored.read_bytes() == before and copy_of_snapshot.read_bytes() == before
    assert plain.read_text() == V4
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]


# --- security groups: a set of allows, and references netguard cannot resolve ---------------

FEATURES = ROOT / "tests" / "data" / "aws" / "features.json"


def test_security_group_reorder_is_proven_unchanged(tmp_path: Path) -> None:
    # Security group rules are an unordered set of allows: groups and permissions listed in
    # reverse order allow exactly the same packets.
    doc = json.loads(FEATURES.read_text())
    doc["SecurityGroups"].reverse()
    for group in doc["SecurityGroups"]:
        group["IpPermissions"].reverse()
        group["IpPermissionsEgress"].reverse()
    reordered = tmp_path / "reordered.json"
    reordered.write_text(json.dumps(doc))
    result = _cli("diff", FEATURES, reordered)
    assert result.exit_code == 0, result.stdout
    assert "UNCHANGED (proven)" in result.stdout


def test_widening_next_to_an_unresolved_group_reference_is_not_unchanged(tmp_path: Path) -> None:
    # sg-...1 also admits everything "from sg-...2", whose members this file does not list
    # (no network interfaces): the sources 203.0.113.16-255 now admitted on TCP 443 may or
    # may not have been admitted before. "Unchanged" would be a guess; it used to be claimed.
    doc = json.loads(FEATURES.read_text())
    web = doc["SecurityGroups"][0]
    assert web["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "203.0.113.0/28"
    web["IpPermissions"][0]["IpRanges"][0]["CidrIp"] = "203.0.113.0/24"
    widened = tmp_path / "widened.json"
    widened.write_text(json.dumps(doc))
    out = tmp_path / "d.json"
    result = _cli("diff", FEATURES, widened, "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    report = json.loads(out.read_text())
    assert report["semantic"]["proven"] is False
    flows = [f for h in report["semantic"]["hooks"] for f in h["unproven_permitted"]]
    assert flows
    for flow in flows:
        src = re.search(r"\S+ ([0-9.]+):\d+ -> \S+:(\d+)", flow["example"])
        assert src is not None, flow["example"]
        address = ipaddress.ip_address(src.group(1))
        assert address in ipaddress.ip_network("203.0.113.0/24")
        assert address not in ipaddress.ip_network("203.0.113.0/28")
        assert src.group(2) == "443"


def test_store_newest_ignores_renamed_copies(tmp_path: Path) -> None:
    store = tmp_path / "store"
    snaps = []
    for taken_at, text in (
        ("2026-06-01T10:00:00Z", V4),
        ("2026-09-01T10:00:00Z", V4.replace("/25", "/26")),
    ):
        snap = Snapshot(taken_at, "files", "fw1", (Part("rules.v4", "iptables-save", text),))
        snaps.append(save_snapshot(snap, store))
    # A copy of the older one under a name that sorts after the stamps.
    (store / "backup.json").write_bytes(snaps[0].read_bytes())
    newest = tmp_path / "newest.v4"
    newest.write_text(V4.replace("/25", "/26"))
    result = _cli("diff", newest, store)
    assert result.exit_code == 0, result.stdout
    assert f"new: {snaps[1].name} taken 2026-09-01T10:00:00Z" in result.stdout


# --- parts the readers do not analyse ---------------------------------------------------------

MANGLE = """\
*mangle
:PREROUTING ACCEPT [10:600]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
"""


def test_change_in_an_unanalysed_iptables_table_is_not_proven_unchanged(tmp_path: Path) -> None:
    # The mangle table can drop: the added rule drops everything to 198.51.100.0/24 before
    # the filter table sees it, which netguard does not analyse. Counters there are no change.
    old, same, new = (tmp_path / n for n in ("old.v4", "same.v4", "new.v4"))
    old.write_text(MANGLE + V4)
    same.write_text(MANGLE.replace("[10:600]", "[99:12345]") + V4)
    drop = '[3:180] -A OUTPUT -d 198.51.100.0/24 -m comment --comment "x" -j DROP\n'
    dropped = MANGLE.replace(":POSTROUTING ACCEPT [0:0]\n", ":POSTROUTING ACCEPT [0:0]\n" + drop)
    new.write_text(dropped + V4)
    result = _cli("diff", old, same)
    assert result.exit_code == 0, result.stdout
    assert "UNCHANGED (proven)" in result.stdout
    later = tmp_path / "later.v4"
    later.write_text(dropped.replace("[3:180]", "[7:420]").replace('"x"', '"y"') + V4)
    assert _cli("diff", new, later).exit_code == 0
    out = tmp_path / "d.json"
    result = _cli("diff", old, new, "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    doc = json.loads(out.read_text())
    assert doc["structural"]["unanalysed"] == ["iptables table mangle changed (not analysed)"]
    assert doc["summary"]["semantic_change"] is False  # the filter table is the same
    assert doc["summary"]["proven_unchanged"] is False
    text = _cli("diff", old, new).stdout
    assert "NOT PROVEN unchanged" in text and "UNCHANGED (proven)" not in text


def _netdev(rule_expr: list[Any], handle: int = 3) -> str:
    items = [
        {"table": {"family": "inet", "name": "t", "handle": 1}},
        {
            "chain": {
                "family": "inet", "table": "t", "name": "output", "handle": 2,
                "type": "filter", "hook": "output", "prio": 0, "policy": "accept",
            }
        },
        {"table": {"family": "netdev", "name": "n", "handle": handle}},
        {
            "chain": {
                "family": "netdev", "table": "n", "name": "ing", "handle": handle + 1,
                "type": "filter", "hook": "ingress", "dev": "eth0", "prio": 0,
                "policy": "accept",
            }
        },
        {
            "rule": {
                "family": "netdev", "table": "n", "chain": "ing", "handle": handle + 2,
                "expr": rule_expr,
            }
        },
    ]  # fmt: skip
    return json.dumps({"nftables": items})


def test_change_in_an_unanalysed_nft_table_is_not_proven_unchanged(tmp_path: Path) -> None:
    def drop_from(prefix: str, packets: int) -> list[Any]:
        return [
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": {"prefix": {"addr": prefix, "len": 24}},
                }
            },
            {"counter": {"packets": packets, "bytes": packets * 60}},
            {"drop": None},
        ]

    old, same, new = (tmp_path / n for n in ("old.json", "same.json", "new.json"))
    old.write_text(_netdev(drop_from("198.51.100.0", 1)))
    same.write_text(_netdev(drop_from("198.51.100.0", 50), handle=7))  # counters, handles
    new.write_text(_netdev(drop_from("203.0.113.0", 1)))
    assert _cli("diff", old, same).exit_code == 0
    out = tmp_path / "d.json"
    result = _cli("diff", old, new, "--format", "json", "-o", out)
    assert result.exit_code == 1, result.stderr
    doc = json.loads(out.read_text())
    assert doc["structural"]["unanalysed"] == ["nft table netdev n changed (not analysed)"]


def test_a_configuration_file_end_is_not_presented_as_a_snapshot(
    stored: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "rules.v4"
    plain.write_text(V4)
    result = _cli("diff", plain, stored)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    old = next(line for line in lines if line.startswith("  old: "))
    new = next(line for line in lines if line.startswith("  new: "))
    assert old.startswith("  old: rules.v4 (a configuration file, not a snapshot; read ")
    assert new == f"  new: {stored.name} taken 2026-06-01T10:00:00Z from files (fw1.example)"


def test_possibly_changed_flows_do_not_depend_on_the_region(tmp_path: Path) -> None:
    from netguard.review.load import materialise
    from netguard.review.semantic import semantic_diff
    from netguard.review.snapshot import resolve_end
    from netguard.review.structural import structural_diff

    # An unchanged unmodeled rule (uid 0 to 192.0.2.0/24) away from the edited one: the only
    # possibly changed packets are TCP 443 to 198.51.100.0/24, whether both ends are
    # evaluated over the change region or over every packet.
    extra = "-A OUTPUT -d 192.0.2.0/24 -m owner --uid-owner 0 -j ACCEPT\nCOMMIT\n"
    old, new = tmp_path / "old.v4", tmp_path / "new.v4"
    old.write_text(OWNER_V4.replace("COMMIT\n", extra))
    new.write_text(OWNER_V4.replace("--uid-owner 1000", "--uid-owner 0").replace("COMMIT\n", extra))
    with materialise(resolve_end(old)) as a, materialise(resolve_end(new)) as b:
        structural = structural_diff(a, b)
        answers = [
            semantic_diff(structural.pairs, a, b, restrict=restrict) for restrict in (True, False)
        ]
    for answer in answers:
        (hook,) = answer.hooks
        assert [f.space for f in hook.unproven_permitted] == [
            "ipv4 tcp dst 198.51.100.0/24 dport 443"
        ]
        assert [f.space for f in hook.unproven_denied] == ["ipv4 tcp dst 198.51.100.0/24 dport 443"]


def test_empty_ipset_file_next_to_rules_is_recorded(tmp_path: Path) -> None:
    """README's recipe `ipset save > sets.txt` gives an empty file on a host without sets;
    next to the iptables files it is recorded (as an ipset part with no sets, as `check`
    reads it), and the snapshot diffs as unchanged against itself."""
    rules = tmp_path / "rules.v4"
    rules.write_text(
        "# Generated by iptables-save v1.8.9\n*filter\n:INPUT DROP [0:0]\n"
        ":FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\nCOMMIT\n"
    )
    sets = tmp_path / "sets.txt"
    sets.write_text("")
    store = tmp_path / "store"
    result = _cli("snapshot", "--source", rules, "--source", sets, "-o", store)
    assert result.exit_code == 0, result.stderr
    (snap,) = list(store.iterdir())
    parts = json.loads(snap.read_text())["manifest"]["parts"]
    got = {(p["name"], p["format"]) for p in parts}
    assert got == {("rules.v4", "iptables-save"), ("sets.txt", "ipset")}
    assert _cli("diff", snap, snap).exit_code == 0
