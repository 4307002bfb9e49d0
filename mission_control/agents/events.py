"""What an agent adapter reports: a handful of frozen facts, the same for every agent CLI.

Each agent CLI has its own headless stream (claude's ``stream-json``, codex's ``exec --json``,
aider's plain text, ...). An adapter turns one of them into these events so that everything
downstream (stall detection, the log pane, the cost column, "needs input") is written once.

The events hold the agent's text as it came, untrusted: render it with
:mod:`mission_control.agents.transcript`, never raw.

Every event is also a sign of life: a consumer that wants activity for stall detection counts
events (or :attr:`AgentSummary.lines`), whatever their kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

ActionKind: TypeAlias = Literal[
    "edit", "command", "read", "search", "web", "plan", "ask", "commit", "think", "tool"
]
"""What an action does, for icons and filters: ``edit`` changes a file, ``command`` runs a
shell command, ``ask`` is a question to the user, ``think`` is a reasoning summary."""


@dataclass(frozen=True, slots=True)
class AgentStarted:
    """The CLI said which session it runs (the id to resume) and, when it says, the model."""

    session_id: str | None
    model: str | None


@dataclass(frozen=True, slots=True)
class AgentAction:
    """Something the agent did, as one readable phrase: ``Write src/x.py``,
    ``$ pytest -q → exit 1``, ``asks: which database?``."""

    kind: ActionKind
    text: str


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """Text the agent wrote for the user. ``final`` marks the CLI's own closing answer when it
    reports one apart from the stream (claude's ``result``) and it differs from the last
    message already reported."""

    text: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class AgentUsage:
    """Running totals for this stream so far (not a delta): a consumer keeps the latest.

    ``input_tokens`` counts every input token, cached ones included; ``cached_tokens`` is the
    part served from the provider's cache. ``cost_usd`` is the CLI's own figure when it reports
    one, else computed from a pricing table, else ``None`` (tokens only)."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float | None


@dataclass(frozen=True, slots=True)
class AgentNeedsInput:
    """The agent stopped to ask something, or was refused a permission: a human should look.
    ``reason`` says which, e.g. ``asks: Which port should it use?`` or
    ``permission denied: Write .env``."""

    reason: str


@dataclass(frozen=True, slots=True)
class AgentError:
    """An error (or warning) the CLI reported in its stream."""

    message: str


@dataclass(frozen=True, slots=True)
class AgentFinished:
    """The CLI said its run is over (claude ``result``, codex ``turn.completed``/``failed``,
    gemini ``result``, opencode's last ``step_finish``). ``detail`` says why when not ok."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AgentText:
    """A line that is not (or not understood as) a structured event: plain output, stderr
    interleaved into the stream, garbage, a JSON event of a kind no adapter knows."""

    line: str


AgentEvent: TypeAlias = (
    AgentStarted
    | AgentAction
    | AgentMessage
    | AgentUsage
    | AgentNeedsInput
    | AgentError
    | AgentFinished
    | AgentText
)


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """The running state of one stream, for a status line or the ledger.

    ``needs_input`` is the reason when the agent needs a human, else ``None``.
    ``lines`` counts the complete lines seen, understood or not (activity)."""

    session_id: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    last_action: str | None = None
    final_message: str | None = None
    needs_input: str | None = None
    finished: bool = False
    ok: bool | None = None
    errors: int = 0
    lines: int = 0
