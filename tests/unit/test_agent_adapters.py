"""Agent adapters: real sample streams of each CLI, any chunking, hostile bytes, totals,
needs-input, pricing, and the safety of every rendered line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mission_control.agents import (
    ADAPTER_NAMES,
    ADAPTERS,
    AgentAction,
    AgentError,
    AgentEvent,
    AgentFinished,
    AgentMessage,
    AgentNeedsInput,
    AgentStarted,
    AgentSummary,
    AgentText,
    AgentUsage,
    ModelPrice,
    render,
    safe_line,
)
from mission_control.agents.pricing import cost_usd, find_price

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
SAMPLES = {
    "claude-stream-json": "claude.jsonl",
    "codex-json": "codex.jsonl",
    "gemini-stream-json": "gemini.jsonl",
    "opencode-json": "opencode.jsonl",
    "aider-text": "aider.txt",
    "text": "text.txt",
}
JSON_ADAPTERS = ("claude-stream-json", "codex-json", "gemini-stream-json", "opencode-json")
# Anything a terminal would act on: C0 controls but tab, DEL, C1 controls, lone surrogates.
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def sample(name: str) -> bytes:
    return (FIXTURES / SAMPLES[name]).read_bytes()


def run(
    name: str, chunks: Sequence[bytes], **options: Any
) -> tuple[list[AgentEvent], AgentSummary]:
    adapter = ADAPTERS[name](**options)
    events: list[AgentEvent] = []
    for chunk in chunks:
        events += adapter.feed(chunk)
    events += adapter.close()
    return events, adapter.summary


def transcript(name: str, data: bytes, **options: Any) -> list[str]:
    return [render(event) for event in run(name, [data], **options)[0]]


def jsonl(*events: object) -> bytes:
    return b"".join(json.dumps(event, ensure_ascii=False).encode() + b"\n" for event in events)


# --------------------------------------------------------------------------- the samples


EXPECTED = {
    "claude-stream-json": [
        "● session 5b47df2f-9c1e-4c8a-b7a4-2f5d1e0c9a11 · model claude-sonnet-4-5",
        "▸ Write HELLO.md",
        "tokens: 120 in, 25 out",
        "» Created HELLO.md.",
        "tokens: 200 in, 40 out",
        "tokens: 200 in, 40 out · $0.0016",
        "■ finished",
    ],
    "codex-json": [
        "● session 01a23495-790e-7c31-9f2e-6b1d3c4e5f60",
        "… thinking: **Writing the greeting file**",
        "▸ $ printf '# Hello\\n' > HELLO.md",
        "▸ $ printf '# Hello\\n' > HELLO.md → exit 0",
        "» Created HELLO.md.",
        "tokens: 200 in, 40 out",
        "■ finished",
    ],
    "gemini-stream-json": [
        "● session d19d20cc-4b3a-4f2e-8d1c-7a6b5c4d3e2f · model auto",
        "▸ Write HELLO.md",
        "» Created HELLO.md.",
        "tokens: 300 in, 60 out",
        "■ finished",
    ],
    "opencode-json": [
        "● session ses_494719016ffe85dkDMj0FPRbHK",
        "▸ Write HELLO.md",
        "tokens: 1,300 in (100 cached), 30 out",
        "▸ $ ls → exit 0",
        "» Created HELLO.md.",
        "tokens: 2,700 in (200 cached), 50 out",
        "■ finished",
    ],
    "aider-text": [
        "Aider v0.86.2",
        "● model openai/loopback-model",
        "Git repo: .git with 1 files",
        "Repo-map: disabled",
        "",
        "HELLO.md",
        "```",
        "# Hello",
        "```",
        "",
        "Created HELLO.md with a greeting. Shall I add more sections?",
        "tokens: 1,200 in, 340 out · $0.0100",
        "▸ Edit HELLO.md",
        "▸ Commit 1a2b3c4 docs: add HELLO.md with a greeting",
        "⚠ needs input: asks: Created HELLO.md with a greeting. Shall I add more sections?",
    ],
    "text": [
        "building...",
        "ok 3 tests",
        "progress 100%",
        "Continue? [y/N]",
        "Which environment should it deploy to?",
        "⚠ needs input: asks: Which environment should it deploy to?",
    ],
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_sample_stream_reads_as_expected(name: str) -> None:
    assert transcript(name, sample(name)) == EXPECTED[name]


@pytest.mark.parametrize(
    ("name", "session_id", "model", "tokens", "cost", "last_action", "final", "finished"),
    [
        (
            "claude-stream-json",
            "5b47df2f-9c1e-4c8a-b7a4-2f5d1e0c9a11",
            "claude-sonnet-4-5",
            (200, 40, 0),
            0.0016,
            "Write HELLO.md",
            "Created HELLO.md.",
            True,
        ),
        (
            "codex-json",
            "01a23495-790e-7c31-9f2e-6b1d3c4e5f60",
            None,
            (200, 40, 0),
            None,
            "$ printf '# Hello\\n' > HELLO.md → exit 0",
            "Created HELLO.md.",
            True,
        ),
        (
            "gemini-stream-json",
            "d19d20cc-4b3a-4f2e-8d1c-7a6b5c4d3e2f",
            "auto",
            (300, 60, 0),
            None,
            "Write HELLO.md",
            "Created HELLO.md.",
            True,
        ),
        (
            "opencode-json",
            "ses_494719016ffe85dkDMj0FPRbHK",
            None,
            (2700, 50, 200),
            None,
            "$ ls → exit 0",
            "Created HELLO.md.",
            True,
        ),
        (
            "aider-text",
            None,
            "openai/loopback-model",
            (1200, 340, 0),
            0.01,
            "Commit 1a2b3c4 docs: add HELLO.md with a greeting",
            "HELLO.md\n```\n# Hello\n```\n"
            "Created HELLO.md with a greeting. Shall I add more sections?",
            False,
        ),
    ],
)
def test_each_sample_summary(
    name: str,
    session_id: str | None,
    model: str | None,
    tokens: tuple[int, int, int],
    cost: float | None,
    last_action: str,
    final: str,
    finished: bool,
) -> None:
    summary = run(name, [sample(name)])[1]
    assert summary.session_id == session_id
    assert summary.model == model
    assert (summary.input_tokens, summary.output_tokens, summary.cached_tokens) == tokens
    assert summary.cost_usd == cost
    assert summary.last_action == last_action
    assert summary.final_message == final
    assert summary.finished is finished
    assert summary.ok is (True if finished else None)
    assert summary.lines == len(sample(name).splitlines())


def test_the_package_imports_no_engine_tui_or_process_code() -> None:
    code = (
        "import sys, mission_control.agents; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'git', 'psutil', 'subprocess') or m.startswith('mission_control.tui') "
        "or m.startswith('mission_control.engine')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_registry_names_every_adapter() -> None:
    assert ADAPTER_NAMES == (
        "claude-stream-json",
        "codex-json",
        "gemini-stream-json",
        "opencode-json",
        "aider-text",
        "text",
    )
    for name, factory in ADAPTERS.items():
        adapter = factory()
        assert adapter.name == name
        assert adapter.summary == AgentSummary()


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("name", list(SAMPLES))
def test_feeding_split_at_every_byte_equals_feeding_whole(name: str) -> None:
    data = sample(name)
    whole = run(name, [data])
    for cut in range(len(data) + 1):
        assert run(name, [data[:cut], data[cut:]]) == whole, f"split at byte {cut}"
    assert run(name, [data[i : i + 1] for i in range(len(data))]) == whole


def test_a_utf8_character_split_across_reads_is_kept_whole() -> None:
    data = jsonl({"type": "item.completed", "item": {"type": "agent_message", "text": "héllo ✓"}})
    cut = data.index("✓".encode()) + 1
    events, summary = run("codex-json", [data[:cut], data[cut:]])
    assert events == [AgentMessage("héllo ✓")]
    assert summary.final_message == "héllo ✓"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_line_over_the_cap_is_cut_and_the_stream_goes_on(name: str) -> None:
    huge = b'{"type":"' + b"x" * 2000 + b'"}\n'
    data = huge + sample(name)
    whole_events, _ = run(name, [data], max_line_bytes=1000)
    assert whole_events[0] == AgentText('{"type":"' + "x" * 991 + " … (line cut at 1000 bytes)")
    assert [render(e) for e in whole_events[1:]] == EXPECTED[name]
    for cut in (1, 500, 1000, 1001, 1002, 2009, 2010, 2011, 2012):
        assert run(name, [data[:cut], data[cut:]], max_line_bytes=1000)[0] == whole_events


# --------------------------------------------------------------------------- garbage


def _valid_lines() -> list[bytes]:
    return [line for name in SAMPLES for line in sample(name).splitlines(keepends=True)]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def _mangled_event(draw: st.DrawFn) -> bytes:
    """A real event with one field (at any depth) replaced by a value of any type."""
    line = draw(st.sampled_from([x for x in _valid_lines() if x.startswith(b"{")]))
    obj = json.loads(line)
    node = obj
    while isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict | list) or draw(st.booleans()):
            node[key] = draw(_JSON_VALUES)
            break
        child = node[key]
        if isinstance(child, list):
            if not child:
                break
            child = draw(st.sampled_from(child))
        node = child
    return json.dumps(obj).encode() + b"\n"


_HOSTILE = [
    b"\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m\n",
    b"\x1b[",
    b"\xff\xfe\xc3(\n",
    b"\x00\x01\x08\x7f\x9b\r\n",
    b'{"type":"result","total_cost_usd":1e999,"usage":{"input_tokens":-5}}\n',
    b'{"type":"message","role":"assistant","content":"\\u001b]0;x\\u0007\\ud800"}\n',
    b'{"type":"turn.completed","usage":{"input_tokens":1' + b"0" * 30 + b"}}\n",
    b"[" * 5000 + b"\n",
    b'{"type": "assistant", "message": {"content": [{"type": "text", "text": "a\\u202eb"}]}}\n',
    b"{not json}\n",
    b"Tokens: 9.9.9k sent, k received. Cost: $x message, $1,2,3 session.\n",
    b"\n\n\r\n",
]


_CHUNKS = st.lists(
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from(_valid_lines()),
        _mangled_event(),
        st.sampled_from(_HOSTILE),
        st.sampled_from(_valid_lines()).map(lambda line: line[: len(line) // 2]),
        st.text(max_size=50).map(lambda text: text.encode("utf-8", "surrogatepass")),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ADAPTER_NAMES), chunks=_CHUNKS)
def test_garbage_never_raises_and_renders_safely(name: str, chunks: list[bytes]) -> None:
    events, summary = run(name, chunks, max_line_bytes=1000)
    for event in events:
        line = render(event)
        assert not UNSAFE.search(line), repr(line)
        line.encode("utf-8")  # writable as it is
    assert summary.input_tokens >= 0 and summary.output_tokens >= 0
    assert summary.cost_usd is None or summary.cost_usd >= 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(ADAPTER_NAMES), chunks=_CHUNKS, data=st.data())
def test_any_chunking_of_any_stream_gives_the_same_events(
    name: str, chunks: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert run(name, pieces, max_line_bytes=500) == run(name, [stream], max_line_bytes=500)


_MB = 1_000_000
_PATHOLOGICAL = [
    ("aider-text", b"Tokens: " + b"1" * _MB + b"\n"),
    ("aider-text", b"Tokens: " + b"1," * _MB + b" sent\n"),
    ("aider-text", b"Added " + b"x" * _MB + b"\n"),
    (
        "opencode-json",
        jsonl(
            {
                "type": "tool_use",
                "part": {
                    "tool": "bash",
                    "state": {
                        "status": "error",
                        "input": {"command": "x"},
                        "error": "permission " * 100_000,
                    },
                },
            }
        ),
    ),
    (
        "codex-json",
        jsonl(
            {
                "type": "item.started",
                "item": {
                    "type": "command_execution",
                    "command": "/bin/bash -lc '" + "x " * _MB + "'",
                },
            }
        ),
    ),
    (
        "gemini-stream-json",
        jsonl({"type": "tool_result", "status": "success", "output": "Exit Code: " * 100_000}),
    ),
    (
        "claude-stream-json",
        jsonl(
            {
                "type": "assistant",
                "message": {
                    "content": [
                        {"type": "tool_use", "name": "Bash", "input": {"command": "\n" * _MB + "x"}}
                    ]
                },
            }
        ),
    ),
    ("text", b"\x1b]" * 300_000 + b"\n" + b"\x1bP" * 300_000 + b"\n" + b"\x1b[" * 300_000),
    ("text", b"\r" * _MB + b"\n" + b"\x9b" * _MB),
]


@pytest.mark.parametrize(("name", "data"), _PATHOLOGICAL)
def test_huge_pathological_lines_are_handled_in_linear_time(name: str, data: bytes) -> None:
    # A quadratic regex or shlex on a megabyte would run for minutes: the test's timeout.
    events, _ = run(name, [data])
    for event in events:
        assert not UNSAFE.search(render(event))


@pytest.mark.parametrize("name", JSON_ADAPTERS)
def test_unknown_events_and_plain_lines_are_shown_as_text(name: str) -> None:
    lines = [
        '{"type":"brand_new_event","x":1}',
        '{"no_type":true}',
        "[1, 2, 3]",
        "npm WARN deprecated something",
        '{"type":"assistant","message":{"content":[{"type":"text","text":"cut',
    ]
    events, _ = run(name, ["\n".join(lines).encode() + b"\n"])
    assert events == [AgentText(line) for line in lines]


@pytest.mark.parametrize("name", JSON_ADAPTERS)
def test_wrong_field_types_do_not_stop_the_stream(name: str) -> None:
    weird = [
        {"type": "system", "subtype": "init", "session_id": 12, "model": ["x"]},
        {"type": "assistant", "message": {"content": "text", "usage": {"input_tokens": "9"}}},
        {"type": "assistant", "message": {"content": [None, 3, {"type": "tool_use"}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": 5}]}},
        {"type": "result", "usage": [], "total_cost_usd": "1", "permission_denials": "x"},
        {"type": "item.completed", "item": {"type": "command_execution", "exit_code": "0"}},
        {"type": "item.completed", "item": {"type": "file_change", "changes": [1, {}]}},
        {"type": "item.started", "item": "x"},
        {"type": "turn.completed", "usage": {"input_tokens": True, "output_tokens": 1.5}},
        {"type": "tool_use", "parameters": None, "tool_name": 3},
        {"type": "result", "stats": {"input_tokens": None}, "status": 1},
        {"type": "step_finish", "part": {"tokens": {"cache": 5}, "cost": "free", "reason": 2}},
        {"type": "tool_use", "part": {"state": {"metadata": [], "status": "error"}}},
    ]
    events, summary = run(name, [jsonl(*weird) + sample(name)])
    assert [render(e) for e in events][-len(EXPECTED[name]) :] == EXPECTED[name]
    assert summary.lines == len(weird) + len(sample(name).splitlines())


# --------------------------------------------------------------------------- totals


def test_claude_counts_a_message_repeated_per_content_block_once() -> None:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 1000, "output_tokens": 5}
    block = {"type": "assistant", "message": {"id": "msg_1", "content": [], "usage": usage}}
    second = {"type": "assistant", "message": {"id": "msg_2", "content": [], "usage": usage}}
    _, summary = run("claude-stream-json", [jsonl(block, block, block, second)])
    assert (summary.input_tokens, summary.output_tokens, summary.cached_tokens) == (2020, 10, 2000)
    assert summary.cost_usd is None


def test_claude_result_totals_and_cost_win() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "total_cost_usd": 0.25,
        "usage": {"input_tokens": 7, "cache_creation_input_tokens": 3, "output_tokens": 90},
    }
    _, summary = run("claude-stream-json", [jsonl(result)])
    assert (summary.input_tokens, summary.output_tokens, summary.cost_usd) == (10, 90, 0.25)


def test_codex_turns_are_summed() -> None:
    turn = {
        "type": "turn.completed",
        "usage": {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 50},
    }
    events, summary = run("codex-json", [jsonl(turn, turn, turn)])
    assert [e for e in events if isinstance(e, AgentUsage)][-1] == AgentUsage(3000, 150, 1200, None)
    assert summary.finished and summary.ok


def test_opencode_steps_and_costs_are_summed() -> None:
    def step(cost: float, reason: str) -> dict[str, object]:
        tokens = {"input": 100, "output": 10, "cache": {"read": 50, "write": 5}}
        return {
            "type": "step_finish",
            "sessionID": "ses_1",
            "part": {"reason": reason, "cost": cost, "tokens": tokens},
        }

    _, summary = run("opencode-json", [jsonl(step(0.5, "tool-calls"), step(0.25, "stop"))])
    assert (summary.input_tokens, summary.output_tokens, summary.cached_tokens) == (310, 20, 100)
    assert summary.cost_usd == 0.75
    assert summary.finished and summary.ok


def test_aider_tokens_are_summed_and_its_session_cost_kept() -> None:
    lines = (
        b"Tokens: 1.2k sent, 340 received. Cost: $0.01 message, $0.01 session.\n"
        b"Tokens: 12k sent, 2.5k cache write, 8k cache hit, 1,234 received. "
        b"Cost: $0.05 message, $0.06 session.\n"
        b"Tokens: 900 sent, 10 received.\n"
    )
    _, summary = run("aider-text", [lines])
    assert (summary.input_tokens, summary.output_tokens, summary.cached_tokens) == (
        14100,
        1584,
        8000,
    )
    assert summary.cost_usd == 0.06


# --------------------------------------------------------------------------- needs input


def needs(name: str, data: bytes) -> str | None:
    events, summary = run(name, [data])
    asked = [e.reason for e in events if isinstance(e, AgentNeedsInput)]
    assert len(asked) <= 1 and asked == ([summary.needs_input] if summary.needs_input else [])
    return summary.needs_input


def test_a_finished_run_that_did_not_ask_needs_nothing() -> None:
    for name in SAMPLES:
        if name not in ("aider-text", "text"):
            assert needs(name, sample(name)) is None, name


def test_claude_permission_denial_needs_input() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "result": "I need permission to write the file.",
        "permission_denials": [
            {"tool_name": "Write", "tool_use_id": "t1", "tool_input": {"file_path": "/w/.env"}}
        ],
    }
    assert needs("claude-stream-json", jsonl(result)) == "permission denied: Write /w/.env"


def test_claude_final_question_needs_input() -> None:
    text = {
        "type": "assistant",
        "message": {
            "content": [{"type": "text", "text": "Done.\n\nShould I also update the docs? "}]
        },
    }
    result = {
        "type": "result",
        "subtype": "success",
        "result": "Done.\n\nShould I also update the docs? ",
    }
    events, summary = run("claude-stream-json", [jsonl(text, result)])
    assert summary.needs_input == "asks: Should I also update the docs?"
    assert not any(isinstance(e, AgentMessage) and e.final for e in events)  # same text: once


def test_claude_error_result_is_reported() -> None:
    result = {"type": "result", "subtype": "error_max_turns", "is_error": True}
    events, summary = run("claude-stream-json", [jsonl(result)])
    assert AgentError("claude: error_max_turns") in events
    assert AgentFinished(False, "error_max_turns") in events
    assert summary.ok is False and summary.errors == 1


def test_claude_final_result_differing_from_the_last_message_is_reported_as_final() -> None:
    result = {"type": "result", "subtype": "success", "result": "All tests pass."}
    events, summary = run("claude-stream-json", [jsonl(result)])
    assert AgentMessage("All tests pass.", final=True) in events
    assert summary.final_message == "All tests pass."


def test_codex_declined_command_needs_input() -> None:
    item = {
        "type": "command_execution",
        "command": "rm -rf build",
        "exit_code": None,
        "status": "declined",
    }
    data = jsonl({"type": "item.completed", "item": item}, {"type": "turn.completed", "usage": {}})
    assert needs("codex-json", data) == "permission denied: $ rm -rf build"


def test_codex_approval_error_needs_input() -> None:
    data = jsonl(
        {"type": "error", "message": "command requires approval, but approval policy is never"}
    )
    assert needs("codex-json", data) == (
        "permission denied: command requires approval, but approval policy is never"
    )


def test_codex_request_user_input_needs_input_at_once() -> None:
    data = jsonl(
        {
            "type": "request_user_input",
            "id": "t",
            "call_id": "c",
            "questions": [{"id": "q", "question": "Which port?"}],
        }
    )
    events, summary = run("codex-json", [data])
    assert summary.needs_input == "asks: Which port?"
    assert events == [AgentAction("ask", "asks: Which port?"), AgentNeedsInput("asks: Which port?")]


def test_codex_turn_failed_is_an_error() -> None:
    data = jsonl({"type": "turn.failed", "error": {"message": "stream disconnected"}})
    events, summary = run("codex-json", [data])
    assert summary.ok is False
    assert events == [
        AgentError("stream disconnected"),
        AgentFinished(False, "stream disconnected"),
    ]


def test_codex_final_question_needs_input() -> None:
    message = {
        "type": "item.completed",
        "item": {"id": "i", "type": "agent_message", "text": "Which database should I use?"},
    }
    assert needs("codex-json", jsonl(message, {"type": "turn.completed", "usage": {}})) == (
        "asks: Which database should I use?"
    )


def test_gemini_tool_refused_for_approval_needs_input() -> None:
    data = jsonl(
        {
            "type": "tool_use",
            "tool_name": "run_shell_command",
            "tool_id": "t1",
            "parameters": {"command": "make deploy"},
        },
        {
            "type": "tool_result",
            "tool_id": "t1",
            "status": "error",
            "error": {"type": "x", "message": "Tool requires user approval"},
        },
        {"type": "result", "status": "success", "stats": {}},
    )
    events, summary = run("gemini-stream-json", [data])
    assert AgentAction("command", "$ make deploy → failed: Tool requires user approval") in events
    assert summary.needs_input == "permission denied: $ make deploy"


def test_gemini_question_across_deltas_needs_input_at_close() -> None:
    chunks = [
        {"type": "message", "role": "assistant", "content": part, "delta": True}
        for part in ("Shall I ", "go on?")
    ]
    events, summary = run("gemini-stream-json", [jsonl(*chunks)])
    assert events == [AgentMessage("Shall I go on?"), AgentNeedsInput("asks: Shall I go on?")]
    assert not summary.finished


def test_gemini_answer_streams_on_across_an_unknown_event() -> None:
    def delta(text: str) -> dict[str, object]:
        return {"type": "message", "role": "assistant", "content": text, "delta": True}

    data = jsonl(delta("All "), {"type": "thought", "x": 1}, delta("done."))
    events, _ = run("gemini-stream-json", [data])
    assert events == [AgentText('{"type": "thought", "x": 1}'), AgentMessage("All done.")]


def test_opencode_rejected_permission_needs_input() -> None:
    tool = {
        "type": "tool_use",
        "sessionID": "ses_1",
        "part": {
            "tool": "bash",
            "state": {
                "status": "error",
                "input": {"command": "git push"},
                "error": "The user rejected permission to use this specific tool call.",
            },
        },
    }
    finish = {"type": "step_finish", "sessionID": "ses_1", "part": {"reason": "stop", "tokens": {}}}
    assert needs("opencode-json", jsonl(tool, finish)) == "permission denied: $ git push"


def test_opencode_error_event() -> None:
    data = jsonl(
        {
            "type": "error",
            "sessionID": "ses_1",
            "error": {"name": "APIError", "data": {"message": "rate limited"}},
        }
    )
    events, _ = run("opencode-json", [data])
    assert events == [AgentStarted("ses_1", None), AgentError("rate limited")]


def test_text_without_a_final_question_needs_nothing() -> None:
    assert needs("text", b"done?\nall good\n") is None
    assert needs("text", b"") is None


# --------------------------------------------------------------------------- pricing


PRICING = {
    "gpt-5-codex": ModelPrice(input=1.25, output=10.0, cached=0.125),
    "claude-sonnet-4-5": ModelPrice(input=3.0, output=15.0),
    "claude": ModelPrice(input=99.0, output=99.0),
}


def test_pricing_fills_in_a_cost_the_cli_does_not_report() -> None:
    turn = {
        "type": "turn.completed",
        "usage": {
            "input_tokens": 1_000_000,
            "cached_input_tokens": 400_000,
            "output_tokens": 100_000,
        },
    }
    _, summary = run("codex-json", [jsonl(turn)], pricing=PRICING, model="gpt-5-codex")
    assert summary.cost_usd == pytest.approx(0.6 * 1.25 + 0.4 * 0.125 + 0.1 * 10.0)
    _, unpriced = run("codex-json", [jsonl(turn)], pricing=PRICING, model="o3")
    assert unpriced.cost_usd is None
    _, no_table = run("codex-json", [jsonl(turn)], model="gpt-5-codex")
    assert no_table.cost_usd is None


def test_pricing_matches_dated_and_provider_prefixed_model_names() -> None:
    assert find_price(PRICING, "claude-sonnet-4-5-20250929") == PRICING["claude-sonnet-4-5"]
    assert find_price(PRICING, "anthropic/claude-sonnet-4-5") == PRICING["claude-sonnet-4-5"]
    assert find_price(PRICING, "claude-opus-4") == PRICING["claude"]
    assert find_price(PRICING, "gemini-2.5-pro") is None
    assert find_price(None, "claude") is None


def test_cached_tokens_default_to_the_input_price() -> None:
    price = ModelPrice(input=2.0, output=0.0)
    assert cost_usd(price, input_tokens=500_000, output_tokens=0, cached_tokens=500_000) == 1.0
    assert cost_usd(None, input_tokens=1, output_tokens=1, cached_tokens=0) is None


def test_a_cost_the_cli_reports_wins_over_the_table() -> None:
    _, summary = run("claude-stream-json", [sample("claude-stream-json")], pricing=PRICING)
    assert summary.cost_usd == 0.0016


def test_opencode_zero_cost_means_unpriced_so_the_table_is_used() -> None:
    _, summary = run(
        "opencode-json",
        [sample("opencode-json")],
        pricing={"local": ModelPrice(input=1.0, output=2.0, cached=0.5)},
        model="myprovider/local",
    )
    assert summary.cost_usd == pytest.approx((2500 * 1.0 + 200 * 0.5 + 50 * 2.0) / 1e6)


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;owned\x07title", "title"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1b[2J\x1b[1;1Hred \x1b[31mtext\x1b[0m", "red text"),
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),
        ("lone \x1b", "lone ␛"),
        ("bell\x07 nul\x00 del\x7f csi\x9b1m", "bell␇ nul␀ del␡ csi"),
        ("c1 \x85 next", "c1 \\x85 next"),
        ("tab\tkept", "tab\tkept"),
        ("50%\r100%", "100%"),
        ("crlf\r", "crlf"),
        ("one\ntwo\n", "one ↵ two"),
        ("abc\u202edef", "abc<U+202E>def"),
        ("line\u2028sep", "line<U+2028>sep"),
        ("lone \ud800 surrogate", "lone <U+D800> surrogate"),
    ],
)
def test_safe_line(raw: str, shown: str) -> None:
    assert safe_line(raw) == shown


def test_a_long_line_is_cut_with_a_note() -> None:
    assert safe_line("x" * 5000, max_chars=10) == "xxxxxxxxxx … (4990 more chars)"


def test_every_event_renders_to_one_line() -> None:
    events: list[AgentEvent] = [
        AgentStarted(None, None),
        AgentAction("ask", "asks: why?\nreally"),
        AgentMessage("a\n\nb", final=True),
        AgentUsage(1_234, 5, 1_000, 0.5),
        AgentNeedsInput("asks: x?"),
        AgentError("boom\x1b[31m"),
        AgentFinished(False, ""),
        AgentText("\x1b[1mbold"),
    ]
    assert [render(e) for e in events] == [
        "● started",
        "? asks: why? ↵ really",
        "» final: a ↵  ↵ b",
        "tokens: 1,234 in (1,000 cached), 5 out · $0.5000",
        "⚠ needs input: asks: x?",
        "✗ boom",
        "■ finished with an error",
        "bold",
    ]


def test_the_star_row_prices_any_model_and_a_cli_that_names_none() -> None:
    star = {"*": ModelPrice(1.0, 2.0), "gpt-5": ModelPrice(10.0, 20.0)}
    assert find_price(star, None) == ModelPrice(1.0, 2.0)
    assert find_price(star, "other") == ModelPrice(1.0, 2.0)
    assert find_price(star, "openai/gpt-5") == ModelPrice(10.0, 20.0)
    assert find_price({"gpt-5": ModelPrice(1.0, 2.0)}, None) is None
