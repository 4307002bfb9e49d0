"""Rendering tool argv for attempts, and finding tools on PATH."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from mission_control.engine.supervisor import ExitStatus, spawn_attempt
from mission_control.engine.tools import (
    FollowUp,
    find_executable,
    render_command,
    resolve_executable,
)
from mission_control.errors import MissionControlError, ToolNotFoundError
from mission_control.plan.model import Budget, PromptVia, ToolSpec, Workstream
from mission_control.plan.tools import BUILTIN_TOOLS
from tests.helpers import AGENT, agent_argv

PROMPT = "Fix the bug in 'parser.py'; don't touch $HOME or `rm -rf /`\nsecond line\n"


def make_ws(tmp: Path, **fields: Any) -> Workstream:
    values: dict[str, Any] = {
        "id": "WS-A",
        "name": "Workstream A",
        "phase_id": "PH-1",
        "repo": tmp / "repo",
        "base_branch": "main",
        "tool": "aider",
        "timeout_minutes": 5,
        "worktree_root": tmp / "worktrees",
        "prompt": PROMPT,
    }
    values.update(fields)
    return Workstream(**values)


def render(tmp: Path, tool: ToolSpec, ws: Workstream, attempt: int = 1) -> Any:
    return render_command(
        tool,
        ws,
        run_id="run-1",
        attempt=attempt,
        attempt_dir=tmp / "attempt-1",
        worktree=tmp / "wt",
    )


# ------------------------------------------------------------------ the built-ins

EXPECTED = {
    "aider": [
        "aider",
        "--yes-always",
        "--no-stream",
        "--no-pretty",
        "--no-fancy-input",
        "--no-check-update",
        "--no-show-release-notes",
        "--no-analytics",
        "--no-auto-commits",
        "--no-detect-urls",
        "--no-suggest-shell-commands",
        "--message-file",
        "<prompt_file>",
    ],
    "codex": ["codex", "exec", "--json", "--sandbox", "workspace-write", "--color", "never", "-"],
    "claude": [
        *("claude", "-p", "--permission-mode", "acceptEdits"),
        *("--output-format", "stream-json", "--verbose", "--input-format", "stream-json"),
    ],
    "gemini": [
        *("gemini", "--skip-trust", "--approval-mode", "auto_edit"),
        *("--output-format", "stream-json"),
    ],
    "opencode": ["opencode", "run", "--format", "json"],
}
ADAPTERS = {
    "aider": "aider-text",
    "codex": "codex-json",
    "claude": "claude-stream-json",
    "gemini": "gemini-stream-json",
    "opencode": "opencode-json",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_builtin_agent_renders_its_exact_argv(tmp_path: Path, name: str) -> None:
    ws = make_ws(tmp_path, tool=name)
    cmd = render(tmp_path, BUILTIN_TOOLS[name], ws)
    prompt_file = tmp_path / "attempt-1" / "prompt.txt"
    expected = [str(prompt_file) if a == "<prompt_file>" else a for a in EXPECTED[name]]
    # Each runs under the relay, which reads its structured output as it comes.
    relay = list(cmd.argv[: cmd.argv.index("--")])
    assert relay[:5] == [
        sys.executable,
        "-m",
        "mission_control.agents.relay",
        "--events",
        ADAPTERS[name],
    ]
    assert ("--live-input" in relay) is (name == "claude")
    assert list(cmd.argv[cmd.argv.index("--") + 1 :]) == expected
    assert prompt_file.read_text() == PROMPT
    assert cmd.prompt_file == prompt_file
    if BUILTIN_TOOLS[name].prompt_via is PromptVia.STDIN:
        assert cmd.stdin_path == prompt_file
    else:
        assert cmd.stdin_path is None
    assert all(PROMPT not in a for a in cmd.argv), "the prompt never rides in argv"


def test_builtin_table_is_exactly_the_known_tools() -> None:
    assert set(BUILTIN_TOOLS) == {*EXPECTED, "shell"}
    for name, spec in BUILTIN_TOOLS.items():
        assert spec.install_hint or name == "shell"


def test_shell_builtin_runs_the_workstream_command_as_argv(tmp_path: Path) -> None:
    ws = make_ws(
        tmp_path,
        tool="shell",
        command=["make", "test", "OUT={worktree}/out", "{task_id}#{attempt}"],
        prompt=None,
    )
    cmd = render(tmp_path, BUILTIN_TOOLS["shell"], ws, attempt=3)
    assert cmd.argv == ("make", "test", f"OUT={tmp_path / 'wt'}/out", "PH-1::WS-A#3")
    assert cmd.stdin_path is None and cmd.prompt_file is None


def test_shell_builtin_with_a_prompt_gets_it_on_stdin(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, tool="shell", command=["cat"])
    cmd = render(tmp_path, BUILTIN_TOOLS["shell"], ws)
    assert cmd.argv == ("cat",)
    assert cmd.stdin_path is not None and cmd.stdin_path.read_text() == PROMPT


def test_shell_true_quotes_every_placeholder(tmp_path: Path) -> None:
    ws = make_ws(
        tmp_path,
        tool="shell",
        command=["printf '%s|' {prompt} {phase_id} > out.txt"],
        shell=True,
    )
    cmd = render(tmp_path, BUILTIN_TOOLS["shell"], ws)
    assert cmd.argv[:2] == ("/bin/sh", "-c")
    # Run the line for real: the prompt's quotes, $HOME and backticks stay text.
    (tmp_path / "wt").mkdir()
    proc = spawn_attempt(
        cmd.argv,
        cwd=tmp_path / "wt",
        env=cmd.env,
        log_path=tmp_path / "log",
        stdin_path=cmd.stdin_path,
        exit_file=tmp_path / "exit",
    )
    assert asyncio.run(proc.wait()) == ExitStatus(0, None)
    assert (tmp_path / "wt" / "out.txt").read_text() == f"{PROMPT}|PH-1|"


def test_shell_tool_spec_is_one_quoted_line(tmp_path: Path) -> None:
    tool = ToolSpec(argv=["mytool --in {prompt_file} --ws {workstream_id}"], shell=True)
    cmd = render(tmp_path, tool, make_ws(tmp_path, tool="mine"))
    prompt_file = tmp_path / "attempt-1" / "prompt.txt"
    assert cmd.argv == ("/bin/sh", "-c", f"mytool --in {prompt_file} --ws WS-A")


def test_arg_prompt_is_one_argv_item_and_unknown_braces_stay(tmp_path: Path) -> None:
    tool = ToolSpec(argv=["t", "--json", '{"a": 1}', "{prompt}", "{run_id}"], prompt_via="arg")
    cmd = render(tmp_path, tool, make_ws(tmp_path, tool="t"))
    assert cmd.argv == ("t", "--json", '{"a": 1}', PROMPT, "run-1")
    assert cmd.stdin_path is None


def test_prompt_file_is_copied_into_the_attempt_folder(tmp_path: Path) -> None:
    source = tmp_path / "prompts" / "a.md"
    source.parent.mkdir()
    source.write_text("from a file\n")
    ws = make_ws(tmp_path, prompt=None, prompt_file=source)
    cmd = render(tmp_path, BUILTIN_TOOLS["aider"], ws)
    assert cmd.argv[-1] == str(tmp_path / "attempt-1" / "prompt.txt")
    assert Path(cmd.argv[-1]).read_text() == "from a file\n"


def test_missing_prompt_or_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissionControlError, match=r"PH-1::WS-A: tool 'aider' needs a prompt"):
        render(tmp_path, BUILTIN_TOOLS["aider"], make_ws(tmp_path, prompt=None))
    with pytest.raises(MissionControlError, match=r"has none: add `command:`"):
        render(tmp_path, BUILTIN_TOOLS["shell"], make_ws(tmp_path, tool="shell", prompt=None))
    gone = make_ws(tmp_path, prompt=None, prompt_file=tmp_path / "nope.md")
    with pytest.raises(MissionControlError, match=r"cannot read prompt file .*nope\.md"):
        render(tmp_path, BUILTIN_TOOLS["aider"], gone)


def test_env_is_plan_env_then_mission_control_variables(tmp_path: Path) -> None:
    tool = ToolSpec(argv=["t"], env={"A": "tool", "B": "tool", "MC_ATTEMPT": "nope"})
    ws = make_ws(tmp_path, tool="t", env={"B": "ws", "OUT": "{worktree}/o"})
    cmd = render(tmp_path, tool, ws, attempt=2)
    assert cmd.env == {
        "A": "tool",
        "B": "ws",
        "OUT": f"{tmp_path / 'wt'}/o",
        "MC_ATTEMPT": "2",
        "MC_RUN_ID": "run-1",
        "MC_PHASE": "PH-1",
        "MC_WORKSTREAM": "WS-A",
        "MC_WORKTREE": str(tmp_path / "wt"),
    }
    assert set(cmd.env_names) == set(cmd.env)
    assert "PATH" not in cmd.env, "the inherited environment is added at spawn time"


async def test_rendered_command_runs_with_prompt_and_env(tmp_path: Path) -> None:
    """The shell tool end to end: prompt on stdin, MC_* variables, files written in cwd."""
    flags = ["--echo-prompt", "--write", "done.txt=ok"]
    for name in ("MC_RUN_ID", "MC_PHASE", "MC_WORKSTREAM", "MC_WORKTREE", "MC_ATTEMPT"):
        flags += ["--print-env", name]
    ws = make_ws(tmp_path, tool="shell", command=agent_argv(*flags))
    cmd = render(tmp_path, BUILTIN_TOOLS["shell"], ws, attempt=4)
    (tmp_path / "wt").mkdir()
    proc = await asyncio.to_thread(
        spawn_attempt,
        cmd.argv,
        cwd=tmp_path / "wt",
        env=cmd.env,
        log_path=tmp_path / "attempt-1" / "output.log",
        stdin_path=cmd.stdin_path,
        exit_file=tmp_path / "attempt-1" / "exit",
    )
    assert await asyncio.wait_for(proc.wait(), 10) == ExitStatus(0, None)
    log = (tmp_path / "attempt-1" / "output.log").read_text()
    assert f"prompt: {PROMPT}" in log
    assert "env MC_RUN_ID=run-1" in log and "env MC_ATTEMPT=4" in log
    assert f"env MC_WORKTREE={tmp_path / 'wt'}" in log
    assert "env MC_PHASE=PH-1" in log and "env MC_WORKSTREAM=WS-A" in log
    assert (tmp_path / "wt" / "done.txt").read_text() == "ok"


# ---------------------------------------------------------------------- on PATH


def test_tool_not_on_path_names_the_tool_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    ws = make_ws(tmp_path)
    with pytest.raises(ToolNotFoundError) as info:
        resolve_executable(ws, BUILTIN_TOOLS["aider"])
    assert str(info.value) == (
        "tool 'aider' not found on PATH: install it "
        "(python -m pip install aider-install && aider-install) or change the plan"
    )
    shell_ws = make_ws(tmp_path, tool="shell", command=["no-such-program-xyz"])
    with pytest.raises(ToolNotFoundError, match=r"command 'no-such-program-xyz' of PH-1::WS-A"):
        resolve_executable(shell_ws, BUILTIN_TOOLS["shell"])


def test_tool_found_on_the_plan_env_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "codex"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    ws = make_ws(tmp_path, tool="codex", env={"PATH": str(bin_dir)})
    assert resolve_executable(ws, BUILTIN_TOOLS["codex"]) == str(exe)
    shell_ws = make_ws(tmp_path, tool="shell", command=["sh", "-c", "true"])
    monkeypatch.setenv("PATH", os.defpath)
    assert Path(resolve_executable(shell_ws, BUILTIN_TOOLS["shell"])).name == "sh"


def test_find_executable_with_paths(tmp_path: Path) -> None:
    assert find_executable(sys.executable, "tool 'py'") == sys.executable
    with pytest.raises(ToolNotFoundError, match=r"tool 'x' not found: .*agent\.py is not an exec"):
        find_executable(str(AGENT), "tool 'x'")  # a file, but not executable
    # A relative path waits for the worktree to exist before it can be checked.
    assert find_executable("./run.sh", "tool 'x'", cwd=tmp_path / "later") == "./run.sh"
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    assert find_executable("./run.sh", "tool 'x'", cwd=tmp_path) == str(tmp_path / "run.sh")


# ------------------------------------------------------------------ agents


def _agent_argv(argv: tuple[str, ...]) -> list[str]:
    """What the relay runs: everything after its ``--``."""
    return list(argv[argv.index("--") + 1 :])


def test_a_follow_up_continues_the_session_with_the_message_as_prompt(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, tool="claude")
    cmd = render_command(
        BUILTIN_TOOLS["claude"],
        ws,
        run_id="run-1",
        attempt=2,
        attempt_dir=tmp_path / "a",
        worktree=tmp_path / "wt",
        follow_up=FollowUp("use port 8080", "sess-9", session_cost=0.25),
    )
    assert cmd.continues
    argv = _agent_argv(cmd.argv)
    assert argv[-2:] == ["--resume", "sess-9"]
    assert cmd.prompt_file is not None and cmd.prompt_file.read_text() == "use port 8080"
    relay = list(cmd.argv[: cmd.argv.index("--")])
    assert relay[relay.index("--session-cost-before") + 1] == "0.25"


def test_a_tool_that_cannot_continue_gets_the_message_after_its_prompt(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, tool="codex")
    cmd = render_command(
        BUILTIN_TOOLS["codex"],
        ws,
        run_id="run-1",
        attempt=2,
        attempt_dir=tmp_path / "a",
        worktree=tmp_path / "wt",
        follow_up=FollowUp("and the docs", None),  # no session was ever reported
    )
    assert not cmd.continues
    assert "resume" not in _agent_argv(cmd.argv)
    assert cmd.prompt_file is not None
    assert cmd.prompt_file.read_text() == f"{PROMPT}\n\nand the docs"


def test_a_cost_budget_reaches_claude_and_the_relay(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, tool="claude", budget=Budget(max_cost_usd=0.00005, max_tokens=9000))
    cmd = render(tmp_path, BUILTIN_TOOLS["claude"], ws)
    argv = _agent_argv(cmd.argv)
    assert argv[-2:] == ["--max-budget-usd", "0.00005"]
    relay = list(cmd.argv[: cmd.argv.index("--")])
    assert relay[relay.index("--max-cost-usd") + 1] == "5e-05"
    assert relay[relay.index("--max-tokens") + 1] == "9000"
