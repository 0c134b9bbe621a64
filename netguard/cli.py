"""Command-line interface: parses options, calls a ``run_*`` function, maps errors to exit codes.

The only module that imports click. Exit codes: 0 clean, 1 findings, 2 usage or invalid input,
3 operational failure (README "Exit codes"). No traceback reaches a user unless NETGUARD_DEBUG=1.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from netguard import __version__
from netguard.errors import EXIT_INVALID, EXIT_OK, EXIT_OPERATIONAL, InputError, NetguardError
from netguard.render import RENDERERS, Target


def _run(func: Callable[[], int]) -> None:
    """Run a command body and exit with its code, turning errors into messages."""
    # A run builds up to millions of long-lived objects (prefixes, rules, BDD nodes); with
    # CPython's default thresholds the cyclic collector rescans them dozens of times (about 40%
    # of a 100,000-prefix generate). The process is short-lived: collect far less often.
    gc.set_threshold(100_000, 50, 100)
    try:
        code = func()
    except InputError as exc:
        for loc, msg in exc.problems:
            click.echo(f"error: {loc}: {msg}", err=True)
        code = exc.exit_code
    except NetguardError as exc:
        click.echo(f"error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = EXIT_OPERATIONAL
    except Exception as exc:
        if os.environ.get("NETGUARD_DEBUG") == "1":
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set NETGUARD_DEBUG=1 for details)",
            err=True,
        )
        code = EXIT_OPERATIONAL
    sys.exit(code)


if TYPE_CHECKING:  # click >= 8.2 types ParamType as a generic; older releases do not
    _DateParam = click.ParamType[dt.date]
else:
    _DateParam = click.ParamType


class DateType(_DateParam):
    """A calendar date written YYYY-MM-DD (ISO 8601); a bad one is a usage error (exit 2)."""

    name = "date"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        text = str(value)
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError(text)
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(f"expected a date YYYY-MM-DD, got {value!r}", param, ctx)


def _output_dir(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    """``-o`` as a Path; an empty string (which would mean the current directory) is refused."""
    if not value:
        raise click.BadParameter("expected an output directory, got an empty string")
    return Path(value)


AS_OF = click.option(
    "--as-of",
    type=DateType(),
    metavar="YYYY-MM-DD",
    help="Check exception expiry against this date instead of today "
    "(default: $NETGUARD_AS_OF if set).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netguard")
def main() -> None:
    """netguard: firewall rules and allowlists for connecting to a SaaS vendor."""


@main.command()
@click.argument("deployment", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    callback=_output_dir,
    type=click.Path(file_okay=False),
    help="Output directory (created if missing).",
)
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    type=click.Choice([t.value for t in RENDERERS]),
    help="Target to generate (repeatable). Default: all.",
)
@click.option(
    "--templates",
    "template_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Directory of templates overriding the bundled ones (same relative names).",
)
@AS_OF
def generate(
    deployment: Path,
    out_dir: Path,
    targets: tuple[str, ...],
    template_dirs: tuple[Path, ...],
    as_of: dt.date | None,
) -> None:
    """Generate firewall configurations and allowlists from DEPLOYMENT (a YAML file)."""
    from netguard.generate import GenerateOptions, run_generate

    options = GenerateOptions(
        deployment=deployment,
        out_dir=out_dir,
        targets=[Target(t) for t in targets] or list(RENDERERS),
        template_dirs=template_dirs,
        as_of=as_of,
    )
    _run(lambda: run_generate(options, sys.stderr))


@main.command()
@click.argument("deployment", type=click.Path(path_type=Path, dir_okay=False))
@AS_OF
def validate(deployment: Path, as_of: dt.date | None) -> None:
    """Validate DEPLOYMENT and render every target in memory; exit 0 when valid, 2 if not."""
    from netguard.profiles import load_deployment

    def body() -> int:
        from netguard.compile import compile_policy
        from netguard.render import render_targets

        loaded = load_deployment(deployment, as_of=as_of)
        # Render every target in memory (nothing is written), so that what generate would
        # refuse (AWS quotas, names a target cannot carry) is found here too.
        render_targets(compile_policy(loaded.profile), list(RENDERERS))
        click.echo(f"{deployment}: valid ({loaded.profile.mode}, {loaded.profile.name})", err=True)
        return EXIT_OK

    _run(body)


MAX_MEMORY = click.option(
    "--max-memory",
    "max_memory",
    metavar="SIZE",
    default=None,
    help="Stop (exit 3) when the analysis needs more memory than SIZE (8G, 512M; 0: no "
    "bound). Default: 80% of the physical memory.",
)


def _bounded(max_memory: str | None, what: str, body: Callable[[], int]) -> None:
    """``_run(body)`` under the memory bound of ``--max-memory`` (netguard.memory)."""
    from netguard.memory import default_limit, guard, parse_size

    try:
        limit = default_limit() if max_memory is None else parse_size(max_memory)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-memory") from None
    done = guard(limit, what)
    try:
        _run(body)
    finally:
        if done is not None:
            done.set()


@main.command()
@click.argument("deployment", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--config",
    "configs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Deployed configuration (iptables-save, ipset save, nft -j JSON, AWS security "
    "groups JSON); repeatable. The format is recognised by content.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "junit"]),
    default="text",
    show_default=True,
    help="Report format (stdout). The exit code does not depend on it.",
)
@AS_OF
@MAX_MEMORY
def check(
    deployment: Path,
    configs: tuple[Path, ...],
    fmt: str,
    as_of: dt.date | None,
    max_memory: str | None,
) -> None:
    """Prove or refute that the deployed CONFIGs allow only what DEPLOYMENT permits.

    Exit 0 compliant, 1 findings of severity high or medium, 2 invalid input, 3 failure.
    """
    from netguard.check import CheckOptions, run_check

    options = CheckOptions(deployment=deployment, configs=configs, format=fmt, as_of=as_of)
    _bounded(max_memory, "netguard check", lambda: run_check(options, sys.stdout, sys.stderr))


@main.command()
@click.option(
    "--config",
    "configs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Deployed configuration (as for check); repeatable.",
)
@click.option(
    "--packet",
    required=True,
    help='The packet, e.g. "tcp 192.0.2.10:40000 -> 198.51.100.5:443" '
    "(optional: type N, code N, state S, in IF, out IF, ipsec).",
)
@click.option(
    "--hook",
    type=click.Choice(["input", "output", "forward"]),
    default=None,
    help="Netfilter hook to trace at. Default: output.",
)
def explain(configs: tuple[Path, ...], packet: str, hook: str | None) -> None:
    """Show which rule decides PACKET, and its path through the chains."""
    from netguard.check import ExplainOptions, run_explain
    from netguard.model.ruleset import Hook

    options = ExplainOptions(
        configs=configs, packet=packet, hook=Hook(hook) if hook is not None else None
    )
    _run(lambda: run_explain(options, sys.stdout, sys.stderr))


def _port_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int]:
    """A comma-separated list of TCP ports (``443,22,25``); a bad one is a usage error."""
    if not value:
        return []
    ports: list[int] = []
    for word in value.split(","):
        word = word.strip()
        if not (word.isascii() and word.isdigit()) or not 1 <= int(word) <= 65535:
            raise click.BadParameter(f"expected ports 1-65535 separated by commas, got {word!r}")
        ports.append(int(word))
    return ports


@main.command()
@click.argument("deployment", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="HOST:PORT",
    help="Probe this endpoint (repeatable; [IPv6]:PORT); works without a profile.",
)
@click.option("--sni", help="Server name to send and match (default: the endpoint's host).")
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PEM trust anchors instead of the system store.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="Report format (stdout). The exit code does not depend on it.",
)
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Deadline of one probe in seconds (connect, handshake and read together).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10000),
    default=100,
    show_default=True,
    help="Connections open at once, in all.",
)
@click.option(
    "--per-host",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Connections open at once to one address and port.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="Retries of a failed TCP connect (nothing else is retried).",
)
@click.option(
    "--warn-days",
    type=click.IntRange(0),
    default=30,
    show_default=True,
    help="Warn when the certificate expires within this many days.",
)
@click.option(
    "--fail-days",
    type=click.IntRange(0),
    default=7,
    show_default=True,
    help="Fail when the certificate expires within this many days.",
)
@click.option("--http-path", help="Also GET this path (e.g. /healthz) over the TLS session.")
@click.option(
    "--expect-status",
    type=click.IntRange(100, 599),
    default=200,
    show_default=True,
    help="HTTP status the --http-path GET must return.",
)
@click.option(
    "--min-tls",
    type=click.Choice(["1.2", "1.3"]),
    default=None,
    help="Lowest TLS version that must be accepted; lower ones must be refused "
    "(default: the profile's tls.min_version, else 1.3).",
)
@click.option(
    "--mozilla-modern",
    is_flag=True,
    help="Also judge each address against Mozilla's 'modern' server profile (5.6).",
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="IP[:PORT]",
    help="DNS server to ask (repeatable; default: /etc/resolv.conf).",
)
@click.option(
    "--egress",
    metavar="TARGET",
    help="Egress filter probe: TCP connects to this cooperative target on --ports.",
)
@click.option(
    "--ports",
    callback=_port_list,
    metavar="P,P,...",
    help="Ports for --egress (default 443,22,25,53,80,3389,8080,8443).",
)
@click.option(
    "--allow",
    callback=_port_list,
    metavar="P,P,...",
    help="Ports allowed to get through (default: the profile's, else 443).",
)
@AS_OF
def probe(
    deployment: Path | None,
    endpoints: tuple[str, ...],
    sni: str | None,
    ca_bundle: Path | None,
    fmt: str,
    timeout: float,
    concurrency: int,
    per_host: int,
    retries: int,
    warn_days: int,
    fail_days: int,
    http_path: str | None,
    expect_status: int,
    min_tls: str | None,
    mozilla_modern: bool,
    resolvers: tuple[str, ...],
    egress: str | None,
    ports: list[int],
    allow: list[int],
    as_of: dt.date | None,
) -> None:
    """Probe DEPLOYMENT's endpoints (or --endpoint ones): DNS, TCP, TLS 1.3, certificates.

    Every A/AAAA address is probed. Each check is PASS, FAIL, UNTESTABLE or ERROR with its
    evidence. Exit 0 all pass, 1 a FAIL, 2 invalid input, 3 a probe could not be carried out.
    """
    from netguard.probe.run import ProbeOptions, run_probe

    options = ProbeOptions(
        deployment=deployment, endpoints=endpoints, sni=sni, ca_bundle=ca_bundle, format=fmt,
        timeout=timeout, concurrency=concurrency, per_host=per_host, retries=retries,
        warn_days=warn_days, fail_days=fail_days, http_path=http_path,
        expect_status=expect_status, min_tls=min_tls, mozilla_modern=mozilla_modern,
        resolvers=resolvers, egress=egress,
        ports=ports, allow=allow, as_of=as_of,
    )  # fmt: skip
    _run(lambda: run_probe(options, sys.stdout, sys.stderr))


_REVIEW_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "html", "json"]),
    default="text",
    show_default=True,
    help="Document format. The exit code does not depend on it.",
)
_REVIEW_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the document to this file (atomically) instead of stdout.",
)


@main.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    required=True,
    help="local (iptables-save, ip6tables-save, ipset save, nft -j list ruleset on this "
    "host), aws (security groups and prefix lists through boto3), or a FILE (repeatable).",
)
@click.option(
    "-o",
    "--output",
    "store",
    required=True,
    callback=_output_dir,
    type=click.Path(file_okay=False),
    help="Snapshot store directory (append-only; created if missing).",
)
@click.option("--netns", default=None, help="With --source local: run inside this netns.")
@click.option("--region", default=None, help="With --source aws: the region.")
@click.option("--vpc-id", default=None, help="With --source aws: only this VPC's groups.")
def snapshot(
    sources: tuple[str, ...],
    store: Path,
    netns: str | None,
    region: str | None,
    vpc_id: str | None,
) -> None:
    """Record the firewall configuration in force into the snapshot store.

    Exit 0 written (its path on stdout), 2 invalid input or name exists, 3 a command failed.
    """
    from netguard.review import SnapshotOptions, run_snapshot

    options = SnapshotOptions(
        sources=sources, store=store, netns=netns, region=region, vpc_id=vpc_id
    )
    _run(lambda: run_snapshot(options, sys.stdout, sys.stderr))


@main.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@_REVIEW_FORMAT
@_REVIEW_OUTPUT
@click.option(
    "--limit",
    default=8,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Rectangles shown per change and hook.",
)
@MAX_MEMORY
def diff(
    old: Path, new: Path, fmt: str, output: Path | None, limit: int, max_memory: str | None
) -> None:
    """Compare OLD and NEW (snapshot files, store directories or configuration files).

    Structural changes, and the flows newly permitted or denied. Exit 0 when what the
    network allows is unchanged, 1 when it changed, 2 invalid input.
    """
    from netguard.review import DiffOptions, run_diff

    options = DiffOptions(old=old, new=new, format=fmt, output=output, limit=limit)
    _bounded(max_memory, "netguard diff", lambda: run_diff(options, sys.stdout, sys.stderr))


@main.command()
@click.argument("deployment", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--since",
    required=True,
    type=click.Path(path_type=Path),
    help="OLD end: a snapshot file, a store directory (its newest) or a config file.",
)
@click.option(
    "--until",
    default="local",
    show_default=True,
    help="NEW end: as --since, or 'local' for a fresh snapshot of this host.",
)
@_REVIEW_FORMAT
@_REVIEW_OUTPUT
@click.option("--reviewer", default=None, help="Reviewer name pre-filled in the sign-off.")
@click.option("--netns", default=None, help="With --until local: snapshot inside this netns.")
@AS_OF
@MAX_MEMORY
def review(
    deployment: Path,
    since: Path,
    until: str,
    fmt: str,
    output: Path | None,
    reviewer: str | None,
    netns: str | None,
    as_of: dt.date | None,
    max_memory: str | None,
) -> None:
    """The quarterly review document of SINCE -> UNTIL against DEPLOYMENT.

    Summary, semantic and structural changes, compliance at both ends, exceptions expiring
    before the next review, sign-off. Exit 0 when UNTIL is compliant, 1 when not, 2 invalid.
    """
    from netguard.review import ReviewOptions, run_review

    options = ReviewOptions(
        deployment=deployment, since=since, until=until, format=fmt, output=output,
        as_of=as_of, reviewer=reviewer, netns=netns,
    )  # fmt: skip
    _bounded(max_memory, "netguard review", lambda: run_review(options, sys.stdout, sys.stderr))


@main.command()
@click.argument("deployment", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--actual",
    "actual",
    multiple=True,
    required=True,
    help="What is in force: iptables-save, ipset save, nft -j JSON, AWS "
    "describe-security-groups JSON, aws:REGION[:sg-id,...] (boto3), a netguard "
    "allowlists.json, a feed, or a plain/JSON list; '-' is stdin (repeatable).",
)
@click.option(
    "--desired",
    "desired",
    multiple=True,
    help="Without DEPLOYMENT: what should be allowed (any --actual kind; repeatable).",
)
@click.option(
    "--feed",
    default=None,
    type=click.Path(dir_okay=False),
    help="Vendor feed replacing the profile's vendor ranges (AWS ip-ranges.json, "
    "Google goog.json/cloud.json, Cloudflare, Atlassian, GitHub-meta, plain list).",
)
@click.option(
    "--feed-direction",
    type=click.Choice(["egress", "ingress", "both"]),
    default="egress",
    show_default=True,
    help="Which vendor ranges the feed replaces: API (egress) or webhooks (ingress).",
)
@click.option(
    "--feed-state",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="State file remembering the newest feed seen; an older feed is refused.",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    help="Feed filter: AWS service, Google service, Atlassian product (repeatable).",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Feed filter: AWS region, Google scope, Atlassian region (repeatable).",
)
@click.option(
    "--key", "keys", multiple=True, help="GitHub-meta-style feed: the lists to take (repeatable)."
)
@click.option(
    "--set",
    "set_names",
    multiple=True,
    help="An ipset file given alone: the sets that hold the list (repeatable).",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    type=click.IntRange(1, 65535),
    help="Without DEPLOYMENT: TCP destination port of the flow (default 443).",
)
@click.option(
    "--direction",
    type=click.Choice(["egress", "ingress", "both"]),
    default="both",
    show_default=True,
    help="Directions to compare.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report format. The exit code does not depend on it.",
)
@click.option(
    "--fix",
    type=click.Choice(["iptables", "ipset", "nft", "aws-api"]),
    default=None,
    help="Print the smallest change turning the actual list into the desired one.",
)
@AS_OF
def drift(
    deployment: Path | None,
    actual: tuple[str, ...],
    desired: tuple[str, ...],
    feed: str | None,
    feed_direction: str,
    feed_state: Path | None,
    services: tuple[str, ...],
    regions: tuple[str, ...],
    keys: tuple[str, ...],
    set_names: tuple[str, ...],
    ports: tuple[int, ...],
    direction: str,
    fmt: str,
    fix: str | None,
    as_of: dt.date | None,
) -> None:
    """Compare the allowlist in force (--actual) with DEPLOYMENT's (or --desired), as sets.

    Reports EXTRA (allowed, should not be) then MISSING per direction and family, with
    aggregated CIDRs, address counts and what allows each EXTRA range. Exit 0 no drift,
    1 drift (or an entry with host bits set), 2 invalid input or stale feed, 3 failure.
    """
    from netguard.drift.core import DriftOptions, run_drift

    options = DriftOptions(
        deployment=deployment, actual=actual, desired=desired, feed=feed,
        feed_direction=feed_direction, feed_state=feed_state, services=services,
        regions=regions, keys=keys, set_names=set_names, ports=ports, direction=direction,
        format=fmt, fix=fix, as_of=as_of,
    )  # fmt: skip
    _run(lambda: run_drift(options, sys.stdout, sys.stderr))


@main.command()
@click.argument("files", nargs=-1, required=True)
def aggregate(files: tuple[str, ...]) -> None:
    """Print the exact aggregated prefix list of FILEs ('-' for stdin), IPv4 then IPv6.

    One address or CIDR per line, '#' comments. Exit 0, 1 when an entry has host bits set
    (reported on stderr with file:line; the entry counts as its network), 2 invalid input.
    """
    from netguard.drift.aggregate import run_aggregate

    _run(lambda: run_aggregate(files, sys.stdout, sys.stderr))


@main.group()
def profiles() -> None:
    """Bundled base profiles and the deployment schema."""


@profiles.command("list")
def profiles_list() -> None:
    """List the bundled base profiles."""
    from netguard.profiles import base_profile_path, list_base_profiles, read_yaml

    def body() -> int:
        for name in list_base_profiles():
            data, _ = read_yaml(base_profile_path(name))
            click.echo(f"{name:14} {data.get('description', '')}")
        return EXIT_OK

    _run(body)


@profiles.command("show")
@click.argument("name")
def profiles_show(name: str) -> None:
    """Print the bundled base profile NAME."""
    from netguard.profiles import base_profile_path, list_base_profiles

    def body() -> int:
        try:
            path = base_profile_path(name)
        except KeyError:
            click.echo(
                f"error: unknown profile {name!r}; expected one of "
                f"{', '.join(list_base_profiles())}",
                err=True,
            )
            return EXIT_INVALID
        click.echo(path.read_text(encoding="utf-8"), nl=False)
        return EXIT_OK

    _run(body)


@profiles.command("schema")
def profiles_schema() -> None:
    """Print the JSON Schema of deployment files (for editor completion)."""
    from netguard.profiles import json_schema

    def body() -> int:
        click.echo(json_schema(), nl=False)
        return EXIT_OK

    _run(body)


if __name__ == "__main__":  # pragma: no cover
    main()
