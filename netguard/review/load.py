"""Turn a :class:`~netguard.review.snapshot.Snapshot` into rule sets, sets and groups.

The parts are written to a private temporary directory under their part names and read with
:func:`netguard.check.load_configs` (formats by content), so a snapshot reads exactly as the
same files given to ``netguard check``. Locations in what is read name the temporary files;
:meth:`MaterialisedEnd.where` turns them back into ``part:line``.

iptables-nft: on a host whose iptables uses the nf_tables backend, ``nft -j list ruleset``
shows the tables iptables-save already printed again, with ``xt`` expressions nft cannot
describe. Such tables (family ``ip``/``ip6`` and a name iptables-save / ip6tables-save of the
same snapshot lists as ``*NAME``) are left out of the nft part when it is read, so each rule
is read once, from the dump that describes it fully; a note says so.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netguard.check import ConfigFormat, LoadedConfigs, load_configs
from netguard.errors import InputError, Location
from netguard.model.ruleset import RuleSet
from netguard.review.snapshot import Part, Snapshot

__all__ = ["MaterialisedEnd", "SetInfo", "iptables_tables", "materialise"]


@dataclass(frozen=True)
class SetInfo:
    """A named set of one end: an ipset, an nft named set or an AWS managed prefix list.

    ``kind`` is ``ipset``, ``nft-set`` or ``prefix-list``; ``key`` identifies it across ends
    (name, or prefix-list id); ``members`` are the member strings as written, sorted;
    ``title`` what a reader calls it (name, or ``pl-... (name)``)."""

    kind: str
    key: str
    title: str
    members: tuple[str, ...]
    spec: str = ""


@dataclass
class MaterialisedEnd:
    """A snapshot written to ``directory`` and read: rule sets with their formats, named sets,
    security groups (``group id -> name``), the config paths, and notes."""

    snapshot: Snapshot
    directory: Path
    configs: LoadedConfigs
    paths: tuple[Path, ...]
    sets: dict[str, SetInfo] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rulesets(self) -> tuple[RuleSet, ...]:
        """Every rule set read (one per family and file)."""
        return self.configs.rulesets

    def display(self, path: str | Path) -> str:
        """A temporary path of this end as its part name; any other path unchanged."""
        p = Path(path)
        return p.name if p.parent == self.directory else str(path)

    def where(self, loc: Location | None) -> str:
        """``part:line`` of a location in this end (``?`` when unknown)."""
        if loc is None:
            return "?"
        name = self.display(loc.path)
        return f"{name}:{loc.line}" if loc.line else name


def _loads(text: str) -> Any:
    """``text`` parsed as JSON, or None when it is not JSON (the reader reports it)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _check_depth(snapshot: Snapshot, part: Part) -> None:
    """Refuse a JSON part nested deeper than Python's parser can go (exit 2, not a crash)."""
    if not part.text.lstrip().startswith(("{", "[")):
        return
    try:
        json.loads(part.text)
    except ValueError:
        return
    except RecursionError:
        where = snapshot.path if snapshot.path is not None else Path(part.name)
        raise InputError.at(Location(where), f"part {part.name}: JSON nested too deeply") from None


_TABLE_RE = re.compile(r"^\*(\S+)", re.MULTILINE)


def iptables_tables(parts: tuple[Part, ...]) -> dict[str, set[str]]:
    """nft family (ip, ip6) -> table names the iptables-save parts list (iptables-nft
    shows these tables in ``nft -j list ruleset`` too)."""
    out: dict[str, set[str]] = {"ip": set(), "ip6": set()}
    for part in parts:
        if part.format != ConfigFormat.IPTABLES.value:
            continue
        family = "ip6" if "ip6tables" in part.name or ":" in _first_address(part.text) else "ip"
        out[family].update(_TABLE_RE.findall(part.text))
    return out


def _first_address(text: str) -> str:
    m = re.search(r"\s-[sd]\s+(\S+)", text)
    return m.group(1) if m else ""


def _filter_nft(text: str, skip: dict[str, set[str]]) -> tuple[str, list[str]]:
    doc = _loads(text)
    if doc is None:
        return text, []
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return text, []
    kept: list[Any] = []
    dropped: set[str] = set()
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            ((kind, body),) = item.items()
            if isinstance(body, dict):
                family = body.get("family")
                table = body.get("name") if kind == "table" else body.get("table")
                if family in skip and table in skip[family]:
                    dropped.add(f"{family} {table}")
                    continue
        kept.append(item)
    if not dropped:
        return text, []
    note = (
        f"nft tables {', '.join(sorted(dropped))} are iptables-nft's and were read from "
        "the iptables-save output instead"
    )
    return json.dumps({"nftables": kept}), [note]


#: ipset(8) "add" options that are state, not membership: the counters (``packets``,
#: ``bytes``, with the set's ``counters`` option) and the time an entry has left
#: (``timeout``, counting down between two saves). Dropped like rule counters; ``nomatch``,
#: ``comment``, ``skb*`` stay.
_IPSET_STATE = frozenset({"packets", "bytes", "timeout"})


