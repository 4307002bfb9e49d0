"""What the relay tells the engine about one attempt's agent: a small JSON file, replaced whole.

The relay (``relay.py``) runs beside the agent CLI and rewrites ``attempt-N.agent.json`` each
time its summary changes; the engine reads it when its modification time moves. The file is
written to a temporary name and renamed, so a reader never sees half of it, and it survives a
crash of mission-control: a resumed run reads it again (or, when the relay itself was lost,
rebuilds it from the raw stream with :func:`summarize_stream`).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from .adapter import count_field, money_field, text_field
from .events import AgentSummary
from .pricing import Pricing

REPORT_LIMIT: Final = 1 << 20
"""A report file larger than this was not written by the relay: ignored."""


@dataclass(frozen=True, slots=True)
class AgentReport:
    """The agent's running totals and how its attempt is going, as the relay last saw them."""

    adapter: str = "text"
    session_id: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    doing: str | None = None
    """The agent's last action, as one readable phrase."""
    final_message: str | None = None
    needs_input: str | None = None
    """Why the agent waits for a person (its question, a refused permission), or None."""
    over_budget: str | None = None
    """Why the relay stopped the agent for its budget, or None."""
    errors: int = 0
    lines: int = 0
    """Lines of the agent's stream read so far: each one is a sign of life."""
    delivered: tuple[str, ...] = field(default_factory=tuple)
    """Messages handed to the running agent on its stdin (their ids)."""
    ended: bool = False
    """The agent's process has ended and every byte of its stream was read."""

    @property
    def tokens(self) -> int:
        """Input (cached included) and output tokens together: what ``max_tokens`` caps."""
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_summary(cls, adapter: str, summary: AgentSummary, **extra: Any) -> AgentReport:
        return cls(
            adapter=adapter,
            session_id=summary.session_id,
            model=summary.model,
            input_tokens=summary.input_tokens,
            output_tokens=summary.output_tokens,
            cached_tokens=summary.cached_tokens,
            cost_usd=summary.cost_usd,
            doing=summary.last_action,
            final_message=summary.final_message,
            needs_input=summary.needs_input,
            errors=summary.errors,
            lines=summary.lines,
            **extra,
        )

    def to_json(self) -> str:
        data = asdict(self)
        data["delivered"] = list(self.delivered)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentReport | None:
        """The report in ``text``; None when it is not one (damaged, hostile, another shape)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        # The adapters' own readers of untrusted fields: a wrong type or size is the default.
        values: dict[str, Any] = {name: count_field(data, name) for name in _COUNTS}
        for name in _TEXT:
            if found := text_field(data, name):
                values[name] = found[:4000]
        delivered = data.get("delivered")
        if isinstance(delivered, list):
            values["delivered"] = tuple(v for v in delivered if isinstance(v, str))
        values["cost_usd"] = money_field(data, "cost_usd")
        values["ended"] = data.get("ended") is True
        return cls(**values)


_TEXT: Final = (
    "adapter",
    "session_id",
    "model",
    "doing",
    "final_message",
    "needs_input",
    "over_budget",
)
_COUNTS: Final = ("input_tokens", "output_tokens", "cached_tokens", "errors", "lines")


def write_report(path: Path, report: AgentReport) -> None:
    """Replace ``path`` with ``report`` at once (temporary file, then rename), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, report.to_json().encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_report(path: Path) -> AgentReport | None:
    """The report at ``path``; None when there is none or it is not a regular, sane file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > REPORT_LIMIT:
            return None
        return AgentReport.from_json(os.read(fd, REPORT_LIMIT))
    except OSError:
        return None
    finally:
        os.close(fd)


def summarize_stream(
    adapter_name: str, stream: Path, *, pricing: Pricing | None = None, model: str | None = None
) -> AgentReport | None:
    """The report an agent's raw stream makes from scratch: for an attempt whose relay was
    lost before it wrote its last report. None when there is no stream or no such adapter.
    Blocking: reads the whole file, in chunks."""
    from . import ADAPTERS  # the package imports this module

    factory = ADAPTERS.get(adapter_name)
    if factory is None:
        return None
    adapter = factory(pricing=pricing, model=model)
    try:
        with stream.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                adapter.feed(chunk)
    except OSError:
        return None
    adapter.close()
    return AgentReport.from_summary(adapter_name, adapter.summary, ended=True)


__all__ = ["REPORT_LIMIT", "AgentReport", "read_report", "summarize_stream", "write_report"]
