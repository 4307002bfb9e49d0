"""Agent adapters: each turns one agent CLI's headless output into mission-control's events.

``ADAPTERS`` maps an adapter's name (what a plan will write, and what the plan validator can
check against ``ADAPTER_NAMES``) to its factory; every factory takes the optional ``pricing``
table and ``model`` hint by keyword::

    adapter = ADAPTERS["codex-json"](pricing=plan_pricing, model="gpt-5-codex")
    for event in adapter.feed(new_bytes):
        ...
    adapter.close(); adapter.summary.cost_usd

The package is pure: no processes, files, threads or clocks, so it runs under any backend
and is tested with bytes alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol

from .adapter import MAX_LINE_BYTES, Adapter, LineAdapter
from .aider import AiderAdapter
from .claude import ClaudeAdapter
from .codex import CodexAdapter
from .events import (
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
from .gemini import GeminiAdapter
from .opencode import OpencodeAdapter
from .pricing import ModelPrice, Pricing
from .text import TextAdapter
from .transcript import render, safe_line


class AdapterFactory(Protocol):
    """Makes a fresh adapter for one attempt's stream."""

    def __call__(
        self,
        *,
        pricing: Pricing | None = None,
        model: str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        cost_before: float = 0.0,
    ) -> LineAdapter: ...


ADAPTERS: Final[Mapping[str, AdapterFactory]] = MappingProxyType(
    {
        adapter.name: adapter
        for adapter in (
            ClaudeAdapter,
            CodexAdapter,
            GeminiAdapter,
            OpencodeAdapter,
            AiderAdapter,
            TextAdapter,
        )
    }
)
ADAPTER_NAMES: Final[tuple[str, ...]] = tuple(ADAPTERS)

__all__ = [
    "ADAPTERS",
    "ADAPTER_NAMES",
    "Adapter",
    "AdapterFactory",
    "AgentAction",
    "AgentError",
    "AgentEvent",
    "AgentFinished",
    "AgentMessage",
    "AgentNeedsInput",
    "AgentStarted",
    "AgentSummary",
    "AgentText",
    "AgentUsage",
    "ModelPrice",
    "Pricing",
    "render",
    "safe_line",
]
