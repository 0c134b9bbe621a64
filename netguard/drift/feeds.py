"""Vendor IP-range feeds: read a published feed into an address set, with its version.

Shapes recognised by content (:func:`read_feed`):

- ``aws``: AWS ``ip-ranges.json`` (``syncToken``, ``createDate`` ``YYYY-MM-DD-hh-mm-ss``,
  ``prefixes[].ip_prefix`` and ``ipv6_prefixes[].ipv6_prefix``, each with ``region`` and
  ``service``); ``--service`` and ``--region`` filter (AWS General Reference, "AWS IP address
  ranges"). ``service`` ``AMAZON`` is the superset of every service.
- ``google``: Google ``goog.json`` / ``cloud.json`` (``syncToken``, ``creationTime``,
  ``prefixes[].ipv4Prefix|ipv6Prefix``, ``service`` and ``scope`` in cloud.json); ``--service``
  filters ``service``, ``--region`` filters ``scope``.
- ``cloudflare``: the Cloudflare API response of ``GET /client/v4/ips``
  (``{"result": {"ipv4_cidrs": [...], "ipv6_cidrs": [...], "etag": ...}}``); the etag is the
  version.
- ``atlassian``: Atlassian's ``ip-ranges.json`` (``creationDate``, ``syncToken``,
  ``items[].cidr`` with ``product`` and ``region`` lists); ``--service`` filters ``product``,
  ``--region`` ``region``.
- ``github-meta``: a GitHub ``/meta``-style object whose values are lists of CIDRs; ``--key``
  picks the lists (required when there is more than one).
- ``list``: a plain text list (one address or prefix per line, ``#`` comments) or a JSON list
  of strings.

Every feed gets a :class:`FeedVersion`: the feed's own token (``syncToken`` or ``etag``) when it
has one, its date when it has one, and always the SHA-256 of the bytes read.

Staleness (:func:`check_feed_state`): the state file (``--feed-state``) remembers, per vendor
feed (AWS, Google goog.json or cloud.json, Cloudflare, Atlassian; other shapes by file name),
the newest version seen. A feed whose date (or, without dates, numeric
``syncToken``) is older than that is *stale*: :class:`StaleFeedError` (exit 2) says so, and the
feed is never used silently. The state file is written atomically only after a run used the
feed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from netguard._ascii import is_digits
from netguard.drift.addrs import AddrSet, EntryFinding, ParsedList, parse_entry, parse_list
from netguard.errors import InputError, Location, NetguardError

__all__ = [
    "Feed",
    "FeedVersion",
    "StaleFeedError",
    "check_feed_state",
    "read_feed",
    "record_feed_state",
]


class StaleFeedError(InputError):
    """The feed is older than the newest one seen before (``--feed-state``): exit 2."""


@dataclass(frozen=True)
class FeedVersion:
    """What identifies one edition of a feed: ``kind`` (aws, google, cloudflare, atlassian,
    github-meta, list), ``token`` (syncToken or etag, ``""`` if none), ``date`` (ISO 8601 UTC,
    ``""`` if none), ``sha256`` of the bytes read, and ``source`` (the path)."""

    kind: str
    token: str
    date: str
    sha256: str
    source: str
    feed: str = ""  # which published feed (e.g. "cloud.json"); "" for a vendor's only feed

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return asdict(self)

    def __str__(self) -> str:
        parts = [self.kind]
        if self.token:
            parts.append(f"version {self.token}")
        if self.date:
            parts.append(f"dated {self.date}")
        parts.append(f"sha256 {self.sha256[:16]}")
        return ", ".join(parts)


@dataclass
class Feed:
    """A feed read: its version, the selected address set, and findings per entry."""

    version: FeedVersion
    addrs: AddrSet
    findings: list[EntryFinding]
    selected: int  # number of entries after filtering
    parsed: ParsedList | None = None  # for plain lists (line attribution)


def _aws_date(text: str) -> str:
    # createDate is "YYYY-MM-DD-hh-mm-ss" in UTC (AWS General Reference, "Syntax").
    try:
        d = dt.datetime.strptime(text, "%Y-%m-%d-%H-%M-%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return text
    return d.isoformat().replace("+00:00", "Z")


def _iso(text: str) -> str:
    try:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _kind(data: Any) -> str:
    if isinstance(data, list):
        return "list"
    if not isinstance(data, dict):
        return ""
    if "prefixes" in data and ("createDate" in data or "ipv6_prefixes" in data):
        return "aws"
    if "prefixes" in data and ("creationTime" in data or "syncToken" in data):
        return "google"
    if isinstance(data.get("result"), dict) and (
        "ipv4_cidrs" in data["result"] or "ipv6_cidrs" in data["result"]
    ):
        return "cloudflare"
    if "items" in data and isinstance(data["items"], list):
        return "atlassian"
    if any(isinstance(v, list) for v in data.values()):
        return "github-meta"
    return ""


def _items(container: dict[str, Any], key: str, src: str, path: str, *, objects: bool) -> list[Any]:
    """``container[key]`` as a list (absent: empty) whose items are objects (``objects``) or
    strings; anything else is an :class:`InputError` naming the JSON path (a string where a
    list belongs would otherwise be read character by character, an object as its keys)."""
    value = container.get(key)
    if value is None:
        return []
    want = "objects" if objects else "strings"
    if not isinstance(value, list):
        raise InputError.at(Location(f"{src} {path}"), f"expected a list of {want}")
    for i, item in enumerate(value):
        if not isinstance(item, dict if objects else str):
            raise InputError.at(
                Location(f"{src} {path}[{i}]"),
                f"expected {'an object' if objects else 'a string'}, found {type(item).__name__}",
            )
    return value


def _matches(value: Any, wanted: Sequence[str]) -> bool:
    if not wanted:
        return True
    values = value if isinstance(value, list) else [value]
    return any(str(v).lower() in {w.lower() for w in wanted} for v in values)


def read_feed(
    path: Path | str,
    data: bytes,
    *,
    services: Sequence[str] = (),
    regions: Sequence[str] = (),
    keys: Sequence[str] = (),
) -> Feed:
    """Read one feed (module docstring) from ``data`` (the bytes of ``path``).

    Raises :class:`InputError` (exit 2) naming the file when the shape is unknown, an entry is
    not a CIDR (with its JSON path), a filter selects nothing, or a GitHub-meta feed has
    several lists and no ``keys``.
    """
    src = str(path)
    sha = hashlib.sha256(data).hexdigest()
    stripped = data.lstrip()
    if not stripped.startswith((b"{", b"[")):
        parsed = parse_list(data, src)
        version = FeedVersion("list", "", "", sha, src, Path(src).name)
        return Feed(version, parsed.addrs, parsed.findings, parsed.count, parsed)
    try:
        doc: Any = json.loads(data)
    except ValueError as exc:
        line = getattr(exc, "lineno", 0)
        col = getattr(exc, "colno", 0)
        raise InputError.at(Location(src, line, col), f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InputError.at(Location(src, 1, 1), "invalid JSON: nested too deeply") from None
    kind = _kind(doc)
    entries: list[tuple[str, str]] = []  # (json path, cidr text)
    token = ""
    date = ""
    if kind == "aws":
        token = str(doc.get("syncToken", ""))
        date = _aws_date(str(doc.get("createDate", "")))
        for key, field_ in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
            for i, item in enumerate(_items(doc, key, src, key, objects=True)):
                if _matches(item.get("service"), services) and _matches(
                    item.get("region"), regions
                ):
                    entries.append((f"{key}[{i}].{field_}", str(item.get(field_, ""))))
    elif kind == "google":
        token = str(doc.get("syncToken", ""))
        date = _iso(str(doc.get("creationTime", "")))
        for i, item in enumerate(_items(doc, "prefixes", src, "prefixes", objects=True)):
            if _matches(item.get("service", ""), services) and _matches(
                item.get("scope", ""), regions
            ):
                for field_ in ("ipv4Prefix", "ipv6Prefix"):
                    if field_ in item:
                        entries.append((f"prefixes[{i}].{field_}", str(item[field_])))
    elif kind == "cloudflare":
        result = doc["result"]
        token = str(result.get("etag", ""))
        for field_ in ("ipv4_cidrs", "ipv6_cidrs"):
            for i, cidr in enumerate(
                _items(result, field_, src, f"result.{field_}", objects=False)
            ):
                entries.append((f"result.{field_}[{i}]", str(cidr)))
    elif kind == "atlassian":
        token = str(doc.get("syncToken", ""))
        date = _iso(str(doc.get("creationDate", "")))
        for i, item in enumerate(_items(doc, "items", src, "items", objects=True)):
            if _matches(item.get("product", []), services) and _matches(
                item.get("region", []), regions
            ):
                entries.append((f"items[{i}].cidr", str(item.get("cidr", ""))))
    elif kind == "github-meta":
        lists = {k: v for k, v in doc.items() if isinstance(v, list)}
        chosen = list(keys)
        if not chosen:
            if len(lists) != 1:
                raise InputError.at(
                    Location(src),
                    "a GitHub-meta-style feed with several lists needs --key NAME; lists: "
                    + ", ".join(sorted(lists)),
                )
            chosen = list(lists)
        for k in chosen:
            if k not in lists:
                raise InputError.at(
                    Location(src),
                    f"no list {k!r} in the feed; expected one of {', '.join(sorted(lists))}",
                )
            for i, cidr in enumerate(_items(lists, k, src, k, objects=False)):
                entries.append((f"{k}[{i}]", str(cidr)))
    elif kind == "list":
        for i, cidr in enumerate(_items({"": doc}, "", src, "", objects=False)):
            entries.append((f"[{i}]", str(cidr)))
    else:
        raise InputError.at(
            Location(src, 1),
            "unrecognised feed: expected AWS ip-ranges.json, Google goog.json/cloud.json, "
            "Cloudflare's API response, Atlassian ip-ranges, a GitHub-meta-style object of "
            "lists, a JSON list or a plain list",
        )
    if (services or regions) and not entries:
        raise InputError.at(
            Location(src),
            f"the filters (service {list(services)}, region {list(regions)}) select no prefix",
        )
    if not entries and kind != "list":
        # An empty vendor feed would make every allowed address EXTRA, or (compared with nothing)
        # hide drift: a truncated or wrong download is refused, not used.
        raise InputError.at(Location(src), f"the {kind} feed holds no prefix")
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    findings: list[EntryFinding] = []
    problems: list[tuple[Location, str]] = []
    for where, text in entries:
        loc = Location(f"{src} {where}")
        try:
            fam, first, last, kind_, read_as = parse_entry(text)
        except ValueError as exc:
            problems.append((loc, str(exc)))
            continue
        if kind_ is not None and read_as is not None:
            findings.append(EntryFinding(kind_, loc, text, read_as))
        (v4 if fam == 4 else v6).append((first, last))
    if problems:
        raise InputError(problems[:100])
    import numpy as np

    addrs = AddrSet.from_intervals(
        np.array([a for a, _ in v4], dtype=np.int64),
        np.array([b for _, b in v4], dtype=np.int64),
        v6,
    )
    feed_name = ""
    if kind == "google":  # two feeds: cloud.json entries carry a scope, goog.json's do not
        scoped = any(isinstance(i, dict) and "scope" in i for i in doc.get("prefixes") or [])
        feed_name = "cloud.json" if scoped else "goog.json"
    elif kind in ("github-meta", "list"):
        feed_name = Path(src).name  # nothing in the data says whose list it is
    version = FeedVersion(kind, token, date, sha, src, feed_name)
    return Feed(version, addrs, findings, len(entries))


def _state_key(v: FeedVersion) -> str:
    """The state entry of a feed: the vendor's feed, not the file name it was saved under (a
    feed saved as ``ip-ranges-2024-01-01.json`` is still AWS's one feed; keyed by file name,
    an older copy under another name would never be found stale)."""
    return f"{v.kind}:{v.feed}" if v.feed else v.kind


def _when(text: str) -> dt.datetime | None:
    try:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=dt.UTC)


def _older(new: FeedVersion, old: dict[str, str]) -> bool:
    """True when ``new`` is older than the recorded ``old`` by date (compared as instants:
    ``...:54.5Z`` is after ``...:54Z``) or by numeric token (AWS's syncToken, seconds since
    the epoch): either going backwards is enough, so a copy with an older token and the same
    date is stale too."""
    if new.date and old.get("date"):
        a, b = _when(new.date), _when(old["date"])
        if (a < b) if a is not None and b is not None else new.date < old["date"]:
            return True
    nt, ot = new.token, old.get("token", "")
    if is_digits(nt) and is_digits(ot):
        return int(nt) < int(ot)
    return False


def check_feed_state(version: FeedVersion, state_path: Path) -> dict[str, str] | None:
    """Compare ``version`` with the newest edition recorded in ``state_path``.

    Returns the recorded edition (or None). Raises :class:`StaleFeedError` when the feed is
    older than it, :class:`InputError` when the state file is not netguard's JSON.
    """
    state = _load_state(state_path)
    old = state.get(_state_key(version))
    if old is not None and _older(version, old):
        raise StaleFeedError.at(
            Location(version.source),
            f"stale feed: this {version.kind} feed ({version}) is older than the one seen "
            f"before (version {old.get('token') or '-'}, dated {old.get('date') or '-'}, "
            f"recorded in {state_path}); it is not used. Fetch the current feed.",
        )
    return old


def _load_state(state_path: Path) -> dict[str, dict[str, str]]:
    if not state_path.exists():
        return {}
    try:
        doc = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError.at(Location(state_path), f"unreadable feed state: {exc}") from None
    feeds = doc.get("feeds") if isinstance(doc, dict) else None
    if not isinstance(feeds, dict):
        raise InputError.at(
            Location(state_path), 'expected a netguard feed state file ({"feeds": {...}})'
        )
    return {k: v for k, v in feeds.items() if isinstance(v, dict)}


def record_feed_state(version: FeedVersion, state_path: Path) -> None:
    """Record ``version`` as the newest seen (atomic replace; never goes backwards).

    Raises :class:`NetguardError` (exit 3) when the file cannot be written.
    """
    state = _load_state(state_path)
    old = state.get(_state_key(version))
    if old is not None and _older(version, old):
        return
    state[_state_key(version)] = {
        "token": version.token,
        "date": version.date,
        "sha256": version.sha256,
        "source": version.source,
    }
    text = json.dumps({"format": "netguard-feed-state", "feeds": state}, indent=2) + "\n"
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=state_path.parent, prefix=".feed-state.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(state_path)
    except OSError as exc:
        raise NetguardError(f"cannot write feed state {state_path}: {exc}") from None
