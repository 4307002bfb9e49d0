"""One error family for everything mission-control reports to a user.

Every error carries the data a user needs to act (what, where, how to fix) so
that the CLI can print one line and the TUI can show it on a workstream; no
caller has to parse a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MissionControlError(Exception):
    """Base of every error meant for a user: ``str(err)`` is the one line to show."""


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One mistake in a plan file, located by line and column (1-based)."""

    path: Path
    line: int
    column: int
    key_path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path.name}:{self.line}:{self.column}"
        key = f" {self.key_path}:" if self.key_path else ""
        fix = f" — {self.hint}" if self.hint else ""
        return f"{where}:{key} {self.message}{fix}"


class PlanError(MissionControlError):
    """A plan that cannot be used; holds every problem found, not only the first."""

    def __init__(self, problems: list[PlanProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class GitError(MissionControlError):
    """A git operation failed; the message names the repository and the fix."""


class ToolNotFoundError(MissionControlError):
    """The workstream's tool is not installed."""


class SetupError(MissionControlError):
    """Something outside the plan (state folder, lock, run id) prevents a run."""
