"""The adapter seam: bytes of an agent CLI's stream in, :mod:`.events` out, never an exception.

An adapter is a parser, not a process: whoever reads the agent's raw output (the log watcher,
on the new bytes of the attempt's stream file) hands them to :meth:`Adapter.feed` in whatever
chunks they came, and gets events back. So the base class owns what every stream shares:

- **lines across reads**: a partial line waits in a buffer until its newline; a chunk may end
  in the middle of a JSON object or of a UTF-8 character, and the result is the same as if the
  whole stream had come at once;
- **a size cap**: a line longer than ``max_line_bytes`` (no newline in sight: a binary dump, a
  runaway tool) is reported cut, and the rest of it is dropped without being held in memory;
- **no exceptions**: a line that cannot be parsed, or whose fields have unexpected types,
  becomes an :class:`~.events.AgentText` and the stream goes on; a tool's crash-free parse of
  hostile input is worth more than an exact one;
- **running totals** (:class:`~.events.AgentSummary`): session, model, tokens, cost, last
  action, final message, and whether the agent needs input.

"Needs input" is kept simple on purpose: when the CLI says its run is over (or at
:meth:`close`), the agent needs a human if a permission was refused during the run, or if the
last message it wrote ends with a question mark. A question asked through a tool meant for it
(codex ``request_user_input``) counts at once.

Subclasses implement :meth:`LineAdapter._line` (one decoded line without its newline) and,
if they hold something back, :meth:`LineAdapter._end`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import ClassVar, Final, Protocol

from .events import (
    ActionKind,
    AgentAction,
    AgentError,
    AgentEvent,
    AgentFinished,
    AgentMessage,
    AgentNeedsInput,
    AgentStarted,
    AgentSummary,
    AgentText,
    AgentUsage,
)
from .pricing import Pricing, cost_usd, find_price

MAX_LINE_BYTES: Final = 4 << 20
"""Longest line kept whole. A claude event holding a file the agent wrote or read is one line,
so this is generous; anything longer is cut and shown as text."""

_MAX_COUNT: Final = 10**15
"""Token counts above this are nonsense (and would overflow a float): ignored."""

_QUESTION_CHARS: Final = 300
_APPROVAL: Final = re.compile(r"approv", re.IGNORECASE)


class Adapter(Protocol):
    """What the engine will hold per attempt: feed it bytes, read its summary."""

    name: ClassVar[str]

    def feed(self, data: bytes) -> list[AgentEvent]: ...

    def close(self) -> list[AgentEvent]: ...

    @property
    def summary(self) -> AgentSummary: ...


class LineAdapter:
    """Base of every adapter: line buffering, the cap, and the running totals."""

    name: ClassVar[str] = ""
    command: ClassVar[str] = ""
    """How to run the CLI so that it prints what this adapter reads (documentation only)."""
    session_cost: ClassVar[bool] = False
    """The CLI reports what the whole session cost, earlier runs of a continued one
    included (claude): ``cost_before`` is taken off so a stream's cost is its own."""

    def __init__(
        self,
        *,
        pricing: Pricing | None = None,
        model: str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        cost_before: float = 0.0,
    ) -> None:
        self._pricing = pricing
        self._cost_before = cost_before if self.session_cost else 0.0
        self._model_hint = model
        self._max_line_bytes = max(1, max_line_bytes)
        self._buffer = bytearray()
        self._scanned = 0  # bytes at the start of the buffer known to hold no newline
        self._skipping = False  # inside an over-long line: drop bytes until its newline
        self._session_id: str | None = None
        self._model: str | None = None
        self._started = False
        self._input = 0
        self._output = 0
        self._cached = 0
        self._reported_cost: float | None = None
        self._last_action: str | None = None
        self._final_message: str | None = None
        self._needs_input: str | None = None
        self._denied: str | None = None  # the first refused permission
        self._finished = False
        self._ok: bool | None = None
        self._errors = 0
        self._lines = 0
        self._setup()

    # ------------------------------------------------------------------ the seam

    def feed(self, data: bytes) -> list[AgentEvent]:
        """Events for the complete lines ``data`` finishes; the rest waits for more."""
        events: list[AgentEvent] = []
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", max(start, self._scanned))) >= 0:
            line = bytes(self._buffer[start:end])
            start = end + 1
            self._scanned = 0
            if self._skipping:
                self._skipping = False
            else:
                events += self._complete(line)
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if len(self._buffer) > self._max_line_bytes:
            if not self._skipping:
                events += self._complete(bytes(self._buffer))
            self._skipping = True
            self._buffer.clear()
            self._scanned = 0
        return events

    def close(self) -> list[AgentEvent]:
        """The stream ended: the last line without a newline, anything held back, and the
        needs-input verdict if the CLI never said it was done."""
        events: list[AgentEvent] = []
        if self._buffer and not self._skipping:
            events += self._complete(bytes(self._buffer))
        self._buffer.clear()
        self._scanned = 0
        self._skipping = False
        events += self._guarded(self._end)
        events += self._check_needs_input()
        return events

    @property
    def summary(self) -> AgentSummary:
        return AgentSummary(
            session_id=self._session_id,
            model=self._model or self._model_hint,
            input_tokens=self._input,
            output_tokens=self._output,
            cached_tokens=self._cached,
            cost_usd=self._cost(),
            last_action=self._last_action,
            final_message=self._final_message,
            needs_input=self._needs_input,
            finished=self._finished,
            ok=self._ok,
            errors=self._errors,
            lines=self._lines,
        )

    # ------------------------------------------------------------------ for subclasses

    def _setup(self) -> None:
        """Set up the subclass's own parsing state (called by ``__init__``)."""

    def _line(self, text: str) -> list[AgentEvent]:
        """Events for one complete line (decoded, without its line break)."""
        raise NotImplementedError

    def _end(self) -> list[AgentEvent]:
        """Events held back until the stream ends (e.g. a message still streaming)."""
        return []

    def _start(self, session_id: str | None, model: str | None) -> list[AgentEvent]:
        """Record the session and model; an event the first time, or when either changes."""
        changed = not self._started
        if session_id and session_id != self._session_id:
            self._session_id, changed = session_id, True
        if model and model != self._model:
            self._model, changed = model, True
        self._started = True
        return [AgentStarted(self._session_id, self._model)] if changed else []

    def _action(self, kind: ActionKind, text: str) -> AgentAction:
        if kind != "think":
            self._last_action = text
        return AgentAction(kind, text)

    def _message(self, text: str, *, final: bool = False) -> list[AgentEvent]:
        """A message from the agent; the last one is its final message."""
        if not text.strip():
            return []
        self._final_message = text.strip()
        return [AgentMessage(text, final=final)]

    def _remember_final(self, text: str) -> None:
        """Take ``text`` as the final message without reporting it (it was already shown)."""
        if text.strip():
            self._final_message = text.strip()

    def _note_final(self, text: str | None) -> list[AgentEvent]:
        """The CLI's own final answer: reported only when it differs from the last message."""
        if not text or not text.strip() or text.strip() == self._final_message:
            return []
        return self._message(text, final=True)

    def _error(self, message: str) -> AgentError:
        self._errors += 1
        return AgentError(message)

    def _deny(self, what: str) -> None:
        """A permission was refused: the agent will need a human when it stops."""
        if self._denied is None:
            self._denied = what

    def _ask(self, question: str) -> list[AgentEvent]:
        """The agent asked the user through a tool meant for it: needs input at once."""
        events: list[AgentEvent] = [self._action("ask", f"asks: {question}")]
        if self._needs_input is None:
            self._needs_input = f"asks: {question}"
            events.append(AgentNeedsInput(self._needs_input))
        return events

    def _finish(self, ok: bool, detail: str = "") -> list[AgentEvent]:
        self._finished, self._ok = True, ok
        return [AgentFinished(ok, detail), *self._check_needs_input()]

    def _add_usage(
        self, input_tokens: int, output_tokens: int, cached_tokens: int
    ) -> list[AgentEvent]:
        """Add one turn's (or step's) tokens to the totals."""
        return self._set_usage(
            self._input + input_tokens, self._output + output_tokens, self._cached + cached_tokens
        )

    def _set_usage(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        *,
        cost: float | None = None,
    ) -> list[AgentEvent]:
        """Replace the totals (and the CLI's own cost, when it gives one); an event if any
        of them changed."""
        before = (self._input, self._output, self._cached, self._cost())
        self._input, self._output, self._cached = input_tokens, output_tokens, cached_tokens
        if cost is not None:
            self._reported_cost = cost
        after = (self._input, self._output, self._cached, self._cost())
        if after == before:
            return []
        return [AgentUsage(self._input, self._output, self._cached, after[3])]

    @property
    def _totals(self) -> tuple[int, int, int]:
        return self._input, self._output, self._cached

    # ------------------------------------------------------------------ internals

    def _complete(self, raw: bytes) -> list[AgentEvent]:
        self._lines += 1
        if len(raw) > self._max_line_bytes:
            cut = raw[: self._max_line_bytes].decode("utf-8", errors="replace")
            return [AgentText(f"{cut} … (line cut at {self._max_line_bytes} bytes)")]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        text = raw.decode("utf-8", errors="replace")
        return self._guarded(lambda: self._line(text), fallback=text)

    def _guarded(self, parse: _Parse, fallback: str | None = None) -> list[AgentEvent]:
        # A shape nobody foresaw must not stop the run: show the line as text instead.
        try:
            return parse()
        except Exception:
            return [] if fallback is None else [AgentText(fallback)]

    def _cost(self) -> float | None:
        if self._reported_cost is not None:
            return max(0.0, self._reported_cost - self._cost_before)
        price = find_price(self._pricing, self._model or self._model_hint)
        return cost_usd(
            price,
            input_tokens=self._input,
            output_tokens=self._output,
            cached_tokens=self._cached,
        )

    def _check_needs_input(self) -> list[AgentEvent]:
        if self._needs_input is not None:
            return []
        if self._denied is not None:
            self._needs_input = f"permission denied: {self._denied}"
        elif self._final_message and self._final_message.rstrip().endswith(("?", "？")):
            self._needs_input = f"asks: {_question(self._final_message)}"
        else:
            return []
        return [AgentNeedsInput(self._needs_input)]


