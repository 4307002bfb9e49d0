"""Telling a plan's problems: each with its file:line, where it is in the plan, and the fix.

Every pass of the loader reports through one ``Problems``. It turns a key
path into the position the YAML pass recorded (``yaml_nodes``) and into the
path a person reads (``phases[PH-07].workstreams[WS-07A].checks[0].run``), and
it words pydantic's errors on the ``schema`` models (``describe_error``),
dropping the keys that failed so the rest of a mapping is still checked. No
pass stops at the first problem, so neither does this: ``sorted()`` hands
back every one, by position.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import PlanProblem
from .schema import allowed_keys, describe_error, misplaced_hint, resource_key_hint
from .yaml_nodes import Document, KeyPath, Pos

_M = TypeVar("_M", bound=BaseModel)
_SIMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LEVELS = frozenset({"plan", "phase", "workstream", "defaults"})


def close(word: str, options: Iterable[str]) -> str | None:
    """The option ``word`` most likely meant: same letters in another case, else the closest."""
    candidates = list(options)
    for option in candidates:
        if option.casefold() == word.casefold():
            return option
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe(value: object) -> str:
    """What a value written in YAML is, in words: ``a mapping``, ``a list``, ``text``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return "text"


def short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Problems:
    """Every problem found in the plan at ``path``, read as ``doc``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = Document(data=None)
        self.found: list[PlanProblem] = []
        self.yaml_issues: set[KeyPath] = set()
        """Values the YAML pass reported already: a type error there would say it twice."""

    def __bool__(self) -> bool:
        return bool(self.found)

    def add(self, path: KeyPath, message: str, hint: str = "", *, at: Pos | None = None) -> None:
        line, column = at if at is not None else self.doc.pos(path)
        self.found.append(PlanProblem(self.path, line, column, self.display(path), message, hint))

    def sorted(self) -> list[PlanProblem]:
        """Each problem once, by position in the file."""
        unique = {(p.line, p.column, p.key_path, p.message, p.hint): p for p in self.found}
        return sorted(unique.values(), key=lambda p: (p.line, p.column))

    def display(self, path: KeyPath) -> str:
        """``phases[PH-07].workstreams[WS-07A].checks[0].run``: ids where the file has them."""
        parts: list[str] = []
        node: object = self.doc.data
        previous: str | int | None = None
        for element in path:
            if isinstance(element, int):
                item = node[element] if isinstance(node, list) and element < len(node) else None
                label = str(element)
                if previous in ("phases", "workstreams") and isinstance(item, dict):
                    ident = item.get("id")
                    if isinstance(ident, str) and _SIMPLE_ID.match(ident):
                        label = ident
                parts.append(f"[{label}]")
                node = item
            else:
                parts.append(("." if parts else "") + element)
                node = node.get(element) if isinstance(node, dict) else None
            previous = element
        return "".join(parts)

    def _got(self, path: KeyPath) -> str | None:
        if "env" in path:
            return None  # environment values hold secrets: never echo them
        text = self.doc.texts.get(path)
        if text is not None:
            return short(text) if text else "''"
        node: object = self.doc.data
        for element in path:
            if isinstance(node, dict) and isinstance(element, str):
                node = node.get(element)
            elif isinstance(node, list) and isinstance(element, int) and element < len(node):
                node = node[element]
            else:
                return None
        return describe(node)

    def validate(
        self, model: type[_M], data: dict[str, Any], path: KeyPath, kind: str
    ) -> tuple[_M | None, set[str]]:
        """Validate one mapping; report each error; retry without the keys that failed."""
        try:
            return model.model_validate(data), set()
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        broken: set[str] = set()
        for err in errors:
            self._report_pydantic(err, path, kind)
            loc = err["loc"]
            if loc and isinstance(loc[0], str) and err["type"] != "missing":
                broken.add(loc[0])
        if any(err["type"] == "missing" and len(err["loc"]) == 1 for err in errors):
            return None, broken
        try:
            return model.model_validate({k: v for k, v in data.items() if k not in broken}), broken
        except ValidationError:  # pragma: no cover - dropping the failed keys always validates
            return None, broken

    def _report_pydantic(self, err: Any, base: KeyPath, kind: str) -> None:
        loc: KeyPath = tuple(e for e in err["loc"] if isinstance(e, str | int))
        full = base + loc
        if full in self.yaml_issues:
            return
        kind_of_parent = kind
        if len(loc) >= 2 and loc[-2] == "pr":
            kind_of_parent = "pr"
        if len(loc) == 2 and loc[0] in ("resources", "budget"):
            kind_of_parent = str(loc[0])
        if len(loc) == 3 and loc[0] == "pricing":
            kind_of_parent = "price"
        if err["type"] == "extra_forbidden":
            self._unknown_key(full, str(loc[-1]), kind_of_parent)
            return
        field_name = next((str(e) for e in reversed(loc) if isinstance(e, str)), kind)
        if len(loc) == 3 and loc[:2] == ("resources", "custom"):
            field_name = "custom resource"  # an amount: the name is the resource's own
        if err["type"] == "missing":
            message, hint = describe_error(err, field_name, None)
            self.add(full[:-1], message, hint)
            return
        message, hint = describe_error(err, field_name, self._got(full))
        if "env" in loc and err["type"] == "string_type":
            hint = "an environment value is text (numbers and true/false are kept as written)"
        self.add(full, message, hint)

    def _unknown_key(self, full: KeyPath, key: str, kind: str) -> None:
        allowed = allowed_keys(kind)
        suggestion = close(key, allowed)
        where = misplaced_hint(key) if kind in _LEVELS else None
        if kind == "resources":
            where = resource_key_hint(key)
        if where is not None:
            hint = where
        elif suggestion:
            hint = f"did you mean '{suggestion}'?"
        else:
            hint = "known keys: " + ", ".join(sorted(allowed))
        self.add(full, f"unknown key '{key}'", hint, at=self.doc.key_pos(full))
