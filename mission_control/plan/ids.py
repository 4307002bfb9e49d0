"""Rules for phase and workstream ids, which become branch names and folder names.

A workstream lands in branch ``ws/<PHASE>/<WS>`` (a file under ``.git/refs`` on
disk) and in folder ``<worktree_root>/<PHASE>-<WS>``. So each id must be a
valid component of a git ref (git's ``check_refname_component`` rules) *and* a
valid file name on Linux, macOS and Windows. The checks are pure Python so the
loader can run them on thousands of ids without spawning git; a test compares
them with ``git check-ref-format``.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 100
"""Two ids and a dash must fit in a 255-byte file name, with room to spare."""

_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]]
)
# Git forbids these in a ref; Windows forbids < > " | in a file name (and : ? * \ /).
_FORBIDDEN_CHARS = {
    "/": "'/' (it would split the branch and folder name)",
    "\\": "a backslash",
    " ": "a space",
    "~": "'~' (git reads it as a revision suffix)",
    "^": "'^' (git reads it as a revision suffix)",
    ":": "':' (git and Windows reject it; '::' joins a phase and a workstream id)",
    "?": "'?' (git and Windows reject it)",
    "*": "'*' (git and Windows reject it)",
    "[": "'[' (git rejects it)",
    "<": "'<' (Windows rejects it)",
    ">": "'>' (Windows rejects it)",
    '"': "a double quote (Windows rejects it)",
    "|": "'|' (Windows rejects it)",
}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")
"""Ids most plans use: no character in them needs a look of its own."""


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a phase or workstream id, or ``None`` if it can."""
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    for char in value if _PLAIN.fullmatch(value) is None else "":
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return "contains a control character"
        reason = _FORBIDDEN_CHARS.get(char)
        if reason is not None:
            return f"contains {reason}"
        if char.isspace():
            return "contains white space"
    if value.startswith("."):
        return "starts with '.' (git rejects it; it also hides the folder)"
    if value.startswith("-"):
        return "starts with '-' (commands would read it as an option)"
    if value.endswith("."):
        return "ends with '.' (git and Windows reject it)"
    if value.endswith(".lock"):
        return "ends with '.lock' (git reserves it)"
    if ".." in value:
        return "contains '..' (git rejects it)"
    if "@{" in value:
        return "contains '@{' (git reads it as a reflog suffix)"
    if value == "@":
        return "is '@' (git reads it as HEAD)"
    if value.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        return "is a reserved device name on Windows"
    return None


def suggest_id(value: str) -> str:
    """A usable id close to ``value``: unusual characters become '-'."""
    cleaned = _SAFE.sub("-", value).strip("-.")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)[:MAX_ID_LENGTH].rstrip("-.")
    if cleaned.endswith(".lock"):
        cleaned = cleaned[: -len(".lock")] + "-lock"
    if not cleaned or id_problem(cleaned) is not None:
        cleaned = f"ID-{cleaned}".rstrip("-.") if cleaned else "WS-01"
    return cleaned if id_problem(cleaned) is None else "WS-01"
