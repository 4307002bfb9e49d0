"""YAML text to plain values, keeping the line and column of every key and value.

Validation works on plain dicts and lists, yet every problem must name its line.
So the text is *composed* (not constructed): PyYAML's node tree keeps each
node's mark, and one walk over it yields both the data and an index from key
paths (``("phases", 0, "workstreams", 2, "tool")``) to positions. Any error
location, from pydantic or from the semantic checks, is such a path and maps
back to a line without a second parse.

The walk also catches what ``yaml.safe_load`` lets pass or handles badly:
duplicate keys, aliases that refer to themselves, alias bombs, unknown tags.
Mapping keys are kept as their source text (``07`` stays ``"07"``), so every
key is a string.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # libyaml is about ten times faster; PyYAML's own parser is the fallback.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

KeyPath = tuple[str | int, ...]
"""Keys and list indexes from the document root to a value."""

Pos = tuple[int, int]
"""1-based line and column."""

MAX_NODES = 200_000
"""More values than this (after alias expansion) is an alias bomb, not a plan."""

MAX_DIGITS = 1000
"""Longer integers are refused (Python's ``int()`` itself stops at 4,300 digits)."""

_STD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _STD_TAG + "merge"
_STR_TAG = _STD_TAG + "str"
_INT_TAG = _STD_TAG + "int"
_DECIMAL = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_SCALAR_TAGS = frozenset(
    _STD_TAG + t for t in ("null", "bool", "int", "float", "str", "timestamp", "binary")
)
_CONTAINER_TAGS = frozenset(_STD_TAG + t for t in ("map", "seq", "omap", "set", "pairs"))


@dataclass(frozen=True, slots=True)
class YamlIssue:
    """One problem found while reading the YAML, before any plan rule."""

    pos: Pos
    path: KeyPath
    message: str
    hint: str = ""


@dataclass(slots=True)
class Document:
    """The data of one YAML document and where each part of it was written."""

    data: object
    values: dict[KeyPath, Pos] = field(default_factory=dict)
    """Where each value starts (for a mapping or list: its first item)."""
    keys: dict[KeyPath, Pos] = field(default_factory=dict)
    """Where the key of each mapping entry starts."""
    texts: dict[KeyPath, str] = field(default_factory=dict)
    """The source text of each scalar value, for messages ("got 'abc'")."""

    def pos(self, path: KeyPath) -> Pos:
        """Position of ``path``, or of its nearest ancestor that was written down."""
        p = path
        while True:
            found = self.values.get(p)
            if found is not None:
                return found
            if not p:
                return (1, 1)
            p = p[:-1]

    def key_pos(self, path: KeyPath) -> Pos:
        """Position of the key of ``path`` (falls back to the value, then to ancestors)."""
        return self.keys.get(path) or self.pos(path)


class _TooBig(Exception):
    pass


def _mark(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Walker:
    def __init__(self) -> None:
        self.doc = Document(data=None)
        self.issues: list[YamlIssue] = []
        self._ctor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def value(self, node: Node, path: KeyPath) -> object:
        self._count += 1
        if self._count > MAX_NODES:
            raise _TooBig
        self.doc.values[path] = _mark(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.issues.append(
                YamlIssue(
                    _mark(node),
                    path,
                    "an alias refers to the value that contains it",
                    "a plan cannot be recursive: copy the values instead of using the alias",
                )
            )
            return None
        self._check_tag(node, path, _CONTAINER_TAGS)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        return None  # pragma: no cover - PyYAML has only these three node kinds

    def _check_tag(self, node: Node, path: KeyPath, known: frozenset[str]) -> None:
        if node.tag not in known and node.tag != "!":
            self.issues.append(
                YamlIssue(
                    _mark(node),
                    path,
                    f"unknown YAML tag {node.tag!r}",
                    "remove the tag; a plan uses only plain YAML values",
                )
            )

    def _scalar(self, node: ScalarNode, path: KeyPath) -> object:
        self.doc.texts[path] = node.value
        tag = node.tag
        if tag == _STR_TAG or tag == "!":
            return node.value
        if tag == _INT_TAG:
            digits = sum(ch.isdigit() for ch in node.value) if len(node.value) > MAX_DIGITS else 0
            if digits > MAX_DIGITS:  # int() would refuse it, or take seconds
                self.issues.append(
                    YamlIssue(
                        _mark(node),
                        path,
                        f"a number of {digits:,} digits is too long",
                        f"write a number of at most {MAX_DIGITS:,} digits,"
                        " or put it in quotes if it is text",
                    )
                )
                return node.value
            if _DECIMAL.match(node.value):
                return int(node.value)  # the common case, without the constructor's detour
        if tag not in _SCALAR_TAGS:
            self._check_tag(node, path, _SCALAR_TAGS)
            return node.value
        construct: Callable[[SafeConstructor, ScalarNode], Any] = SafeConstructor.yaml_constructors[
            tag
        ]
        try:
            return construct(self._ctor, node)
        except (ValueError, OverflowError, TypeError, yaml.YAMLError):
            # e.g. "2024-13-45" looks like a date but is none: keep the text.
            return node.value

    def _pairs(self, node: MappingNode, path: KeyPath) -> list[tuple[Node, Node]]:
        """The entries of a mapping with YAML merge keys (``<<: *base``) expanded."""
        merged: list[tuple[Node, Node]] = []
        explicit: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag != _MERGE_TAG:
                explicit.append((key, value))
                continue
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.issues.append(
                        YamlIssue(
                            _mark(source),
                            path,
                            "a merge key (<<) needs a mapping or a list of mappings",
                            "write `<<: *anchor` where &anchor names a mapping",
                        )
                    )
                elif id(source) in self._active:
                    self.issues.append(
                        YamlIssue(
                            _mark(source),
                            path,
                            "a merge key (<<) refers to the mapping that contains it",
                            "merge a different mapping",
                        )
                    )
                else:
                    self._active.add(id(source))
                    try:
                        merged.extend(self._pairs(source, path))
                    finally:
                        self._active.discard(id(source))
        # The mapping's own keys beat merged ones; among merged sources the
        # earlier one wins, as YAML's merge-key spec says.
        seen: set[str] = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
        first_wins: list[tuple[Node, Node]] = []
        for key, value in merged:
            text = key.value if isinstance(key, ScalarNode) else None
            if text is not None and text in seen:
                continue
            if text is not None:
                seen.add(text)
            first_wins.append((key, value))
        return first_wins + explicit

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, object]:
        result: dict[str, object] = {}
        own_keys: dict[str, Pos] = {}
        explicit_ids = {id(k) for k, _ in node.value}
        for key, value in self._pairs(node, path):
            if not isinstance(key, ScalarNode):
                self.issues.append(
                    YamlIssue(
                        _mark(key),
                        path,
                        "a key must be plain text, not a list or a mapping",
                        "write `name: value`",
                    )
                )
                continue
            text = key.value
            child = (*path, text)
            if id(key) in explicit_ids:
                if text in own_keys:
                    line, _ = own_keys[text]
                    self.issues.append(
                        YamlIssue(
                            _mark(key),
                            child,
                            f"duplicate key {text!r} (first at line {line})",
                            "keep one of them",
                        )
                    )
                    continue
                own_keys[text] = _mark(key)
            self.doc.keys[child] = _mark(key)
            result[text] = self.value(value, child)
        return result


def parse_document(text: str) -> tuple[Document | None, list[YamlIssue]]:
    """Parse one YAML document; ``None`` when the text is not YAML at all.

    An empty document gives a ``Document`` whose ``data`` is ``None``.
    """
    # Tens of thousands of nodes, marks and values, none of them in a reference
    # cycle: the cyclic collector would only rescan them (a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(text)
    finally:
        if collecting:
            gc.enable()


_NODE_EVENTS = (
    yaml.ScalarEvent,
    yaml.SequenceStartEvent,
    yaml.MappingStartEvent,
    yaml.AliasEvent,
)


def _check_node_count(text: str) -> YamlIssue | None:
    """Count the values as the parser streams them, before any node tree is built.

    Composing builds every node with its marks at once: a few megabytes of
    ``- 1`` lines would take a gigabyte before the walker could count them.
    """
    count = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _NODE_EVENTS):
            count += 1
            if count > MAX_NODES:
                mark = event.start_mark
                return YamlIssue(
                    (mark.line + 1, mark.column + 1) if mark is not None else (1, 1),
                    (),
                    f"the plan holds more than {MAX_NODES:,} values",
                    "a plan of thousands of workstreams holds far fewer: check the file",
                )
    return None


def _parse(text: str) -> tuple[Document | None, list[YamlIssue]]:
    try:
        too_many = _check_node_count(text)
        if too_many is not None:
            return None, [too_many]
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        return None, [syntax_issue(err, text)]
    except yaml.reader.ReaderError as err:
        return None, [_reader_issue(err, text)]
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error has a mark
        return None, [YamlIssue((1, 1), (), f"invalid YAML: {err}", "check the file")]
    except RecursionError:
        return None, [_too_deep()]
    if root is None:
        return Document(data=None), []
    walker = _Walker()
    try:
        walker.doc.data = walker.value(root, ())
    except _TooBig:
        return None, [
            YamlIssue(
                _mark(root),
                (),
                f"the plan expands to more than {MAX_NODES:,} values",
                "aliases (*name) copy their anchor each time: use fewer of them",
            )
        ]
    except RecursionError:
        return None, [_too_deep()]
    return walker.doc, walker.issues


def _too_deep() -> YamlIssue:
    return YamlIssue((1, 1), (), "the YAML is nested too deeply", "a plan is a few levels deep")


def _reader_issue(err: yaml.reader.ReaderError, text: str) -> YamlIssue:
    position = max(0, min(int(err.position), len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = err.character
    code = f"U+{char:04X}" if isinstance(char, int) else repr(char)
    return YamlIssue(
        (line, column),
        (),
        f"the character {code} is not allowed in YAML",
        "remove it, or write it as an escape inside double quotes (\\x07)",
    )


_KEY_ON_LINE = re.compile(r"^\s*(?:-\s+)?([^\s:#'\"][^:#]*?)\s*:(?:\s|$)")


def _key_on_line(text: str, line: int) -> str:
    lines = text.splitlines()
    if 0 <= line < len(lines):
        match = _KEY_ON_LINE.match(lines[line])
        if match:
            return match.group(1)
    return ""


def _escape_issue(err: yaml.MarkedYAMLError, text: str, pos: Pos) -> YamlIssue:
    mark = err.problem_mark
    assert mark is not None
    index = mark.index
    # libyaml points at the backslash, PyYAML at the character after it.
    if 0 <= index < len(text) and text[index] == "\\":
        char = text[index + 1 : index + 2]
    else:
        char = text[index : index + 1]
    start = err.context_mark.index if err.context_mark is not None else index
    end = text.find('"', start + 1)
    end = end if end != -1 and "\n" not in text[start:end] else text.find("\n", start)
    quoted = text[start + 1 : end if end != -1 else len(text)]
    single = "'" + quoted.replace("'", "''") + "'"
    forward = '"' + quoted.replace("\\", "/") + '"'
    line = err.context_mark.line if err.context_mark is not None else mark.line
    key = _key_on_line(text, line)
    return YamlIssue(
        pos,
        (key,) if key else (),
        f'"\\{char}" is not a YAML escape: inside double quotes a backslash starts an escape',
        f"use single quotes ({single}) or forward slashes ({forward})",
    )


def syntax_issue(err: yaml.MarkedYAMLError, text: str) -> YamlIssue:
    """Turn a PyYAML/libyaml syntax error into one plain message with a fix."""
    mark = err.problem_mark or err.context_mark
    pos: Pos = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = (err.problem or "").strip()
    context = (err.context or "").strip()
    at = text[mark.index] if mark is not None and 0 <= mark.index < len(text) else ""
    if "unknown escape" in problem:
        return _escape_issue(err, text, pos)
    if at == "\t" or "'\\t'" in problem:
        return YamlIssue(
            pos, (), "a tab character: YAML indents with spaces only", "replace tabs with spaces"
        )
    if "mapping values are not allowed" in problem:
        return YamlIssue(
            pos,
            (),
            "unexpected ':' in a value",
            'put a value that holds ": " in quotes (name: "a: b"), or fix the indentation',
        )
    if "expected a single document" in context:
        return YamlIssue(
            pos, (), "a second YAML document (---)", "keep one plan per file: remove the ---"
        )
    if "nesting depth" in problem:
        return _too_deep()
    if "undefined alias" in problem:
        return YamlIssue(
            pos, (), problem, "define the anchor (&name) before the alias (*name) that uses it"
        )
    message = f"{context}: {problem}" if context else problem
    return YamlIssue(
        pos,
        (),
        f"invalid YAML ({message})",
        "check the indentation and the quotes around here",
    )