class _Parse(Protocol):
    def __call__(self) -> list[AgentEvent]: ...


def _question(message: str) -> str:
    """The question at the end of a message: its last line, at most a few hundred chars."""
    last = [line for line in message.strip().splitlines() if line.strip()][-1].strip()
    return last if len(last) <= _QUESTION_CHARS else "…" + last[-_QUESTION_CHARS:]


class JsonLineAdapter(LineAdapter):
    """An adapter for a stream of one JSON object per line (JSONL).

    Blank lines are skipped; a line that is not a JSON object is shown as text; an object
    goes to :meth:`_event`, which returns ``None`` for an event it does not know (shown as
    text too, so a new CLI version's new events stay visible)."""

    def _line(self, text: str) -> list[AgentEvent]:
        stripped = text.strip()
        if not stripped:
            return []
        if not stripped.startswith("{"):
            return [AgentText(text)]
        try:
            obj = json.loads(stripped)
        except (ValueError, RecursionError):
            return [AgentText(text)]
        if not isinstance(obj, dict):
            return [AgentText(text)]
        events = self._event(obj)
        return [AgentText(text)] if events is None else events

    def _event(self, obj: Mapping[str, object]) -> list[AgentEvent] | None:
        raise NotImplementedError


# ---------------------------------------------------------------------- typed field access
# A stream is untrusted input: every field may be missing or of any type. These return
# ``None`` (or an empty container) for anything but the expected type.


def text_field(obj: object, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, str) else None


def count_field(obj: object, key: str) -> int:
    """A token count: a non-negative integer, else 0."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= _MAX_COUNT else 0


def money_field(obj: object, key: str) -> float | None:
    """An amount in USD: a finite, non-negative number, else ``None``."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and value > _MAX_COUNT:
        return None
    amount = float(value)
    return amount if math.isfinite(amount) and amount >= 0 else None


def dict_field(obj: object, key: str) -> Mapping[str, object]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def list_field(obj: object, key: str) -> list[object]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, list) else []


def mentions_approval(message: str) -> bool:
    """Whether an error message is about an approval the run did not get (codex, gemini)."""
    return bool(_APPROVAL.search(message))


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` chars (for action phrases)."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[:limit] + "…"
    return ""


def compact_json(value: object, limit: int = 120) -> str:
    """A short JSON rendering of a tool's input, for tools without a nicer phrase."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        text = "…"
    return text if len(text) <= limit else text[:limit] + "…"
