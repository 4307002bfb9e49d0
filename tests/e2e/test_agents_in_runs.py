"""mission-control running the real agent CLIs against the scripted model on loopback.

Each test writes a plan that uses a built-in tool (claude, codex, gemini, opencode, aider)
with the CLI's loopback environment in ``env:``, runs ``mission-control run --headless`` as a
user would, and reads what the run left: the state, the transcript in the attempt's log,
the raw stream beside it, the ledger's tokens and cost (``status --json``), the branch on
origin. A missing CLI skips its test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import GitRepo
from tests.helpers.agent_clis import (
    MODEL,
    aider_env,
    claude_env,
    codex_env,
    gemini_env,
    opencode_env,
    require_cli,
)
from tests.helpers.model_server import ModelServer, serve

pytestmark = [pytest.mark.timeout(600), pytest.mark.agent_cli]

FIRST = {"input": 200, "output": 40, "cached": 10}
SECOND = {"input": 300, "output": 5, "cached": 20}
THIRD = {"input": 400, "output": 7, "cached": 30}

ENVS: dict[str, Callable[[str, Path], dict[str, str]]] = {
    "claude": claude_env,
    "codex": codex_env,
    "gemini": gemini_env,
    "opencode": opencode_env,
    "aider": aider_env,
}


def _plan(
    tmp: Path,
    repo: GitRepo,
    server: ModelServer,
    tool: str,
    pricing: dict[str, Any] | None = None,
    **settings: Any,
) -> Path:
    exe = require_cli(tool)
    env = ENVS[tool](server.base_url, tmp / "home")
    env["PATH"] = f"{exe.parent}:{env['PATH']}"
    workstream = {"id": "A", "name": "hello", "tool": tool, "prompt": "Create HELLO.md."}
    workstream.update(settings)
    doc: dict[str, Any] = {
        "version": 1,
        "name": f"{tool} agents",
        "defaults": {
            "repo": str(repo.path),
            "base_branch": "main",
            "timeout_minutes": 4,
            "pr": False,
            "env": env,
        },
        "phases": [{"id": "PH", "max_parallel_workstreams": 1, "workstreams": [workstream]}],
    }
    if pricing:
        doc["pricing"] = pricing
    path = tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _mc(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mission_control", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def _status(plan: Path) -> dict[str, Any]:
    out = _mc("status", "--plan", plan, "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def _workstream(plan: Path) -> dict[str, Any]:
    (ws,) = _status(plan)["workstreams"]
    return dict(ws)


def _log(ws: dict[str, Any], attempt: int) -> tuple[str, str]:
    """The attempt's transcript and raw stream."""
    log = Path(ws["history"][attempt - 1]["log_path"])
    return log.read_text(errors="replace"), log.with_suffix(".stream").read_text(errors="replace")


def _tokens(*turns: dict[str, int], cached_apart: bool = True) -> dict[str, int]:
    """What mission-control counts for these turns: input includes the cached part, which
    the Anthropic API counts apart (``cached_apart``) and the others inside their input."""
    return {
        "input": sum(t["input"] + (t["cached"] if cached_apart else 0) for t in turns),
        "output": sum(t["output"] for t in turns),
        "cached": sum(t["cached"] for t in turns),
    }


# --------------------------------------------------------------------------- claude


