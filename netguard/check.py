"""``netguard check`` and ``netguard explain``: read deployed configurations, prove or refute.

Configuration files (``--config``, repeatable) are recognised by content
(:func:`detect_format`), never by name:

- ``iptables-save`` / ``ip6tables-save`` text (or ``iptables-restore`` input): the first line
  that is not blank or a ``#`` comment starts with ``*`` (a table), ``:`` (a chain
  declaration), ``-A``/``-I``/``-N`` or a ``[packets:bytes]`` counter;
- ``ipset save`` output or an ``ipset restore`` file: the first such line is an ipset command
  (``create``, ``add``, ``del``, ``flush``, ``destroy``, ``swap``, ``rename``, ``-exist``);
  a file with nothing but comments counts as an (empty) ipset file when a comment mentions
  ipset (netguard writes one when no list needs a set). Every ipset file of the run resolves
  ``--match-set`` in every iptables file of the run;
- ``nft -j list ruleset`` JSON: an object with an ``"nftables"`` list;
- AWS ``describe-security-groups`` JSON: an object with ``"SecurityGroups"`` (or a list of
  groups with ``GroupId``); ``"PrefixLists"`` and ``"NetworkInterfaces"`` documents given in
  the same run resolve prefix lists and group references in every security-group file.

Anything else is :class:`~netguard.errors.InputError` (exit 2) naming the file; reader errors
propagate with file and line (exit 2). A reader module that cannot be imported gives
:class:`CheckError` (exit 3).

Each rule set (one per family and file) is checked on its own against the deployment's Policy
(:mod:`netguard.checks.policy`, :mod:`netguard.checks.anomalies`) at input, output and forward
(a hook without base chains accepts everything, as netfilter does; security groups have no
forward hook, so FORWARD is not checked for them, and a note says so); a family the profile
enables but no file gives is named in the report's notes, not assumed.

Exceptions: the deployment is loaded with every exception accepted (``as_of`` the earliest
date, so an expired one is not an input error as it is for ``generate``), and expiry is judged
here against ``--as-of`` (default today): an expired exception is finding NG301 at its
``expires`` line and its flow is not allowed. The exit code is 0 when compliant (no finding of
severity high or medium), 1 otherwise, whatever ``--format``.

``explain`` traces one packet (:meth:`Packet.parse` syntax) through every rule set of its family
on one hook. The hook defaults to ``output`` (the question is usually "may this host send
that?"); ``--hook input`` asks about packets arriving, ``--hook forward`` about routed ones.
Unmodeled conditions are resolved the permissive way (``Approx.MAY``) and listed.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from netguard.checks import (
    KINDS,
    CheckReport,
    ConfigInfo,
    ExceptionRef,
    Finding,
    find_anomalies,
    fingerprint,
    unmodeled_findings,
)
from netguard.checks.policy import check_ruleset, rules_in_force, unfiltered_findings
from netguard.compile import compile_policy
from netguard.errors import EXIT_FINDINGS, EXIT_OK, InputError, Location, NetguardError
from netguard.model.policy import Policy
from netguard.model.ruleset import ActionKind, Hook, Note, RuleSet
from netguard.profiles import LoadedDeployment, load_deployment
from netguard.report.escape import printable
from netguard.schema import default_as_of
from netguard.space import POLICY, Approx, Engine, Evaluation, Packet, Slicer, trace

__all__ = [
    "CheckError",
    "CheckOptions",
    "ConfigFormat",
    "ExplainOptions",
    "LoadedConfigs",
    "build_report",
    "detect_format",
    "load_configs",
    "run_check",
    "run_explain",
]

_MAX_CONFIG_BYTES = 256 * 1024 * 1024


class CheckError(NetguardError):
    """An operational failure of check/explain (a reader that cannot be loaded): exit 3."""


class ConfigFormat(StrEnum):
    """Formats ``--config`` files are recognised as."""

    IPTABLES = "iptables-save"
    IPSET = "ipset"
    NFT_JSON = "nft-json"
    AWS_SG = "aws-security-groups"
    AWS_PREFIX_LISTS = "aws-prefix-lists"
    AWS_INTERFACES = "aws-network-interfaces"


_IPSET_COMMANDS = ("create ", "add ", "-exist", "flush", "destroy", "del ", "swap ", "rename ")


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            raise InputError.at(Location(path), "not a regular file: expected a configuration file")
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise InputError.at(Location(path), "file too large for a firewall configuration")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError.at(Location(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            # What a Windows PowerShell redirection of `aws ec2 describe-security-groups`
            # writes; the AWS reader decodes it likewise (the text readers do not).
            return raw.decode("utf-16")
        # A leading UTF-8 byte-order mark (Windows editors) is skipped, as the readers do.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError.at(Location(path, line), "not UTF-8 text") from None


def detect_format(path: Path, text: str | None = None) -> ConfigFormat:
    """The format of configuration file ``path`` by its content (module docstring).

    Raises ``InputError`` (exit 2) naming the file when no format fits.
    """
    if text is None:
        text = _read_text(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            if stripped.startswith("{"):
                # Truncated or hand-broken JSON: say where (not "unrecognised").
                raise InputError.at(
                    Location(path, exc.lineno, exc.colno), f"invalid JSON: {exc.msg}"
                ) from None
            data = None  # "[" also opens iptables-save -c counters: read it as text below
        except RecursionError:
            raise InputError.at(Location(path, 1, 1), "invalid JSON: nested too deeply") from None
        if isinstance(data, dict):
            if "nftables" in data:
                return ConfigFormat.NFT_JSON
            if "SecurityGroups" in data:
                return ConfigFormat.AWS_SG
            if "PrefixLists" in data:
                return ConfigFormat.AWS_PREFIX_LISTS
            if "NetworkInterfaces" in data:
                return ConfigFormat.AWS_INTERFACES
        if (
            isinstance(data, list)
            and data
            and all(isinstance(x, dict) and "GroupId" in x for x in data)
        ):
            return ConfigFormat.AWS_SG
        if data is not None or stripped.startswith("{"):
            raise InputError.at(
                Location(path, 1),
                'unrecognised JSON: expected nft -j list ruleset output ({"nftables": [...]}) '
                'or aws ec2 describe-security-groups output ({"SecurityGroups": [...]})',
            )
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            continue
        if word.startswith("#"):
            continue
        if word.startswith(("*", ":", "-A ", "-I ", "-N ", "[")) or word == "COMMIT":
            return ConfigFormat.IPTABLES
        if word.startswith(_IPSET_COMMANDS) or word in ("flush", "destroy"):
            return ConfigFormat.IPSET
        raise InputError.at(
            Location(path, number),
            "unrecognised configuration: expected iptables-save text (*filter, :CHAIN POLICY, "
            "-A ...), ipset save text (create/add), nft -j list ruleset JSON or aws ec2 "
            f"describe-security-groups JSON; got {word[:40]!r}",
        )
    # Nothing but blank and comment lines: `ipset save` on a host without sets prints nothing,
    # so read it as an ipset file with no sets. (Were it an empty iptables-save, its family
    # would be covered by no configuration, which is finding NG105: this cannot fail open.)
    return ConfigFormat.IPSET


@dataclass(frozen=True)
class LoadedConfigs:
    """Rule sets read from the ``--config`` files, and what each file was."""

    rulesets: tuple[RuleSet, ...]
    infos: tuple[ConfigInfo, ...]
    formats: tuple[ConfigFormat, ...] = ()  # the format of each rule set, parallel to rulesets


def load_configs(paths: Sequence[Path]) -> LoadedConfigs:
    """Read every configuration file (formats by content, see the module docstring).

    Raises ``InputError`` for unknown formats or malformed files (every problem of every file
    in one error), ``CheckError`` when a reader cannot be imported.
    """
    if not paths:
        raise InputError.at(Location("--config"), "expected at least one --config FILE")
    formats: dict[Path, ConfigFormat] = {}
    problems: list[tuple[Location, str]] = []
    for path in paths:
        try:
            formats[path] = detect_format(path)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    from netguard.readers.ipset import IpSetInfo, read_ipset_save
    from netguard.readers.iptables_save import read_iptables_save

    ipsets: dict[str, IpSetInfo] = {}
    for path, fmt in formats.items():
        if fmt is ConfigFormat.IPSET:
            try:
                sets = read_ipset_save(path)
            except InputError as exc:
                problems.extend(exc.problems)
                continue
            for name, info in sets.items():
                first = ipsets.get(name)
                if first is not None and (first.type, first.family, first.members) != (
                    info.type,
                    info.family,
                    info.members,
                ):
                    # Which one the kernel holds is unknown: neither may be picked silently.
                    problems.append(
                        (
                            info.location,
                            f"ipset {name!r} is also created, with other contents, at "
                            f"{first.location}: give the `ipset save` output of one host",
                        )
                    )
                    continue
                ipsets.setdefault(name, info)
    prefix_lists = [p for p, f in formats.items() if f is ConfigFormat.AWS_PREFIX_LISTS]
    interfaces = [p for p, f in formats.items() if f is ConfigFormat.AWS_INTERFACES]
    for extra, what in ((prefix_lists, "prefix-list"), (interfaces, "network-interface")):
        if len(extra) > 1:
            problems.append((Location(extra[1]), f"only one AWS {what} file per run is supported"))
    if problems:
        raise InputError(problems)
    rulesets: list[RuleSet] = []
    infos: list[ConfigInfo] = []
    ruleset_formats: list[ConfigFormat] = []
    for path, fmt in formats.items():
        got: list[RuleSet] = []
        try:
            if fmt is ConfigFormat.IPTABLES:
                got = read_iptables_save(path, ipsets=ipsets)
            elif fmt is ConfigFormat.NFT_JSON:
                got = _nft_reader()(path)
            elif fmt is ConfigFormat.AWS_SG:
                got = _aws_reader()(
                    path,
                    prefix_lists=prefix_lists[0] if prefix_lists else None,
                    network_interfaces=interfaces[0] if interfaces else None,
                )
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        rulesets.extend(got)
        ruleset_formats.extend(fmt for _ in got)
        infos.append(ConfigInfo(str(path), fmt.value, tuple(rs.family for rs in got)))
    if problems:
        raise InputError(problems)
    rulesets = _without_iptables_nft_copies(rulesets, ruleset_formats)
    return LoadedConfigs(tuple(rulesets), tuple(infos), tuple(ruleset_formats))


def _without_iptables_nft_copies(
    rulesets: list[RuleSet], formats: list[ConfigFormat]
) -> list[RuleSet]:
    """On an iptables-nft host (iptables 1.8's default backend) ``nft -j list ruleset``
    shows the iptables filter table again, as table ``ip filter`` / ``ip6 filter`` with
    ``xt`` statements whose conditions the JSON omits. When iptables-save output of that
    family is given too, that copy is left out of the nft rule set (with a note): the
    iptables-save text is the exact one. Without iptables-save it stays, read
    conservatively."""
    families = {
        rs.family for rs, fmt in zip(rulesets, formats, strict=True) if fmt is ConfigFormat.IPTABLES
    }
    out: list[RuleSet] = []
    for rs, fmt in zip(rulesets, formats, strict=True):
        prefix = f"{'ip' if rs.family == 4 else 'ip6'} filter/"
        copied = [name for name in rs.chains if name.startswith(prefix)]
        if fmt is not ConfigFormat.NFT_JSON or rs.family not in families or not copied:
            out.append(rs)
            continue
        note = Note(
            Location(rs.source),
            f"nft table {prefix[:-1]} left out: on an iptables-nft host it is the iptables "
            "filter table, checked from the iptables-save output given",
        )
        out.append(
            dataclasses.replace(
                rs,
                chains={k: v for k, v in rs.chains.items() if not k.startswith(prefix)},
                notes=(*rs.notes, note),
            )
        )
    return out


def _nft_reader() -> Any:
    try:
        from netguard.readers.nft_json import read_nft_json
    except ImportError as exc:  # pragma: no cover - the reader ships with netguard
        raise CheckError(f"the nft JSON reader cannot be loaded: {exc}") from None
    return read_nft_json


def _aws_reader() -> Any:
    try:
        from netguard.readers.aws_sg import read_security_groups
    except ImportError as exc:  # pragma: no cover - the reader ships with netguard
        raise CheckError(f"the AWS security-group reader cannot be loaded: {exc}") from None
    return read_security_groups


# --- check ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOptions:
    """Options of ``netguard check``: the deployment file, the configuration files, the
    report format (text, json, sarif, junit) and the date exceptions expire against."""

    deployment: Path
    configs: Sequence[Path]
    format: str = "text"
    as_of: dt.date | None = None
    color: bool | None = None  # None: on a TTY unless NO_COLOR is set
    interfaces: Sequence[str] = field(default=())


def _exception_findings(
    loaded: LoadedDeployment, policy: Policy, as_of: str
) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    notes: list[str] = []
    _, expired = rules_in_force(policy, as_of)
    expired_names = {r.exception.name for r in expired if r.exception is not None}
    kind = KINDS["NG301"]
    for index, exc in enumerate(loaded.profile.exceptions):
        expires = exc.expires.isoformat()
        loc = loaded.source.locate(("exceptions", index, "expires"))
        ref = ExceptionRef(exc.name, exc.reason, expires, exc.ticket, str(loc.path), loc.line)
        ticket = f", ticket {exc.ticket}" if exc.ticket else ""
        if exc.name in expired_names:
            findings.append(
                Finding(
                    kind=kind,
                    severity=kind.severity,
                    check=kind.check,
                    message=(
                        f"exception {exc.name} expired on {expires} (checked as of {as_of}): "
                        f"{exc.reason}{ticket}; its flow ({exc.direction} {exc.protocol} to "
                        f"{', '.join(str(p) for p in exc.peers)}) is no longer permitted"
                    ),
                    remediation=(
                        f"renew exception {exc.name} with a new expiry date, or remove it from "
                        "the profile and the rules that implement it from the configuration"
                    ),
                    fingerprint=fingerprint(kind.code, exc.name, expires),
                    source=str(loc.path),
                    line=loc.line,
                    exception=ref,
                )
            )
        else:
            notes.append(
                f"exception {exc.name} in force until {expires}{ticket}: {exc.reason} "
                f"({exc.direction} {exc.protocol} to {', '.join(str(p) for p in exc.peers)})"
            )
    return findings, notes


def build_report(options: CheckOptions) -> CheckReport:
    """Load the deployment and configurations and run every check.

    Raises ``ProfileError``/``InputError`` (exit 2) for invalid input, ``CheckError`` (exit 3).
    """
    as_of_date = options.as_of or default_as_of()
    as_of = as_of_date.isoformat()
    # Every exception is accepted here (as of the earliest date); expiry is judged below.
    loaded = load_deployment(options.deployment, allow_expired=True)
    policy = compile_policy(loaded.profile)
    configs = load_configs(options.configs)
    extra_ifaces = ["lo", *options.interfaces]
    if policy.tunnel_interface:
        extra_ifaces.append(policy.tunnel_interface)
    engine = Engine.for_rulesets(*configs.rulesets, interfaces=extra_ifaces)
    findings, notes = _exception_findings(loaded, policy, as_of)
    notes.insert(0, f"exceptions checked as of {as_of}")
    skipped_forward = False
    checked: set[tuple[int, Hook]] = set()
    filtered: set[tuple[int, Hook]] = set()
    for ruleset, fmt in zip(configs.rulesets, configs.formats, strict=True):
        may: dict[Hook, Evaluation] = {}
        must: dict[Hook, Evaluation] = {}
        for hook in Hook:
            if fmt is ConfigFormat.AWS_SG and not ruleset.base_chains(hook):
                # Security groups filter what enters and leaves an interface; there is no
                # forward hook to check (an instance that routes is outside their model).
                skipped_forward = skipped_forward or hook is Hook.FORWARD
                continue
            checked.add((ruleset.family, hook))
            if ruleset.base_chains(hook):
                filtered.add((ruleset.family, hook))
            slicer = Slicer(ruleset, hook, engine, Approx.MAY)
            may[hook] = slicer.evaluate()
            # Nothing unmodeled decides a packet: the MUST evaluation is the same walk.
            must[hook] = (
                may[hook] if slicer.exact else Slicer(ruleset, hook, engine, Approx.MUST).evaluate()
            )
        sg = fmt is ConfigFormat.AWS_SG
        findings.extend(check_ruleset(ruleset, policy, may, must, as_of, any_local=sg))
        findings.extend(find_anomalies(ruleset, may, must))
        findings.extend(unmodeled_findings(ruleset))
    # A hook no rule set of the family filters accepts everything (one that another rule set
    # of the family filters is judged by that one).
    for family, hook in sorted(checked - filtered, key=lambda fh: (fh[0], fh[1].value)):
        findings.extend(unfiltered_findings(engine, policy, family, hook, as_of))
    if skipped_forward:
        notes.append("security groups have no forward hook: FORWARD not checked for them")
    given = {rs.family for rs in configs.rulesets}
    for family in policy.families:
        if family not in given:
            # Fail closed: nothing proven about a family is not compliance for it.
            kind = KINDS["NG105"]
            findings.append(
                Finding(
                    kind=kind,
                    severity=kind.severity,
                    check=kind.check,
                    message=(
                        f"the profile enables IPv{family} but no configuration of that family "
                        f"was given: nothing about IPv{family} is proven"
                    ),
                    remediation=(
                        f"add the IPv{family} rules with --config "
                        f"({'iptables-save' if family == 4 else 'ip6tables-save'} output), or "
                        f"remove ipv{family} from the profile's families"
                    ),
                    fingerprint=fingerprint(kind.code, str(family)),
                    family=family,
                )
            )
    unique: dict[tuple[str, str], Finding] = {}
    for f in findings:
        unique.setdefault((f.code, f.fingerprint + str(f.location)), f)
    ordered = tuple(sorted(unique.values(), key=Finding.sort_key))
    return CheckReport(
        deployment=policy.name,
        mode=policy.mode,
        deployment_file=str(options.deployment),
        as_of=as_of,
        configs=configs.infos,
        findings=ordered,
        notes=tuple(notes),
    )


def _use_color(out: TextIO, requested: bool | None) -> bool:
    if requested is not None:
        return requested
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def run_check(options: CheckOptions, out: TextIO, err: TextIO) -> int:
    """Run ``netguard check``: the report goes to ``out`` in ``options.format``, a one-line
    summary to ``err`` (formats other than text). Returns 0 when compliant, 1 when not.

    Raises ``InputError``/``ProfileError`` (exit 2), ``CheckError`` (exit 3).
    """
    from netguard.report import render

    report = build_report(options)
    text = render(report, options.format, color=_use_color(out, options.color))
    out.write(text)
    out.flush()
    if options.format != "text":
        from netguard.report.text import summary_line

        err.write(summary_line(report) + "\n")
    return EXIT_OK if report.compliant else EXIT_FINDINGS


# --- explain ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainOptions:
    """Options of ``netguard explain``: configuration files, the packet (text form of
    :class:`Packet`) and the hook (None: output)."""

    configs: Sequence[Path]
    packet: str
    hook: Hook | None = None


def _rule_line(ruleset: RuleSet, chain: str, position: int) -> str:
    if position == POLICY:
        c = ruleset.chains[chain]
        policy = c.policy or ActionKind.ACCEPT
        where = f" [{_where(c.location)}]" if c.location is not None else ""
        return f"chain {chain} policy {policy.value}{where}"
    rule = ruleset.chains[chain].rules[position - 1]
    return f"{rule.text} [{_where(rule.location)}]"


def _where(loc: Location) -> str:
    """``file:line`` (no column): how rules are cited."""
    return f"{loc.path}:{loc.line}" if loc.line else str(loc.path)


def _loc(loc: Location | None) -> str:
    return _where(loc) if loc is not None else "?"


def explain_lines(ruleset: RuleSet, hook: Hook, packet: Packet) -> list[str]:
    """The trace of ``packet`` through ``ruleset`` at ``hook`` as text lines, the verdict last."""
    steps = trace(ruleset, hook, packet, Approx.MAY)
    lines: list[str] = []
    assumed: list[str] = []
    for step in steps:
        if step.position:
            state = "matched" if step.matched else "no match"
            verdict = f" => {step.verdict.value}" if step.verdict is not None else ""
            lines.append(
                f"  {step.chain} rule {step.position}: {step.text} [{_loc(step.location)}] "
                f"-> {state}{verdict}"
            )
        else:
            where = f" [{_where(step.location)}]" if step.location is not None else ""
            verdict = f" => {step.verdict.value}" if step.verdict is not None else ""
            lines.append(f"  {step.chain + ': ' if step.chain else ''}{step.text}{where}{verdict}")
        assumed.extend(step.assumed)
    last = steps[-1]
    verdict = last.verdict or ActionKind.ACCEPT
    if last.position:
        rule = ruleset.chains[last.chain].rules[last.position - 1]
        comment = f' "{rule.comment}"' if rule.comment else ""
        by = f"{last.chain} rule {last.position}{comment} ({_where(rule.location)})"
    elif last.chain:
        by = _rule_line(ruleset, last.chain, POLICY)
    else:
        by = last.text
    lines.append(f"verdict: {verdict.value} by {by}")
    if assumed:
        lines.append(
            "note: conditions netguard cannot model were assumed to let the packet through: "
            + "; ".join(dict.fromkeys(assumed))
        )
    # Rule texts come from the configuration: none of their control characters reaches the
    # terminal.
    return [printable(line) for line in lines]


def run_explain(options: ExplainOptions, out: TextIO, err: TextIO) -> int:
    """Run ``netguard explain``: print which rule decides the packet and its path through the
    chains of every rule set of the packet's family. Returns 0.

    Raises ``InputError`` (exit 2) for a malformed packet (saying what was expected), invalid
    configurations, or no rule set of the packet's family.
    """
    try:
        packet = Packet.parse(options.packet)
    except ValueError as exc:
        raise InputError.at(Location("--packet"), str(exc)) from None
    configs = load_configs(options.configs)
    hook = options.hook or Hook.OUTPUT
    chosen = [rs for rs in configs.rulesets if rs.family == packet.family]
    if not chosen:
        raise InputError.at(
            Location("--config"),
            f"no IPv{packet.family} rule set among the configurations given "
            f"({', '.join(i.path for i in configs.infos)})",
        )
    default = "" if options.hook else " (default; --hook input for packets arriving)"
    out.write(f"packet: {packet}\nhook: {hook.value}{default}\n")
    for rs in chosen:
        out.write("\n" + printable(f"config: {rs.source} (IPv{rs.family})") + "\n")
        for line in explain_lines(rs, hook, packet):
            out.write(line + "\n")
    out.flush()
    return EXIT_OK
