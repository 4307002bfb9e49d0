"""The relay as a real process around a stand-in CLI: a shell script that prints a recorded
claude stream (what claude printed against the scripted model), or reads stream-json
messages on stdin as claude does with ``--input-format stream-json``.

The real CLIs run under the relay in ``tests/e2e/test_agents_in_runs.py``; these tests pin
what the relay itself promises: the transcript, the raw stream, the report, exit statuses,
budgets, live messages and hostile report files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mission_control.agents.relay import relay_argv
from mission_control.agents.report import AgentReport, read_report, summarize_stream

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "recorded"


def _script(tmp: Path, body: str) -> Path:
    path = tmp / "fake-cli"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _relay(
    tmp: Path, argv: list[str], *, stdin: bytes = b"", timeout: float = 60, **options: object
) -> tuple[subprocess.CompletedProcess[bytes], Path, Path]:
    stream, report = tmp / "attempt-1.stream", tmp / "attempt-1.agent.json"
    settings: dict[str, object] = {
        "events": "claude-stream-json",
        "stream": stream,
        "report": report,
        "inbox": None,
        "live_input": False,
        "max_cost_usd": None,
        "max_tokens": None,
        "pricing": None,
        **options,
    }
    command = relay_argv(sys.executable, argv, **settings)  # type: ignore[arg-type]
    done = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)
    return done, stream, report


def test_the_transcript_the_raw_stream_and_the_report(tmp_path: Path) -> None:
    recorded = RECORDED / "claude-write.jsonl"
    cli = _script(tmp_path, f"cat '{recorded}'\necho 'a warning on stderr' >&2\nexit 3\n")
    done, stream, report_file = _relay(tmp_path, [str(cli)])
    assert done.returncode == 3  # the CLI's own status
    transcript = done.stdout.decode()
    assert "▸ Write HELLO.md" in transcript
    assert "» done" in transcript
    assert "a warning on stderr" in transcript  # interleaved text is shown as text
    assert "\x1b]" not in transcript and '"type":' not in transcript
    raw = stream.read_bytes()
    assert raw.startswith(recorded.read_bytes())  # as the CLI wrote it
    report = read_report(report_file)
    assert report is not None and report.ended
    assert report.session_id and report.input_tokens > 0 and report.cost_usd
    assert oct(report_file.stat().st_mode & 0o777) == "0o600"
    assert oct(stream.stat().st_mode & 0o777) == "0o600"
    # Rebuilt from the raw stream alone, the report says the same (a relay lost mid-way).
    rebuilt = summarize_stream("claude-stream-json", stream)
    assert rebuilt is not None
    assert (rebuilt.session_id, rebuilt.tokens, rebuilt.cost_usd) == (
        report.session_id,
        report.tokens,
        report.cost_usd,
    )


def test_an_agent_killed_by_a_signal_kills_the_relay_the_same_way(tmp_path: Path) -> None:
    cli = _script(tmp_path, "kill -TERM $$\n")
    done, _, report = _relay(tmp_path, [str(cli)])
    assert done.returncode == -signal.SIGTERM
    assert (r := read_report(report)) is not None and r.ended


def test_a_missing_cli_is_one_line_and_status_127(tmp_path: Path) -> None:
    done, _, _ = _relay(tmp_path, [str(tmp_path / "nope")])
    assert done.returncode == 127
    assert b"cannot start" in done.stdout and b"Traceback" not in done.stderr


def test_an_agent_over_its_budget_is_stopped_and_the_report_says_why(tmp_path: Path) -> None:
    costly = json.dumps(
        {"type": "result", "subtype": "success", "session_id": "s", "total_cost_usd": 0.5}
    )
    # Left alone it would sleep past _relay's timeout, which fails the test.
    cli = _script(tmp_path, f"echo '{costly}'\nsleep 600\n")
    done, _, report_file = _relay(tmp_path, [str(cli)], max_cost_usd=0.25)
    report = read_report(report_file)
    assert report is not None
    assert report.over_budget == "over budget: $0.5000 spent, max_cost_usd is 0.25"
    assert b"over budget" in done.stdout
    assert done.returncode != 0


def test_earlier_attempts_count_against_the_budget(tmp_path: Path) -> None:
    cheap = json.dumps({"type": "result", "subtype": "success", "total_cost_usd": 0.1})
    cli = _script(tmp_path, f"echo '{cheap}'\n")
    _, _, report_file = _relay(tmp_path, [str(cli)], max_cost_usd=0.25, spent_before=(0, 0.2))
    report = read_report(report_file)
    assert report is not None and report.over_budget is not None
    assert report.cost_usd == pytest.approx(0.1)  # its own cost stays its own


def test_a_continued_claude_session_counts_only_its_own_cost(tmp_path: Path) -> None:
    session_total = json.dumps({"type": "result", "subtype": "success", "total_cost_usd": 0.7})
    cli = _script(tmp_path, f"echo '{session_total}'\n")
    _, _, report_file = _relay(tmp_path, [str(cli)], session_cost_before=0.5)
    report = read_report(report_file)
    assert report is not None and report.cost_usd == pytest.approx(0.2)


LIVE_CLI = """
# Like claude with --input-format stream-json: one answer per user message, until stdin ends.
n=0
while IFS= read -r line; do
  n=$((n + 1))
  text=$(printf '%s' "$line" | sed 's/.*"text": *"\\([^"]*\\)".*/\\1/')
  block='[{"type":"text","text":"got %s"}]'
  printf '{"type":"assistant","message":{"id":"m%s","content":'"$block"'}}\\n' "$n" "$text"
  sleep 1
  printf '{"type":"result","subtype":"success","session_id":"s","result":"got %s"}\\n' "$text"
done
"""


def test_live_messages_reach_the_running_agent_and_its_stdin_closes_after(
    tmp_path: Path,
) -> None:
    cli = _script(tmp_path, LIVE_CLI)
    inbox = tmp_path / "attempt-1.inbox"
    inbox.mkdir()
    (inbox / "7.msg").write_text("second")  # waiting before the agent even started
    done, _, report_file = _relay(
        tmp_path, [str(cli)], stdin=b"first", inbox=inbox, live_input=True
    )
    transcript = done.stdout.decode()
    assert done.returncode == 0, transcript
    assert "» got first" in transcript and "» got second" in transcript
    assert "› you: second" in transcript
    assert (inbox / "7.sent").exists() and not (inbox / "7.msg").exists()
    report = read_report(report_file)
    assert report is not None and report.delivered == ("7",)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"input_tokens": 1e400, "cost_usd": "free", "session_id": 5, "delivered": [1]}',
        b'{"input_tokens": -5, "cost_usd": NaN, "ended": "yes"}',
        b'{"input_tokens": 99999999999999999999999}',
        b"[" * 100_000,
    ],
)
def test_a_hostile_report_file_is_read_as_defaults_or_ignored(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    report = read_report(path)
    assert report is None or report == AgentReport()


def test_a_report_path_that_is_a_fifo_is_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    assert read_report(fifo) is None  # and it did not block
