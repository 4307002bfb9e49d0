"""A simulated coding agent for the demo: talks like claude, edits real files, takes its time.

It reads its prompt on stdin. Lines starting with ``@`` are directives, the rest
is the task it "thinks" about:

    @duration 20            seconds to spend (spread over its steps)
    @write PATH             replace PATH with the lines that follow, up to ``@end``
    @append PATH TEXT       append one line to PATH
    @replace PATH OLD => NEW  replace the first OLD in PATH by NEW (``\\n`` for a newline)
    @fail-attempt N         exit 1 on attempt N (from MC_ATTEMPT), after some work
    @ask QUESTION           end by asking QUESTION (the run shows it as needing input)

It prints what ``claude -p --output-format stream-json --verbose`` prints (a session, its
thinking, each file it writes, tokens and a cost), so the demo shows the transcript, the
"Doing" and cost columns and a question to answer with ``m``. ``--resume SESSION`` goes on
with a session: the prompt is then the user's answer, noted in ``ANSWERS.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "sim-large"

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
    question: str = ""


def _parse(prompt: str) -> _Script:
    script = _Script()
    lines = prompt.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("@duration "):
            script.duration = float(line.split()[1])
        elif line.startswith("@ask "):
            script.question = line.split(maxsplit=1)[1]
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


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _Session:
    """The stream-json events of one run of the agent."""

    def __init__(self, session_id: str, rng: random.Random) -> None:
        self.session_id = session_id
        self.rng = rng
        self.messages = 0
        self.input = 0
        self.output = 0

    def _message(self, content: list[dict[str, Any]]) -> None:
        self.messages += 1
        sent, received = self.rng.randint(800, 4000), self.rng.randint(80, 600)
        self.input += sent
        self.output += received
        message = {
            "id": f"msg_{self.session_id}_{self.messages}",
            "model": MODEL,
            "content": content,
            "usage": {"input_tokens": sent, "output_tokens": received},
        }
        _emit({"type": "assistant", "message": message, "session_id": self.session_id})

    def start(self) -> None:
        init = {"type": "system", "subtype": "init", "session_id": self.session_id}
        _emit({**init, "model": MODEL, "cwd": os.getcwd()})

    def think(self, thought: str) -> None:
        self._message([{"type": "thinking", "thinking": thought}])

    def tool(self, name: str, path: str, result: str) -> None:
        tool_id = f"toolu_{self.messages + 1}"
        self._message(
            [{"type": "tool_use", "id": tool_id, "name": name, "input": {"file_path": path}}]
        )
        block = {"type": "tool_result", "tool_use_id": tool_id, "content": result}
        _emit({"type": "user", "message": {"role": "user", "content": [block]}})

    def say(self, text: str) -> None:
        self._message([{"type": "text", "text": text}])

    def result(self, text: str, *, ok: bool = True) -> None:
        # Like claude, the cost reported is the whole session's, earlier runs included.
        ledger = Path(tempfile.gettempdir()) / f"mc-demo-{self.session_id}.cost"
        try:
            before = float(ledger.read_text())
        except (OSError, ValueError):
            before = 0.0
        cost = before + (self.input * 3 + self.output * 15) / 1_000_000
        with contextlib.suppress(OSError):
            ledger.write_text(repr(cost))
        _emit(
            {
                "type": "result",
                "subtype": "success" if ok else "error_during_execution",
                "is_error": not ok,
                "result": text,
                "session_id": self.session_id,
                "total_cost_usd": round(cost, 6),
                "usage": {"input_tokens": self.input, "output_tokens": self.output},
            }
        )


def _apply(edit: _Edit) -> tuple[str, str]:
    """Make the edit; the tool it stands for and what it reports."""
    path = Path(edit.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if edit.kind == "write":
        path.write_text(edit.text, encoding="utf-8")
        return "Write", f"wrote {edit.path} ({edit.text.count(chr(10))} lines)"
    if edit.kind == "append":
        with path.open("a", encoding="utf-8") as f:
            f.write(edit.text + "\n")
        return "Edit", f"appended to {edit.path}"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if edit.old not in current:
        return "Edit", f"{edit.path}: nothing to replace"
    path.write_text(current.replace(edit.old, edit.text, 1), encoding="utf-8")
    return "Edit", f"edited {edit.path}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prompt = sys.stdin.read()
    attempt = int(os.environ.get("MC_ATTEMPT", "1"))
    name = os.environ.get("MC_WORKSTREAM", "workstream")
    rng = random.Random(f"{name}-{attempt}")
    if len(args) == 2 and args[0] == "--resume":
        return _answered(_Session(args[1], rng), prompt)
    script = _parse(prompt)
    run = os.environ.get("MC_RUN_ID", "run")[-4:]
    session = _Session(f"demo-{run}-{name}-{attempt}".lower(), rng)
    session.start()
    steps = max(4, len(script.edits) * 2 + 3)
    pause = script.duration / steps
    for step in range(steps):
        time.sleep(pause * rng.uniform(0.6, 1.4))
        if step % 2 == 1 and script.edits:
            edit = script.edits.pop(0)
            _tool(session, edit)
            continue
        session.think(rng.choice(_THOUGHTS))
        if attempt in script.fail_attempts and step == steps // 2:
            session.result("the test database is locked (simulated flaky failure)", ok=False)
            return 1
    for edit in script.edits:
        _tool(session, edit)
    if script.question:
        session.say(script.question)
        session.result(script.question)
        return 0
    done = f"Done: {len(script.task)} instruction(s) handled."
    session.say(done)
    session.result(done)
    return 0


def _tool(session: _Session, edit: _Edit) -> None:
    tool, said = _apply(edit)
    session.tool(tool, edit.path, said)


def _answered(session: _Session, answer: str) -> int:
    """A resumed session: the prompt is the user's answer to the question it ended with."""
    session.start()
    time.sleep(1.0)
    session.think("Reading the answer")
    with Path("ANSWERS.md").open("a", encoding="utf-8") as notes:
        notes.write(f"- {answer.strip()}\n")
    session.tool("Edit", "ANSWERS.md", "appended the answer")
    session.say("Thanks, noted in ANSWERS.md.")
    session.result("Thanks, noted in ANSWERS.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
