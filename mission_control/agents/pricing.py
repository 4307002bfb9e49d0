"""Cost in USD from token counts, for CLIs that report tokens but no cost (codex, gemini).

A plan may carry a ``pricing:`` table, per model, of USD per million tokens::

    pricing:
      gpt-5-codex: {input: 1.25, output: 10.0, cached: 0.125}

Only the user knows what they pay (list price, a discount, a local model at zero), so there is
no built-in price list: no table, or no row for the model, means tokens only (``None``).

Model names vary by CLI (``openai/gpt-5``, ``claude-sonnet-4-5-20250929``), so a row matches
the model exactly, else after dropping a ``provider/`` prefix, else as the longest row name the
model starts with (a row ``claude-sonnet-4-5`` prices its dated releases).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens. ``cached`` (input served from cache) defaults to ``input``."""

    input: float
    output: float
    cached: float | None = None


Pricing = Mapping[str, ModelPrice]


DEFAULT_ROW = "*"
"""The row for any model no other row names, or that the CLI does not name (codex)."""


def find_price(pricing: Pricing | None, model: str | None) -> ModelPrice | None:
    """The row for ``model``: exact name, then without a ``provider/`` prefix, then the longest
    row name that the model name starts with, then the ``*`` row."""
    if not pricing:
        return None
    if not model:
        return pricing.get(DEFAULT_ROW)
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    for name in names:
        if name in pricing:
            return pricing[name]
    for name in names:
        prefixes = [row for row in pricing if row and name.startswith(row)]
        if prefixes:
            return pricing[max(prefixes, key=len)]
    return pricing.get(DEFAULT_ROW)


def cost_usd(
    price: ModelPrice | None, *, input_tokens: int, output_tokens: int, cached_tokens: int
) -> float | None:
    """What the tokens cost. ``input_tokens`` includes ``cached_tokens``, billed at the cached
    rate. ``None`` without a price, or when the price is not a finite number."""
    if price is None:
        return None
    cached = min(max(cached_tokens, 0), max(input_tokens, 0))
    fresh = max(input_tokens, 0) - cached
    cached_rate = price.input if price.cached is None else price.cached
    total = (
        fresh * price.input + cached * cached_rate + max(output_tokens, 0) * price.output
    ) / _MILLION
    return total if math.isfinite(total) else None


def over_budget(
    max_cost_usd: float | None, max_tokens: int | None, cost_usd: float | None, tokens: int
) -> str | None:
    """Why spending ``cost_usd`` and ``tokens`` goes over the caps, or None (no cap: None)."""
    if max_cost_usd is not None and cost_usd is not None and cost_usd > max_cost_usd:
        return f"over budget: ${cost_usd:.4f} spent, max_cost_usd is {max_cost_usd:g}"
    if max_tokens is not None and tokens > max_tokens:
        return f"over budget: {tokens:,} tokens used, max_tokens is {max_tokens:,}"
    return None
