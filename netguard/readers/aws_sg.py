"""Reader for AWS security groups: ``aws ec2 describe-security-groups`` JSON, or live via boto3.

Semantics (EC2 API Reference "IpPermission", "UserIdGroupPair"; VPC User Guide "Security group
rules"): a security group is a stateful allow-list. Its rules have no order and no deny; a
packet may enter (leave) a network interface when ANY inbound (outbound) rule of ANY group
attached to the interface allows it, and responses to allowed traffic are allowed whatever the
rules say. netguard models that as one :class:`~netguard.model.ruleset.RuleSet` per address
family (4 and 6, always both) with two base chains of policy DROP:

- ``ingress`` (hook INPUT): the ``IpPermissions`` of every selected group;
- ``egress`` (hook OUTPUT): the ``IpPermissionsEgress`` of every selected group.

Each chain starts with a rule accepting ``ct state ESTABLISHED,RELATED`` (connection tracking),
followed by one ACCEPT rule per (group, permission, peer), in file order. The permission rules
carry no connection-state condition: a security group evaluates every packet that is not part
of a tracked connection against its rules (there is no "NEW only" in AWS), so a NEW packet
(and an INVALID or UNTRACKED one) is accepted exactly when a rule allows it. Rule order is
irrelevant: every rule accepts and the policy drops.

``group_ids`` selects the groups attached to one network interface; without it every group of
the file is taken, which a Note states ("evaluated as if all groups were attached to one
interface").

What each field of an ``IpPermission`` becomes in :class:`~netguard.model.ruleset.Match`:

- ``IpProtocol``: ``"-1"`` (or ``"all"``) is every protocol (``protocols`` None) and every
  port; ``tcp``, ``udp``, ``icmp``, ``icmpv6`` and decimal numbers 0-255 (as strings, or
  integers) are ``protocols`` ``{n}``; ``"6"``, ``"17"``, ``"1"`` and ``"58"`` mean exactly what
  the names mean.
- ``FromPort``/``ToPort`` for tcp and udp: the destination port range (ingress: the port on the
  interface; egress: the peer's port); ``-1``/``-1`` and ``0``/``65535`` are every port (no
  ``destination_ports`` condition). Both are required for tcp and udp.
- for icmp and icmpv6: ``FromPort`` is the ICMP type and ``ToPort`` the code, ``-1`` meaning
  any (``IcmpMatch(type, code, code)``, ``IcmpMatch(type, 0, 255)`` for code -1, no ``icmp``
  condition for type -1). A type of -1 with a code other than -1 is refused (AWS requires
  both -1). icmpv6 may omit both (every type and code); icmp may not.
- for every other protocol (and -1) AWS ignores the ports ("allows traffic on all ports,
  regardless of any port range you specify"): so does the reader, with a Note when ports other
  than -1 are given.
- ICMP type/code of protocol 1 in an IPv6 rule (or of 58 in an IPv4 rule) cannot be expressed
  (the engine has ICMP fields only for the family's own ICMP): kept as ``Match.unmodeled``.
- ``IpRanges[].CidrIp`` / ``Ipv6Ranges[].CidrIpv6``: the source (ingress) or destination
  (egress) address set of an IPv4 / IPv6 rule. AWS canonicalizes a CIDR with host bits set
  (``100.68.0.18/18`` is stored as ``100.68.0.0/18``: IpRange in the EC2 API Reference), so
  describe output never has one; a file that does is read the way AWS would store it (masked),
  with a Note. A CIDR of the wrong family (IPv6 in ``CidrIp``) is an error.
- ``PrefixListIds[].PrefixListId``: resolved through the ``prefix_lists`` file (see
  :func:`read_security_groups`) to the list's entries, per family. A list that is not in the
  file, or is listed without ``Entries`` (typically an AWS-managed list taken from
  ``describe-managed-prefix-lists`` alone), is *unresolved*: the rule keeps the condition as
  ``Match.unmodeled`` text (only in the list's ``AddressFamily`` when given, else in both
  families) and a Note names the list. A resolved list without entries matches nothing: no
  rule, and a Note.
- ``UserIdGroupPairs[]``: a reference to a security group. AWS matches the *private* IPv4 and
  IPv6 addresses of the network interfaces the referenced group is attached to (not their
  public or Elastic IP addresses). The reader resolves it through the ``network_interfaces``
  file (``aws ec2 describe-network-interfaces``) to the ``PrivateIpAddress``,
  ``PrivateIpAddresses[].PrivateIpAddress``, ``Ipv6Address``, ``Ipv6Addresses[].Ipv6Address``
  and the delegated ``Ipv4Prefixes`` / ``Ipv6Prefixes`` of every interface whose ``Groups``
  holds that ``GroupId``: a snapshot of the membership when the file was written (a Note says
  so). A pair without ``GroupId`` is looked up by ``GroupName`` among the groups of the file.
  A reference stays unresolved (``Match.unmodeled`` in both families, and a Note saying why)
  when no interface file was given, when no interface in it has the group, or when the pair
  names another account (``UserId`` other than the group's ``OwnerId``) or a peered VPC
  (``VpcPeeringConnectionId``, or a ``VpcId`` other than the group's): the interfaces of
  another account or VPC are not in this account's interface list.
- ``Description`` (of every peer entry): ``Rule.comment``, and quoted at the end of
  ``Rule.text``.
- a permission without any peer matches nothing: no rule, and a Note. Keys of an IpPermission
  netguard does not know are noted and ignored.

Not modeled (Notes on every rule set): security groups do not filter traffic to and from the
Route 53 Resolver (the VPC+2 address, 169.254.169.253, fd00:ec2::253), instance metadata
(169.254.169.254, fd00:ec2::254), Amazon Time Sync (169.254.169.123, fd00:ec2::123), DHCP,
Windows license activation and the reserved addresses of the VPC router; such flows pass
whatever the rules say and are not in the rule set. Connection-tracking details (untracked
flows, tracking timeouts) do not change what a rule allows and are not modeled.

Texts: ``Rule.text`` reads like ``sg-0123 ingress tcp 443 from 203.0.113.0/28 ("webhooks")``
(``all`` for protocol -1, ``tcp 8000-8999``, ``icmp type 8 code 0``, ``proto 50``, a prefix
list as ``pl-0abc (its name)``); chains are named ``ingress`` and ``egress``.

Locations: JSON is parsed with the standard (C) parser; an ``object_pairs_hook`` keeps every
object, and one pass over the text matching braces outside strings gives each object the
offset of its ``{`` (the k-th object the parser completes is the one closed by the k-th
``}``). ``Rule.location`` is the line and column of the peer entry (``{"CidrIp": ...}``) that
made the rule, so every rule points at its own entry, even in one-line JSON; problems and Notes
point at the object (or, for a bad value, the key) concerned. Live reads have no file: their
locations name the group's ARN (or region and id).

Errors: unreadable input (not UTF-8 or UTF-16 with a BOM, invalid JSON: line and column from
the parser, duplicate keys) and every shape problem (the JSON path, what was expected and what
was found) raise :class:`~netguard.errors.InputError` (exit 2), listing every problem of the
file (up to 200). A missing file is an input error too; other I/O errors are operational
(:class:`~netguard.errors.NetguardError`, exit 3). Errors of the AWS API (or of botocore:
credentials, endpoint) in :func:`read_security_groups_live` raise :class:`AwsApiError` (exit
3) with the AWS error code in the message.
"""

