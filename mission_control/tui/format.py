"""Short, fixed-width renderings of numbers for table cells and the header.

Cells are compared as strings to decide what changed, so every formatter is a
pure function of its inputs (no clock reads here: callers pass ``now``).
"""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: the most useful two units."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def size(num_bytes: int) -> str:
    """``512K``, ``38M``, ``1.2G``."""
    if num_bytes <= 0:
        return "-"
    if num_bytes < 1024 * 1024:
        return f"{num_bytes // 1024}K"
    if num_bytes < 1024**3:
        return f"{num_bytes // (1024 * 1024)}M"
    return f"{num_bytes / 1024**3:.1f}G"


def percent(value: float) -> str:
    return f"{value:.0f}%"


def clock(seconds: float) -> str:
    """``4:05``, ``1:02:03``: elapsed time in the table."""
    s = int(max(0.0, seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def limit(seconds: float) -> str:
    """``60m``, ``2h``, ``90s``: a timeout, in its roundest unit."""
    s = int(seconds)
    if s % 3600 == 0 and s >= 7200:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def tokens_text(count: int) -> str:
    """A token count in at most 5 characters: ``950``, ``12.3k``, ``4.1M``."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k" if count < 100_000 else f"{count // 1000}k"
    return f"{count / 1_000_000:.1f}M"


def cost_text(tokens: int, cost_usd: float | None) -> str:
    """What an agent spent, for a cell: ``$0.42``, or its tokens when no cost is known."""
    if cost_usd is not None:
        return f"${cost_usd:.2f}" if cost_usd >= 0.01 or cost_usd == 0 else f"${cost_usd:.3f}"
    return f"{tokens_text(tokens)} tok" if tokens else "-"