def test_a_silent_claude_is_watched_asks_and_continues_its_conversation(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """Longer than stall_minutes at work without a word in text mode; in stream-json every
    step counts. It ends with a question (needs input); `continue` resumes the session and
    its new work lands on the branch."""
    script = {
        "model": MODEL,
        "turns": [
            {"write": {"path": "HELLO.md", "content": "hello\n"}, "delay": 7, "usage": FIRST},
            {"write": {"path": "DRAFT.md", "content": "draft\n"}, "delay": 7, "usage": FIRST},
            {"message": "Written. Shall I add a NOTES.md too?", "delay": 7, "usage": SECOND},
            {"write": {"path": "NOTES.md", "content": "notes\n"}, "usage": THIRD},
            {"message": "Added NOTES.md.", "usage": THIRD},
        ],
    }
    with serve(script) as server:
        # 21 s of model calls: more than the 15 s window, each step well inside it.
        plan = _plan(tmp_path, git_repo, server, "claude", stall_minutes=0.25, on_stall="kill")
        first = _mc("run", plan, "--headless")
        assert first.returncode == 1, first.stdout + first.stderr
        ws = _workstream(plan)
        assert ws["state"] == "needs_input", first.stdout
        assert ws["detail"] == "asks: Written. Shall I add a NOTES.md too?"
        assert "stalled" not in first.stdout and "killed" not in first.stdout
        assert "PH::A needs input" in first.stdout
        transcript, raw = _log(ws, 1)
        assert "▸ Write HELLO.md" in transcript
        assert "» Written. Shall I add a NOTES.md too?" in transcript
        assert '"type":"result"' in raw and '"type":"result"' not in transcript
        attempt = ws["history"][0]
        assert attempt["ended_at"] - attempt["started_at"] > 15  # longer than the window
        assert attempt["tokens"] == _tokens(FIRST, FIRST, SECOND)
        result = json.loads(next(ln for ln in raw.splitlines() if '"type":"result"' in ln))
        assert attempt["cost_usd"] == pytest.approx(result["total_cost_usd"])
        session = attempt["session_id"]
        assert session == result["session_id"]

        second = _mc("continue", "PH::A", "-m", "Yes, add NOTES.md.", "--plan", plan, "--headless")
        assert second.returncode == 0, second.stdout + second.stderr
        ws = _workstream(plan)
        assert ws["state"] == "succeeded"
        later = ws["history"][1]
        assert later["session_id"] == session  # the same conversation
        assert later["tokens"] == _tokens(THIRD, THIRD)
        # Its own cost, not the session's: claude reports the whole session's.
        resumed = json.loads(
            next(ln for ln in _log(ws, 2)[1].splitlines() if '"type":"result"' in ln)
        )
        assert later["cost_usd"] == pytest.approx(resumed["total_cost_usd"] - attempt["cost_usd"])
        assert _status(plan)["totals"]["cost_usd"] == pytest.approx(resumed["total_cost_usd"])
        sent = json.dumps(server.main_requests()[3].body)
        assert "Create HELLO.md." in sent and "Yes, add NOTES.md." in sent  # earlier turns too
        files = git_repo.git("ls-tree", "--name-only", "ws/PH/A", cwd=git_repo.origin)
        assert {"HELLO.md", "NOTES.md"} <= set(files.split())


def test_claude_over_its_budget_is_stopped_with_the_reason(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    script = {
        "model": MODEL,
        "turns": [
            {"write": {"path": "HELLO.md", "content": "hello\n"}, "usage": FIRST},
            {"run": "sleep 30", "usage": FIRST},
            {"message": "done", "usage": SECOND},
        ],
    }
    with serve(script) as server:
        plan = _plan(tmp_path, git_repo, server, "claude", budget={"max_cost_usd": 0.0001})
        out = _mc("run", plan, "--headless")
        assert out.returncode == 1, out.stdout + out.stderr
        ws = _workstream(plan)
        assert ws["state"] == "failed"
        assert ws["detail"].startswith("over budget: $"), ws["detail"]
        assert ws["detail"].endswith("max_cost_usd is 0.0001")
        assert ws["history"][0]["over_budget"] == ws["detail"]
        assert ws["attempt"] == 1  # no retry spends it again
        assert server.turns_used <= 2  # stopped after the first call's cost
        transcript, _ = _log(ws, 1)
        assert "over budget" in transcript


# --------------------------------------------------------------------------- the others


@pytest.mark.parametrize("tool", ["codex", "gemini", "opencode", "aider"])
def test_each_agent_runs_reports_its_tokens_and_continues(
    tool: str, git_repo: GitRepo, tmp_path: Path
) -> None:
    script = {
        "model": MODEL,
        "turns": [
            {"write": {"path": "HELLO.md", "content": "hello\n"}, "usage": FIRST},
            {"message": "done", "usage": SECOND},
            {"write": {"path": "NOTES.md", "content": "notes\n"}, "usage": THIRD},
            {"message": "continued", "usage": THIRD},
        ],
    }
    with serve(script) as server:
        # USD per million tokens, for the CLIs that report tokens but no cost of their own.
        plan = _plan(tmp_path, git_repo, server, tool, pricing={"*": {"input": 1, "output": 2}})
        first = _mc("run", plan, "--headless")
        assert first.returncode == 0, first.stdout + first.stderr
        ws = _workstream(plan)
        assert ws["state"] == "succeeded", ws["detail"]
        transcript, raw = _log(ws, 1)
        assert "▸ " in transcript, transcript  # an action, readable
        if tool != "aider":  # aider's answer is its plain text
            assert "» " in transcript, transcript
        attempt = ws["history"][0]
        if tool != "aider":
            assert attempt["session_id"], attempt
        expected = _tokens(FIRST, SECOND, cached_apart=False)
        if tool == "aider":  # aider's whole-file reply: one call writes, its text is the answer
            expected = _tokens(FIRST, cached_apart=False)
        assert attempt["tokens"]["output"] == expected["output"], (attempt, raw[-2000:])
        assert attempt["tokens"]["input"] == expected["input"], (attempt, raw[-2000:])
        if tool != "aider":  # aider prices its own tokens
            priced = (expected["input"] * 1 + expected["output"] * 2) / 1_000_000
            assert attempt["cost_usd"] == pytest.approx(priced), attempt

        second = _mc("continue", "PH::A", "-m", "Add NOTES.md.", "--plan", plan, "--headless")
        assert second.returncode == 0, second.stdout + second.stderr
        ws = _workstream(plan)
        assert ws["state"] == "succeeded", ws["detail"]
        if tool != "aider":
            assert ws["history"][1]["session_id"] == attempt["session_id"]
        later = server.main_requests()[-1].body
        assert "Add NOTES.md." in json.dumps(later)
        assert "Create HELLO.md." in json.dumps(later)  # the earlier conversation came along


def test_a_message_reaches_a_running_claude_live(git_repo: GitRepo, tmp_path: Path) -> None:
    """`continue` while claude works: the driver gets a signal, the relay puts the message on
    claude's stdin, and claude takes it in the same attempt (no new one)."""
    script = {
        "model": MODEL,
        "turns": [
            {"write": {"path": "HELLO.md", "content": "hello\n"}, "delay": 8},
            {"message": "done, and hi", "delay": 1},
        ],
    }
    with serve(script) as server:
        plan = _plan(tmp_path, git_repo, server, "claude")
        started = _mc("run", plan, "--detach")
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 60
        while not server.requests:  # claude is at work on its first call
            assert time.monotonic() < deadline, "claude never called the model"
            time.sleep(0.2)
        said = _mc("continue", "PH::A", "-m", "also say hi", "--plan", plan)
        assert said.returncode == 0, said.stderr
        assert "hands it over" in said.stdout
        while _status(plan)["finished_at"] is None:
            assert time.monotonic() < deadline + 120, "the run did not end"
            time.sleep(0.5)
        ws = _workstream(plan)
        assert ws["state"] == "succeeded", ws["detail"]
        assert ws["attempt"] == 1  # taken in by the running agent
        transcript, _ = _log(ws, 1)
        assert "› you: also say hi" in transcript
        assert any("also say hi" in json.dumps(r.body) for r in server.main_requests())
