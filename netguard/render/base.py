"""Render base: the Target enum, the registry, and a Jinja environment that fails closed.

Every value a template prints must be a :class:`Safe` string (made by an escaping filter for
that format, or by renderer code from a value the schema already restricted) or an ``int``.
Printing anything else raises :class:`TemplateSafetyError`, so no template, bundled or given
with ``--templates``, can copy profile text into a configuration unescaped.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from netguard import __version__
from netguard.errors import TemplateSafetyError
from netguard.model.policy import Policy
from netguard.resources import data_dir


class Target(StrEnum):
    """Output targets of ``netguard generate --target``."""

    IPTABLES = "iptables"
    NFTABLES = "nftables"
    AWS_CFN = "aws-cfn"
    TERRAFORM = "terraform"
    AWS_API = "aws-api"
    ALLOWLIST = "allowlist"


class Safe(str):
    """Text already made safe for the output format it is printed into."""

    __slots__ = ()


def _finalize(value: Any) -> Any:
    if isinstance(value, Safe):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None:
        raise TemplateSafetyError("template printed an undefined/None value")
    raise TemplateSafetyError(
        f"template printed {type(value).__name__} {str(value)[:40]!r} without an escaping "
        "filter; pass it through the target's filter (e.g. | json, | comment, | nft_string)"
    )


_LINE_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;/()@+=#'\-]")
_NFT_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:/()@+=\-]")
# AWS: "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*" (EC2 API Reference, IpRange.Description)
_AWS_UNSAFE = re.compile(r"[^A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]")


def escape_line_comment(value: object, limit: int = 200) -> Safe:
    """Text for a ``#`` comment line: printable ASCII only, no newline can survive."""
    return Safe(_LINE_UNSAFE.sub("_", str(value))[:limit])


def escape_json(value: object) -> Safe:
    """A JSON (and YAML flow) scalar: ``json.dumps`` quoting and escaping."""
    return Safe(json.dumps(value, ensure_ascii=True))


def escape_yaml(value: object) -> Safe:
    """A YAML double-quoted scalar (YAML 1.2 section 5.7) or plain int/bool/null.

    JSON quoting is a subset of YAML's except for characters above U+FFFF, which JSON writes
    as surrogate pairs that YAML readers do not join: every non-ASCII character is written as
    a ``\\uXXXX`` or ``\\UXXXXXXXX`` escape instead, so the text is pure ASCII.
    """
    text = json.dumps(value, ensure_ascii=False)
    return Safe(
        "".join(
            c if ord(c) < 0x80 else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
            for c in text
        )
    )


def escape_nft_string(value: object, limit: int = 120) -> Safe:
    """A double-quoted nft string (nft(8) has no escape for '"' inside strings)."""
    return Safe('"' + _NFT_UNSAFE.sub("_", str(value))[:limit] + '"')


def escape_aws_description(value: object) -> str:
    """Characters AWS accepts in a rule or group description, at most 255."""
    return _AWS_UNSAFE.sub("_", str(value))[:255]


def to_json_document(value: object) -> Safe:
    """A whole JSON document, indented, with a final newline."""
    return Safe(json.dumps(value, indent=2, ensure_ascii=True) + "\n")


class _FailClosedEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox that also refuses ``{% filter %}`` blocks at parse time.

    ``finalize`` sees every ``{{ }}`` value, but the text a filter block produces, and the
    arguments given to its filter, are printed without passing through it: a template could
    splice raw profile text into a configuration that way. No bundled template needs them.
    """

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for block in tree.find_all(nodes.FilterBlock):
            raise jinja2.TemplateSyntaxError(
                "{% filter %} blocks are not allowed: apply an escaping filter to a value "
                "({{ value | comment }}) instead",
                block.lineno,
                name,
                filename,
            )
        return tree


def make_environment(template_dirs: Iterable[Path]) -> jinja2.Environment:
    """A sandboxed Jinja environment over ``template_dirs`` (first wins) and the bundled ones.

    StrictUndefined: a misspelt variable is an error, never an empty string.
    """
    dirs = [str(d) for d in template_dirs] + [str(data_dir("templates"))]
    env = _FailClosedEnvironment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        json=escape_json,
        yaml=escape_yaml,
        comment=escape_line_comment,
        nft_string=escape_nft_string,
        json_document=to_json_document,
    )
    env.globals["netguard_version"] = Safe(__version__)
    return env


class Renderer(ABC):
    """One output target: turns a Policy into named files (relative path -> text).

    ``render`` must not write anything; the caller writes all files only after every selected
    target rendered successfully. Raises ``RenderError`` when the policy cannot be expressed
    in the target (e.g. AWS quotas).
    """

    target: ClassVar[Target]

    @abstractmethod
    def render(self, policy: Policy, env: jinja2.Environment) -> dict[str, str]:
        """Return ``{relative_path: content}``; paths use '/' and stay inside the output dir."""


RENDERERS: dict[Target, type[Renderer]] = {}


def register(cls: type[Renderer]) -> type[Renderer]:
    """Class decorator adding a renderer to the registry under its ``target``."""
    RENDERERS[cls.target] = cls
    return cls


def render_targets(
    policy: Policy,
    targets: Iterable[Target],
    template_dirs: Iterable[Path] = (),
    on_target: Callable[[Target], None] | None = None,
) -> dict[str, str]:
    """Render the given targets into one ``{relative_path: content}`` map (no I/O).

    Raises ``RenderError`` or ``TemplateSafetyError``; jinja errors in user templates surface
    as ``TemplateSafetyError`` with the template name and line.
    """
    template_dirs = list(template_dirs)
    custom = [str(d) for d in template_dirs]
    env = make_environment(template_dirs)
    files: dict[str, str] = {}
    for target in targets:
        if on_target:
            on_target(target)
        try:
            produced = RENDERERS[target]().render(policy, env)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSafetyError(
                f"template {exc.filename or exc.name}:{exc.lineno}: {exc.message}"
            ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateSafetyError(f"template error in target {target}: {exc}") from exc
        except (ArithmeticError, RecursionError, LookupError, TypeError, UnicodeError) as exc:
            if not custom:
                raise  # a defect of netguard itself: reported as an internal error
            raise TemplateSafetyError(
                f"template error in target {target} (templates from {', '.join(custom)}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for name, text in produced.items():
            if name in files:
                raise TemplateSafetyError(f"two targets produce {name}")
            files[name] = text
    return files