from __future__ import annotations

import bisect
import codecs
import contextlib
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netguard._ascii import is_digits
from netguard.cidr import Prefix, PrefixSet
from netguard.errors import EXIT_OPERATIONAL, InputError, Location, NetguardError
from netguard.model.ruleset import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    Action,
    ActionKind,
    AddressMatch,
    Chain,
    CtState,
    Hook,
    IcmpMatch,
    Match,
    Note,
    PortMatch,
    Rule,
    RuleSet,
)

__all__ = ["AwsApiError", "read_security_groups", "read_security_groups_live"]

INGRESS = "ingress"
EGRESS = "egress"
_CHAIN_HOOKS = {INGRESS: Hook.INPUT, EGRESS: Hook.OUTPUT}
_PERMISSION_KEYS = {INGRESS: "IpPermissions", EGRESS: "IpPermissionsEgress"}

#: IpProtocol names AWS accepts (EC2 API Reference, IpPermission), plus "all" (as -1).
_PROTOCOL_NAMES = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP, "icmpv6": PROTO_ICMPV6}
_NAME_OF = {n: name for name, n in _PROTOCOL_NAMES.items()}
_ICMP_OF_FAMILY = {4: PROTO_ICMP, 6: PROTO_ICMPV6}
_PEER_KEYS = ("IpRanges", "Ipv6Ranges", "PrefixListIds", "UserIdGroupPairs")
_KNOWN_PERMISSION_KEYS = frozenset(("IpProtocol", "FromPort", "ToPort", *_PEER_KEYS))
_ESTABLISHED = frozenset({CtState.ESTABLISHED, CtState.RELATED})
_MAX_PROBLEMS = 200
_FILTER_VALUES_MAX = 200  # values per filter in one Describe* request

_BYPASS = {
    4: "security groups do not filter traffic to and from the Route 53 Resolver (the VPC+2 "
    "address and 169.254.169.253), instance metadata (169.254.169.254), Amazon Time Sync "
    "(169.254.169.123), DHCP, Windows license activation and the reserved addresses of the VPC "
    "router: those flows pass whatever the rules say and are not in this rule set",
    6: "security groups do not filter traffic to and from the Route 53 Resolver "
    "(fd00:ec2::253), instance metadata (fd00:ec2::254), Amazon Time Sync (fd00:ec2::123), "
    "DHCPv6 and the reserved addresses of the VPC router: those flows pass whatever the rules "
    "say and are not in this rule set",
}


class AwsApiError(NetguardError):
    """An AWS API call (or botocore itself: credentials, endpoint, region) failed (exit 3).

    ``operation`` is the EC2 action and ``code`` the AWS error code (``InvalidGroup.NotFound``,
    ``UnauthorizedOperation``, ...) or the botocore exception name.
    """

    exit_code = EXIT_OPERATIONAL

    def __init__(self, operation: str, region: str, code: str, message: str) -> None:
        self.operation = operation
        self.region = region
        self.code = code
        super().__init__(f"AWS EC2 {operation} in {region} failed: {code}: {message}")


# --- JSON with positions -------------------------------------------------------------------


class _Obj(dict[str, Any]):
    """A JSON object that remembers the offset of its ``{`` in the text (-1: not from a file)
    and the keys it holds more than once."""

    __slots__ = ("duplicates", "pos")

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pos = -1
        self.duplicates: tuple[str, ...] = ()
        if len(self) != len(pairs):
            seen: set[str] = set()
            duplicates: list[str] = []
            for key, _ in pairs:
                if key in seen:
                    duplicates.append(key)
                seen.add(key)
            self.duplicates = tuple(duplicates)


# A string (skipped whole, so braces inside it do not count), or a brace or bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_KEY_END = re.compile(r"\s*:")


class _Doc:
    """One input: a file (``text`` set: locations have line and column) or a live answer
    (``text`` None: locations name the source)."""

    def __init__(self, name: Path | str, text: str | None = None) -> None:
        self.name = name
        self.text = text
        self._starts: list[int] | None = None
        #: where everything points in a live answer while one group is read (its ARN)
        self.current: Location | None = None

    def at(self, pos: int) -> Location:
        """Location of a character offset of the text."""
        if self.text is None or pos < 0:
            return self.current or Location(self.name)
        if self._starts is None:
            self._starts = [0, *(m.end() for m in re.finditer("\n", self.text))]
        line = bisect.bisect_right(self._starts, pos)
        return Location(self.name, line, pos - self._starts[line - 1] + 1)

    def loc(self, obj: object) -> Location:
        """Location of a JSON object (its ``{``), or of the source for anything else."""
        return self.at(obj.pos if isinstance(obj, _Obj) else -1)

    def key_loc(self, obj: object, key: str, *, last: bool = False) -> Location:
        """Location of ``"key"`` in the object (its first, or ``last``, occurrence at the
        object's own level), else of the object. Scans the object again: used for problems and
        Notes only."""
        if self.text is None or not isinstance(obj, _Obj) or obj.pos < 0:
            return self.loc(obj)
        found = -1
        depth = 0
        for m in _TOKEN.finditer(self.text, obj.pos + 1):
            piece = m.group()
            if piece in "{[":
                depth += 1
            elif piece in "}]":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and _KEY_END.match(self.text, m.end()) and json.loads(piece) == key:
                found = m.start()
                if not last:
                    break
        return self.at(found) if found >= 0 else self.loc(obj)


def _place(text: str, objects: list[_Obj]) -> None:
    """Give each object the offset of its ``{``: objects are completed by the parser in the
    order of their closing braces, so the k-th ``}`` (outside strings) closes ``objects[k]``."""
    opened: list[int] = []
    k = 0
    for m in _TOKEN.finditer(text):
        piece = m.group()
        if piece == "{":
            opened.append(m.start())
        elif piece == "}":
            objects[k].pos = opened.pop()
            k += 1


