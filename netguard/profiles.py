"""Load and validate deployment profiles: the only module that reads YAML.

A deployment YAML ``extends`` a bundled base profile (``profiles/<mode>.yaml``). Both files are
parsed with positions kept for every key and value, merged (mappings deep-merged, lists and
scalars replaced by the deployment), and validated against :class:`DeploymentProfile`. Every
problem is reported with its file, line and column and what was expected (``ProfileError``).

YAML 1.1 traps are refused rather than silently converted: duplicate keys, ``0443`` (octal),
``22:80`` (base-60), anchors/aliases and tags.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from netguard.errors import Location, ProfileError
from netguard.resources import data_dir
from netguard.schema import DeploymentProfile, Mode, default_as_of

PathKey = tuple[str | int, ...]
# libyaml's composer when present (same nodes and marks, several times faster on long lists).
_COMPOSE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_MODE_SECTIONS = {"vpn": Mode.VPN, "privatelink": Mode.PRIVATELINK}


@dataclass
class SourceMap:
    """Positions of every value (``values``) and mapping key (``keys``) by path."""

    values: dict[PathKey, Location]
    keys: dict[PathKey, Location]
    problems: tuple[tuple[Location, str], ...] = ()

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """Position of ``path``, or of its nearest ancestor that has one."""
        while True:
            table = self.keys if key else self.values
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return Location("<unknown>")
            path = path[:-1]
            key = True


def _loc(path: Path, mark: Any) -> Location:
    """1-based location of a YAML mark (pure-Python or libyaml); the file alone without one."""
    if mark is None:
        return Location(path)
    return Location(path, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node tree into Python values, recording positions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[PathKey, Location] = {}
        self.keys: dict[PathKey, Location] = {}
        self.problems: list[tuple[Location, str]] = []
        self._scalar_loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, at: PathKey) -> Any:
        self.values[at] = _loc(self.path, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                self._bad_tag(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag != "tag:yaml.org,2002:str"
                ):
                    self.problems.append(
                        (_loc(self.path, key_node.start_mark), "expected a plain text key")
                    )
                    continue
                key = key_node.value
                if key == "<<":
                    self.problems.append(
                        (_loc(self.path, key_node.start_mark), "YAML merge keys are not accepted")
                    )
                    continue
                if key in out:
                    first = self.keys[(*at, key)]
                    self.problems.append(
                        (
                            _loc(self.path, key_node.start_mark),
                            f"duplicate key {key!r} (first given at line {first.line}); "
                            "expected each key once",
                        )
                    )
                    continue
                self.keys[(*at, key)] = _loc(self.path, key_node.start_mark)
                out[key] = self.build(value_node, (*at, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self._bad_tag(node)
            return [self.build(item, (*at, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag.startswith("!") or (
            node.tag not in _ALLOWED_SCALAR_TAGS and not node.tag.startswith("tag:yaml.org,2002:")
        ):
            self._bad_tag(node)
            return node.value
        if node.tag in ("tag:yaml.org,2002:int",) and not _PLAIN_INT.fullmatch(node.value):
            self.problems.append(
                (
                    _loc(self.path, node.start_mark),
                    f"{node.value!r} is read by YAML as a non-decimal number; expected a plain "
                    "decimal number, or quote it if it is text",
                )
            )
            return node.value
        if node.tag == "tag:yaml.org,2002:float":
            return node.value  # no field takes a float; keep the text for a clear error later
        if node.tag == "tag:yaml.org,2002:timestamp" and (
            "t" in node.value.lower() or " " in node.value
        ):
            return node.value
        if node.tag == "tag:yaml.org,2002:str":
            return node.value  # what construct_object returns for a plain string, much faster
        try:
            return self._scalar_loader.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError):
            what = (
                "not a real date: expected YYYY-MM-DD"
                if node.tag.endswith(":timestamp")
                else "not a value YAML can read"
            )
            self.problems.append((_loc(self.path, node.start_mark), f"{node.value!r} is {what}"))
            return node.value

    def _bad_tag(self, node: yaml.Node) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
        self.problems.append(
            (_loc(self.path, node.start_mark), f"YAML tag {tag!r} is not accepted")
        )


_ALLOWED_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse one YAML document with positions.

    Returns ``(value, SourceMap)``; the YAML traps listed in the module docstring are collected
    in ``SourceMap.problems`` so that a caller reports them with every other problem. Raises
    ``ProfileError`` for unreadable files, syntax errors (with the parser's line and column) and
    multiple documents.
    """
    try:
        if not path.is_file():
            if not path.exists():
                raise FileNotFoundError(path)
            raise ProfileError.at(Location(path), "expected a regular file")
        with path.open("rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError.at(
                Location(path), f"file is larger than {MAX_PROFILE_BYTES // 2**20} MiB"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ProfileError.at(Location(path), "file not found") from None
    except UnicodeDecodeError as exc:
        raise ProfileError.at(Location(path), f"expected UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ProfileError.at(Location(path), f"cannot read: {exc.strerror}") from None
    _check_events(path, text)
    try:
        nodes = list(yaml.compose_all(text, Loader=_COMPOSE_LOADER))
    except yaml.MarkedYAMLError as exc:
        raise ProfileError.at(*_syntax_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ProfileError.at(Location(path), f"invalid YAML: {exc}") from None
    if not nodes or nodes[0] is None:
        raise ProfileError.at(Location(path, 1, 1), "expected a YAML mapping, the file is empty")
    if len(nodes) > 1:
        raise ProfileError.at(
            _loc(path, nodes[1].start_mark), "expected one YAML document, found several"
        )
    builder = _Builder(path)
    value = builder.build(nodes[0], ())
    return value, SourceMap(builder.values, builder.keys, tuple(builder.problems))


MAX_PROFILE_BYTES = 64 * 2**20
MAX_DEPTH = 32


def _check_events(path: Path, text: str) -> None:
    """Refuse anchors, aliases, explicit tags and deep nesting before anything is built.

    One linear pass over the parser's events: an alias can never be expanded (no "billion
    laughs"), no tag can select a constructor, and recursion depth stays bounded.
    """
    problems: list[tuple[Location, str]] = []
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_COMPOSE_LOADER):
            where = _loc(path, event.start_mark)
            if isinstance(event, yaml.AliasEvent):
                problems.append((where, "YAML aliases (*name) are not accepted: write the value"))
                continue
            if getattr(event, "anchor", None):
                problems.append((where, "YAML anchors (&name) are not accepted"))
            tag = getattr(event, "tag", None)
            if tag is not None and tag != "!":
                shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
                problems.append((where, f"YAML tag {shown!r} is not accepted"))
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ProfileError.at(where, f"expected at most {MAX_DEPTH} levels of nesting")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if len(problems) >= 50:
                break
    except yaml.MarkedYAMLError as exc:
        raise ProfileError.at(*_syntax_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ProfileError.at(Location(path), f"invalid YAML: {exc}") from None
    if problems:
        raise ProfileError(problems)


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> tuple[Location, str]:
    """Where a YAML syntax error is, preferring the start of the unclosed construct."""
    what = exc.problem or exc.context or "syntax error"
    if exc.context and exc.context_mark is not None:
        construct = exc.context.removeprefix("while parsing a ").removeprefix("while scanning a ")
        start = exc.context_mark
        return _loc(path, start), (
            f"invalid YAML: {what} (in the {construct} that starts at line {start.line + 1}, "
            f"column {start.column + 1})"
        )
    mark = exc.problem_mark
    return (_loc(path, mark) if mark else Location(path)), f"invalid YAML: {what}"


def base_profiles_dir() -> Path:
    """Directory of the bundled base profiles."""
    return data_dir("profiles")


def list_base_profiles() -> list[str]:
    """Names of the bundled base profiles, sorted."""
    return sorted(p.stem for p in base_profiles_dir().glob("*.yaml"))


def base_profile_path(name: str) -> Path:
    """Path of a bundled base profile. Raises ``KeyError`` for an unknown name."""
    path = base_profiles_dir() / f"{name}.yaml"
    if name not in list_base_profiles():
        raise KeyError(name)
    return path


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _friendly(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "missing":
        return f"missing required field {err['loc'][-1]!r}"
    if kind == "list_type":
        return "expected a list"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "expected a mapping of keys to values"
    if kind == "too_short":
        return "expected at least one entry"
    if kind == "bool_type":
        return "expected true or false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("date_type", "date_parsing", "date_from_datetime_inexact"):
        return "expected a date written YYYY-MM-DD"
    if kind == "literal_error" or kind == "enum":
        return f"expected {msg.removeprefix('Input should be ')}"
    return msg


def _schema_keys(model: type[Any], path: PathKey) -> list[str]:
    """Field names allowed at ``path`` (for 'did you mean' hints)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        current = _model_in(annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class LoadedDeployment:
    """A validated deployment: the profile, where it came from, and its source positions."""

    profile: DeploymentProfile
    path: Path
    base_path: Path
    source: SourceMap


def load_deployment(
    path: Path, *, as_of: dt.date | None = None, allow_expired: bool = False
) -> LoadedDeployment:
    """Read, merge and validate a deployment file.

    ``as_of`` is the date exceptions are checked against (default: today). With
    ``allow_expired`` expired exceptions load too (``netguard check`` reports them as findings
    instead of refusing the profile). Raises ``ProfileError`` listing every problem with file,
    line and column.
    """
    data, deploy_map = read_yaml(path)
    if not isinstance(data, dict):
        raise ProfileError.at(Location(path, 1, 1), "expected a YAML mapping at the top level")
    problems: list[tuple[Location, str]] = list(deploy_map.problems)
    extends = data.get("extends")
    if extends is None:
        raise ProfileError.at(
            Location(path, 1, 1),
            f"missing required field 'extends': expected one of {', '.join(list_base_profiles())}",
        )
    if not isinstance(extends, str) or extends not in list_base_profiles():
        raise ProfileError.at(
            deploy_map.locate(("extends",)),
            f"unknown base profile {extends!r}: expected one of {', '.join(list_base_profiles())}",
        )
    if "mode" in data:
        problems.append(
            (
                deploy_map.locate(("mode",), key=True),
                "'mode' is set by the base profile; choose the mode with 'extends'",
            )
        )
    base_path = base_profile_path(extends)
    base, base_map = read_yaml(base_path)
    problems.extend(base_map.problems)
    # The mode comes from the base profile only; an override is reported above, never used.
    merged = _merge(base, {k: v for k, v in data.items() if k != "mode"})
    merged["extends"] = extends

    def locate(loc: PathKey, *, key: bool = False) -> Location:
        if loc in deploy_map.values or loc in deploy_map.keys:
            return deploy_map.locate(loc, key=key)
        if loc in base_map.values or loc in base_map.keys:
            return base_map.locate(loc, key=key)
        return deploy_map.locate(loc, key=key)

    mode = merged.get("mode")
    for section, needs in _MODE_SECTIONS.items():
        if merged.get(section) is not None and mode != needs:
            problems.append(
                (
                    locate((section,), key=True),
                    f"'{section}' applies only to deployments that extend {needs.value}; "
                    f"this one extends {extends}",
                )
            )
        if mode == needs and not isinstance(merged.get(section), dict):
            problems.append(
                (
                    Location(path, 1, 1),
                    f"missing required section {section!r} for mode {needs.value}",
                )
            )
    vendor = merged.get("vendor")
    if isinstance(vendor, dict):
        if mode == Mode.PRIVATELINK and vendor.get("api_ranges") is not None:
            problems.append(
                (
                    locate(("vendor", "api_ranges"), key=True),
                    "'vendor.api_ranges' does not apply to privatelink: applications reach the "
                    "vendor only through the endpoint (set privatelink.endpoint_subnets)",
                )
            )
        if mode in (Mode.PUBLIC_HTTPS, Mode.VPN) and vendor.get("api_ranges") is None:
            problems.append(
                (
                    locate(("vendor",), key=True),
                    f"missing required field 'api_ranges' for mode {mode}",
                )
            )

    try:
        profile = DeploymentProfile.model_validate(
            merged, context={"as_of": dt.date.min if allow_expired else as_of or default_as_of()}
        )
    except ValidationError as exc:
        for err in exc.errors():
            loc: PathKey = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                allowed = _schema_keys(DeploymentProfile, loc[:-1])
                hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                expected = (
                    f"did you mean {hint[0]!r}?"
                    if hint
                    else f"expected one of: {', '.join(allowed)}"
                )
                problems.append((locate(loc, key=True), f"unknown key {loc[-1]!r}: {expected}"))
            elif err["type"] == "missing":
                where = locate(loc[:-1], key=True)
                message = _friendly(err)
                if loc[:-1]:
                    message += f" in {'.'.join(str(p) for p in loc[:-1])!r}"
                if where.path == base_path:
                    # The section comes from the base profile; the fix belongs in the deployment.
                    where = deploy_map.locate(("extends",), key=True)
                    message += f" (base profile {extends} does not set it)"
                problems.append((where, message))
            else:
                problems.append((locate(loc), _friendly(err)))
        raise ProfileError(_dedupe(problems)) from None
    if problems:
        raise ProfileError(_dedupe(problems))
    return LoadedDeployment(
        profile,
        path,
        base_path,
        SourceMap({**base_map.values, **deploy_map.values}, {**base_map.keys, **deploy_map.keys}),
    )


def _dedupe(problems: list[tuple[Location, str]]) -> list[tuple[Location, str]]:
    """One message per location: a YAML trap already explains the schema error it causes."""
    seen: set[Location] = set()
    out: list[tuple[Location, str]] = []
    for loc, msg in problems:
        if loc not in seen:
            seen.add(loc)
            out.append((loc, msg))
    return out


def json_schema() -> str:
    """The JSON Schema of a deployment *file* (draft 2020-12), as stable, sorted JSON text.

    It describes what a user writes: ``mode`` is absent (the base profile named by ``extends``
    sets it). Checks that need the base profile or today's date (mode-specific sections,
    expiry) are made by ``netguard validate``, not by the schema.
    """
    schema = DeploymentProfile.model_json_schema(mode="validation")
    schema["properties"].pop("mode", None)
    schema["required"] = [r for r in schema["required"] if r != "mode"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://netguard.invalid/schema/deployment-v1.json"
    schema["title"] = "netguard deployment profile"
    schema["description"] = (
        "A deployment extends one base profile (public-https, vpn, privatelink) and gives the "
        "vendor's and the customer's addresses. Validate with: netguard validate FILE"
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
