"""What the README claims about plans and messages is so.

A user who searches the README for the message they got must find it: every
message quoted in the Troubleshooting table is looked up among the strings of
the code (f-strings with their ``{fields}``; docstrings left out), CAPITALS and
numbers standing for the names in a real message, ``...`` for a part left out.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from mission_control.plan.schema import WORKSTREAM_KEYS, WRITTEN_SETTINGS_KEYS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_CODE_SPAN = re.compile(r"^\| (`+) ?(.+?) ?\1 \|")
_PLACEHOLDER = re.compile(r"'[A-Z][A-Z_]*'|\b(?:[A-Z][A-Z_]*|\d+)\b")
_QUOTED = r"(?:'.+?'|\{[^{}]*!r\})"
"""``'PATH'`` is quoted in the message, by the code's quotes or by ``{path!r}``."""
_LOCATION = "plan.yaml:LINE:COL: KEY: "
"""How `PlanProblem` prefixes every plan message: not part of any one string."""


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + len(title) + 2)
    return text[start : end if end != -1 else len(text)]


def troubleshooting_messages() -> list[str]:
    messages = []
    for line in _section("## Troubleshooting").splitlines():
        match = _CODE_SPAN.match(line)
        if match:
            messages.append(match.group(2))
    return messages


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            found.add(id(node.value))
    return found


def _render(node: ast.JoinedStr) -> str:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        elif isinstance(value, ast.FormattedValue):
            conversion = f"!{chr(value.conversion)}" if value.conversion != -1 else ""
            parts.append("{" + ast.unparse(value.value) + conversion + "}")
    return "".join(parts)


@cache
def source_strings() -> tuple[str, ...]:
    """Every string literal and f-string of the package, as written."""
    strings: list[str] = []
    for file in sorted((ROOT / "mission_control").rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                strings.append(_render(node))
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
            ):
                strings.append(node.value)
    return tuple(strings)


def message_pattern(segment: str) -> re.Pattern[str]:
    """``has no remote 'REMOTE'`` -> literal text, each placeholder any text."""
    pieces = []
    last = 0
    for match in _PLACEHOLDER.finditer(segment):
        pieces.append(re.escape(segment[last : match.start()]))
        pieces.append(_QUOTED if match.group().startswith("'") else ".+?")
        last = match.end()
    pieces.append(re.escape(segment[last:]))
    return re.compile("".join(pieces), re.DOTALL)


def found_in_code(message: str) -> bool:
    message = message.removeprefix(_LOCATION)
    segments = [s.strip() for s in message.split("...") if s.strip()]
    return all(
        any(message_pattern(segment).search(text) for text in source_strings())
        for segment in segments
    )


def test_the_troubleshooting_table_quotes_messages() -> None:
    messages = troubleshooting_messages()
    assert len(messages) >= 10, messages
    assert "base branch 'BRANCH' is not in REPO" in messages


@pytest.mark.parametrize("message", troubleshooting_messages())
def test_each_troubleshooting_message_is_one_the_code_prints(message: str) -> None:
    assert found_in_code(message), f"no string of mission_control/ reads {message!r}"


def test_the_lookup_tells_a_real_message_from_a_paraphrase() -> None:
    assert found_in_code("merging dependency DEP into BRANCH conflicts in FILES")
    assert not found_in_code("merging ws/P/A into ws/P/C conflicts in x.py")
    assert not found_in_code("push rejected")
    assert found_in_code('plan.yaml:LINE:COL: KEY: "\\R" is not a YAML escape')


def _workstream_table_keys() -> set[str]:
    section = _section("### Plan reference")
    table = section[section.index("A workstream (") :]
    keys: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
        elif keys and not line.startswith("|"):
            break
    return keys


def test_the_readme_names_the_keys_defaults_refuse() -> None:
    section = _section("### Plan reference")
    sentence = section[section.index("A workstream (") :].split("):", 1)[0]
    claim = sentence.split("may also sit", 1)[0]
    refused = set(re.findall(r"`([a-z_]+)`", claim))
    assert refused == WORKSTREAM_KEYS - WRITTEN_SETTINGS_KEYS
    defaults_row = next(line for line in section.splitlines() if line.startswith("| `defaults`"))
    assert set(re.findall(r"`([a-z_]+)`", defaults_row)) - {"defaults"} == refused
    assert _workstream_table_keys() == set(WORKSTREAM_KEYS)