def _ipset_member(words: list[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(words):
        if i > 0 and words[i] in _IPSET_STATE and i + 1 < len(words):
            i += 2
            continue
        out.append(words[i])
        i += 1
    return " ".join(out)


#: nft set element fields (nft JSON, libnftables-json(5) "ELEM") that are state: the
#: element's counter and the time left before it expires.
_NFT_ELEM_STATE = frozenset({"counter", "expires"})


def _nft_member(elem: Any) -> str:
    if isinstance(elem, str):
        return elem
    if isinstance(elem, dict) and isinstance(elem.get("elem"), dict):
        body = {k: v for k, v in elem["elem"].items() if k not in _NFT_ELEM_STATE}
        elem = body["val"] if set(body) == {"val"} else {"elem": body}
    return elem if isinstance(elem, str) else json.dumps(elem, sort_keys=True)


def _ipset_sets(text: str) -> dict[str, SetInfo]:
    specs: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "create":
            # The spec without the per-boot hash seed (initval) and sizing hints.
            spec = []
            skip_next = False
            for w in words[2:]:
                if skip_next:
                    skip_next = False
                    continue
                if w in ("initval", "hashsize", "bucketsize"):
                    skip_next = True
                    continue
                spec.append(w)
            specs[words[1]] = " ".join(spec)
            members.setdefault(words[1], [])
        elif len(words) >= 3 and words[0] == "add":
            members.setdefault(words[1], []).append(_ipset_member(words[2:]))
    return {
        f"ipset:{name}": SetInfo("ipset", name, name, tuple(sorted(m)), specs.get(name, ""))
        for name, m in members.items()
    }


def _nft_sets(text: str) -> dict[str, SetInfo]:
    doc = _loads(text)
    if doc is None:
        return {}
    out: dict[str, SetInfo] = {}
    items = doc.get("nftables") if isinstance(doc, dict) else None
    for item in items if isinstance(items, list) else []:
        body = item.get("set") if isinstance(item, dict) else None
        if not isinstance(body, dict):
            continue
        name = f"{body.get('family')} {body.get('table')} {body.get('name')}"
        elems = body.get("elem", [])
        members = tuple(sorted(_nft_member(e) for e in elems if isinstance(elems, list)))
        out[f"nft-set:{name}"] = SetInfo("nft-set", name, name, members, str(body.get("type")))
    return out


def _prefix_lists(text: str) -> dict[str, SetInfo]:
    doc = _loads(text)
    if doc is None:
        return {}
    lists = doc.get("PrefixLists", []) if isinstance(doc, dict) else doc
    out: dict[str, SetInfo] = {}
    for pl in lists if isinstance(lists, list) else []:
        if not isinstance(pl, dict) or "PrefixListId" not in pl:
            continue
        pid = str(pl["PrefixListId"])
        listed = pl.get("Entries")
        entries = tuple(
            sorted(
                str(e.get("Cidr"))
                for e in (listed if isinstance(listed, list) else [])
                if isinstance(e, dict)
            )
        )
        title = f"{pid} ({pl.get('PrefixListName', '')})"
        out[f"prefix-list:{pid}"] = SetInfo("prefix-list", pid, title, entries)
    return out


def _groups(text: str) -> dict[str, str]:
    doc = _loads(text)
    if doc is None:
        return {}
    groups = doc.get("SecurityGroups", []) if isinstance(doc, dict) else doc
    return {
        str(g["GroupId"]): str(g.get("GroupName", ""))
        for g in (groups if isinstance(groups, list) else [])
        if isinstance(g, dict) and "GroupId" in g
    }


def _relocate(exc: InputError, snapshot: Snapshot, directory: Path) -> InputError:
    """``exc`` with the private temporary paths of ``snapshot``'s parts replaced by what the
    user gave: the configuration file itself, or ``SNAPSHOT part NAME``."""
    prefix = str(directory) + "/"
    names = sorted((p.name for p in snapshot.parts), key=len, reverse=True)

    def place(name: str) -> str:
        if snapshot.plain and snapshot.path is not None:
            return str(snapshot.path)
        where = snapshot.path if snapshot.path is not None else snapshot.label
        return f"{where} part {name}"

    def text(message: str) -> str:
        for name in names:
            message = message.replace(prefix + name, place(name))
        return message.replace(prefix, "")

    problems = []
    for loc, message in exc.problems:
        path = str(loc.path)
        if path.startswith(prefix):
            loc = Location(place(path[len(prefix) :]), loc.line, loc.column)
        problems.append((loc, text(message)))
    return InputError(problems)


@contextmanager
def materialise(snapshot: Snapshot) -> Iterator[MaterialisedEnd]:
    """Write ``snapshot``'s parts to a temporary directory, read them, yield the result; the
    directory is removed on exit. Raises ``InputError`` (exit 2) when a part does not read,
    naming the configuration file given or ``SNAPSHOT part NAME``, never the temporary copy."""
    with tempfile.TemporaryDirectory(prefix="netguard-review-") as tmp:
        directory = Path(tmp)
        skip = iptables_tables(snapshot.parts)
        notes: list[str] = []
        paths: list[Path] = []
        sets: dict[str, SetInfo] = {}
        groups: dict[str, str] = {}
        for part in snapshot.parts:
            _check_depth(snapshot, part)
            text = part.text
            if part.format == ConfigFormat.NFT_JSON.value:
                text, extra = _filter_nft(text, skip)
                notes.extend(extra)
                sets.update(_nft_sets(text))
            elif part.format == ConfigFormat.IPSET.value:
                sets.update(_ipset_sets(text))
            elif part.format == ConfigFormat.AWS_PREFIX_LISTS.value:
                sets.update(_prefix_lists(text))
            elif part.format == ConfigFormat.AWS_SG.value:
                groups.update(_groups(text))
            path = directory / part.name
            path.write_text(text, encoding="utf-8")
            paths.append(path)
        try:
            configs = load_configs(paths)
        except InputError as exc:
            raise _relocate(exc, snapshot, directory) from None
        try:
            yield MaterialisedEnd(
                snapshot=snapshot,
                directory=directory,
                configs=configs,
                paths=tuple(paths),
                sets=sets,
                groups=groups,
                notes=notes,
            )
        except InputError as exc:
            # Raised while this end was in use (the engine refusing a jump loop, say).
            if not any(str(loc.path).startswith(str(directory)) for loc, _ in exc.problems):
                raise
            raise _relocate(exc, snapshot, directory) from None
