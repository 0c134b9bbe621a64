"""``--templates DIR`` overrides bundled templates; unsafe or broken templates stop the run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from netguard.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "public-https" / "deployment.yaml"


def _run(tmp_path: Path, template: str) -> tuple[int, str, Path]:
    tdir = tmp_path / "tpl"
    (tdir / "allowlist").mkdir(parents=True)
    (tdir / "allowlist" / "list.txt.j2").write_text(template)
    out = tmp_path / "out"
    args = ["generate", str(EXAMPLE), "-o", str(out), "-t", "allowlist", "--templates", str(tdir)]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stderr, out


def test_override_replaces_one_template_and_keeps_the_rest(tmp_path: Path) -> None:
    code, err, out = _run(tmp_path, "{% for p in prefixes %}allow {{ p }}\n{% endfor %}")
    assert code == 0, err
    assert (out / "allowlist" / "customer-inbound.txt").read_text() == (
        "allow 203.0.113.0/28\nallow 2001:db8:200::/48\n"
    )
    # The JSON list still comes from the bundled template.
    assert '"format": "netguard-allowlist"' in (out / "allowlist" / "allowlists.json").read_text()


def test_printing_an_unescaped_string_is_refused(tmp_path: Path) -> None:
    code, err, out = _run(tmp_path, "{{ name ~ '-' }}\n")
    assert code == 2
    assert "without an escaping filter" in err
    assert not out.exists()


def test_sandbox_blocks_attribute_escapes(tmp_path: Path) -> None:
    code, err, out = _run(tmp_path, "{{ name.__class__.__mro__ }}\n")
    assert code == 2
    assert "Traceback" not in err
    assert not out.exists()


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    code, err, out = _run(tmp_path, "line one\n{% for p in prefixes %}\n")
    assert code == 2
    assert "allowlist/list.txt.j2:2" in err
    assert not out.exists()


def test_escaping_filter_makes_text_printable(tmp_path: Path) -> None:
    code, err, out = _run(tmp_path, "# {{ (title ~ ' \"x\"\\nnew') | comment }}\n")
    assert code == 0, err
    text = (out / "allowlist" / "vendor-inbound.txt").read_text()
    assert text.count("\n") == 1  # the newline was neutralised
    assert text.startswith("# The customer's egress addresses")


def test_yaml_filter_round_trips_every_character() -> None:
    import yaml

    from netguard.render.base import escape_yaml

    text = '😀 é \u2028 \u0085 tab\t quote" back\\ {{ x }} #: - [ ]'
    out = escape_yaml(text)
    assert out.isascii()
    assert yaml.safe_load(f"key: {out}\n") == {"key": text}


def test_filter_blocks_are_refused(tmp_path: Path) -> None:
    # Regression: a {% filter %} block printed its filter's arguments (raw profile text) and
    # its own output without the escaping check, so a custom template could splice a rule in.
    code, err, out = _run(
        tmp_path,
        '{% filter replace("X", title) %}comment "X"{% endfilter %}\n',
    )
    assert code == 2
    assert "{% filter %} blocks are not allowed" in err
    assert not out.exists()


def test_template_runtime_errors_are_invalid_input(tmp_path: Path) -> None:
    for body in (
        "{{ 1 // 0 }}\n",
        "{% include 'allowlist/list.txt.j2' %}\n",
        "{{ range(10**9) }}\n",
    ):
        code, err, out = _run(tmp_path / str(abs(hash(body))), body)
        assert code == 2, (body, err)
        assert "Traceback" not in err
        assert not out.exists()
