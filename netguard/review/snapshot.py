"""Snapshots: a self-describing, tamper-evident record of the firewall configuration in force.

A snapshot is one JSON document (UTF-8, ``.json``) holding the raw output of the commands that
were run (or the files that were given), called *parts*, and a *manifest*::

    {"format": "netguard-snapshot", "version": 1,
     "manifest": {"taken_at" (UTC, ISO 8601 with Z), "source" (local|aws|files),
                  "host", "account", "region", "netguard_version",
                  "commands": [{"argv": [...], "exit_code": 0, "part": NAME}, ...],
                  "parts": [{"name", "format", "bytes", "sha256"}, ...]},
     "manifest_sha256": "<sha256 of the manifest in canonical JSON>",
     "parts": {NAME: TEXT, ...}}

The canonical JSON of the manifest is ``json.dumps(manifest, sort_keys=True,
separators=(",", ":"), ensure_ascii=True)``. On load every hash is recomputed: a truncated
document (not JSON), a changed part, a changed manifest, a missing or extra part is refused
with :class:`~netguard.errors.InputError` (exit 2) naming the file and what is wrong. The hashes
detect accidents and naive edits, not a forger who recomputes them (sign or store the
snapshot elsewhere for that); the manifest's shape is checked too (a UTC time, a known source
and part format, integer sizes, single-line names), so even such an edit cannot crash the
reader or put line breaks or markup into a report, and nothing is stored that would not load
back. An empty file, or a file that is the first bytes of a snapshot, given as an end of a
diff is a damaged snapshot, never an empty configuration.

A *store* is a directory of snapshots named ``<taken_at>-<host>-<sha8>.json``. It is
append-only: a snapshot is created with ``link(2)`` from a fsynced temporary file, which fails
when the name exists, so nothing is ever overwritten (:class:`SnapshotExistsError`, exit 2).

Sources: ``local`` runs ``iptables-save``, ``ip6tables-save``, ``ipset save`` and
``nft -j list ruleset`` (those on PATH; iptables-save(8), ipset(8) "save", nft(8) "-j");
``aws`` calls DescribeSecurityGroups, DescribeManagedPrefixLists,
GetManagedPrefixListEntries and DescribeNetworkInterfaces through boto3 (the ``netguard[aws]``
extra; EC2 API Reference) and stores each answer as a JSON part in the layout
:func:`netguard.check.load_configs` reads; ``files`` records the given files under their
base names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netguard import __version__
from netguard.check import ConfigFormat, detect_format
from netguard.errors import InputError, Location, NetguardError, OutputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LOCAL_COMMANDS",
    "CommandRun",
    "Part",
    "Snapshot",
    "SnapshotError",
    "SnapshotExistsError",
    "latest_in_store",
    "load_snapshot",
    "resolve_end",
    "save_snapshot",
    "snapshot_from_files",
    "take_aws_snapshot",
    "take_local_snapshot",
]

FORMAT = "netguard-snapshot"
FORMAT_VERSION = 1

#: What ``--source local`` runs: (part name, argv, format). Only commands on PATH are run.
LOCAL_COMMANDS: tuple[tuple[str, tuple[str, ...], ConfigFormat], ...] = (
    ("iptables-save.v4", ("iptables-save",), ConfigFormat.IPTABLES),
    ("ip6tables-save.v6", ("ip6tables-save",), ConfigFormat.IPTABLES),
    ("ipset-save", ("ipset", "save"), ConfigFormat.IPSET),
    ("nft-ruleset.json", ("nft", "-j", "list", "ruleset"), ConfigFormat.NFT_JSON),
)
_COMMAND_TIMEOUT = 120.0
_MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
_PART_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class SnapshotError(NetguardError):
    """Taking a snapshot failed operationally (a command failed, no tool found, AWS): exit 3."""


class SnapshotExistsError(InputError):
    """The store already holds a snapshot of that name; it is never overwritten (exit 2)."""


@dataclass(frozen=True)
class Part:
    """One recorded text: ``name`` (a file name, unique in the snapshot), detected ``format``
    (a :class:`~netguard.check.ConfigFormat` value) and the ``text``."""

    name: str
    format: str
    text: str

    @property
    def sha256(self) -> str:
        """sha256 (hex) of the UTF-8 text."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CommandRun:
    """A command that was run: ``argv``, its exit code and the part its stdout became."""

    argv: tuple[str, ...]
    exit_code: int
    part: str


