"""The real agent CLIs, headless, against the scripted model server on loopback.

Each test runs one pinned CLI (``.ci/install-agents``) in a fresh git repository with a
script "write HELLO.md, then say done", checks the file, the CLI's structured output (session
id, the tool use, usage equal to what the server reported) and, where the CLI can continue a
session, that the second run sent the first conversation back. A missing CLI skips its test.

The CLIs' event streams are what the agent adapters will parse. With
``MC_RECORD_AGENT_FIXTURES=1`` the tests (re)write them to
``tests/fixtures/agents/recorded/<cli>-<case>.jsonl`` (temporary paths replaced by
``/tmp/mc-test``); otherwise the committed recordings are left alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GitRepo
from tests.helpers.agent_clis import (
    AIDER_PRICE_IN,
    AIDER_PRICE_OUT,
    MODEL,
    CliRun,
    aider_argv,
    aider_env,
    claude_argv,
    claude_env,
    codex_argv,
    codex_env,
    gemini_argv,
    gemini_env,
    opencode_argv,
    opencode_env,
    require_cli,
    run_cli,
)
from tests.helpers.model_server import ModelServer, serve

pytestmark = [pytest.mark.timeout(900), pytest.mark.agent_cli]

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "recorded"
HELLO = "# Hello\n\nWritten by the scripted model.\n"
FIRST = {"input": 200, "output": 40, "cached": 10}
SECOND = {"input": 300, "output": 5, "cached": 20}
THIRD = {"input": 400, "output": 7, "cached": 30}
SECRET = "second-prompt-7f3a"


def _script(*, resumed: bool) -> dict[str, Any]:
    turns: list[dict[str, Any]] = [
        {"write": {"path": "HELLO.md", "content": HELLO}, "delay": 0.2, "usage": FIRST},
        {"message": "done", "delay": 0.1, "usage": SECOND},
    ]
    if resumed:
        turns.append({"message": "continued", "usage": THIRD})
    return {"model": MODEL, "turns": turns}


def _record(name: str, run: CliRun, tmp_path: Path) -> None:
    """Keep the CLI's output as an adapter fixture, when asked to (see module docstring)."""
    if os.environ.get("MC_RECORD_AGENT_FIXTURES") != "1":
        return
    RECORDED.mkdir(parents=True, exist_ok=True)
    text = run.stdout.replace(str(tmp_path.resolve()), "/tmp/mc-test")
    text = text.replace(str(tmp_path), "/tmp/mc-test")
    (RECORDED / name).write_text(text)


def _sent_text(server: ModelServer, turn: int) -> str:
    """The body of the request that the given turn answered, as JSON text."""
    (request,) = [r for r in server.requests if r.turn == turn]
    return json.dumps(request.body)


def _assert_hello(repo: GitRepo) -> None:
    assert (repo.path / "HELLO.md").read_text() == HELLO


# --------------------------------------------------------------------------- claude


