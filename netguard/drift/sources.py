"""Where address lists come from: files and services, read into per-direction address sets.

A *source* (``--actual``/``--desired``) is one of, recognised by content:

- a firewall configuration (iptables-save with ``ipset save``, ``nft -j list ruleset`` JSON,
  ``aws ec2 describe-security-groups`` JSON with optional prefix-list / network-interface
  documents): read with :func:`netguard.check.load_configs`; all such files of a side are one
  deployment. What such a side *allows* for a direction is computed with the packet-space
  engine (:func:`allowed_addresses`): the flow of that direction is the vendor's (TCP, state
  NEW, each destination port of the profile; ingress also to the receiver's addresses), and an
  address is allowed when some packet of the flow to (egress) or from (ingress) it is
  accepted at the OUTPUT (egress) or INPUT (ingress) hook. Rule sets of one family are layers
  (iptables and nft tables on one host, or a host firewall behind a security group): a packet
  must pass all of them;
- an ``ipset save`` file alone (no iptables rules): the members of its address sets (``--set``
  picks some by name), without direction;
- ``live AWS``: ``aws:REGION`` or ``aws:REGION:sg-1,sg-2`` reads the security groups through
  boto3 and the standard credential chain (the optional extra ``netguard[aws]``);
- a netguard allowlist JSON (``allowlist/allowlists.json`` from ``netguard generate``): its
  ``egress-destinations`` list is the egress side, ``customer-inbound`` the ingress side;
- a vendor feed (:mod:`netguard.drift.feeds`) or a plain text / JSON list: one set without
  direction (it stands for every direction compared).

``-`` reads a plain list from standard input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from netguard.cidr import PrefixSet
from netguard.drift.addrs import AddrSet, EntryFinding, ParsedList, parse_entry, parse_list
from netguard.drift.feeds import Feed, FeedVersion, read_feed
from netguard.errors import InputError, Location, NetguardError
from netguard.model.ruleset import CtState, Hook, RuleSet

__all__ = [
    "Culprit",
    "Direction",
    "FlowSpec",
    "FlowUnit",
    "IpsetElement",
    "Side",
    "allowed_addresses",
    "load_side",
    "project",
    "read_source_bytes",
]

_MAX_BYTES = 512 * 1024 * 1024


class Direction(StrEnum):
    """What a compared list is: egress destinations, ingress sources, or plain addresses."""

    EGRESS = "egress"
    INGRESS = "ingress"
    ADDRESSES = "addresses"


@dataclass(frozen=True)
class FlowUnit:
    """One slice of a direction's flow: TCP NEW to ``port`` (and, for ingress, to ``local``
    addresses of the protected side; None: any)."""

    port: int
    local: PrefixSet | None = None


@dataclass(frozen=True)
class FlowSpec:
    """The flow that defines "allowed" for one direction (module docstring)."""

    direction: Direction
    units: tuple[FlowUnit, ...]

    def describe(self, family: int) -> str:
        """``tcp/443`` or ``tcp/8443 to 192.0.2.20/32`` (local addresses of ``family``),
        comma-separated."""
        parts = []
        for u in self.units:
            to = ""
            if u.local is not None:
                to = " to " + " ".join(str(p) for p in u.local.prefixes(family))
            parts.append(f"tcp/{u.port}{to}")
        return ", ".join(dict.fromkeys(parts))


@dataclass(frozen=True)
class Culprit:
    """What allows (part of) an EXTRA range: a rule, set member, list entry or security-group
    entry, with its location (``file:line`` when known) and the part it allows."""

    what: str
    location: str
    addrs: AddrSet = field(compare=False)


@dataclass(frozen=True)
class IpsetElement:
    """One ``add SET ELEMENT`` line of an ipset file (for attribution and fixes)."""

    set_name: str
    family: int
    first: int
    last: int
    text: str
    location: Location


@dataclass
class Side:
    """Everything read for one side (desired or actual).

    ``lists``: sets without direction (plain lists, feeds, ipset members); ``directed``: sets
    per direction (allowlist JSON); ``rulesets``: firewall rule sets (evaluated per flow).
    """

    label: str
    lists: list[tuple[str, AddrSet, ParsedList | None]] = field(default_factory=list)
    directed: dict[Direction, list[tuple[str, AddrSet]]] = field(default_factory=dict)
    rulesets: list[RuleSet] = field(default_factory=list)
    ruleset_kinds: list[str] = field(default_factory=list)
    ipset_elements: list[IpsetElement] = field(default_factory=list)
    ipset_names: dict[str, int] = field(default_factory=dict)  # name -> family
    nft_docs: list[tuple[str, Any]] = field(default_factory=list)
    sg_docs: list[tuple[str, Any]] = field(default_factory=list)
    findings: list[EntryFinding] = field(default_factory=list)
    feeds: list[FeedVersion] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (source, kind)
    notes: list[str] = field(default_factory=list)

    @property
    def has_rules(self) -> bool:
        """True when firewall rule sets were given."""
        return bool(self.rulesets)


def read_source_bytes(source: str) -> bytes:
    """The bytes of file ``source`` (``-``: standard input; a pipe such as ``<(...)`` is read
    once). Raises :class:`InputError` for a missing file, a directory or more than 512 MiB."""
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        if not path.exists():
            raise InputError.at(Location(path), "no such file: expected an address source")
        if path.is_dir():
            raise InputError.at(Location(path), "not a regular file: expected an address source")
        if path.is_file():
            if path.stat().st_size > _MAX_BYTES:
                raise InputError.at(Location(path), "file too large")
            return path.read_bytes()
        # A pipe (process substitution <(...), a FIFO): read once, at most _MAX_BYTES.
        with path.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise InputError.at(Location(path), "file too large")
        return data
    except OSError as exc:
        raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None


def _ipset_elements(
    path: Path, text: str, findings: list[EntryFinding] | None = None
) -> tuple[list[IpsetElement], dict[str, int]]:
    """``add`` lines of address sets, and set name -> family from ``create`` lines (the
    reader in :mod:`netguard.readers.ipset` validated the file already). An element with
    host bits set (``add s 198.51.100.1/24``: ipset stores the network) is appended to
    ``findings``: reported, not silently fixed."""
    elements: list[IpsetElement] = []
    families: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if len(words) >= 3 and words[0] in ("create", "-N", "n"):
            fam = 6 if "inet6" in words[3:] else 4
            if words[2].startswith(("hash:ip", "hash:net", "bitmap:ip")) and "," not in words[2]:
                families[words[1]] = fam
        elif len(words) >= 3 and words[0] in ("add", "-A", "a") and words[1] in families:
            try:
                fam, first, last, kind, read_as = parse_entry(words[2])
            except ValueError:
                continue  # a range (a-b): the reader has it; no per-element attribution
            if kind == "host-bits" and read_as is not None and findings is not None:
                findings.append(EntryFinding(kind, Location(path, number), words[2], read_as))
            elements.append(
                IpsetElement(words[1], fam, first, last, line.strip(), Location(path, number))
            )
    return elements, families


def _address_list(data: bytes, source: str) -> ParsedList | None:
    """``data`` parsed as an address list when every line is blank, a comment or an address
    entry (and one is an entry), else None (an ``::ffff:...`` line would otherwise look like
    an iptables chain declaration)."""
    try:
        parsed = parse_list(data, source)
    except InputError:
        return None
    return parsed if parsed.count else None


def _first_line_is_address(data: bytes) -> bool:
    for raw in data.splitlines():
        body = raw.split(b"#", 1)[0].strip()
        if body:
            try:
                parse_entry(body.decode("utf-8", "replace"))
            except ValueError:
                return False
            return True
    return True


def _json(data: bytes, source: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
    except RecursionError:
        raise InputError.at(Location(source, 1, 1), "invalid JSON: nested too deeply") from None


def load_side(
    label: str,
    sources: Sequence[str],
    *,
    services: Sequence[str] = (),
    regions: Sequence[str] = (),
    keys: Sequence[str] = (),
    set_names: Sequence[str] = (),
) -> Side:
    """Read every source of one side (module docstring).

    Raises :class:`InputError` (exit 2) for unreadable or malformed sources (every problem of
    every file), :class:`NetguardError` (exit 3) for AWS API failures.
    """
    side = Side(label)
    configs: list[Path] = []
    problems: list[tuple[Location, str]] = []
    ipset_files: list[tuple[Path, str]] = []
    for source in sources:
        if source.startswith("aws:"):
            _load_live_aws(side, source)
            continue
        try:
            data = read_source_bytes(source)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        doc = _json(data, source) if data.lstrip().startswith((b"{", b"[")) else None
        if isinstance(doc, dict) and doc.get("format") == "netguard-allowlist":
            _load_allowlist(side, source, doc, problems)
            continue
        if doc is None:
            listed = _address_list(data, source)
            if listed is not None:
                side.findings.extend(listed.findings)
                side.lists.append((source, listed.addrs, listed))
                side.sources.append((source, "list"))
                continue
        from netguard.check import ConfigFormat, detect_format

        fmt = None
        if source != "-":
            try:
                fmt = detect_format(Path(source), data.decode("utf-8", "replace"))
            except InputError as exc:
                if doc is None and not _first_line_is_address(data):
                    problems.append(
                        (
                            exc.problems[0][0],
                            "unrecognised source: expected an address list (one address or "
                            "CIDR per line), iptables-save, ipset save, nft -j list ruleset "
                            "JSON, AWS describe-security-groups JSON, a netguard allowlist "
                            "JSON or a vendor feed",
                        )
                    )
                    continue
                fmt = None
        if fmt is not None and not (fmt is ConfigFormat.IPSET and not data.strip()):
            if not Path(source).is_file():
                # The configuration readers open the file again: a pipe would read empty.
                problems.append(
                    (
                        Location(source),
                        f"the configuration ({fmt.value}) must be a regular file, not a pipe: "
                        "save it first (e.g. iptables-save > rules.v4)",
                    )
                )
                continue
            configs.append(Path(source))
            if fmt is ConfigFormat.IPSET:
                ipset_files.append((Path(source), data.decode("utf-8", "replace")))
            elif fmt is ConfigFormat.NFT_JSON:
                side.nft_docs.append((source, doc))
            elif fmt is ConfigFormat.AWS_SG:
                side.sg_docs.append((source, doc))
                side.findings.extend(_sg_host_bits(source, doc))
            side.sources.append((source, fmt.value))
            continue
        try:
            feed: Feed = read_feed(source, data, services=services, regions=regions, keys=keys)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        side.findings.extend(feed.findings)
        kind = feed.version.kind
        if kind != "list":
            side.feeds.append(feed.version)
        side.lists.append((source, feed.addrs, feed.parsed))
        side.sources.append((source, "list" if kind == "list" else f"{kind} feed"))
    if problems:
        raise InputError(problems)
    if configs:
        from netguard.check import load_configs

        loaded = load_configs(configs)
        for path, text in ipset_files:
            elements, families = _ipset_elements(path, text, side.findings)
            side.ipset_elements.extend(elements)
            side.ipset_names.update(families)
        if loaded.rulesets:
            side.rulesets.extend(loaded.rulesets)
            side.ruleset_kinds.extend(f.value for f in loaded.formats)
        else:
            _ipset_only(side, ipset_files, set_names)
    return side


def _ipset_only(side: Side, files: list[tuple[Path, str]], set_names: Sequence[str]) -> None:
    """No rules: the members of the ipset address sets are the list."""
    from netguard.readers.ipset import read_ipset_save

    for path, _ in files:
        sets = read_ipset_save(path)
        chosen = [s for s in sets.values() if not set_names or s.name in set_names]
        for s in chosen:
            if s.members is None:
                side.notes.append(f"{path}: set {s.name} ({s.type}) holds no plain addresses")
                continue
            side.lists.append((f"{path} set {s.name}", AddrSet.from_prefix_set(s.members), None))
        missing = [n for n in set_names if n not in sets]
        if missing:
            raise InputError.at(
                Location(path), f"no set {', '.join(missing)}; sets: {', '.join(sorted(sets))}"
            )


def _sg_host_bits(source: str, doc: Any) -> list[EntryFinding]:
    """Security-group CIDR entries with host bits set (``198.51.100.1/24``), as findings (the
    reader reads them as their network). Walks ``SecurityGroups[].IpPermissions[Egress][]``
    ``.IpRanges[].CidrIp`` and ``.Ipv6Ranges[].CidrIpv6`` (EC2 API Reference, IpPermission)."""
    found: list[EntryFinding] = []
    groups = doc.get("SecurityGroups") if isinstance(doc, dict) else doc
    for gi, g in enumerate(groups if isinstance(groups, list) else []):
        if not isinstance(g, dict):
            continue
        for key in ("IpPermissions", "IpPermissionsEgress"):
            for pi, perm in enumerate(g.get(key) or []):
                if not isinstance(perm, dict):
                    continue
                for rk, ck in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")):
                    for ri, r in enumerate(perm.get(rk) or []):
                        text = r.get(ck) if isinstance(r, dict) else None
                        if not isinstance(text, str):
                            continue
                        try:
                            _, _, _, kind, read_as = parse_entry(text)
                        except ValueError:
                            continue  # the reader reports it
                        if kind == "host-bits" and read_as is not None:
                            where = f"{source} SecurityGroups[{gi}].{key}[{pi}].{rk}[{ri}].{ck}"
                            found.append(EntryFinding(kind, Location(where), text, read_as))
    return found


def _load_allowlist(
    side: Side, source: str, doc: dict[str, Any], problems: list[tuple[Location, str]]
) -> None:
    lists = doc.get("lists")
    if not isinstance(lists, dict):
        problems.append((Location(source), 'expected "lists" in a netguard allowlist JSON'))
        return
    for name, direction in (
        ("egress-destinations", Direction.EGRESS),
        ("customer-inbound", Direction.INGRESS),
    ):
        entry = lists.get(name)
        if not isinstance(entry, dict):
            continue
        texts: list[str] = []
        for fam in ("ipv4", "ipv6"):
            values = entry.get(fam, [])
            if not isinstance(values, list) or not all(isinstance(x, str) for x in values):
                problems.append(
                    (Location(source), f'expected "lists"."{name}"."{fam}" to be a list of strings')
                )
                return
            texts.extend(values)
        parsed = parse_list(("\n".join(texts) + "\n").encode(), f"{source} {name}")
        side.findings.extend(parsed.findings)
        side.directed.setdefault(direction, []).append((f"{source} {name}", parsed.addrs))
    side.sources.append((source, "netguard allowlist"))


def _load_live_aws(side: Side, source: str) -> None:
    """``aws:REGION[:sg-1,sg-2]``: security groups through boto3 (optional extra)."""
    parts = source.split(":", 2)
    region = parts[1] if len(parts) > 1 else ""
    if not region:
        raise InputError.at(Location(source), "expected aws:REGION or aws:REGION:sg-1,sg-2")
    groups = [g for g in parts[2].split(",") if g] if len(parts) > 2 else None
    try:
        import boto3
    except ImportError:
        raise NetguardError(
            "reading live AWS security groups needs boto3: pip install 'netguard[aws]'"
        ) from None
    from netguard.readers.aws_sg import read_security_groups_live

    session = boto3.session.Session()
    side.rulesets.extend(read_security_groups_live(session, region, group_ids=groups))
    side.ruleset_kinds.extend(["aws-security-groups", "aws-security-groups"])
    side.sources.append((source, "live AWS security groups"))
    # Keep the raw groups too, for --fix aws-api.
    try:
        client = session.client("ec2", region_name=region)
        kwargs: dict[str, Any] = {"GroupIds": groups} if groups else {}
        pages = client.get_paginator("describe_security_groups").paginate(**kwargs)
        found = [g for page in pages for g in page.get("SecurityGroups", [])]
    except Exception as exc:  # botocore errors: credentials, endpoint, API
        raise NetguardError(f"AWS API error reading {source}: {exc}") from None
    side.sg_docs.append((source, {"SecurityGroups": found}))


# --- packet-space projection ---------------------------------------------------------------


def project(space: Any, field_name: str, family: int) -> AddrSet:
    """The addresses ``a`` of ``field_name`` (``src`` or ``dst``) such that some packet of
    ``space`` (a :class:`~netguard.space.HeaderSpace`) of ``family`` has that address
    (``HeaderSpace.addresses``)."""
    out = space.addresses(field_name, family)
    if family == 4:
        import numpy as np

        return AddrSet.from_intervals(
            np.array([a for a, _ in out], dtype=np.int64),
            np.array([z for _, z in out], dtype=np.int64),
        )
    return AddrSet.from_intervals(v6=out)


@dataclass
class Allowed:
    """What a side's rule sets allow for one direction and family: ``may`` (some reading of
    unmodeled conditions accepts some packet of the flow), ``must`` (every reading accepts,
    for every unit of the flow), and the culprits per rule for attribution."""

    may: AddrSet
    must: AddrSet
    culprits: list[Culprit]
    sources: list[str]


def allowed_addresses(
    rulesets: Iterable[RuleSet], flow: FlowSpec, family: int, extra_interfaces: Iterable[str] = ()
) -> Allowed | None:
    """Evaluate the rule sets of ``family`` for ``flow`` (module docstring); None when no rule
    set of that family was given."""
    from netguard.space import Approx, Engine, evaluate
    from netguard.space.evaluate import POLICY

    chosen = [rs for rs in rulesets if rs.family == family]
    if not chosen:
        return None
    engine = Engine.for_rulesets(*chosen, interfaces=["lo", *extra_interfaces])
    hook = Hook.OUTPUT if flow.direction is Direction.EGRESS else Hook.INPUT
    field_name = "dst" if flow.direction is Direction.EGRESS else "src"
    may_all: AddrSet | None = None
    must_all: AddrSet | None = None
    culprits: list[Culprit] = []
    for unit in flow.units:
        flow_space = engine.space(
            family=family,
            protocols=[6],
            dport=unit.port,
            ct_states=[CtState.NEW],
            dst=unit.local if unit.local is not None else None,
        )
        # The vendor's traffic never crosses the loopback interface: without this, the usual
        # "accept everything on lo" rule would allow every address.
        if flow.direction is Direction.EGRESS:
            flow_space = flow_space - engine.space(out_interfaces=["lo"])
        else:
            flow_space = flow_space - engine.space(in_interfaces=["lo"])
        acc_may = flow_space
        acc_must = flow_space
        for rs in chosen:
            ev = evaluate(rs, hook, engine, Approx.MAY, entry=flow_space)
            acc_may = acc_may & ev.accepted
            evm = evaluate(rs, hook, engine, Approx.MUST, entry=flow_space)
            acc_must = acc_must & evm.accepted
            for key, space in ev.decided_by.items():
                if key.position == POLICY:
                    chain = rs.chains[key.chain]
                    if chain.policy is None or chain.policy.value != "ACCEPT":
                        continue
                    what = f"chain {key.chain} policy ACCEPT"
                    where = str(chain.location) if chain.location else rs.source
                else:
                    rule = rs.chains[key.chain].rules[key.position - 1]
                    if rule.action.kind.value != "ACCEPT":
                        continue
                    what = rule.text
                    loc = rule.location
                    where = f"{loc.path}:{loc.line}" if loc.line else str(loc.path)
                if space.is_empty():
                    continue
                part = project(space & flow_space, field_name, family)
                if not part.is_empty():
                    culprits.append(Culprit(what, where, part))
        may_u = project(acc_may, field_name, family)
        must_u = project(acc_must, field_name, family)
        may_all = may_u if may_all is None else may_all.union(may_u)
        must_all = must_u if must_all is None else must_all.intersection(must_u)
    empty = AddrSet()
    return Allowed(
        may_all if may_all is not None else empty,
        must_all if must_all is not None else empty,
        culprits,
        [rs.source for rs in chosen],
    )