@dataclass(frozen=True)
class Snapshot:
    """A snapshot in memory (see the module docstring). ``path`` is where it was loaded from
    (None: not stored); ``label`` how reports name it; ``plain`` is True when ``path`` is a
    configuration file read as a one-part snapshot (not a snapshot document)."""

    taken_at: str
    source: str
    host: str | None
    parts: tuple[Part, ...]
    commands: tuple[CommandRun, ...] = ()
    account: str | None = None
    region: str | None = None
    netguard_version: str = __version__
    path: Path | None = field(default=None, compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)
    plain: bool = field(default=False, compare=False)

    @property
    def snapshot_id(self) -> str:
        """``<taken_at compact>-<host or account>-<first 8 hex of the manifest hash>``."""
        stamp = self.taken_at.replace("-", "").replace(":", "")
        who = re.sub(r"[^A-Za-z0-9._-]+", "-", self.host or self.account or self.source)
        return f"{stamp}-{who.strip('.-')[:40] or 'snapshot'}-{self.manifest_sha256()[:8]}"

    @property
    def label(self) -> str:
        """The file name when stored, else ``<source> at <taken_at>``."""
        return self.path.name if self.path is not None else f"{self.source} at {self.taken_at}"

    def manifest(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (module docstring)."""
        return {
            "taken_at": self.taken_at,
            "source": self.source,
            "host": self.host,
            "account": self.account,
            "region": self.region,
            "netguard_version": self.netguard_version,
            "commands": [
                {"argv": list(c.argv), "exit_code": c.exit_code, "part": c.part}
                for c in self.commands
            ],
            "parts": [
                {
                    "name": p.name,
                    "format": p.format,
                    "bytes": len(p.text.encode("utf-8")),
                    "sha256": p.sha256,
                }
                for p in self.parts
            ],
        }

    def manifest_sha256(self) -> str:
        """sha256 (hex) of the manifest's canonical JSON."""
        return hashlib.sha256(_canonical(self.manifest()).encode("ascii")).hexdigest()

    def to_json(self) -> str:
        """The stored document (module docstring), indented, with a final newline."""
        doc = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "manifest": self.manifest(),
            "manifest_sha256": self.manifest_sha256(),
            "parts": {p.name: p.text for p in self.parts},
        }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- taking ---------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], tuple[int, str, str]]


def _run_command(argv: Sequence[str]) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SnapshotError(f"cannot run {' '.join(argv)}: {exc}") from None
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )


