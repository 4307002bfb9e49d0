"""The scripted model server speaks each API's wire format, in order, and records what it got.

These run without any agent CLI: a plain HTTP client plays the CLI, so the formats the e2e
tests rely on are pinned here (and a broken server shows up as one of these, not as a CLI
that mysteriously hangs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.model_server import ModelServer, parse_script, serve

SERVER = Path(__file__).resolve().parents[1] / "helpers" / "model_server.py"
USAGE = {"input": 200, "output": 40, "cached": 10}
SCRIPT: dict[str, Any] = {
    "model": "test-model",
    "turns": [
        {"write": {"path": "HELLO.md", "content": "hi\n"}, "usage": USAGE},
        {"message": "done"},
    ],
}


def _post(server: ModelServer, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
    request = urllib.request.Request(
        server.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers["Content-Type"]), response.read()


def _sse(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per SSE event."""
    events: list[tuple[str | None, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def test_anthropic_stream_carries_a_tool_use_then_text_with_usage() -> None:
    with serve(SCRIPT) as server:
        kind, raw = _post(
            server,
            "/v1/messages",
            {"model": "test-model", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        )
        assert kind == "text/event-stream"
        events = _sse(raw)
        names = [name for name, _ in events]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
        assert all(name == data["type"] for name, data in events)
        start = events[0][1]["message"]["usage"]
        assert (start["input_tokens"], start["cache_read_input_tokens"]) == (200, 10)
        opened = [d["content_block"] for n, d in events if n == "content_block_start"]
        assert opened == [{"type": "tool_use", "id": "toolu_0000", "name": "Write", "input": {}}]
        partial = "".join(
            d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"
        )
        assert json.loads(partial) == {"file_path": "HELLO.md", "content": "hi\n"}
        delta = events[-2][1]
        assert delta["delta"]["stop_reason"] == "tool_use"
        assert delta["usage"] == {"output_tokens": 40}

        _, raw = _post(server, "/v1/messages", {"model": "test-model", "stream": False})
        message = json.loads(raw)
        assert message["content"] == [{"type": "text", "text": "done"}]
        assert message["stop_reason"] == "end_turn"


def test_side_requests_and_probes_consume_no_turn() -> None:
    with serve(SCRIPT) as server:
        _, raw = _post(server, "/v1/messages", {"model": "side-model", "stream": False})
        assert json.loads(raw)["content"] == [{"type": "text", "text": "ok"}]
        _, raw = _post(server, "/v1/messages/count_tokens", {"model": "test-model"})
        assert json.loads(raw) == {"input_tokens": 10}
        with urllib.request.urlopen(server.base_url + "/api/hello", timeout=30) as response:
            assert json.loads(response.read()) == {}
        assert server.turns_used == 0
        _, raw = _post(server, "/v1/messages", {"model": "test-model"})
        assert json.loads(raw)["content"][0]["name"] == "Write"
        assert [(r.api, r.turn) for r in server.requests] == [
            ("anthropic", None),
            ("count_tokens", None),
            ("probe", None),
            ("anthropic", 0),
        ]


def test_responses_stream_carries_a_function_call_and_usage() -> None:
    with serve(SCRIPT) as server:
        tools = [{"type": "function", "name": "exec_command"}]
        _, raw = _post(server, "/v1/responses", {"model": "test-model", "tools": tools})
        events = _sse(raw)
        names = [name for name, _ in events]
        assert names == [
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
        item = events[2][1]["item"]
        assert item["type"] == "function_call" and item["name"] == "exec_command"
        assert "HELLO.md" in json.loads(item["arguments"])["cmd"]
        usage = events[-1][1]["response"]["usage"]
        assert usage["input_tokens"] == 200 and usage["output_tokens"] == 40
        assert usage["input_tokens_details"] == {"cached_tokens": 10}

        _, raw = _post(server, "/v1/responses", {"model": "test-model"})
        events = _sse(raw)
        text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
        assert text == "done"
        assert events[-2][1]["item"]["content"][0]["text"] == "done"


def test_chat_stream_carries_tool_call_deltas_and_usage_when_asked() -> None:
    with serve(SCRIPT) as server:
        tools = [{"type": "function", "function": {"name": "write"}}]
        body = {
            "model": "test-model",
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": tools,
        }
        _, raw = _post(server, "/v1/chat/completions", body)
        events = [data for _, data in _sse(raw)]
        assert events[-1] == "[DONE]"
        calls = [
            c
            for e in events[:-1]
            if e["choices"]
            for c in e["choices"][0]["delta"].get("tool_calls", [])
        ]
        assert calls[0]["function"]["name"] == "write" and calls[0]["id"] == "call_0000"
        arguments = "".join(c["function"]["arguments"] for c in calls)
        assert json.loads(arguments) == {"filePath": "HELLO.md", "content": "hi\n"}
        finishes = [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]]
        assert finishes[-1] == "tool_calls"
        assert events[-2]["usage"]["prompt_tokens"] == 200

        # No tools offered (aider): a plain, non-streamed answer.
        _, raw = _post(server, "/v1/chat/completions", {"model": "test-model"})
        assert json.loads(raw)["choices"][0]["message"]["content"] == "done"


def test_chat_without_tools_writes_a_file_as_a_whole_file_reply() -> None:
    with serve(SCRIPT) as server:
        _, raw = _post(server, "/v1/chat/completions", {"model": "test-model"})
        reply = json.loads(raw)
        assert reply["choices"][0]["message"]["content"] == "HELLO.md\n```\nhi\n```\n"
        assert reply["usage"]["completion_tokens"] == 40


def test_gemini_stream_carries_a_function_call_and_usage_metadata() -> None:
    with serve(SCRIPT) as server:
        path = "/v1beta/models/test-model:streamGenerateContent?alt=sse"
        _, raw = _post(server, path, {"contents": []})
        ((_, data),) = _sse(raw)
        part = data["candidates"][0]["content"]["parts"][0]
        assert part == {
            "functionCall": {
                "name": "write_file",
                "args": {"file_path": "HELLO.md", "content": "hi\n"},
            }
        }
        assert data["usageMetadata"]["promptTokenCount"] == 200
        # generateContent (a router or "next speaker" check) is a side call.
        _, raw = _post(server, "/v1beta/models/flash:generateContent", {"contents": []})
        assert json.loads(raw)["candidates"][0]["content"]["parts"] == [{"text": "ok"}]
        assert server.turns_used == 1


def test_after_the_script_every_request_gets_the_side_reply() -> None:
    with serve({"turns": [{"message": "only"}]}) as server:
        for expected in ("only", "ok", "ok"):
            _, raw = _post(server, "/v1/messages", {"model": "any"})
            assert json.loads(raw)["content"][0]["text"] == expected
        assert [r.turn for r in server.requests] == [0, None, None]


def test_a_delay_holds_the_answer_back() -> None:
    script = {"turns": [{"message": "late", "delay": 0.5}]}
    with serve(script) as server:
        started = time.monotonic()
        _post(server, "/v1/messages", {})
        assert time.monotonic() - started >= 0.5


def test_a_turn_without_a_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="turn 1: a turn needs one of"):
        parse_script({"turns": [{"message": "a"}, {"say": "b"}]})


def test_standalone_server_writes_its_port_and_serves_the_script(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    port_file = tmp_path / "port"
    log = tmp_path / "requests.jsonl"
    argv = [sys.executable, str(SERVER), "--script", str(script), "--port-file", str(port_file)]
    proc = subprocess.Popen([*argv, "--requests-log", str(log)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{int(port_file.read_text())}"
        body = json.dumps({"model": "test-model"}).encode()
        request = urllib.request.Request(base + "/v1/messages", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["content"][0]["name"] == "Write"
        with urllib.request.urlopen(base + "/_requests", timeout=30) as response:
            (recorded,) = json.loads(response.read())
        assert recorded["body"] == {"model": "test-model"} and recorded["turn"] == 0
        assert json.loads(log.read_text())["turn"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_standalone_server_rejects_a_bad_script_in_one_line(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text('{"turns": [{"say": "x"}]}')
    proc = subprocess.run(
        [sys.executable, str(SERVER), "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert str(script) in proc.stderr and "turn 0" in proc.stderr
