"""Notifications of a run: the plan's ``notify:`` and the user's own, sent off the run's path.

``start_notifier`` gathers both and returns a bus subscriber (or None when
nobody asked for notifications); drivers subscribe it to the engine and close it
when the run is over.
"""

from __future__ import annotations

from pathlib import Path

from ..plan.model import Plan
from ..store.logs import run_dir
from .config import user_notify
from .notifier import LOG_NAME, Notifier, channels_of


def start_notifier(plan: Plan, state_dir: Path, run_id: str) -> Notifier | None:
    """The notifier of a run, or None without channels (SetupError for a bad config file)."""
    specs = [spec for spec in (plan.notify, user_notify()) if spec is not None]
    channels = channels_of(specs)
    if not channels:
        return None
    return Notifier(channels, plan.name, run_dir(state_dir, run_id) / LOG_NAME)


__all__ = ["Notifier", "start_notifier"]
