"""Pydantic models of a *resolved* phase plan (format version 1).

The loader merges the plan's ``defaults:`` into each workstream and resolves
paths before these models are built, so every field here is concrete: the
engine never has to look anything up twice. All models are frozen so a plan can
be shared between threads without copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ..agents.pricing import ModelPrice, over_budget

TOOL_PLACEHOLDERS: tuple[str, ...] = (
    "prompt_file",
    "prompt",
    "worktree",
    "workstream_id",
    "phase_id",
    "task_id",
    "run_id",
    "attempt",
    "port",
)

CONTINUE_PLACEHOLDERS: tuple[str, ...] = (*TOOL_PLACEHOLDERS, "session_id")
"""What ``continue_argv`` may use besides: the agent's session to go on with."""
BUDGET_PLACEHOLDERS: tuple[str, ...] = ("max_cost_usd",)
"""Names a tool's argv (and env values) may use as ``{name}``; ``{command}`` stands alone."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptVia(StrEnum):
    """How a tool receives its prompt."""

    FILE = "file"  # the path of a prompt file, through the {prompt_file} placeholder
    STDIN = "stdin"  # the prompt text on standard input
    ARG = "arg"  # the prompt text as one argv item, through the {prompt} placeholder


class BaseMode(StrEnum):
    """What a workstream's branch starts from."""

    DEPS = "deps"  # the base branch with every dependency's branch merged in
    BRANCH = "branch"  # the base branch alone
    LANDED = "landed"  # the previous phase's landing branch, with the dependencies merged in


class OnStall(StrEnum):
    """What to do when an attempt writes nothing for ``stall_minutes``."""

    NOTIFY = "notify"
    KILL = "kill"
    RETRY = "retry"


class ToolSpec(_Frozen):
    """How to run one agent CLI.

    ``argv`` is a template: each item may hold ``{prompt_file}``, ``{prompt}``,
    ``{worktree}``, ``{workstream_id}``, ``{phase_id}``, ``{task_id}``,
    ``{run_id}``, ``{attempt}``. With ``shell: true`` the argv must be a single
    item, run by ``/bin/sh -c`` (placeholders are shell-quoted).
    """

    argv: list[str] = Field(min_length=1)
    prompt_via: PromptVia = PromptVia.FILE
    env: dict[str, str] = Field(default_factory=dict)
    shell: bool = False
    install_hint: str = ""
    events: str = "text"
    """The adapter (``agents.ADAPTERS``) that turns the tool's output into a transcript."""
    continue_argv: list[str] | None = None
    """The argv that goes on with an agent's conversation (``{session_id}`` is the last one's);
    None: the tool cannot, and a follow-up message is added to the prompt instead."""
    live_input: bool = False
    """Messages reach the running agent on its stdin as stream-json user messages."""
    budget_argv: list[str] = Field(default_factory=list)
    """Added to argv when the workstream has ``max_cost_usd`` (``{max_cost_usd}``)."""


