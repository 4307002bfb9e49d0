"""A simulated coding agent for the demo: talks like one, edits real files, takes its time.

It reads its prompt on stdin. Lines starting with ``@`` are directives, the rest
is the task it "thinks" about:

    @duration 20            seconds to spend (spread over its steps)
    @write PATH             replace PATH with the lines that follow, up to ``@end``
    @append PATH TEXT       append one line to PATH
    @replace PATH OLD => NEW  replace the first OLD in PATH by NEW (``\\n`` for a newline)
    @fail-attempt N         exit 1 on attempt N (from MC_ATTEMPT), after some work

Everything it prints goes to stdout with ANSI colours, as real agent CLIs do.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_BLUE = "\x1b[34m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_RED = "\x1b[31m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"

_THOUGHTS = [
    "Reading the repository map",
    "Looking for the call sites",
    "Checking how errors are reported here",
    "Comparing with the existing tests",
    "Planning the smallest change that works",
    "Reviewing the diff before applying it",
    "Double-checking imports",
]


@dataclass
class _Edit:
    kind: str
    path: str
    text: str = ""
    old: str = ""


@dataclass
class _Script:
    task: list[str] = field(default_factory=list)
    edits: list[_Edit] = field(default_factory=list)
    duration: float = 10.0
    fail_attempts: set[int] = field(default_factory=set)


def _parse(prompt: str) -> _Script:
    script = _Script()
    lines = prompt.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("@duration "):
            script.duration = float(line.split()[1])
        elif line.startswith("@fail-attempt "):
            script.fail_attempts.add(int(line.split()[1]))
        elif line.startswith("@write "):
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i] != "@end":
                body.append(lines[i])
                i += 1
            script.edits.append(_Edit("write", line.split(maxsplit=1)[1], "\n".join(body) + "\n"))
        elif line.startswith("@append "):
            _, path, text = line.split(" ", 2)
            script.edits.append(_Edit("append", path, text))
        elif line.startswith("@replace "):
            _, path, rest = line.split(" ", 2)
            old, new = rest.split(" => ", 1)
            script.edits.append(_Edit("replace", path, _unescape(new), _unescape(old)))
        elif line.strip():
            script.task.append(line)
        i += 1
    return script


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _apply(edit: _Edit) -> str:
    path = Path(edit.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if edit.kind == "write":
        path.write_text(edit.text, encoding="utf-8")
        return f"wrote {edit.path} ({edit.text.count(chr(10))} lines)"
    if edit.kind == "append":
        with path.open("a", encoding="utf-8") as f:
            f.write(edit.text + "\n")
        return f"appended to {edit.path}"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if edit.old not in current:
        return f"{edit.path}: nothing to replace"
    path.write_text(current.replace(edit.old, edit.text, 1), encoding="utf-8")
    return f"edited {edit.path}"


def main() -> int:
    script = _parse(sys.stdin.read())
    attempt = int(os.environ.get("MC_ATTEMPT", "1"))
    name = os.environ.get("MC_WORKSTREAM", "workstream")
    rng = random.Random(f"{name}-{attempt}")
    steps = max(4, len(script.edits) * 2 + 3)
    pause = script.duration / steps
    _say(f"{_BOLD}demo-agent{_RESET} {_DIM}v1.0 · model sim-large · attempt {attempt}{_RESET}")
    for line in script.task[:3]:
        _say(f"{_BLUE}> {line}{_RESET}")
    for step in range(steps):
        time.sleep(pause * rng.uniform(0.6, 1.4))
        if step % 2 == 1 and script.edits:
            edit = script.edits.pop(0)
            _say(f"{_GREEN}✎ {_apply(edit)}{_RESET}")
            continue
        thought = rng.choice(_THOUGHTS)
        _say(f"{_DIM}… {thought}{_RESET}")
        tokens = rng.randint(800, 4000)
        _say(f"{_DIM}  tokens: {tokens} sent, {rng.randint(80, 600)} received{_RESET}")
        if attempt in script.fail_attempts and step == steps // 2:
            _say(f"{_RED}✘ error: the test database is locked (simulated flaky failure){_RESET}")
            return 1
    for edit in script.edits:
        _say(f"{_GREEN}✎ {_apply(edit)}{_RESET}")
    _say(f"{_YELLOW}✔ done{_RESET} {_DIM}— {len(script.task)} instruction(s) handled{_RESET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
