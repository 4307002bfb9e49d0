"""The second pass: ``defaults:`` merged into each workstream, once, over the model's fields.

``RawSettings`` (``schema``) is the one list of what ``defaults:`` may set and
a workstream may override; this pass walks its ``model_fields``, so a new
setting needs no code here. A workstream's own value wins; ``env:`` and
``pr:`` merge key by key (a workstream adds a variable or a label without
repeating the others); any other value, ``resources:`` included, replaces
the default as a whole. Each merged value keeps where it was written, so a
later problem points at the workstream's line or at ``defaults:``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .model import Workstream
from .schema import SETTINGS_KEYS, RawSettings
from .yaml_nodes import KeyPath

Setting = tuple[Any, KeyPath]
"""A merged value and where it was written."""

MERGED_BY_KEY: frozenset[str] = frozenset({"env", "pr"})
"""Settings whose mappings merge key by key, the workstream's keys winning."""

DERIVED: frozenset[str] = frozenset({"worktree_root"})
"""Settings the loader fills in when neither the workstream nor ``defaults:`` sets them."""

REQUIRED: tuple[str, ...] = tuple(
    name
    for name, info in Workstream.model_fields.items()
    if info.is_required() and name in SETTINGS_KEYS and name not in DERIVED
)
"""Settings a workstream must get from itself or ``defaults:``, in the model's order."""


_WRITTEN: dict[str, str] = {
    name: info.alias or name for name, info in RawSettings.model_fields.items()
}
"""Each setting's key as written in the file (``start_from`` is written ``from``)."""


def defaults_settings(defaults: RawSettings) -> dict[str, Setting]:
    """What ``defaults:`` gives every workstream: the start of each merge."""
    return {
        name: (_keys(value) if name in MERGED_BY_KEY else value, ("defaults", _WRITTEN[name]))
        for name in SETTINGS_KEYS
        if (value := getattr(defaults, name)) is not None
    }


def merge_settings(base: dict[str, Setting], own: RawSettings, path: KeyPath) -> dict[str, Setting]:
    """The settings ``own`` (written at ``path``) sets, laid over ``base`` (the defaults)."""
    merged = dict(base)
    for name in own.model_fields_set:
        value = getattr(own, name)
        if value is None or name not in SETTINGS_KEYS:
            continue
        if name in MERGED_BY_KEY:
            value = {**(base[name][0] if name in base else {}), **_keys(value)}
        merged[name] = (value, (*path, _WRITTEN[name]))
    return merged


def _keys(value: object) -> dict[str, Any]:
    """The keys a mapping setting was written with (a model: only those set)."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    return dict(value) if isinstance(value, dict) else {}