def _load_json(path: Path, what: str) -> tuple[_Doc, Any]:
    """Read and parse one JSON file, every object an :class:`_Obj` with its position."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise InputError.at(Location(path), f"cannot read the {what}: {exc.strerror}") from None
    except OSError as exc:
        raise NetguardError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        if raw.startswith(codecs.BOM_UTF8):
            text = raw[len(codecs.BOM_UTF8) :].decode("utf-8")
        elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = raw.decode("utf-16")  # what a PowerShell redirection writes
        else:
            text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError.at(
            Location(path, line), "not UTF-8 text (nor UTF-16 with a byte-order mark)"
        ) from None
    objects: list[_Obj] = []

    def hook(pairs: list[tuple[str, Any]]) -> _Obj:
        obj = _Obj(pairs)
        objects.append(obj)
        return obj

    try:
        data = json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise InputError.at(
            Location(path, exc.lineno, exc.colno), f"invalid JSON: {exc.msg}"
        ) from None
    except RecursionError:
        raise InputError.at(Location(path, 1, 1), "invalid JSON: nested too deeply") from None
    _place(text, objects)
    doc = _Doc(path, text)
    problems = [
        (doc.key_loc(obj, key, last=True), f"key {key!r} appears more than once in one object")
        for obj in objects
        for key in obj.duplicates
    ]
    if problems:
        raise InputError(problems)
    return doc, data


# --- shape checks --------------------------------------------------------------------------


class _TooMany(Exception):
    pass


def _found(value: object) -> str:
    """How a JSON value is named in a problem."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {json.dumps(shown)}"
    return f"the number {value}"


@dataclass
class _NoteAcc:
    """Notes of a read, merged by message: first location, count, families concerned."""

    by_message: dict[str, tuple[Location, int, frozenset[int]]] = field(default_factory=dict)

    def add(self, location: Location, message: str, families: Iterable[int] = (4, 6)) -> None:
        fams = frozenset(families)
        found = self.by_message.get(message)
        if found is None:
            self.by_message[message] = (location, 1, fams)
        else:
            self.by_message[message] = (found[0], found[1] + 1, found[2] | fams)

    def for_family(self, family: int) -> tuple[Note, ...]:
        return tuple(
            Note(loc, message + (f" ({n} times)" if n > 1 else ""))
            for message, (loc, n, fams) in self.by_message.items()
            if family in fams
        )