class Budget(_Frozen):
    """What an agent, or a whole run, may spend; None is no cap."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def exceeded(self, cost_usd: float | None, tokens: int) -> str | None:
        """Why spending ``cost_usd`` and ``tokens`` is over this budget, or None."""
        return over_budget(self.max_cost_usd, self.max_tokens, cost_usd, tokens)


class Price(_Frozen):
    """USD per million tokens of one model; ``cached`` defaults to ``input``."""

    input: float
    output: float
    cached: float | None = None

    @staticmethod
    def table(pricing: Mapping[str, Price] | None) -> dict[str, ModelPrice]:
        """The plan's ``pricing:`` as the agents' adapters read it."""
        return {m: ModelPrice(p.input, p.output, p.cached) for m, p in (pricing or {}).items()}


class Check(_Frozen):
    """A command run in the worktree after the tool exits 0."""

    name: str
    argv: list[str] = Field(min_length=1)
    shell: bool = False
    timeout_minutes: float = Field(default=10.0, gt=0)


class PrOptions(_Frozen):
    """Pull request settings. ``enabled=None`` means: open one whenever the branch is pushed."""

    enabled: bool | None = None
    draft: bool = False
    title: str = "[{task_id}] {name}"
    body: str | None = None
    base: str | None = None
    labels: list[str] = Field(default_factory=list)


class Resources(_Frozen):
    """What one attempt needs from the machine that runs it (used by cluster backends)."""

    cpus: float = Field(default=1.0, ge=0)
    memory_bytes: int | None = Field(default=None, gt=0)
    custom: dict[str, float] = Field(default_factory=dict)


# Around the agent: notifications (the workstream's own settings are in their block below).
class NotifySpec(_Frozen):
    """Where and when to tell the user about a run; channel URLs are never recorded."""

    urls: list[str] = Field(default_factory=list)
    on: frozenset[str] = frozenset(
        {"failed", "stalled", "needs_input", "over_budget", "conflicts", "run_finished"}
    )
    bell: bool = False
    command: list[str] | None = None
    """Receives each event as JSON on stdin."""


DEFAULT_PORT_RANGE: tuple[int, int] = (20000, 29999)


class Workstream(_Frozen):
    """One unit of work: a tool run in its own worktree and branch."""

    id: str
    name: str
    phase_id: str
    repo: Path
    base_branch: str
    tool: str
    prompt_file: Path | None = None
    prompt: str | None = None
    command: list[str] | None = None
    """For the ``shell`` tool: the argv to run (or, with ``shell: true``, one shell line)."""
    shell: bool = False
    timeout_minutes: float = Field(gt=0)
    depends_on: list[str] = Field(default_factory=list)
    """Qualified ids (``PHASE::WS``) of the workstreams this one waits for."""
    checks: list[Check] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=0, ge=0)
    base: BaseMode = BaseMode.DEPS
    landed_from: str | None = None
    """With ``base: landed``: the landing branch of the phase before, where the work starts."""
    pr: PrOptions = Field(default_factory=PrOptions)
    push: bool = True
    remote: str = "origin"
    require_changes: bool = False
    stall_minutes: float = Field(default=10.0, gt=0)
    on_stall: OnStall = OnStall.NOTIFY
    resources: Resources = Field(default_factory=Resources)
    budget: Budget = Field(default_factory=Budget)
    """Only cluster backends read it; the local backend runs every attempt as it comes."""
    worktree_root: Path
    # Around the agent: the worktree's set-up, untracked files, ports, where the branch starts.
    setup: list[Check] = Field(default_factory=list)
    """Run in order in a new (or freshly reset) worktree before the tool; one failing fails it."""
    teardown: list[Check] = Field(default_factory=list)
    """Run in the worktree before ``clean`` removes it."""
    copy_files: list[str] = Field(default_factory=list)
    """Patterns of untracked files copied from the repository's checkout into a new worktree."""
    link_files: list[str] = Field(default_factory=list)
    """Like ``copy_files``, but symlinked (``node_modules``)."""
    ports: int = Field(default=1, ge=0)
    """Ports handed to each attempt: MC_PORT (the first) and MC_PORT_0..N-1."""
    start_from: str | None = None
    """``pr:NUMBER`` or ``REMOTE/BRANCH``: where a new branch starts instead of its base."""
    line: int = 0
    """Line of the workstream in the plan file, for messages."""

    @cached_property  # asked for each workstream at each of the scheduler's decisions
    def task_id(self) -> str:
        """The workstream's id across the plan: ``PHASE::WS``."""
        return f"{self.phase_id}::{self.id}"

    @cached_property
    def branch(self) -> str:
        return f"ws/{self.phase_id}/{self.id}"

    @property
    def worktree_path(self) -> Path:
        return self.worktree_root / f"{self.phase_id}-{self.id}"

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_minutes * 60.0


def landing_branch(phase_id: str) -> str:
    """The branch ``land`` merges a phase into by default (``base: landed`` starts there)."""
    return f"mc/land/{phase_id}"


class Phase(_Frozen):
    id: str
    name: str
    max_parallel_workstreams: PositiveInt
    land_auto: bool = False
    """``land: auto``: the engine lands the phase before the next one starts."""
    workstreams: list[Workstream] = Field(min_length=1)
    line: int = 0


class Plan(_Frozen):
    """A whole validated plan; ``path`` is the absolute path of its file."""

    path: Path
    name: str
    version: int = 1
    phases: list[Phase] = Field(min_length=1)
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    """Every tool the plan may use: the built-ins merged with the plan's own."""
    grace_seconds: float = Field(default=10.0, ge=0)
    budget: Budget = Field(default_factory=Budget)
    """The whole run's cap."""
    pricing: dict[str, Price] = Field(default_factory=dict)
    """USD per million tokens per model, for agents that report tokens but no cost."""
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    notify: NotifySpec | None = None

    @cached_property
    def workstreams(self) -> list[Workstream]:
        return [ws for phase in self.phases for ws in phase.workstreams]

    @cached_property
    def _by_task(self) -> dict[str, Workstream]:
        return {ws.task_id: ws for ws in self.workstreams}

    def workstream(self, task_id: str) -> Workstream:
        """The workstream ``PHASE::WS``; KeyError if the plan has none (a dict lookup)."""
        return self._by_task[task_id]

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Plan:
        copy = super().model_copy(update=update, deep=deep)
        for cached in ("workstreams", "_by_task"):  # made again from the copy's phases
            copy.__dict__.pop(cached, None)
        return copy

    def phase(self, phase_id: str) -> Phase:
        for phase in self.phases:
            if phase.id == phase_id:
                return phase
        raise KeyError(phase_id)
