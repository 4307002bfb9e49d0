"""Expanding the paths written in a plan: ``$VARS``, ``${VAR:-default}``, ``~``, relative.

A plan is shared between people and machines, so its paths may name an
environment variable (``repo: ${MC_REPO}``) or be relative to the plan's own
folder. ``os.path.expandvars`` leaves an unset variable in place, which would
surface later as a baffling "no such folder"; here an unset variable is an
error that names it, and ``${VAR:-default}`` gives a fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?-(?P<default>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))"
)


class PathExpansionError(ValueError):
    """A path that cannot be expanded; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        self.hint = hint
        super().__init__(message)


def expand_vars(text: str, environ: Mapping[str, str]) -> str:
    """Replace ``$VAR``, ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``.

    ``${VAR:-default}`` uses the default when VAR is unset or empty,
    ``${VAR-default}`` only when unset. Raises ``PathExpansionError`` naming
    the first unset variable that has no default.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("plain")
        value = environ.get(name)
        op = match.group("op")
        if op is not None:
            if value is None or (op.startswith(":") and value == ""):
                return match.group("default")
            return value
        if value is None:
            raise PathExpansionError(
                f"environment variable {name} is not set",
                f"set it (export {name}=...), or give a default: ${{{name}:-...}}",
            )
        return value

    return _VAR.sub(replace, text)


def expand_path(text: str, base: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The absolute, normalised path ``text`` names, relative paths taken from ``base``.

    Raises ``PathExpansionError`` for an empty path, an unset variable, or a
    ``~user`` that does not exist.
    """
    env = os.environ if environ is None else environ
    expanded = expand_vars(text, env)
    if not expanded.strip():
        raise PathExpansionError("the path is empty", "write the path, or remove the key")
    if "\0" in expanded:
        raise PathExpansionError("the path contains a NUL character", "remove it")
    if expanded.startswith("~"):
        try:
            home_expanded = os.path.expanduser(expanded)
        except (KeyError, ValueError, RuntimeError, OSError) as exc:  # pragma: no cover
            raise PathExpansionError(f"cannot expand '~' ({exc})", "write the full path") from exc
        if home_expanded.startswith("~"):
            user = expanded[1:].split("/", 1)[0]
            raise PathExpansionError(
                f"cannot expand '~{user}': no such user or no home folder",
                "write the full path",
            )
        expanded = home_expanded
    path = Path(expanded)
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path))
