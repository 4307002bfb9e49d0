"""The user's own notification channels, from ``~/.config/mission-control/config.yaml``.

Personal channels (a phone's ntfy topic, a Slack token) stay out of plans that
are shared: the user's config file holds a ``notify:`` mapping of the same
shape as a plan's, and both apply. A mistake in the file is one line naming
the file, the key and the fix; the URLs in it are never echoed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from ..errors import SetupError
from ..plan.around import notify_spec
from ..plan.model import NotifySpec
from ..plan.schema import RawNotify
from ..plan.yaml_nodes import parse_document

CONFIG_NAME = "config.yaml"


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/mission-control/config.yaml`` (``~/.config/...``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mission-control" / CONFIG_NAME


def user_notify(path: Path | None = None) -> NotifySpec | None:
    """The ``notify:`` of the user's config file; None without one. SetupError when wrong."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise SetupError(f"{path}: cannot be read ({err}): fix or remove the file") from None
    doc, issues = parse_document(text)  # as plans are read: `on:` is a key, not true
    if issues or doc is None:
        where = f":{issues[0].pos[0]}: {issues[0].message}" if issues else ""
        raise SetupError(f"{path}{where}: not valid YAML: fix the file")
    data = doc.data
    if data is None:
        return None
    if not isinstance(data, dict):
        raise SetupError(f"{path}: must be a mapping with `notify:`: fix the file")
    unknown = sorted(set(data) - {"notify"})
    if unknown:
        raise SetupError(f"{path}: unknown key '{unknown[0]}': only `notify:` is read there")
    if data.get("notify") is None:
        return None
    try:
        raw = RawNotify.model_validate(data["notify"])
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        key = ".".join(str(part) for part in ("notify", *first["loc"]))
        raise SetupError(
            f"{path}: {key}: {first['msg'].lower()}: write e.g. notify: {{urls:"
            " [ntfy://mytopic], on: [failed, run_finished]}"
        ) from None
    if any("://" not in url for url in raw.urls):
        raise SetupError(f"{path}: notify.urls: each channel is a URL with a scheme (ntfy://...)")
    return notify_spec(raw)
