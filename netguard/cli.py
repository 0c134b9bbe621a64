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
def check(deployment: Path, configs: tuple[Path, ...], fmt: str, as_of: dt.date | None) -> None:
    """Prove or refute that the deployed CONFIGs allow only what DEPLOYMENT permits.

    Exit 0 compliant, 1 findings of severity high or medium, 2 invalid input, 3 failure.
    """
    from netguard.check import CheckOptions, run_check

    options = CheckOptions(deployment=deployment, configs=configs, format=fmt, as_of=as_of)
    _run(lambda: run_check(options, sys.stdout, sys.stderr))


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