def test_claude_writes_a_file_reports_usage_and_resumes(git_repo: GitRepo, tmp_path: Path) -> None:
    exe = require_cli("claude")
    with serve(_script(resumed=True)) as server:
        env = claude_env(server.base_url, tmp_path / "home")
        first = run_cli(claude_argv(exe), git_repo.path, env, "Create HELLO.md with a greeting.")
        assert first.returncode == 0, first.describe()
        assert not first.outside_connects, first.outside_connects
        _assert_hello(git_repo)
        events = first.events
        init = events[0]
        assert init["type"] == "system" and init["subtype"] == "init", first.describe()
        session = init["session_id"]
        uses = [
            block
            for e in events
            if e["type"] == "assistant"
            for block in e["message"]["content"]
            if block["type"] == "tool_use"
        ]
        assert [(u["name"], u["input"]["content"]) for u in uses] == [("Write", HELLO)]
        results = [
            block
            for e in events
            if e["type"] == "user"
            for block in e["message"]["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        assert [r["tool_use_id"] for r in results] == [uses[0]["id"]]
        result = events[-1]
        assert result["type"] == "result" and result["subtype"] == "success", first.describe()
        assert result["session_id"] == session
        assert result["usage"]["input_tokens"] == FIRST["input"] + SECOND["input"]
        assert result["usage"]["output_tokens"] == FIRST["output"] + SECOND["output"]
        assert result["usage"]["cache_read_input_tokens"] == FIRST["cached"] + SECOND["cached"]
        assert result["result"] == "done"
        # The second request carried the tool result back.
        assert uses[0]["id"] in _sent_text(server, 1)
        _record("claude-write.jsonl", first, tmp_path)

        second = run_cli(claude_argv(exe, resume=session), git_repo.path, env, SECRET)
        assert second.returncode == 0, second.describe()
        assert not second.outside_connects, second.outside_connects
        assert second.events[-1]["session_id"] == session
        assert second.events[-1]["result"] == "continued"
        assert second.events[-1]["usage"]["input_tokens"] == THIRD["input"]
        resumed = server.requests[[r.turn for r in server.requests].index(2)].body
        texts = json.dumps(resumed["messages"])
        assert uses[0]["id"] in texts and '"done"' in texts and SECRET in texts
        _record("claude-resume.jsonl", second, tmp_path)


# --------------------------------------------------------------------------- codex


def test_codex_runs_a_command_reports_usage_and_resumes(git_repo: GitRepo, tmp_path: Path) -> None:
    exe = require_cli("codex")
    with serve(_script(resumed=True)) as server:
        env = codex_env(server.base_url, tmp_path / "home")
        first = run_cli(codex_argv(exe), git_repo.path, env, "Create HELLO.md with a greeting.")
        assert first.returncode == 0, first.describe()
        assert not first.outside_connects, first.outside_connects
        _assert_hello(git_repo)
        events = first.events
        assert events[0]["type"] == "thread.started", first.describe()
        thread = events[0]["thread_id"]
        commands = [
            e["item"]
            for e in events
            if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"
        ]
        assert len(commands) == 1 and "HELLO.md" in commands[0]["command"], first.describe()
        assert commands[0]["exit_code"] == 0
        messages = [
            e["item"]["text"]
            for e in events
            if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"
        ]
        assert messages == ["done"]
        usage = events[-1]
        assert usage["type"] == "turn.completed", first.describe()
        assert usage["usage"]["input_tokens"] == FIRST["input"] + SECOND["input"]
        assert usage["usage"]["output_tokens"] == FIRST["output"] + SECOND["output"]
        assert usage["usage"]["cached_input_tokens"] == FIRST["cached"] + SECOND["cached"]
        assert '"function_call_output"' in _sent_text(server, 1)
        _record("codex-write.jsonl", first, tmp_path)

        second = run_cli(codex_argv(exe, resume=thread), git_repo.path, env, SECRET)
        assert second.returncode == 0, second.describe()
        assert not second.outside_connects, second.outside_connects
        events = second.events
        assert events[0] == {"type": "thread.started", "thread_id": thread}
        assert events[-1]["type"] == "turn.completed", second.describe()
        # codex reports the thread's running total, not the turn's.
        total = FIRST["input"] + SECOND["input"] + THIRD["input"]
        assert events[-1]["usage"]["input_tokens"] == total
        resumed = server.requests[[r.turn for r in server.requests].index(2)].body
        items = json.dumps(resumed["input"])
        assert '"function_call_output"' in items and '"done"' in items and SECRET in items
        _record("codex-resume.jsonl", second, tmp_path)


# --------------------------------------------------------------------------- aider

_TOKENS = re.compile(r"Tokens: (\S+) sent, (\S+) received\. Cost: \$(\S+) message")


def test_aider_writes_and_commits_a_file_and_restores_its_chat(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    exe = require_cli("aider")
    with serve(_script(resumed=False)) as server:
        env = aider_env(server.base_url, tmp_path / "home")
        first = run_cli(aider_argv(exe, "Create HELLO.md with a greeting."), git_repo.path, env)
        assert first.returncode == 0, first.describe()
        assert not first.outside_connects, first.outside_connects
        _assert_hello(git_repo)
        # aider commits its own work (the message comes from the weak model: a side call).
        assert git_repo.git("log", "-1", "--format=%s") == "ok"
        assert git_repo.git("status", "--porcelain", "--", "HELLO.md") == ""
        match = _TOKENS.search(first.stdout)
        assert match is not None, first.describe()
        assert (match[1], match[2]) == (str(FIRST["input"]), str(FIRST["output"]))
        cost = FIRST["input"] * AIDER_PRICE_IN + FIRST["output"] * AIDER_PRICE_OUT
        assert float(match[3]) == pytest.approx(cost, rel=0.05)
        _record("aider-write.txt", first, tmp_path)

        second = run_cli(aider_argv(exe, SECRET, restore_chat=True), git_repo.path, env)
        assert second.returncode == 0, second.describe()
        assert not second.outside_connects, second.outside_connects
        assert "done" in second.stdout
        restored = json.dumps(server.requests[[r.turn for r in server.requests].index(1)].body)
        assert "Create HELLO.md with a greeting." in restored and SECRET in restored


# --------------------------------------------------------------------------- gemini


def test_gemini_writes_a_file_reports_usage_and_resumes(git_repo: GitRepo, tmp_path: Path) -> None:
    exe = require_cli("gemini")
    with serve(_script(resumed=True)) as server:
        env = gemini_env(server.base_url, tmp_path / "home")
        first = run_cli(gemini_argv(exe), git_repo.path, env, "Create HELLO.md with a greeting.")
        assert first.returncode == 0, first.describe()
        assert not first.outside_connects, first.outside_connects
        _assert_hello(git_repo)
        events = first.events
        assert events[0]["type"] == "init", first.describe()
        session = events[0]["session_id"]
        uses = [e for e in events if e["type"] == "tool_use"]
        assert [(u["tool_name"], u["parameters"]["content"]) for u in uses] == [
            ("write_file", HELLO)
        ]
        results = [e for e in events if e["type"] == "tool_result"]
        assert [(r["tool_id"], r["status"]) for r in results] == [(uses[0]["tool_id"], "success")]
        said = "".join(
            e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant"
        )
        assert said == "done"
        stats = events[-1]["stats"]
        assert events[-1]["type"] == "result" and events[-1]["status"] == "success"
        assert stats["input_tokens"] == FIRST["input"] + SECOND["input"]
        assert stats["output_tokens"] == FIRST["output"] + SECOND["output"]
        assert stats["cached"] == FIRST["cached"] + SECOND["cached"]
        assert '"functionResponse"' in _sent_text(server, 1)
        _record("gemini-write.jsonl", first, tmp_path)

        second = run_cli(gemini_argv(exe, resume=session), git_repo.path, env, SECRET)
        assert second.returncode == 0, second.describe()
        assert not second.outside_connects, second.outside_connects
        assert second.events[0]["session_id"] == session
        assert second.events[-1]["stats"]["input_tokens"] == THIRD["input"]
        resumed = _sent_text(server, 2)
        assert '"functionResponse"' in resumed and '"done"' in resumed and SECRET in resumed
        _record("gemini-resume.jsonl", second, tmp_path)


# --------------------------------------------------------------------------- opencode


def test_opencode_writes_a_file_reports_usage_and_continues(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    exe = require_cli("opencode")
    with serve(_script(resumed=True)) as server:
        env = opencode_env(server.base_url, tmp_path / "home")
        first = run_cli(opencode_argv(exe), git_repo.path, env, "Create HELLO.md with a greeting.")
        assert first.returncode == 0, first.describe()
        assert not first.outside_connects, first.outside_connects
        _assert_hello(git_repo)
        events = first.events
        sessions = {e["sessionID"] for e in events}
        assert len(sessions) == 1, first.describe()
        (session,) = sessions
        uses = [e["part"] for e in events if e["type"] == "tool_use"]
        assert [(u["tool"], u["state"]["input"]["content"]) for u in uses] == [("write", HELLO)]
        assert uses[0]["state"]["status"] == "completed"
        assert [e["part"]["text"] for e in events if e["type"] == "text"] == ["done"]
        # One step per model answer; opencode counts input without the cached part.
        steps = [e["part"]["tokens"] for e in events if e["type"] == "step_finish"]
        assert [s["input"] + s["cache"]["read"] for s in steps] == [
            FIRST["input"],
            SECOND["input"],
        ]
        assert [s["output"] for s in steps] == [FIRST["output"], SECOND["output"]]
        assert [s["cache"]["read"] for s in steps] == [FIRST["cached"], SECOND["cached"]]
        assert '"tool_call_id"' in _sent_text(server, 1)
        _record("opencode-write.jsonl", first, tmp_path)

        second = run_cli(opencode_argv(exe, resume=session), git_repo.path, env, SECRET)
        assert second.returncode == 0, second.describe()
        assert not second.outside_connects, second.outside_connects
        assert {e["sessionID"] for e in second.events} == {session}
        resumed = _sent_text(server, 2)
        assert '"tool_call_id"' in resumed and '"done"' in resumed and SECRET in resumed
        _record("opencode-resume.jsonl", second, tmp_path)