class _Ctx:
    """Problems and Notes of one read."""

    def __init__(self) -> None:
        self.problems: list[tuple[Location, str]] = []
        self.notes = _NoteAcc()

    def problem(self, doc: _Doc, obj: object, key: str | None, path: str, message: str) -> None:
        where = doc.key_loc(obj, key) if key is not None else doc.loc(obj)
        self.problems.append((where, f"{path}: {message}" if path else message))
        if len(self.problems) >= _MAX_PROBLEMS:
            raise _TooMany

    def objects(
        self,
        doc: _Doc,
        items: list[Any],
        path: str,
        what: str,
        anchor: tuple[object, str] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """The items of a list that are objects, with a problem for each other one (located
        at the list's key in ``anchor`` = (object, key): list items have no position)."""
        for i, item in enumerate(items):
            if isinstance(item, dict):
                yield i, item
            else:
                obj, key = anchor if anchor is not None else (None, None)
                message = f"expected {what}, found {_found(item)}"
                self.problem(doc, obj, key, f"{path}[{i}]", message)

    def objects_in(
        self, doc: _Doc, obj: Mapping[str, Any], key: str, path: str, what: str
    ) -> Iterator[tuple[int, Any]]:
        """The objects of the list ``obj[key]`` (missing or null: none)."""
        items = self.list_at(doc, obj, key, path)
        return self.objects(doc, items, f"{path}.{key}", what, (obj, key))

    def list_at(self, doc: _Doc, obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
        """``obj[key]`` when it is a list; missing or null: empty."""
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(doc, obj, key, f"{path}.{key}", f"expected a list, found {_found(value)}")
            return []
        return value

    def str_at(
        self, doc: _Doc, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.problem(doc, obj, None, path, f"expected a {key} (a string), found none")
            return None
        if not isinstance(value, str) or (required and not value):
            want = "a non-empty string" if required else "a string"
            self.problem(doc, obj, key, f"{path}.{key}", f"expected {want}, found {_found(value)}")
            return None
        return value

    def int_at(self, doc: _Doc, obj: Mapping[str, Any], key: str, path: str) -> int | None:
        """``obj[key]`` when it is an integer (missing or null: None)."""
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(
                doc, obj, key, f"{path}.{key}", f"expected an integer, found {_found(value)}"
            )
            return None
        return value


def _top_list(
    ctx: _Ctx, doc: _Doc, data: Any, key: str, what: str, command: str
) -> tuple[list[Any], str, tuple[object, str] | None]:
    """The list under ``key`` of a CLI / boto3 answer, or a bare list: (items, JSON path,
    where the list is)."""
    if isinstance(data, list):
        return data, "", None
    if isinstance(data, dict) and key in data:
        value = data[key]
        if isinstance(value, list):
            return value, key, (data, key)
        ctx.problem(doc, data, key, key, f"expected a list of {what}, found {_found(value)}")
        return [], key, None
    shape = f'{{"{key}": [...]}} (the output of {command}) or a list of {what}'
    if isinstance(data, dict):
        if key == "SecurityGroups" and "SecurityGroupRules" in data:
            ctx.problem(
                doc,
                data,
                "SecurityGroupRules",
                "",
                "this is describe-security-group-rules output: give the output of "
                "aws ec2 describe-security-groups",
            )
            return [], "", None
        keys = ", ".join(sorted(data)[:8]) or "none"
        ctx.problem(doc, data, None, "", f"expected {shape}, found an object with keys {keys}")
    else:
        ctx.problem(doc, data, None, "", f"expected {shape}, found {_found(data)}")
    return [], "", None


def _network(
    ctx: _Ctx, doc: _Doc, obj: Mapping[str, Any], key: str, path: str, family: int | None
) -> Prefix | None:
    """A CIDR value of ``obj[key]`` (host bits masked with a Note, as AWS canonicalizes)."""
    text = ctx.str_at(doc, obj, key, path, required=True)
    if text is None:
        return None
    try:
        interface = ipaddress.ip_interface(text.strip())
    except ValueError:
        ctx.problem(
            doc,
            obj,
            key,
            f"{path}.{key}",
            f"expected a CIDR block such as "
            f"{'2001:db8::/32' if family == 6 else '203.0.113.0/24'}, found {_found(text)}",
        )
        return None
    network = interface.network
    if family is not None and network.version != family:
        ctx.problem(
            doc,
            obj,
            key,
            f"{path}.{key}",
            f"{text} is an IPv{network.version} block: {key} holds IPv{family} only",
        )
        return None
    if interface.ip != network.network_address:
        ctx.notes.add(
            doc.key_loc(obj, key),
            f"{text} has host bits set: AWS stores it as {network} (read so)",
            (network.version,),
        )
    return network


# --- security groups -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Proto:
    """What an IpPermission says about protocol and ports."""

    protocols: frozenset[int] | None  # None: every protocol
    ports: tuple[int, int] | None  # destination port range; None: every port
    icmp: IcmpMatch | None  # ICMP type/code condition (of protocol ``icmp_protocol``)
    icmp_protocol: int | None
    text: str  # "tcp 443", "all", "icmp type 8 code 0", "proto 50"


@dataclass(frozen=True)
class _Peer:
    """One peer entry of a permission: a CIDR, a prefix list or a group reference."""

    kind: str  # "cidr", "prefix-list", "group"
    ref: str  # the CIDR, the prefix list id, the group id (or name)
    network: Prefix | None
    description: str | None
    location: Location
    user_id: str | None = None
    vpc_id: str | None = None
    peering: str | None = None
    peering_status: str | None = None
    by_name: bool = False  # a group named by GroupName only


@dataclass(frozen=True)
class _Perm:
    group: str
    direction: str
    proto: _Proto
    peers: tuple[_Peer, ...]


@dataclass(frozen=True)
class _Group:
    id: str
    name: str | None
    owner: str | None
    vpc: str | None
    permissions: tuple[_Perm, ...]


def _protocol(
    ctx: _Ctx, doc: _Doc, perm: Mapping[str, Any], path: str, families: Iterable[int]
) -> _Proto | None:
    """Protocol and ports of a permission (``families``: those its Notes concern)."""
    value = perm.get("IpProtocol")
    if value is None:
        ctx.problem(doc, perm, None, path, "expected an IpProtocol, found none")
        return None
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if isinstance(value, bool) or text is None:
        ctx.problem(
            doc,
            perm,
            "IpProtocol",
            f"{path}.IpProtocol",
            f"expected a protocol name or number as a string, found {_found(value)}",
        )
        return None
    number: int | None
    if text in ("-1", "all"):
        number = None
    elif text in _PROTOCOL_NAMES:
        number = _PROTOCOL_NAMES[text]
    elif is_digits(text) and int(text) <= 255:
        number = int(text)
    else:
        ctx.problem(
            doc,
            perm,
            "IpProtocol",
            f"{path}.IpProtocol",
            f"unknown protocol {value!r}: expected tcp, udp, icmp, icmpv6, a number 0-255 "
            "or -1 (every protocol)",
        )
        return None
    lo = ctx.int_at(doc, perm, "FromPort", path)
    hi = ctx.int_at(doc, perm, "ToPort", path)
    bad_types = (perm.get("FromPort") is not None and lo is None) or (
        perm.get("ToPort") is not None and hi is None
    )
    if bad_types:
        return None
    if number in (PROTO_TCP, PROTO_UDP):
        return _port_proto(ctx, doc, perm, path, number, lo, hi)
    if number in (PROTO_ICMP, PROTO_ICMPV6):
        return _icmp_proto(ctx, doc, perm, path, number, lo, hi)
    name = "all" if number is None else f"proto {number}"
    if (lo is not None and lo != -1) or (hi is not None and hi != -1):
        ctx.notes.add(
            doc.loc(perm),
            f"ports {lo}-{hi} of IpProtocol {value} are ignored: AWS allows every port of "
            "protocols other than tcp, udp, icmp and icmpv6",
            families,
        )
    return _Proto(None if number is None else frozenset({number}), None, None, None, name)


def _port_proto(
    ctx: _Ctx,
    doc: _Doc,
    perm: Mapping[str, Any],
    path: str,
    number: int,
    lo: int | None,
    hi: int | None,
) -> _Proto | None:
    name = _NAME_OF[number]
    if lo is None or hi is None:
        ctx.problem(
            doc, perm, None, path, f"{name} needs FromPort and ToPort (the port range; -1 for all)"
        )
        return None
    if (lo == -1) != (hi == -1):
        ctx.problem(
            doc,
            perm,
            "FromPort",
            path,
            f"{name} ports {lo} to {hi}: -1 (every port) must be given for both or neither",
        )
        return None
    if lo == -1:
        lo, hi = 0, 65535
    for key, port in (("FromPort", lo), ("ToPort", hi)):
        if not 0 <= port <= 65535:
            ctx.problem(doc, perm, key, f"{path}.{key}", f"port {port} is not in 0-65535")
            return None
    if lo > hi:
        ctx.problem(
            doc, perm, "FromPort", path, f"{name} port range {lo}-{hi} starts above its end"
        )
        return None
    protocols = frozenset({number})
    if (lo, hi) == (0, 65535):
        return _Proto(protocols, None, None, None, f"{name} 0-65535")
    return _Proto(
        protocols, (lo, hi), None, None, f"{name} {lo}" if lo == hi else f"{name} {lo}-{hi}"
    )


def _icmp_proto(
    ctx: _Ctx,
    doc: _Doc,
    perm: Mapping[str, Any],
    path: str,
    number: int,
    icmp_type: int | None,
    code: int | None,
) -> _Proto | None:
    name = _NAME_OF[number]
    protocols = frozenset({number})
    if icmp_type is None and code is None and number == PROTO_ICMPV6:
        return _Proto(protocols, None, None, None, name)  # omitted: every type and code
    if icmp_type is None or code is None:
        ctx.problem(
            doc,
            perm,
            None,
            path,
            f"{name} needs FromPort (the ICMP type) and ToPort (the code), -1 for any",
        )
        return None
    for key, value in (("FromPort", icmp_type), ("ToPort", code)):
        if not -1 <= value <= 255:
            what = "type" if key == "FromPort" else "code"
            ctx.problem(
                doc, perm, key, f"{path}.{key}", f"ICMP {what} {value} is not in 0-255 (or -1)"
            )
            return None
    if icmp_type == -1:
        if code != -1:
            ctx.problem(
                doc,
                perm,
                "ToPort",
                f"{path}.ToPort",
                f"ICMP code {code} with every type (FromPort -1): AWS requires ToPort -1 then",
            )
            return None
        return _Proto(protocols, None, None, None, name)
    if code == -1:
        return _Proto(protocols, None, IcmpMatch(icmp_type), number, f"{name} type {icmp_type}")
    return _Proto(
        protocols,
        None,
        IcmpMatch(icmp_type, code, code),
        number,
        f"{name} type {icmp_type} code {code}",
    )


def _peers(ctx: _Ctx, doc: _Doc, perm: Mapping[str, Any], path: str) -> list[_Peer]:
    peers: list[_Peer] = []
    for key, cidr_key, family in (("IpRanges", "CidrIp", 4), ("Ipv6Ranges", "CidrIpv6", 6)):
        for i, entry in ctx.objects_in(doc, perm, key, path, f"an object with {cidr_key}"):
            where = f"{path}.{key}[{i}]"
            network = _network(ctx, doc, entry, cidr_key, where, family)
            description = ctx.str_at(doc, entry, "Description", where)
            if network is not None:
                peers.append(_Peer("cidr", str(network), network, description, doc.loc(entry)))
    for i, entry in ctx.objects_in(doc, perm, "PrefixListIds", path, "an object with PrefixListId"):
        where = f"{path}.PrefixListIds[{i}]"
        pl_id = ctx.str_at(doc, entry, "PrefixListId", where, required=True)
        description = ctx.str_at(doc, entry, "Description", where)
        if pl_id is not None:
            peers.append(_Peer("prefix-list", pl_id, None, description, doc.loc(entry)))
    for i, entry in ctx.objects_in(doc, perm, "UserIdGroupPairs", path, "an object with GroupId"):
        where = f"{path}.UserIdGroupPairs[{i}]"
        before = len(ctx.problems)
        group_id = ctx.str_at(doc, entry, "GroupId", where)
        group_name = ctx.str_at(doc, entry, "GroupName", where)
        fields = {
            k: ctx.str_at(doc, entry, k, where)
            for k in ("UserId", "VpcId", "VpcPeeringConnectionId", "PeeringStatus", "Description")
        }
        if not group_id and not group_name:
            if len(ctx.problems) == before:  # not already reported as a value of a wrong type
                ctx.problem(
                    doc, entry, None, where, "expected a GroupId (or GroupName), found none"
                )
            continue
        peers.append(
            _Peer(
                "group",
                group_id or group_name or "",
                None,
                fields["Description"],
                doc.loc(entry),
                user_id=fields["UserId"],
                vpc_id=fields["VpcId"],
                peering=fields["VpcPeeringConnectionId"],
                peering_status=fields["PeeringStatus"],
                by_name=not group_id,
            )
        )
    return peers


def _groups(ctx: _Ctx, doc: _Doc, data: Any, region: str | None = None) -> list[_Group]:
    items, base, anchor = _top_list(
        ctx, doc, data, "SecurityGroups", "security groups", "aws ec2 describe-security-groups"
    )
    if isinstance(data, dict) and data.get("NextToken"):
        ctx.notes.add(
            doc.key_loc(data, "NextToken"),
            "the answer has a NextToken: it is one page of a paginated answer, and the groups "
            "of the other pages are missing (the AWS CLI paginates by itself)",
        )
    groups: list[_Group] = []
    first_seen: dict[str, Location] = {}
    for i, g in ctx.objects(doc, items, base, "a security group (an object)", anchor):
        path = f"{base}[{i}]"
        gid = ctx.str_at(doc, g, "GroupId", path, required=True)
        name = ctx.str_at(doc, g, "GroupName", path)
        owner = ctx.str_at(doc, g, "OwnerId", path)
        vpc = ctx.str_at(doc, g, "VpcId", path)
        arn = ctx.str_at(doc, g, "SecurityGroupArn", path)
        if gid is None:
            continue
        if gid in first_seen:
            ctx.problem(
                doc,
                g,
                "GroupId",
                f"{path}.GroupId",
                f"security group {gid} appears twice (first at {first_seen[gid]})",
            )
            continue
        first_seen[gid] = doc.key_loc(g, "GroupId")
        if doc.text is None:  # a live answer: everything of this group points at it
            doc.current = Location(arn or f"ec2 {region} {gid}")
        perms: list[_Perm] = []
        for direction, key in _PERMISSION_KEYS.items():
            if key not in g:
                ctx.notes.add(
                    doc.loc(g),
                    f"security group {gid} has no {key}: read as no {direction} rules (AWS "
                    f"lists every rule, the default allow-all egress rule included)",
                )
            for j, perm in ctx.objects_in(doc, g, key, path, "an IpPermission (an object)"):
                where = f"{path}.{key}[{j}]"
                unknown = sorted(set(perm) - _KNOWN_PERMISSION_KEYS)
                if unknown:
                    ctx.notes.add(
                        doc.loc(perm),
                        f"{where}: {', '.join(unknown)} unknown to netguard in an IpPermission: "
                        "ignored",
                    )
                peers = _peers(ctx, doc, perm, where)
                families = {p.network.version if p.network else f for p in peers for f in (4, 6)}
                proto = _protocol(ctx, doc, perm, where, families or {4, 6})
                if proto is None:
                    continue
                if not peers and not _has_peer_entries(perm):
                    ctx.notes.add(
                        doc.loc(perm),
                        f"{gid} {direction} {proto.text} has no IpRanges, Ipv6Ranges, "
                        "PrefixListIds or UserIdGroupPairs: it matches nothing",
                    )
                perms.append(_Perm(gid, direction, proto, tuple(peers)))
        groups.append(_Group(gid, name, owner, vpc, tuple(perms)))
        doc.current = None
    return groups


def _has_peer_entries(perm: Mapping[str, Any]) -> bool:
    return any(isinstance(perm.get(k), list) and perm[k] for k in _PEER_KEYS)


# --- prefix lists and network interfaces ---------------------------------------------------


@dataclass(frozen=True)
class _PrefixList:
    id: str
    name: str | None
    family: int | None  # AddressFamily, when given
    entries: PrefixSet | None  # None: listed without entries (unresolved)


def _prefix_lists(ctx: _Ctx, doc: _Doc, data: Any) -> dict[str, _PrefixList]:
    items, base, anchor = _top_list(
        ctx,
        doc,
        data,
        "PrefixLists",
        "prefix lists",
        "aws ec2 describe-managed-prefix-lists, with the Entries of "
        "get-managed-prefix-list-entries added to each list",
    )
    out: dict[str, _PrefixList] = {}
    for i, pl in ctx.objects(doc, items, base, "a prefix list (an object)", anchor):
        path = f"{base}[{i}]"
        pl_id = ctx.str_at(doc, pl, "PrefixListId", path, required=True)
        name = ctx.str_at(doc, pl, "PrefixListName", path)
        family_text = ctx.str_at(doc, pl, "AddressFamily", path)
        family: int | None = None
        if family_text is not None:
            family = {"ipv4": 4, "ipv6": 6}.get(family_text.lower())
            if family is None:
                ctx.problem(
                    doc,
                    pl,
                    "AddressFamily",
                    f"{path}.AddressFamily",
                    f"expected IPv4 or IPv6, found {_found(family_text)}",
                )
        entries: PrefixSet | None = None
        if pl.get("Entries") is not None:
            networks: list[Prefix] = []
            for j, entry in ctx.objects_in(doc, pl, "Entries", path, "an object with Cidr"):
                network = _network(ctx, doc, entry, "Cidr", f"{path}.Entries[{j}]", family)
                if network is not None:
                    networks.append(network)
            entries = PrefixSet.from_prefixes(networks)
        if pl_id is None:
            continue
        prior = out.get(pl_id)
        if prior is not None:  # describe-managed-prefix-lists and entries given apart: merge
            if prior.family is not None and family is not None and prior.family != family:
                ctx.problem(
                    doc,
                    pl,
                    "AddressFamily",
                    f"{path}.AddressFamily",
                    f"prefix list {pl_id} is given twice with different address families",
                )
                continue
            if prior.entries is not None:
                entries = prior.entries if entries is None else prior.entries.union(entries)
            name = name or prior.name
            family = family or prior.family
        out[pl_id] = _PrefixList(pl_id, name, family, entries)
    return out


@dataclass
class _Members:
    """The addresses of the network interfaces that have one security group."""

    networks: list[Prefix] = field(default_factory=list)
    interfaces: int = 0
    delegated: bool = False  # some come from delegated prefixes (Ipv4Prefixes/Ipv6Prefixes)
    addresses: PrefixSet = field(default_factory=PrefixSet)  # of ``networks``, once all read


def _interfaces(ctx: _Ctx, doc: _Doc, data: Any) -> dict[str, _Members]:
    items, base, anchor = _top_list(
        ctx,
        doc,
        data,
        "NetworkInterfaces",
        "network interfaces",
        "aws ec2 describe-network-interfaces",
    )
    out: dict[str, _Members] = {}
    for i, eni in ctx.objects(doc, items, base, "a network interface (an object)", anchor):
        path = f"{base}[{i}]"
        networks: list[Prefix] = []
        for key, family in (("PrivateIpAddress", 4), ("Ipv6Address", 6)):
            if eni.get(key) is not None:
                network = _network(ctx, doc, eni, key, path, family)
                if network is not None:
                    networks.append(network)
        for key, inner, family in (
            ("PrivateIpAddresses", "PrivateIpAddress", 4),
            ("Ipv6Addresses", "Ipv6Address", 6),
        ):
            for j, entry in ctx.objects_in(doc, eni, key, path, f"an object with {inner}"):
                network = _network(ctx, doc, entry, inner, f"{path}.{key}[{j}]", family)
                if network is not None:
                    networks.append(network)
        delegated: list[Prefix] = []
        for key, inner, family in (
            ("Ipv4Prefixes", "Ipv4Prefix", 4),
            ("Ipv6Prefixes", "Ipv6Prefix", 6),
        ):
            for j, entry in ctx.objects_in(doc, eni, key, path, f"an object with {inner}"):
                network = _network(ctx, doc, entry, inner, f"{path}.{key}[{j}]", family)
                if network is not None:
                    delegated.append(network)
        addresses = networks + delegated
        for j, g in ctx.objects_in(doc, eni, "Groups", path, "an object with GroupId"):
            gid = ctx.str_at(doc, g, "GroupId", f"{path}.Groups[{j}]", required=True)
            if gid is None:
                continue
            members = out.setdefault(gid, _Members())
            members.networks.extend(addresses)
            members.interfaces += 1
            members.delegated = members.delegated or bool(delegated)
    for members in out.values():
        members.addresses = PrefixSet.from_prefixes(members.networks)
    return out


# --- building the rule sets ----------------------------------------------------------------


@dataclass(frozen=True)
class _Inputs:
    """Everything a read resolves against."""

    doc: _Doc
    source: str
    groups: list[_Group]
    prefix_lists: dict[str, _PrefixList] | None
    prefix_lists_name: str
    interfaces: dict[str, _Members] | None
    interfaces_name: str
    group_ids: Sequence[str] | None
    unresolved_lists: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Resolved:
    """A peer as addresses per family, or as an unmodeled condition in some families."""

    addresses: dict[int, PrefixSet]
    unmodeled: str | None = None
    unmodeled_families: tuple[int, ...] = ()
    text: str = ""


def _by_family(addresses: PrefixSet) -> dict[int, PrefixSet]:
    """The non-empty parts of an address set, per family."""
    parts = {
        4: PrefixSet(addresses.v4_intervals, ()),
        6: PrefixSet((), addresses.v6_intervals),
    }
    return {f: part for f, part in parts.items() if not part.is_empty()}


def _resolve_list(ctx: _Ctx, inputs: _Inputs, peer: _Peer, side: str) -> _Resolved:
    lists = inputs.prefix_lists
    found = lists.get(peer.ref) if lists is not None else None
    text = peer.ref if found is None or not found.name else f"{peer.ref} ({found.name})"
    if found is not None and found.entries is not None:
        by_family = _by_family(found.entries)
        if not by_family:
            ctx.notes.add(
                peer.location,
                f"prefix list {text} has no entries in {inputs.prefix_lists_name}: the rules "
                "that use it match nothing",
                (found.family,) if found.family else (4, 6),
            )
        return _Resolved(by_family, text=text)
    if lists is None:
        why = "no prefix-lists file was given"
    elif peer.ref in inputs.unresolved_lists:
        why = inputs.unresolved_lists[peer.ref]
    elif found is None:
        why = f"{inputs.prefix_lists_name} does not list it"
    else:
        why = (
            f"{inputs.prefix_lists_name} lists it without Entries (add the output of aws ec2 "
            "get-managed-prefix-list-entries)"
        )
    families = (found.family,) if found is not None and found.family else (4, 6)
    ctx.notes.add(
        peer.location,
        f"prefix list {text} is not resolved ({why}): the rules that use it keep it as an "
        "unmodeled condition",
        families,
    )
    return _Resolved({}, f"{side} in prefix list {peer.ref}", families, text)


def _resolve_group(ctx: _Ctx, inputs: _Inputs, group: _Group, peer: _Peer, side: str) -> _Resolved:
    gid = peer.ref
    text = gid
    why: str | None = None
    if peer.by_name:
        vpc = peer.vpc_id or group.vpc
        same = [
            g
            for g in inputs.groups
            if g.name == gid and (vpc is None or g.vpc is None or g.vpc == vpc)
        ]
        if len(same) == 1:
            gid = same[0].id
            text = f"{gid} ({peer.ref})"
        else:
            text = f"group named {peer.ref}"
            why = "the pair has no GroupId and no single group of that name is in the input"
    extras = []
    if peer.user_id and group.owner and peer.user_id != group.owner:
        extras.append(f"account {peer.user_id}")
        why = why or f"it belongs to account {peer.user_id}, not {group.owner}"
    if peer.peering or (peer.vpc_id and group.vpc and peer.vpc_id != group.vpc):
        where = peer.peering or peer.vpc_id
        extras.append(f"via {where}")
        why = why or f"it is in a peered VPC ({where})"
    if peer.peering_status and peer.peering_status not in ("active",):
        extras.append(f"peering {peer.peering_status}")
    if extras:
        text = f"{text} ({', '.join(extras)})"
    members = None
    if why is None:
        if inputs.interfaces is None:
            why = "no network-interfaces file was given"
        else:
            members = inputs.interfaces.get(gid)
            if members is None:
                why = f"no network interface in {inputs.interfaces_name} has it"
    if members is None:
        ctx.notes.add(
            peer.location,
            f"security group {text} is not resolved ({why}): the rules that refer to it keep "
            "it as an unmodeled condition",
        )
        return _Resolved({}, f"{side} in security group {text}", (4, 6), text)
    by_family = _by_family(members.addresses)
    ctx.notes.add(
        peer.location,
        f"security group {gid} resolved to the private addresses of its "
        f"{members.interfaces} network interface{'s' if members.interfaces != 1 else ''} in "
        f"{inputs.interfaces_name}"
        + (" (delegated prefixes included)" if members.delegated else "")
        + ": membership as of then, and traffic to or from their public or Elastic IP "
        "addresses does not match",
        by_family,
    )
    return _Resolved(by_family, text=text)


def _rule_text(perm: _Perm, peer_text: str, description: str | None) -> str:
    arrow = "from" if perm.direction == INGRESS else "to"
    out = f"{perm.group} {perm.direction} {perm.proto.text} {arrow} {peer_text}"
    if description:
        out += f" ({json.dumps(description, ensure_ascii=False)})"
    return out


def _build(ctx: _Ctx, inputs: _Inputs) -> list[RuleSet]:
    groups = inputs.groups
    if inputs.group_ids is None:
        selected = groups
        if groups:
            ctx.notes.add(
                Location(inputs.doc.name),
                f"{len(groups)} security group{'s' if len(groups) != 1 else ''} evaluated as "
                "if all groups were attached to one interface (select the groups of one "
                "interface to check that interface)",
            )
    else:
        by_id = {g.id: g for g in groups}
        missing = [gid for gid in dict.fromkeys(inputs.group_ids) if gid not in by_id]
        for gid in missing:
            ctx.problems.append(
                (Location(inputs.doc.name), f"security group {gid} (asked for) is not in the input")
            )
        wanted = set(inputs.group_ids)
        selected = [g for g in groups if g.id in wanted]
    if not selected:
        ctx.notes.add(
            Location(inputs.doc.name),
            "no security group selected: only responses to tracked connections pass",
        )
    vpcs = sorted({g.vpc for g in selected if g.vpc})
    if len(vpcs) > 1:
        ctx.notes.add(
            Location(inputs.doc.name),
            f"the groups are in {len(vpcs)} VPCs ({', '.join(vpcs)}): no one interface can "
            "have them all",
        )
    if ctx.problems:
        raise InputError(ctx.problems)

    rules: dict[int, dict[str, list[Rule]]] = {f: {INGRESS: [], EGRESS: []} for f in (4, 6)}
    for group in selected:
        for perm in group.permissions:
            side = "source" if perm.direction == INGRESS else "destination"
            for peer in perm.peers:
                if peer.kind == "cidr":
                    assert peer.network is not None
                    resolved = _Resolved(
                        {peer.network.version: PrefixSet.from_prefixes([peer.network])},
                        text=peer.ref,
                    )
                elif peer.kind == "prefix-list":
                    resolved = _resolve_list(ctx, inputs, peer, side)
                else:
                    resolved = _resolve_group(ctx, inputs, group, peer, side)
                location = peer.location
                text = _rule_text(perm, resolved.text, peer.description)
                for family in (4, 6):
                    addresses = resolved.addresses.get(family)
                    unmodeled = (
                        resolved.unmodeled if family in resolved.unmodeled_families else None
                    )
                    if addresses is None and unmodeled is None:
                        continue
                    match = _match(ctx, perm, family, addresses, unmodeled, location)
                    chain = rules[family][perm.direction]
                    chain.append(
                        Rule(
                            perm.direction,
                            len(chain) + 2,
                            match,
                            Action(ActionKind.ACCEPT, None, "ACCEPT"),
                            text,
                            location,
                            peer.description,
                        )
                    )
    out: list[RuleSet] = []
    for family in (4, 6):
        chains: dict[str, Chain] = {}
        for direction, hook in _CHAIN_HOOKS.items():
            first = Rule(
                direction,
                1,
                Match(ct_states=_ESTABLISHED),
                Action(ActionKind.ACCEPT, None, "ACCEPT"),
                f"{direction} ct state established,related accept (security groups are "
                "stateful: responses to allowed traffic are allowed)",
                Location(inputs.doc.name),
            )
            chains[direction] = Chain(
                direction,
                (first, *rules[family][direction]),
                hook=hook,
                policy=ActionKind.DROP,
                location=Location(inputs.doc.name),
            )
        notes = (Note(Location(inputs.doc.name), _BYPASS[family]), *ctx.notes.for_family(family))
        out.append(RuleSet(family, chains, inputs.source, notes))
    return out


def _match(
    ctx: _Ctx,
    perm: _Perm,
    family: int,
    addresses: PrefixSet | None,
    unmodeled: str | None,
    location: Location,
) -> Match:
    proto = perm.proto
    texts: list[str] = []
    icmp: tuple[IcmpMatch, ...] = ()
    if proto.icmp is not None:
        if proto.icmp_protocol == _ICMP_OF_FAMILY[family]:
            icmp = (proto.icmp,)
        else:
            texts.append(f"{proto.text} in an IPv{family} packet")
            ctx.notes.add(
                location,
                f"{proto.text} in an IPv{family} rule: the type and code of "
                f"{_NAME_OF[proto.icmp_protocol or 0]} in IPv{family} packets are not modeled "
                f"(IPv{family} uses {_NAME_OF[_ICMP_OF_FAMILY[family]]})",
                (family,),
            )
    if unmodeled is not None:
        texts.append(unmodeled)
    address_match = (AddressMatch(addresses),) if addresses is not None else ()
    ingress = perm.direction == INGRESS
    return Match(
        protocols=proto.protocols,
        sources=address_match if ingress else (),
        destinations=() if ingress else address_match,
        destination_ports=(PortMatch((proto.ports,)),) if proto.ports is not None else (),
        icmp=icmp,
        unmodeled=tuple(texts),
    )


# --- entry points --------------------------------------------------------------------------


def read_security_groups(
    path: Path,
    *,
    prefix_lists: Path | None = None,
    network_interfaces: Path | None = None,
    group_ids: Sequence[str] | None = None,
) -> list[RuleSet]:
    """Read ``aws ec2 describe-security-groups`` JSON into two RuleSets (IPv4, then IPv6).

    ``path`` holds ``{"SecurityGroups": [...]}`` (the AWS CLI output, or a boto3 response
    with the same keys) or a bare list of groups. ``group_ids`` selects the groups attached to
    one interface (their union); by default every group of the file (a Note says so).

    ``prefix_lists`` resolves ``PrefixListIds``: ``{"PrefixLists": [{"PrefixListId": ...,
    "PrefixListName": ..., "AddressFamily": "IPv4", "Entries": [{"Cidr": ...}]}]}`` (or a
    bare list), i.e. the output of ``aws ec2 describe-managed-prefix-lists`` with the
    ``Entries`` of ``aws ec2 get-managed-prefix-list-entries --prefix-list-id ID`` added to
    each list. A list given twice (once from each command) is merged; a list without
    ``Entries`` stays unresolved.

    ``network_interfaces`` resolves ``UserIdGroupPairs``: the output of
    ``aws ec2 describe-network-interfaces`` (``{"NetworkInterfaces": [...]}`` or a bare list).

    Raises :class:`~netguard.errors.InputError` listing every problem found (up to 200).
    """
    ctx = _Ctx()
    doc, data = _load_json(path, "security groups")
    groups: list[_Group] = []
    lists: dict[str, _PrefixList] | None = None
    interfaces: dict[str, _Members] | None = None
    try:
        groups = _groups(ctx, doc, data)
        if prefix_lists is not None:
            pl_doc, pl_data = _load_json(prefix_lists, "prefix lists")
            lists = _prefix_lists(ctx, pl_doc, pl_data)
        if network_interfaces is not None:
            ni_doc, ni_data = _load_json(network_interfaces, "network interfaces")
            interfaces = _interfaces(ctx, ni_doc, ni_data)
    except _TooMany:
        ctx.problems.append((Location(path), f"too many problems: stopped after {_MAX_PROBLEMS}"))
    if ctx.problems:
        raise InputError(ctx.problems)
    inputs = _Inputs(
        doc,
        str(path),
        groups,
        lists,
        str(prefix_lists),
        interfaces,
        str(network_interfaces),
        group_ids,
    )
    return _build(ctx, inputs)


def read_security_groups_live(
    session: Any,
    region: str,
    group_ids: Sequence[str] | None = None,
    vpc_id: str | None = None,
) -> list[RuleSet]:
    """Read security groups from the EC2 API into two RuleSets (IPv4, then IPv6).

    ``session`` is a ``boto3.Session`` (None: a default one); boto3 is the optional extra
    ``netguard[aws]``, imported only here. Calls, all read-only and paginated:
    DescribeSecurityGroups (``group_ids``, else every group, of ``vpc_id`` when given),
    DescribeManagedPrefixLists and GetManagedPrefixListEntries for each referenced prefix
    list, and DescribeNetworkInterfaces filtered by ``group-id`` for the referenced groups.
    The rules are the same as :func:`read_security_groups` gives for the same answers.

    Raises :class:`AwsApiError` (exit 3) when a call fails, with the AWS error code; a
    prefix list the account cannot see (``InvalidPrefixListID.NotFound``) stays unresolved
    with a Note instead.
    """
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise NetguardError(
            "reading security groups from AWS needs boto3: pip install 'netguard[aws]'"
        ) from None

    def call(operation: str, fn: Any) -> Any:
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise AwsApiError(
                operation, region, str(err.get("Code", "Unknown")), str(err.get("Message", ""))
            ) from None
        except BotoCoreError as exc:
            raise AwsApiError(operation, region, type(exc).__name__, str(exc)) from None

    if session is None:
        import boto3

        session = boto3.session.Session()
    client = call("client setup", lambda: session.client("ec2", region_name=region))

    def pages(operation: str, method: str, key: str, **kwargs: Any) -> list[Any]:
        def run() -> list[Any]:
            out: list[Any] = []
            for page in client.get_paginator(method).paginate(**kwargs):
                out.extend(page.get(key, []))
            return out

        result: list[Any] = call(operation, run)
        return result

    kwargs: dict[str, Any] = {}
    if group_ids is not None:
        kwargs["GroupIds"] = list(dict.fromkeys(group_ids))
    if vpc_id is not None:
        kwargs["Filters"] = [{"Name": "vpc-id", "Values": [vpc_id]}]
    raw_groups: list[Any] = []
    if group_ids is None or group_ids:
        raw_groups = pages(
            "DescribeSecurityGroups", "describe_security_groups", "SecurityGroups", **kwargs
        )
    source = f"aws ec2 {region}" + (f" {vpc_id}" if vpc_id else "")
    doc = _Doc(source)
    ctx = _Ctx()
    groups: list[_Group] = []
    with contextlib.suppress(_TooMany):
        groups = _groups(ctx, doc, {"SecurityGroups": raw_groups}, region)
    if ctx.problems:
        raise InputError(ctx.problems)
    wanted = set(group_ids) if group_ids is not None else None
    selected = [g for g in groups if wanted is None or g.id in wanted]

    list_ids = sorted(
        {
            p.ref
            for g in selected
            for perm in g.permissions
            for p in perm.peers
            if p.kind == "prefix-list"
        }
    )
    raw_lists: list[dict[str, Any]] = []
    unresolved: dict[str, str] = {}
    for pl_id in list_ids:
        try:
            described = call(
                "DescribeManagedPrefixLists",
                lambda pl_id=pl_id: client.describe_managed_prefix_lists(PrefixListIds=[pl_id]),
            ).get("PrefixLists", [])
            if not described:
                unresolved[pl_id] = f"DescribeManagedPrefixLists in {region} does not return it"
                continue
            entries = pages(
                "GetManagedPrefixListEntries",
                "get_managed_prefix_list_entries",
                "Entries",
                PrefixListId=pl_id,
            )
        except AwsApiError as exc:
            if not exc.code.endswith("NotFound"):
                raise
            unresolved[pl_id] = f"{exc.operation} in {region} answered {exc.code}"
            continue
        raw_lists.append({**described[0], "Entries": entries})

    referenced = sorted(
        {
            p.ref
            for g in selected
            for perm in g.permissions
            for p in perm.peers
            if p.kind == "group" and not p.by_name
        }
    )
    raw_interfaces: dict[str, Any] = {}  # by id: an interface may be in several chunks
    for start in range(0, len(referenced), _FILTER_VALUES_MAX):
        chunk = referenced[start : start + _FILTER_VALUES_MAX]
        for eni in pages(
            "DescribeNetworkInterfaces",
            "describe_network_interfaces",
            "NetworkInterfaces",
            Filters=[{"Name": "group-id", "Values": chunk}],
        ):
            raw_interfaces[str(eni.get("NetworkInterfaceId", len(raw_interfaces)))] = eni
    lists: dict[str, _PrefixList] = {}
    interfaces: dict[str, _Members] = {}
    with contextlib.suppress(_TooMany):
        lists = _prefix_lists(ctx, doc, {"PrefixLists": raw_lists})
        interfaces = _interfaces(ctx, doc, {"NetworkInterfaces": list(raw_interfaces.values())})
    if ctx.problems:
        raise InputError(ctx.problems)
    inputs = _Inputs(
        doc,
        source,
        groups,
        lists,
        f"DescribeManagedPrefixLists in {region}",
        interfaces,
        f"DescribeNetworkInterfaces in {region}",
        group_ids,
        unresolved,
    )
    return _build(ctx, inputs)