def take_local_snapshot(
    *,
    prefix: Sequence[str] = (),
    runner: Runner | None = None,
    host: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Snapshot:
    """Run the :data:`LOCAL_COMMANDS` found on PATH and record their stdout.

    ``prefix`` is put before every argv (e.g. ``("ip", "netns", "exec", "NS")`` to snapshot a
    network namespace). A command that exits non-zero fails the snapshot (:class:`SnapshotError`,
    exit 3, with its stderr): a partial record would hide rules. ``ipset save`` exiting
    non-zero because the kernel has no ip_set module is not treated specially. Raises
    :class:`SnapshotError` when none of the commands exists.
    """
    run = runner or _run_command
    parts: list[Part] = []
    commands: list[CommandRun] = []
    for name, argv, expected in LOCAL_COMMANDS:
        if which(argv[0]) is None:
            continue
        full = (*prefix, *argv)
        code, out, err = run(full)
        if code != 0:
            raise SnapshotError(
                f"{' '.join(full)} exited {code}: {err.strip()[:400] or 'no message'}"
            )
        # An empty dump (no rules of that family) reads as nothing whatever its format.
        fmt = _part_format(name, out) if out.strip() else expected.value
        parts.append(Part(name, fmt, out))
        commands.append(CommandRun(tuple(full), code, name))
    if not parts:
        raise SnapshotError(
            "none of iptables-save, ip6tables-save, ipset, nft is on PATH: nothing to record "
            "(run as root on the firewall host, or give files with --source FILE)"
        )
    return Snapshot(
        taken_at=_now(),
        source="local",
        host=host or socket.gethostname(),
        parts=tuple(parts),
        commands=tuple(commands),
    )


def _part_format(name: str, text: str) -> str:
    try:
        return detect_format(Path(name), text).value
    except InputError:
        return "unknown"


def part_name(file_name: str) -> str:
    """The part name a file is recorded under: characters other than letters, digits, ``.``,
    ``_`` and ``-`` replaced by ``_``, leading ``.`` and ``-`` dropped (no hidden file, no
    option-like name), at most 128 characters; ``part`` when nothing is left. Always a name
    :func:`load_snapshot` accepts."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", file_name).lstrip(".-")[:128]
    return name if _PART_NAME_RE.fullmatch(name) else "part"


def snapshot_from_files(paths: Sequence[Path], *, host: str | None = None) -> Snapshot:
    """A snapshot of the given configuration files (formats by content, as ``check``).

    Part names are the files' base names made plain (:func:`part_name`). Raises
    ``InputError`` (exit 2) for unreadable, empty or unrecognised files and for two files
    with the same part name.
    """
    if not paths:
        raise InputError.at(Location("--source"), "expected local, aws or at least one FILE")
    parts: list[Part] = []
    problems: list[tuple[Location, str]] = []
    seen: set[str] = set()
    for path in paths:
        try:
            if not path.is_file():
                raise InputError.at(Location(path), "not a regular file")
            text = path.read_bytes().decode("utf-8")
            if not text.strip() and all(_blank(p) for p in paths):
                # Read as a configuration it would say "no rules": everything allowed.
                raise InputError.at(Location(path), "empty file: nothing to record")
            # Next to other files, an empty one is what `ipset save` prints on a host
            # without sets: detect_format reads it so (no sets), as `netguard check` does.
            fmt = detect_format(path, text)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        except UnicodeDecodeError:
            problems.append((Location(path), "not UTF-8 text"))
            continue
        except RecursionError:
            problems.append((Location(path), "JSON nested too deeply"))
            continue
        except OSError as exc:
            problems.append((Location(path), f"cannot read: {exc.strerror or exc}"))
            continue
        name = part_name(path.name)
        if name in seen:
            problems.append((Location(path), f"two files named {name!r}: rename one"))
            continue
        seen.add(name)
        parts.append(Part(name, fmt.value, text))
    if problems:
        raise InputError(problems)
    return Snapshot(
        taken_at=_now(),
        source="files",
        host=host or socket.gethostname(),
        parts=tuple(parts),
    )


def take_aws_snapshot(
    session: Any = None,
    region: str | None = None,
    vpc_id: str | None = None,
) -> Snapshot:
    """Record the security groups (of ``vpc_id`` when given), the managed prefix lists they
    reference (with their entries) and the network interfaces in the referenced groups, from
    the EC2 API in ``region``, through boto3 (``session``: a ``boto3.Session``, None for a
    default one). The account is the owner id of the groups.

    Parts: ``security-groups.json`` (``{"SecurityGroups": [...]}``), ``prefix-lists.json``
    (``{"PrefixLists": [{... "Entries": [...]}]}``) and ``network-interfaces.json``, as
    :func:`netguard.readers.aws_sg.read_security_groups` reads them. Raises
    :class:`SnapshotError` (exit 3) when boto3 is missing or a call fails.
    """
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise SnapshotError("--source aws needs boto3: pip install 'netguard[aws]'") from None
    if session is None:
        session = boto3.session.Session()
    region = region or session.region_name
    if not region:
        raise SnapshotError("--source aws needs a region: --region or AWS_DEFAULT_REGION")

    def pages(client: Any, method: str, key: str, **kwargs: Any) -> list[Any]:
        out: list[Any] = []
        try:
            for page in client.get_paginator(method).paginate(**kwargs):
                out.extend(page.get(key, []))
        except (ClientError, BotoCoreError) as exc:
            raise SnapshotError(f"AWS {method} in {region} failed: {exc}") from None
        return out

    try:
        client = session.client("ec2", region_name=region)
    except (ClientError, BotoCoreError) as exc:
        raise SnapshotError(f"AWS client setup for {region} failed: {exc}") from None
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else []
    kwargs: dict[str, Any] = {"Filters": filters} if filters else {}
    groups = pages(client, "describe_security_groups", "SecurityGroups", **kwargs)
    list_ids = sorted(
        {
            pl["PrefixListId"]
            for g in groups
            for key in ("IpPermissions", "IpPermissionsEgress")
            for perm in g.get(key, [])
            for pl in perm.get("PrefixListIds", [])
            if "PrefixListId" in pl
        }
    )
    lists: list[dict[str, Any]] = []
    if list_ids:
        described = pages(
            client, "describe_managed_prefix_lists", "PrefixLists", PrefixListIds=list_ids
        )
        for pl in described:
            entries = pages(
                client,
                "get_managed_prefix_list_entries",
                "Entries",
                PrefixListId=pl["PrefixListId"],
            )
            lists.append({**pl, "Entries": entries})
    group_refs = sorted(
        {
            pair["GroupId"]
            for g in groups
            for key in ("IpPermissions", "IpPermissionsEgress")
            for perm in g.get(key, [])
            for pair in perm.get("UserIdGroupPairs", [])
            if "GroupId" in pair
        }
    )
    interfaces: dict[str, Any] = {}
    for start in range(0, len(group_refs), 200):
        chunk = group_refs[start : start + 200]
        for eni in pages(
            client,
            "describe_network_interfaces",
            "NetworkInterfaces",
            Filters=[{"Name": "group-id", "Values": chunk}],
        ):
            interfaces[eni.get("NetworkInterfaceId", str(len(interfaces)))] = eni
    owners = sorted({str(g.get("OwnerId")) for g in groups if g.get("OwnerId")})

    def doc(key: str, items: list[Any]) -> str:
        return json.dumps({key: items}, indent=1, sort_keys=True, default=str) + "\n"

    parts = [Part("security-groups.json", ConfigFormat.AWS_SG.value, doc("SecurityGroups", groups))]
    calls = [("ec2", "describe-security-groups", "--region", region)]
    if lists:
        parts.append(
            Part(
                "prefix-lists.json", ConfigFormat.AWS_PREFIX_LISTS.value, doc("PrefixLists", lists)
            )
        )
        calls.append(("ec2", "describe-managed-prefix-lists", "--region", region))
        calls.append(("ec2", "get-managed-prefix-list-entries", "--region", region))
    if interfaces:
        parts.append(
            Part(
                "network-interfaces.json",
                ConfigFormat.AWS_INTERFACES.value,
                doc("NetworkInterfaces", [interfaces[k] for k in sorted(interfaces)]),
            )
        )
        calls.append(("ec2", "describe-network-interfaces", "--region", region))
    part_of = {
        "describe-security-groups": "security-groups.json",
        "describe-managed-prefix-lists": "prefix-lists.json",
        "get-managed-prefix-list-entries": "prefix-lists.json",
        "describe-network-interfaces": "network-interfaces.json",
    }
    return Snapshot(
        taken_at=_now(),
        source="aws",
        host=None,
        account=",".join(owners) or None,
        region=region,
        parts=tuple(parts),
        commands=tuple(CommandRun(c, 0, part_of[c[1]]) for c in calls),
    )


# --- the store ------------------------------------------------------------------------------


def save_snapshot(snapshot: Snapshot, store: Path) -> Path:
    """Write ``snapshot`` into directory ``store`` (created if missing) as a new file.

    The file is written in full to a temporary file in ``store``, fsynced, then linked to its
    final name with ``link(2)``, which fails if the name exists: the store is append-only.
    A snapshot whose manifest :func:`load_snapshot` would refuse is not written
    (``InputError``, exit 2). Raises :class:`SnapshotExistsError` (exit 2) when the name
    exists, ``OutputError``
    (exit 3) when writing fails. Returns the path written.
    """
    if store.exists() and not store.is_dir():
        raise InputError.at(Location(store), "not a directory: expected a snapshot store")
    problem = _manifest_problem(snapshot.manifest())
    if problem:
        # Never store what load_snapshot would refuse.
        raise InputError.at(Location(store), f"cannot record this snapshot: the manifest {problem}")
    target = store / f"{snapshot.snapshot_id}.json"
    data = snapshot.to_json().encode("utf-8")
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".snapshot.", suffix=".tmp", dir=store)
    except OSError as exc:
        raise OutputError(f"cannot write into {store}: {exc.strerror or exc}") from exc
    staged = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        staged.chmod(0o444)
        try:
            os.link(staged, target)
        except FileExistsError:
            raise SnapshotExistsError.at(
                Location(target),
                "a snapshot of this name already exists; the store is append-only and a "
                "snapshot is never overwritten",
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        dir_fd = os.open(store, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        staged.unlink(missing_ok=True)
    return target


def _damaged(path: Path, what: str, line: int = 0, column: int = 0) -> InputError:
    return InputError.at(
        Location(path, line, column),
        f"snapshot refused: {what} (the file was truncated or altered after it was taken)",
    )


_HEADER = '{"format":"netguard-snapshot"'


def is_snapshot_text(text: str) -> bool:
    """True when ``text`` (the start of a file) is, or may be, a snapshot document: a JSON
    object whose first key is ``"format": "netguard-snapshot"``, or a non-empty prefix of
    one (a snapshot truncated to a few bytes), or a JSON object naming that format within
    its first characters (keys reordered by a JSON tool)."""
    compact = "".join(text.lstrip("\ufeff").split())
    if not compact:
        return False
    if _HEADER.startswith(compact) or compact.startswith(_HEADER):
        return True
    return compact.startswith("{") and '"netguard-snapshot"' in compact


_TAKEN_AT_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SOURCES = ("local", "aws", "files")
#: Part formats a snapshot may record: the :class:`~netguard.check.ConfigFormat` values, and
#: ``unknown`` for a command output no reader recognised.
_PART_FORMATS = frozenset({f.value for f in ConfigFormat} | {"unknown"})
_MAX_LABEL = 1024


def _is_int(value: object) -> bool:
    # JSON integers only: not booleans (``True == 1``), not floats (``1.0``, ``Infinity``).
    return type(value) is int


def _plain(value: object) -> bool:
    """A short single-line string: no control or line/paragraph-separator character."""
    return (
        isinstance(value, str)
        and len(value) <= _MAX_LABEL
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value)
    )


def _manifest_problem(m: dict[str, Any]) -> str | None:
    """What is wrong with the shape of manifest ``m`` (module docstring), or None.

    Every field a report shows or a file name is made from is checked, so that a manifest
    edited with its hash recomputed still cannot crash the reader or put markup, line breaks
    or an odd timestamp into a review document."""
    taken = m.get("taken_at")
    if not isinstance(taken, str) or not _TAKEN_AT_RE.fullmatch(taken):
        return "taken_at is not a UTC time like 2026-01-31T12:00:00Z"
    try:
        dt.datetime.strptime(taken, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return f"taken_at {taken!r} is not a valid time"
    if m.get("source") not in _SOURCES:
        return f"source is not one of {', '.join(_SOURCES)}"
    for key in ("host", "account", "region"):
        if m.get(key) is not None and not _plain(m[key]):
            return f"{key} is not a short single-line string"
    if not _plain(m.get("netguard_version", "")):
        return "netguard_version is not a short single-line string"
    parts = m.get("parts")
    if not isinstance(parts, list):
        return "lacks its list of parts"
    for p in parts:
        if not isinstance(p, dict):
            return "lists a part that is not an object"
        name = p.get("name")
        if not isinstance(name, str) or not _PART_NAME_RE.fullmatch(name):
            return f"part name {name!r} is not a plain file name"
        if p.get("format") not in _PART_FORMATS:
            return f"part {name} has an unknown format {p.get('format')!r}"
        if not _is_int(p.get("bytes")) or p["bytes"] < 0:
            return f"part {name} has no byte count"
        if not isinstance(p.get("sha256"), str) or not _SHA256_RE.fullmatch(p["sha256"]):
            return f"part {name} has no sha256"
    names = {p["name"] for p in parts}
    commands = m.get("commands")
    if not isinstance(commands, list):
        return "lacks its list of commands"
    for c in commands:
        if (
            not isinstance(c, dict)
            or not isinstance(c.get("argv"), list)
            or not all(_plain(a) for a in c["argv"])
            or not _is_int(c.get("exit_code"))
            or c.get("part") not in names
        ):
            return "lists a command without argv, exit_code and one of its parts"
    return None


def _blank(path: Path) -> bool:
    """True when ``path`` is a regular file holding nothing but white space."""
    try:
        return path.is_file() and not path.read_bytes().strip()
    except OSError:
        return False


def load_snapshot(path: Path) -> Snapshot:
    """Read and verify the snapshot at ``path`` (module docstring).

    Raises ``InputError`` (exit 2) naming the file when it is not a snapshot, was truncated
    (invalid JSON, with line and column), has another format version, or any hash, size or
    part list disagrees with the manifest.
    """
    try:
        if path.stat().st_size > _MAX_SNAPSHOT_BYTES:
            raise InputError.at(Location(path), "file too large for a snapshot")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _damaged(path, "not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"not valid JSON ({exc.msg})", exc.lineno, exc.colno) from None
    except RecursionError:
        raise _damaged(path, "JSON nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError.at(
            Location(path, 1), f'not a netguard snapshot: expected {{"format": "{FORMAT}", ...}}'
        )
    version = doc.get("version")
    # ``True == 1`` in Python: the version must be the JSON integer itself.
    if type(version) is not int or version != FORMAT_VERSION:
        raise InputError.at(
            Location(path),
            f"snapshot format version {version!r} is not supported "
            f"(this netguard reads version {FORMAT_VERSION})",
        )
    manifest = doc.get("manifest")
    parts_doc = doc.get("parts")
    if not isinstance(manifest, dict) or not isinstance(parts_doc, dict):
        raise _damaged(path, "manifest or parts missing")
    if hashlib.sha256(_canonical(manifest).encode("ascii")).hexdigest() != doc.get(
        "manifest_sha256"
    ):
        raise _damaged(path, "the manifest does not match manifest_sha256")
    problem = _manifest_problem(manifest)
    if problem:
        raise _damaged(path, f"the manifest {problem}")
    listed = [
        (str(p["name"]), str(p["format"]), int(p["bytes"]), str(p["sha256"]))
        for p in manifest["parts"]
    ]
    commands = tuple(
        CommandRun(tuple(str(a) for a in c["argv"]), int(c["exit_code"]), str(c["part"]))
        for c in manifest["commands"]
    )
    taken_at = str(manifest["taken_at"])
    source = str(manifest["source"])
    names = [n for n, _, _, _ in listed]
    if sorted(names) != sorted(parts_doc) or len(set(names)) != len(names):
        missing = sorted(set(names) - set(parts_doc))
        extra = sorted(set(parts_doc) - set(names))
        raise _damaged(path, f"parts missing {missing} or not in the manifest {extra}")
    parts: list[Part] = []
    for name, fmt, size, digest in listed:
        body = parts_doc[name]
        if not isinstance(body, str):
            raise _damaged(path, f"part {name} is not text")
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (``"\\ud800"``) is valid JSON but no UTF-8 text: never written.
            raise _damaged(path, f"part {name} is not valid Unicode text") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise _damaged(
                path, f"part {name} has {len(data)} bytes and another sha256 than recorded"
            )
        parts.append(Part(name, fmt, body))

    def opt(key: str) -> str | None:
        value = manifest.get(key)
        return None if value is None else str(value)

    return Snapshot(
        taken_at=taken_at,
        source=source,
        host=opt("host"),
        account=opt("account"),
        region=opt("region"),
        netguard_version=str(manifest.get("netguard_version", "")),
        parts=tuple(parts),
        commands=commands,
        path=path,
    )


#: How :func:`save_snapshot` names a stored snapshot: the UTC second it was taken first.
_STORED_NAME_RE = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9._-]*\.json")


def latest_in_store(store: Path) -> Path:
    """The newest snapshot file in directory ``store`` (by the UTC time its name starts
    with, then by modification time). Only names :func:`save_snapshot` gives count (a copy
    saved as ``backup.json`` is not taken for the newest). Raises ``InputError`` (exit 2)
    when the store holds none."""
    try:
        found = [p for p in store.glob("*.json") if _STORED_NAME_RE.fullmatch(p.name)]
    except OSError as exc:
        raise InputError.at(Location(store), f"cannot list: {exc.strerror or exc}") from None
    if not found:
        raise InputError.at(
            Location(store), "no snapshot in this store (files named YYYYMMDDTHHMMSSZ-*.json)"
        )

    def mtime(p: Path) -> int:
        try:
            return p.stat().st_mtime_ns
        except OSError:  # a dangling link: load_snapshot names it if it is the newest
            return 0

    # Names start with the UTC second; within one second the later-written file wins.
    return max(found, key=lambda p: (p.name.split("-", 1)[0], mtime(p), p.name))


def resolve_end(path: Path) -> Snapshot:
    """One end of a diff or review: a snapshot file, a store directory (its newest
    snapshot) or a plain configuration file (iptables-save, ipset, nft JSON, security
    groups: a one-part snapshot). Raises ``InputError`` (exit 2) as the loaders do."""
    if path.is_dir():
        return load_snapshot(latest_in_store(path))
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None
    if is_snapshot_text(head):
        return load_snapshot(path)
    if not head.strip():
        try:
            empty = not path.read_bytes().strip()
        except OSError as exc:
            raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None
        if empty:
            # An empty file is what a snapshot truncated to nothing looks like; read as a
            # configuration it would be "no rules", i.e. everything allowed.
            raise InputError.at(
                Location(path),
                "empty file: expected a snapshot, a store directory or a configuration "
                "(iptables-save, ipset save, nft -j list ruleset, security groups JSON)",
            )
    snap = snapshot_from_files([path])
    return Snapshot(
        taken_at=snap.taken_at,
        source="files",
        host=None,
        parts=snap.parts,
        path=path,
        plain=True,
    )
