"""Who git commits as: the user's own identity, or a fallback only where none is configured."""

from __future__ import annotations

import os
from pathlib import Path

from .repo import common_git_dir, remembered, run_git

FALLBACK_NAME = "mission-control"
FALLBACK_EMAIL = "mission-control@localhost"


_IDENTITY_VARS = (
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "EMAIL",
    "HOME",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
)


def identity_config(path: Path) -> list[str]:
    """``-c`` items giving git a fallback identity, only where none is configured.

    ``git var`` fails exactly when ``git commit`` would ("Please tell me who you
    are"), so the user's own identity is always used when it exists. The answer
    is remembered per repository and identity environment: it is asked on every
    commit and merge, and a configuration does not change under a running plan.
    """
    key = (common_git_dir(path), tuple(os.environ.get(name) for name in _IDENTITY_VARS))
    found = remembered(_identities, key, lambda: _ask_identity(path))
    return list(found)


_identities: dict[tuple[Path, tuple[str | None, ...]], tuple[str, ...]] = {}


def _ask_identity(path: Path) -> tuple[str, ...]:
    ok = all(
        run_git(["var", name], path, check=False).returncode == 0
        for name in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")
    )
    if ok:
        return ()
    items = []
    for key, value in (("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)):
        if run_git(["config", "--get", key], path, check=False).returncode != 0:
            items.append(f"{key}={value}")
    return tuple(items or [f"user.name={FALLBACK_NAME}", f"user.email={FALLBACK_EMAIL}"])
