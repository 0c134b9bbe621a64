"""Error classes, one base per layer, each mapped to a documented exit code.

Exit codes (DESIGN.md "Contracts every command keeps"): 0 clean, 1 findings, 2 usage or invalid
input, 3 operational failure (I/O, permission, missing system tool).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INVALID = 2
EXIT_OPERATIONAL = 3


class NetguardError(Exception):
    """Base of every error netguard reports to a user; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_OPERATIONAL


@dataclass(frozen=True)
class Location:
    """A place in an input file: ``path`` and 1-based ``line`` and ``column`` (0 when unknown)."""

    path: Path | str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.path}:{self.line}:{self.column}"
        if self.line:
            return f"{self.path}:{self.line}"
        return str(self.path)


class InputError(NetguardError):
    """Invalid user input: names the file, line and column, and what was expected (exit 2).

    ``problems`` holds one ``(Location, message)`` pair per problem so that every mistake in a
    file is reported in one run, not one per run.
    """

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (str(p[0].path), p[0].line, p[0].column, p[1])
        )
        super().__init__("\n".join(f"{loc}: {msg}" for loc, msg in self.problems))

    @classmethod
    def at(cls, location: Location, message: str) -> InputError:
        """One problem at one location."""
        return cls([(location, message)])


class ProfileError(InputError):
    """A deployment or base profile is invalid (unknown key, bad CIDR, expired exception, ...)."""


class RenderError(NetguardError):
    """A policy cannot be rendered for a target, e.g. it exceeds an AWS quota (exit 2).

    Raised before any file is written: the policy is valid YAML but cannot be expressed in the
    target within the limits the target enforces, which the user must change.
    """

    exit_code = EXIT_INVALID


class TemplateSafetyError(NetguardError):
    """A template is broken or tried to print a value that no escaping filter made safe (exit 2).

    Templates given with ``--templates`` are user input; netguard refuses to emit output whose
    meaning a profile string could change. (Bundled templates are tested never to raise this.)
    """

    exit_code = EXIT_INVALID


class OutputError(NetguardError):
    """Writing an output file failed (permission, disk full); nothing partial is left (exit 3)."""
