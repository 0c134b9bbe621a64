"""``netguard drift``: the allowlist in force against the one that should be, as address sets.

For each compared direction (egress destinations, ingress sources, or plain addresses when
neither side says) and address family:

- EXTRA = actual - desired: allowed and should not be (the security risk, listed first), each
  aggregated range with what allows it (rule, set member, security-group entry or list line);
- MISSING = desired - actual: should be allowed and is not.

For firewall rule sets, EXTRA uses what *may* be accepted (unmodeled conditions read
permissively) and MISSING what *must* be accepted for every port (and receiver) of the flow,
so neither is understated (:mod:`netguard.drift.sources`).

Desired side: ``DEPLOYMENT`` (egress: the peers of the profile's egress TCP rules for the
flow's ports: the vendor API ranges, plus any exception of that flow; ingress: the webhook
ranges for the webhook receivers' ports), optionally with the vendor ranges replaced by a feed
(``--feed``); or ``--desired SOURCE`` without a profile.

Exit codes: 0 no drift and no finding, 1 drift or an entry with host bits set, 2 invalid input
(including a stale feed), 3 could not run. ``--format json`` never changes the code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from netguard import __version__
from netguard._ascii import is_digits
from netguard.aws_quota import SgQuotas
from netguard.cidr import PrefixSet
from netguard.drift.addrs import AddrSet, EntryFinding
from netguard.drift.feeds import FeedVersion, check_feed_state, read_feed, record_feed_state
from netguard.drift.sources import (
    Allowed,
    Culprit,
    Direction,
    FlowSpec,
    FlowUnit,
    Side,
    allowed_addresses,
    load_side,
)
from netguard.errors import EXIT_FINDINGS, EXIT_OK, InputError, Location, OutputError

__all__ = ["Comparison", "DriftOptions", "DriftReport", "build_drift", "run_drift"]

JSON_VERSION = 1
_TEXT_LIMIT = 50  # prefixes listed per section in text output (JSON lists all)
_ATTRIBUTE_LIMIT = 200  # EXTRA ranges given culprits
_NOTE_LIMIT = 10  # configuration readers' notes named in the report


@dataclass(frozen=True)
class DriftOptions:
    """Options of ``netguard drift`` (see ``netguard drift --help``)."""

    deployment: Path | None = None
    actual: Sequence[str] = ()
    desired: Sequence[str] = ()
    feed: str | None = None
    feed_direction: str = "egress"
    feed_state: Path | None = None
    services: Sequence[str] = ()
    regions: Sequence[str] = ()
    keys: Sequence[str] = ()
    set_names: Sequence[str] = ()
    ports: Sequence[int] = ()
    direction: str = "both"
    format: str = "text"
    fix: str | None = None
    as_of: dt.date | None = None


@dataclass
class Comparison:
    """One direction and family: the two sets, EXTRA and MISSING, and culprits per EXTRA
    range (aggregated prefix text -> culprits)."""

    direction: Direction
    family: int
    flow: str
    desired: AddrSet
    actual: AddrSet
    extra: AddrSet
    missing: AddrSet
    culprits: dict[str, list[Culprit]] = field(default_factory=dict)
    attributed_all: bool = True
    spec: FlowSpec | None = None  # the flow compared (None: plain address lists)
    accepting: list[Culprit] = field(default_factory=list)  # every rule accepting the flow
    interfaces: tuple[str, ...] = ()  # interfaces the evaluation named (the VPN tunnel)

    @property
    def ports(self) -> tuple[int, ...]:
        """The TCP destination ports of the flow, sorted (empty for plain lists)."""
        if self.spec is None:
            return ()
        return tuple(sorted({u.port for u in self.spec.units}))

    @property
    def drift(self) -> bool:
        """True when the sets differ."""
        return not (self.extra.is_empty() and self.missing.is_empty())


@dataclass
class DriftReport:
    """Everything ``netguard drift`` prints."""

    deployment: str | None
    desired: Side
    actual: Side
    comparisons: list[Comparison]
    findings: list[EntryFinding]
    notes: list[str]
    feed: FeedVersion | None = None
    quotas: SgQuotas | None = None
    #: Temporary file of a snapshot's part -> how to name it (``SNAPSHOT part NAME``).
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """True when any comparison differs."""
        return any(c.drift for c in self.comparisons)

    @property
    def exit_code(self) -> int:
        """0 clean, 1 drift or a host-bits finding."""
        bad = self.drift or any(f.kind == "host-bits" for f in self.findings)
        return EXIT_FINDINGS if bad else EXIT_OK


# --- desired from a profile ------------------------------------------------------------------


@dataclass
class _ProfileDesired:
    """Desired sets and flows per (direction, family). Egress is there for every family of the
    profile (the desired set may be empty in one: then all the actual side allows is EXTRA);
    an ingress key is absent when no webhook receiver has an address in that family."""

    name: str
    families: tuple[int, ...]
    sets: dict[tuple[Direction, int], PrefixSet]
    flows: dict[tuple[Direction, int], FlowSpec]
    tunnel: str | None
    quotas: SgQuotas
    allowlists: dict[Direction, PrefixSet] = field(default_factory=dict)


def _profile_desired(options: DriftOptions, feed_set: PrefixSet | None) -> _ProfileDesired:
    from netguard.compile import compile_policy
    from netguard.model.policy import Direction as PDir
    from netguard.model.policy import Protocol
    from netguard.profiles import load_deployment

    assert options.deployment is not None
    loaded = load_deployment(options.deployment, as_of=options.as_of)
    policy = compile_policy(loaded.profile)
    sets: dict[tuple[Direction, int], PrefixSet] = {}
    flows: dict[tuple[Direction, int], FlowSpec] = {}
    feed_egress = feed_set if options.feed_direction in ("egress", "both") else None
    feed_ingress = feed_set if options.feed_direction in ("ingress", "both") else None
    # Egress: the vendor API rule defines the flow (its ports); every egress TCP rule that
    # permits one of those ports contributes its peers (exceptions of the same flow).
    api = next(r for r in policy.rules if r.id == "egress-vendor-api")
    ports = sorted({p for pr in api.ports for p in range(pr.first, pr.last + 1)})
    # Every family of the profile is compared, also when the desired list is empty in it (a
    # feed or profile with IPv4 ranges only): then every address the actual side allows in
    # that family is EXTRA, not "not compared".
    for fam in policy.families:
        egress = PrefixSet((), ())
        for r in policy.rules_for(PDir.EGRESS):
            if r.protocol is not Protocol.TCP:
                continue
            if not any(pr.first <= p <= pr.last for pr in r.ports for p in ports):
                continue
            peers = r.peer.prefixes
            if r.id == "egress-vendor-api" and feed_egress is not None:
                peers = feed_egress
            egress = egress.union(peers)
        sets[(Direction.EGRESS, fam)] = egress
        flows[(Direction.EGRESS, fam)] = FlowSpec(
            Direction.EGRESS, tuple(FlowUnit(p) for p in ports)
        )
        units: list[FlowUnit] = []
        ingress: PrefixSet | None = None
        for r in policy.rules_for(PDir.INGRESS):
            if not r.id.startswith("ingress-webhook-") or r.protocol is not Protocol.TCP:
                continue
            peers = feed_ingress if feed_ingress is not None else r.peer.prefixes
            local = r.local.prefixes if r.local is not None else None
            if local is not None and not local.prefixes(fam):
                continue  # this receiver has no address in this family: no such flow
            for pr in r.ports:
                units.extend(FlowUnit(p, local) for p in range(pr.first, pr.last + 1))
            ingress = peers if ingress is None else ingress.union(peers)
        if ingress is not None and units:
            sets[(Direction.INGRESS, fam)] = ingress
            flows[(Direction.INGRESS, fam)] = FlowSpec(Direction.INGRESS, tuple(units))
    aws = policy.aws
    quotas = SgQuotas(aws.rules_per_group, aws.groups_per_interface, aws.max_rules_times_groups)
    # The allowlists are unions of every rule's peers (netguard.compile); with a feed, the
    # vendor's part is the feed's (else a netguard allowlist would be compared with the
    # profile's own, possibly outdated, vendor ranges and the feed ignored).
    allowlists = {Direction.EGRESS: PrefixSet(), Direction.INGRESS: PrefixSet()}
    for r in policy.rules:
        peers = r.peer.prefixes
        if r.direction is PDir.EGRESS:
            if r.id == "egress-vendor-api" and feed_egress is not None:
                peers = feed_egress
            allowlists[Direction.EGRESS] = allowlists[Direction.EGRESS].union(peers)
        else:
            if r.id.startswith("ingress-webhook-") and feed_ingress is not None:
                peers = feed_ingress
            allowlists[Direction.INGRESS] = allowlists[Direction.INGRESS].union(peers)
    return _ProfileDesired(
        policy.name, policy.families, sets, flows, policy.tunnel_interface, quotas, allowlists
    )


# --- comparing ---------------------------------------------------------------------------------


def _side_value(
    side: Side, direction: Direction, flow: FlowSpec | None, family: int, tunnel: str | None
) -> tuple[AddrSet, AddrSet, list[Culprit], list[Culprit]] | None:
    """(may, must, rule culprits, list culprits) of a side, or None when it says nothing."""
    parts: list[AddrSet] = []
    list_culprits: list[Culprit] = []
    for name, addrs, parsed in side.lists:
        fam = addrs.family(family)
        parts.append(fam)
        if parsed is None and not side.ipset_elements:
            list_culprits.append(Culprit(f"member of {name}", name, fam))
    for name, addrs in side.directed.get(direction, []):
        fam = addrs.family(family)
        parts.append(fam)
        list_culprits.append(Culprit(f"entry of {name}", name, fam))
    allowed: Allowed | None = None
    if side.rulesets and flow is not None:
        allowed = allowed_addresses(side.rulesets, flow, family, [tunnel] if tunnel else [])
    if allowed is None and not side.lists and not side.directed.get(direction):
        return None
    may = AddrSet()
    for p in parts:
        may = may.union(p)
    must = may
    culprits: list[Culprit] = []
    if allowed is not None:
        may = may.union(allowed.may)
        must = must.union(allowed.must)
        culprits = allowed.culprits
    return may, must, culprits, list_culprits


def _attribute(
    side: Side, comp: Comparison, rule_culprits: list[Culprit], list_c: list[Culprit]
) -> None:
    """Name what allows each EXTRA range (up to ``_ATTRIBUTE_LIMIT`` ranges)."""
    fam = comp.family
    ranges = comp.extra.intervals(fam)
    prefixes_by_range: list[tuple[str, int, int]] = []
    from netguard.cidr import interval_to_prefixes

    for a, b in ranges:
        for p in interval_to_prefixes(a, b, fam):
            first = int(p.network_address)
            prefixes_by_range.append((str(p), first, first + p.num_addresses - 1))
            if len(prefixes_by_range) >= _ATTRIBUTE_LIMIT:
                break
        if len(prefixes_by_range) >= _ATTRIBUTE_LIMIT:
            comp.attributed_all = False
            break
    for text, first, last in prefixes_by_range:
        one = AddrSet.from_prefixes([text])
        found: list[Culprit] = []
        for c in rule_culprits:
            if not c.addrs.intersection(one).is_empty():
                found.append(c)
                for set_name in _match_sets(c.what):
                    for el in side.ipset_elements:
                        if (
                            el.set_name == set_name
                            and el.family == fam
                            and el.first <= last
                            and el.last >= first
                        ):
                            where = f"{el.location.path}:{el.location.line}"
                            found.append(Culprit(el.text, where, one))
        if not side.rulesets:  # an ipset file given alone: its members are the list
            for el in side.ipset_elements:
                if el.family == fam and el.first <= last and el.last >= first:
                    where = f"{el.location.path}:{el.location.line}"
                    found.append(Culprit(el.text, where, one))
        for name, _addrs, parsed in side.lists:
            if parsed is None:
                continue
            for line in parsed.entries_overlapping(fam, first, last)[:10]:
                found.append(Culprit(parsed.line_text(line), f"{name}:{line}", one))
        for c in list_c:
            if not c.addrs.intersection(one).is_empty():
                found.append(c)
        comp.culprits[text] = found


def _match_sets(rule_text: str) -> list[str]:
    words = rule_text.split()
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--match-set"]


def _snapshot_parts(source: str, into: Path) -> list[str] | None:
    """The parts of ``source`` written out as files in ``into`` when it is a netguard
    snapshot or a snapshot store (its newest snapshot, ``netguard snapshot``), else None.
    The snapshot is verified first (a damaged one is ``InputError``)."""
    if source == "-" or source.startswith("aws:"):
        return None
    path = Path(source)
    try:
        if path.is_dir():
            from netguard.review.snapshot import resolve_end

            snap = resolve_end(path)
        elif path.is_file():
            with path.open("rb") as fh:
                head = fh.read(4096).decode("utf-8", errors="replace")
            from netguard.review.snapshot import is_snapshot_text, load_snapshot

            if not is_snapshot_text(head):
                return None
            snap = load_snapshot(path)
        else:
            return None
    except OSError:
        return None  # read (and reported) as any other source
    folder = into / f"{path.name}.parts"
    folder.mkdir(parents=True)
    out: list[str] = []
    for part in snap.parts:
        target = folder / part.name
        target.write_text(part.text, encoding="utf-8")
        out.append(str(target))
    return out


def build_drift(options: DriftOptions) -> DriftReport:
    """Load both sides and compare them (module docstring). A source that is a netguard
    snapshot (or snapshot store) stands for the configurations it recorded.

    Raises ``InputError``/``ProfileError`` (exit 2; a stale feed too) and ``NetguardError``
    (exit 3).
    """
    with tempfile.TemporaryDirectory(prefix="netguard-drift-") as tmp:
        expanded: dict[str, list[str]] = {}
        labels: dict[str, str] = {}
        for which in ("actual", "desired"):
            sources: list[str] = []
            for n, source in enumerate(getattr(options, which)):
                parts = _snapshot_parts(source, Path(tmp) / which / str(n))
                for part in parts or ():
                    labels[part] = f"{source} part {Path(part).name}"
                sources.extend(parts if parts is not None else [source])
            expanded[which] = sources
        try:
            report = _build_drift(
                dataclasses.replace(options, actual=expanded["actual"], desired=expanded["desired"])
            )
        except InputError as exc:
            raise InputError(
                [
                    (Location(relabel(str(loc.path), labels), loc.line, loc.column), msg)
                    for loc, msg in exc.problems
                ]
            ) from None
        report.labels = labels
        return report


def relabel(text: str, labels: dict[str, str], *, json_text: bool = False) -> str:
    """``text`` with each temporary part file of a snapshot source (``labels`` keys) named as
    ``SNAPSHOT part NAME`` instead; ``json_text``: inside JSON strings (escaped)."""
    for path, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
        if json_text:
            path, label = json.dumps(path)[1:-1], json.dumps(label)[1:-1]
        text = text.replace(path, label)
    return text


def _build_drift(options: DriftOptions) -> DriftReport:
    if not options.actual:
        raise InputError.at(Location("--actual"), "expected at least one --actual SOURCE")
    if options.deployment is None and not options.desired:
        raise InputError.at(
            Location("drift"), "expected a DEPLOYMENT file or --desired SOURCE to compare with"
        )
    if options.deployment is not None and options.desired:
        raise InputError.at(
            Location("--desired"), "give either a DEPLOYMENT file or --desired, not both"
        )
    if [*options.desired, *options.actual].count("-") > 1:
        # Standard input can be read once: a second "-" would read nothing and report all of
        # the other side as drift.
        raise InputError.at(Location("-"), "standard input (-) can be given only once")
    notes: list[str] = []
    feed_version: FeedVersion | None = None
    feed_set: PrefixSet | None = None
    findings: list[EntryFinding] = []
    if options.feed is not None:
        path = Path(options.feed)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None
        feed = read_feed(
            options.feed,
            data,
            services=options.services,
            regions=options.regions,
            keys=options.keys,
        )
        if (options.services or options.regions) and feed.version.kind not in (
            "aws",
            "google",
            "atlassian",
        ):
            # Ignoring the filters would compare with the whole list the user meant to narrow.
            raise InputError.at(
                Location(options.feed),
                f"--service/--region filter AWS, Google and Atlassian feeds; this is a "
                f"{feed.version.kind} feed (use --key for a GitHub-meta-style feed)",
            )
        if feed.addrs.is_empty():
            # An empty list in place of the vendor's ranges makes every allowed address
            # EXTRA: a truncated download is refused, not used.
            raise InputError.at(Location(options.feed), "the feed holds no prefix")
        feed_version = feed.version
        feed_set = feed.addrs.to_prefix_set()
        findings.extend(feed.findings)
    profile: _ProfileDesired | None = None
    if options.deployment is not None:
        profile = _profile_desired(options, feed_set)
        desired = Side("desired")
        desired.sources.append((str(options.deployment), "deployment profile"))
        if feed_version is not None:
            desired.feeds.append(feed_version)
            desired.sources.append((feed_version.source, f"{feed_version.kind} feed"))
    else:
        desired = load_side(
            "desired",
            options.desired,
            services=options.services,
            regions=options.regions,
            keys=options.keys,
            set_names=options.set_names,
        )
        if feed_set is not None:
            assert feed_version is not None
            desired.lists.append((feed_version.source, AddrSet.from_prefix_set(feed_set), None))
            desired.feeds.append(feed_version)
    if options.feed_state is not None:
        for version in desired.feeds:
            check_feed_state(version, options.feed_state)
            if not version.date and not is_digits(version.token):
                # An etag or a content hash has no order: say so rather than imply a check.
                notes.append(
                    f"{version.source}: the {version.kind} feed has no date or numeric "
                    "version, so --feed-state cannot tell whether it is older than the last one"
                )
    actual = load_side(
        "actual",
        options.actual,
        set_names=options.set_names,
        services=options.services,
        regions=options.regions,
        keys=options.keys,
    )
    findings.extend(desired.findings)
    findings.extend(actual.findings)
    notes.extend(desired.notes)
    notes.extend(actual.notes)
    comparisons: list[Comparison] = []
    directions: list[Direction]
    flows: dict[tuple[Direction, int], FlowSpec]
    if profile is not None:
        families: tuple[int, ...] = profile.families
        directions = [Direction.EGRESS, Direction.INGRESS]
        flows = dict(profile.flows)
        tunnel = profile.tunnel
    else:
        families = (4, 6)
        tunnel = None
        ports = tuple(options.ports) or (443,)
        directed = actual.has_rules or desired.has_rules or actual.directed or desired.directed
        directions = [Direction.EGRESS, Direction.INGRESS] if directed else [Direction.ADDRESSES]
        flows = {
            (d, f): FlowSpec(d, tuple(FlowUnit(p) for p in ports))
            for d in (Direction.EGRESS, Direction.INGRESS)
            for f in (4, 6)
        }
    if options.direction in ("egress", "ingress") and directions != [Direction.ADDRESSES]:
        directions = [d for d in directions if d.value == options.direction]
    for direction in directions:
        for family in families:
            flow = flows.get((direction, family))
            flow_text = (
                flow.describe(family)
                if flow is not None and direction is not Direction.ADDRESSES
                else ""
            )
            if profile is not None:
                allowlist_only = (
                    bool(actual.directed.get(direction))
                    and not actual.rulesets
                    and not actual.lists
                )
                if allowlist_only:
                    # A netguard allowlist holds every peer of the direction (DNS resolvers,
                    # exceptions, ...): compare it with the profile's allowlist of that name.
                    want_ps = profile.allowlists[direction]
                    flow_text = "netguard allowlist"
                elif (direction, family) in profile.sets:
                    want_ps = profile.sets[(direction, family)]
                else:
                    continue  # the profile has no such flow in this family
                want = AddrSet.from_prefix_set(want_ps).family(family)
            else:
                dv = _side_value(desired, direction, flow, family, tunnel)
                if dv is None:
                    continue
                want = dv[0]
            av = _side_value(actual, direction, flow, family, tunnel)
            if av is None:
                if profile is not None:
                    notes.append(
                        f"no IPv{family} source on the actual side: {direction.value} "
                        f"IPv{family} not compared"
                    )
                continue
            may, must, rule_c, list_c = av
            comp = Comparison(
                direction,
                family,
                flow_text,
                want,
                may,
                may.difference(want),
                want.difference(must),
                spec=flow if direction is not Direction.ADDRESSES else None,
                interfaces=(tunnel,) if tunnel else (),
                accepting=rule_c,
            )
            if not comp.extra.is_empty():
                _attribute(actual, comp, rule_c, list_c)
            comparisons.append(comp)
    if not comparisons:
        # Saying "no drift" (exit 0) when nothing was compared would hide every difference.
        raise InputError.at(
            Location(", ".join(options.actual)),
            "nothing to compare: the actual sources hold no address list or rule for any "
            "direction and address family of the desired side"
            + (f" ({'; '.join(notes)})" if notes else ""),
        )
    if any(rs.notes for rs in actual.rulesets):  # the readers' notes: what they could not model
        count = sum(len(rs.notes) for rs in actual.rulesets)
        notes.append(
            f"the configuration readers noted {count} thing(s) they do not model "
            "(see netguard check); EXTRA assumes they may allow, MISSING that they may not"
        )
        # Name them (a rule matching an ipset that was not given explains an EXTRA of every
        # address at once); identical notes of the IPv4 and IPv6 rule sets once.
        reader_notes = dict.fromkeys(
            f"{n.location}: {n.message}" for rs in actual.rulesets for n in rs.notes
        )
        shown = list(reader_notes)[:_NOTE_LIMIT]
        notes.extend(f"  {n}" for n in shown)
        if len(reader_notes) > len(shown):
            notes.append(f"  ... and {len(reader_notes) - len(shown)} more (netguard check)")
    if options.feed_state is not None:
        for version in desired.feeds:
            record_feed_state(version, options.feed_state)
    return DriftReport(
        profile.name if profile is not None else None,
        desired,
        actual,
        comparisons,
        findings,
        notes,
        feed_version,
        profile.quotas if profile is not None else None,
    )


# --- output ------------------------------------------------------------------------------------


_TITLES = {
    Direction.EGRESS: "egress destinations",
    Direction.INGRESS: "ingress sources",
    Direction.ADDRESSES: "addresses",
}


def _count_text(n: int) -> str:
    return f"{n} address{'es' if n != 1 else ''}"


def render_text(report: DriftReport) -> str:
    """The human report: EXTRA before MISSING in every section."""
    out: list[str] = []
    head = "netguard drift"
    if report.deployment:
        head += f": {report.deployment}"
    out.append(head)
    for label, side in (("desired", report.desired), ("actual", report.actual)):
        srcs = ", ".join(f"{s} ({k})" for s, k in side.sources)
        out.append(f"{label}: {srcs}")
        for v in side.feeds:
            out.append(f"  feed: {v}")
    for comp in report.comparisons:
        flow = f" ({comp.flow})" if comp.flow else ""
        title = f"{_TITLES[comp.direction]} IPv{comp.family}{flow}"
        if not comp.drift:
            n = comp.desired.prefix_count(comp.family)
            out.append(
                f"\n{title}: no drift ({n} prefix{'es' if n != 1 else ''}, "
                f"{_count_text(comp.desired.num_addresses(comp.family))})"
            )
            continue
        out.append(f"\n{title}: DRIFT")
        for name, addrs, what in (
            ("EXTRA", comp.extra, "allowed, should not be"),
            ("MISSING", comp.missing, "should be allowed, is not"),
        ):
            if addrs.is_empty():
                continue
            prefixes = addrs.prefixes(comp.family)
            out.append(
                f"  {name} ({what}): {len(prefixes)} prefix{'es' if len(prefixes) != 1 else ''}"
                f", {_count_text(addrs.num_addresses(comp.family))}"
            )
            for p in prefixes[:_TEXT_LIMIT]:
                out.append(f"    {p}")
                if name == "EXTRA":
                    for c in comp.culprits.get(p, []):
                        out.append(f"      allowed by: {c.what} [{c.location}]")
            if len(prefixes) > _TEXT_LIMIT:
                out.append(f"    ... and {len(prefixes) - _TEXT_LIMIT} more (--format json)")
    if report.findings:
        out.append("\nfindings:")
        for f in report.findings:
            out.append(f"  {f.location}: {f.message()}")
    if report.notes:
        out.append("\nnotes:")
        for note in report.notes:
            out.append(f"  {note}")
    out.append("")
    out.append(summary_line(report))
    return "\n".join(out) + "\n"


def summary_line(report: DriftReport) -> str:
    """One line: drift or not, EXTRA and MISSING counts."""
    extra = sum(c.extra.prefix_count(c.family) for c in report.comparisons)
    missing = sum(c.missing.prefix_count(c.family) for c in report.comparisons)
    hb = sum(1 for f in report.findings if f.kind == "host-bits")
    state = "DRIFT" if report.drift else "no drift"
    tail = f", {hb} entr{'ies' if hb != 1 else 'y'} with host bits set" if hb else ""
    return f"summary: {state}: {extra} EXTRA prefix(es), {missing} MISSING prefix(es){tail}"


def render_json(report: DriftReport) -> str:
    """The JSON report (``format`` ``netguard-drift``, ``version`` 1)."""
    comps: list[dict[str, Any]] = []
    for c in report.comparisons:
        extra = c.extra.prefixes(c.family)
        comps.append(
            {
                "direction": c.direction.value,
                "family": c.family,
                "flow": c.flow,
                "drift": c.drift,
                "desired": {
                    "prefixes": c.desired.prefix_count(c.family),
                    "addresses": c.desired.num_addresses(c.family),
                },
                "actual": {
                    "prefixes": c.actual.prefix_count(c.family),
                    "addresses": c.actual.num_addresses(c.family),
                },
                "extra": {
                    "prefixes": extra,
                    "addresses": c.extra.num_addresses(c.family),
                    "allowed_by": {
                        p: [{"what": x.what, "where": x.location} for x in c.culprits[p]]
                        for p in extra
                        if p in c.culprits
                    },
                    "attribution_complete": c.attributed_all,
                },
                "missing": {
                    "prefixes": c.missing.prefixes(c.family),
                    "addresses": c.missing.num_addresses(c.family),
                },
            }
        )
    doc = {
        "format": "netguard-drift",
        "version": JSON_VERSION,
        "generator": f"netguard {__version__}",
        "deployment": report.deployment,
        "drift": report.drift,
        "desired": {
            "sources": [{"source": s, "kind": k} for s, k in report.desired.sources],
            "feeds": [v.as_dict() for v in report.desired.feeds],
        },
        "actual": {
            "sources": [{"source": s, "kind": k} for s, k in report.actual.sources],
            "feeds": [v.as_dict() for v in report.actual.feeds],
        },
        "comparisons": comps,
        "findings": [
            {
                "kind": f.kind,
                "where": str(f.location),
                "entry": f.text,
                "read_as": f.read_as,
                "message": f.message(),
            }
            for f in report.findings
        ],
        "notes": report.notes,
    }
    return json.dumps(doc, indent=2) + "\n"


def _emit(out: TextIO, text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # disk full, I/O error: could not run (exit 3), not a crash
        raise OutputError(f"cannot write the report: {exc.strerror or exc}") from None


def run_drift(options: DriftOptions, out: TextIO, err: TextIO) -> int:
    """Run ``netguard drift``: the report (or, with ``fix``, the change) to ``out``; a summary
    line to ``err`` for JSON and fixes. Returns 0 no drift, 1 drift.

    Raises ``InputError`` (exit 2), ``NetguardError`` (exit 3).
    """
    report = build_drift(options)
    if options.fix is not None:
        from netguard.drift.fix import render_fix

        text = relabel(render_fix(report, options.fix, options.set_names), report.labels)
        _emit(out, text)
        err.write(summary_line(report) + "\n")
        return report.exit_code
    if options.format == "json":
        text = relabel(render_json(report), report.labels, json_text=True)
    else:
        text = relabel(render_text(report), report.labels)
    _emit(out, text)
    if options.format == "json":
        err.write(summary_line(report) + "\n")
    return report.exit_code
