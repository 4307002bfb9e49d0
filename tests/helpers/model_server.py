"""A scripted model server on loopback, so the real agent CLIs can run in tests without a network.

The agent CLIs (claude, codex, aider, gemini, opencode) each speak one model API. This server
speaks four of them on one port and answers every "main" request with the next turn of a script:

  POST /v1/messages               Anthropic Messages (SSE when ``"stream": true``, else JSON)
  POST /v1/messages/count_tokens  Anthropic token count (never consumes a turn)
  POST /v1/responses              OpenAI Responses (SSE)
  POST /v1/chat/completions       OpenAI chat completions (SSE with ``tool_calls``, or JSON)
  POST /v1beta/models/M:generateContent, :streamGenerateContent?alt=sse   Gemini
  anything else (HEAD, GET, other POSTs)                                  200 ``{}``

A script is JSON::

    {"model": "test-model",          # optional: requests for another model are side requests
     "side_reply": "ok",              # optional: the text a side request gets
     "turns": [
       {"write": {"path": "HELLO.md", "content": "hello\\n"},
        "delay": 0.2, "usage": {"input": 200, "output": 40, "cached": 10}},
       {"run": "ls -la"},
       {"tool": {"name": "Write", "input": {"file_path": "x", "content": "y"}}},
       {"message": "done"}]}

A turn is one of ``write`` (write a file), ``run`` (run a shell command), ``tool`` (a raw tool
call, passed through as given) or ``message`` (a closing text answer). ``write`` and ``run``
become the tool each CLI offers for that (``Write``/``Bash`` for claude, ``exec_command`` for
codex, ``write``/``bash`` for opencode, ``write_file``/``run_shell_command`` for gemini); a
chat request that offers no tools (aider) gets ``write`` as a "whole file" reply (the path,
then the content in a fence). ``delay`` is slept before answering. ``usage`` is reported in
each API's own fields: ``input`` is the API's input count (Anthropic ``input_tokens``,
Responses ``input_tokens``, chat ``prompt_tokens``, Gemini ``promptTokenCount``), ``output``
its output count, ``cached`` its cache-read count.

A side request (another model than the script's, a Gemini non-streaming ``generateContent``,
or a request after the script ran out) gets ``side_reply`` and consumes no turn, so a CLI's
background calls (titles, routing, "who speaks next" checks) do not shift the script.

Every request is recorded (``ModelServer.requests``; ``GET /_requests`` from another
process; ``--requests-log FILE`` appends one JSON line per request as it arrives), so a test
can check, e.g., that a resumed session sent the earlier conversation. Answers depend only on
the script and the order of main requests: ids are counters, not random.

Standalone: ``python tests/helpers/model_server.py --script S.json --port-file F`` writes the
port to F once it listens (atomically) and serves until killed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]

DEFAULT_USAGE: Mapping[str, int] = {"input": 100, "output": 20, "cached": 0}


# --------------------------------------------------------------------------- script


@dataclass(frozen=True)
class Turn:
    """One scripted answer: a tool call (``kind`` write/run/tool) or a ``message``."""

    kind: str
    text: str = ""
    path: str = ""
    content: str = ""
    command: str = ""
    tool_name: str = ""
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    usage: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))


@dataclass(frozen=True)
class Script:
    turns: tuple[Turn, ...]
    model: str | None = None
    side_reply: str = "ok"


def _turn(raw: Mapping[str, Any], where: str) -> Turn:
    usage = {**DEFAULT_USAGE, **raw.get("usage", {})}
    common: dict[str, Any] = {"delay": float(raw.get("delay", 0.0)), "usage": usage}
    if "message" in raw:
        return Turn(kind="message", text=str(raw["message"]), **common)
    if "write" in raw:
        w = raw["write"]
        return Turn(kind="write", path=str(w["path"]), content=str(w["content"]), **common)
    if "run" in raw:
        return Turn(kind="run", command=str(raw["run"]), **common)
    if "tool" in raw:
        t = raw["tool"]
        return Turn(kind="tool", tool_name=str(t["name"]), tool_input=dict(t["input"]), **common)
    raise ValueError(f"{where}: a turn needs one of message, write, run, tool; got {sorted(raw)}")


def parse_script(raw: Mapping[str, Any]) -> Script:
    """A ``Script`` from its JSON form (see the module docstring); ValueError names a bad turn."""
    turns = tuple(_turn(t, f"turn {i}") for i, t in enumerate(raw.get("turns", [])))
    return Script(turns=turns, model=raw.get("model"), side_reply=str(raw.get("side_reply", "ok")))


def load_script(path: Path) -> Script:
    return parse_script(json.loads(path.read_text()))


# --------------------------------------------------------------------------- records


@dataclass
class Recorded:
    """A request as it arrived, and which turn (if any) answered it."""

    seq: int
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    api: str
    turn: int | None
    at: float

    def as_json(self) -> JSON:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "api": self.api,
            "turn": self.turn,
            "at": self.at,
        }


# --------------------------------------------------------------------------- tool mapping


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    """Names of the tools a request offers, whatever the API's shape for them."""
    names: list[str] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if "functionDeclarations" in tool:  # Gemini
            names += [str(f.get("name")) for f in tool["functionDeclarations"]]
        elif isinstance(tool.get("function"), dict):  # chat completions
            names.append(str(tool["function"].get("name")))
        elif "name" in tool:  # Anthropic, Responses
            names.append(str(tool["name"]))
    return names


def _pick(offered: list[str], *candidates: str) -> str:
    """The first candidate the request offers (case-insensitive), else the first candidate."""
    lowered = {n.lower(): n for n in offered}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return candidates[0]


def _shell_write(path: str, content: str) -> str:
    return f"printf '%s' {shlex.quote(content)} > {shlex.quote(path)}"


def tool_call(turn: Turn, api: str, offered: list[str]) -> tuple[str, JSON]:
    """The (tool name, arguments) that carries out ``turn`` for a CLI speaking ``api``."""
    if turn.kind == "tool":
        return turn.tool_name, dict(turn.tool_input)
    if api == "anthropic":
        if turn.kind == "write":
            return "Write", {"file_path": turn.path, "content": turn.content}
        return "Bash", {"command": turn.command, "description": "Run a command"}
    if api == "responses":
        command = turn.command if turn.kind == "run" else _shell_write(turn.path, turn.content)
        name = _pick(offered, "exec_command", "shell_command", "shell")
        if name == "shell":
            return name, {"command": ["bash", "-lc", command]}
        if name == "shell_command":
            return name, {"command": command}
        return name, {"cmd": command}
    if api == "gemini":
        if turn.kind == "write":
            return "write_file", {"file_path": turn.path, "content": turn.content}
        return "run_shell_command", {"command": turn.command}
    # chat completions (opencode and other OpenAI-compatible clients)
    if turn.kind == "write":
        name = _pick(offered, "write", "write_file")
        key = "filePath" if name == "write" else "file_path"
        return name, {key: turn.path, "content": turn.content}
    return _pick(offered, "bash", "run_shell_command"), {
        "command": turn.command,
        "description": "Run a command",
    }


def whole_file_text(turn: Turn) -> str:
    """A turn as plain text: aider's "whole" edit format for a write, else the message."""
    if turn.kind == "write":
        return f"{turn.path}\n```\n{turn.content}```\n"
    if turn.kind == "run":
        return f"```bash\n{turn.command}\n```\n"
    if turn.kind == "tool":
        return json.dumps({"tool": turn.tool_name, "input": dict(turn.tool_input)})
    return turn.text


# --------------------------------------------------------------------------- wire formats


def _sse(event: str | None, data: JSON | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _split(text: str, parts: int = 2) -> list[str]:
    """``text`` in a few pieces, so clients see real incremental deltas."""
    if len(text) < parts:
        return [text]
    step = -(-len(text) // parts)
    return [text[i : i + step] for i in range(0, len(text), step)]


class _Answer:
    """One turn rendered for one API, with ids taken from the request's sequence number."""

    def __init__(self, turn: Turn, seq: int, model: str, offered: list[str]) -> None:
        self.turn = turn
        self.seq = seq
        self.model = model
        self.offered = offered
        self.usage = turn.usage

    # ---- Anthropic Messages
    def anthropic_message(self) -> JSON:
        return {
            "id": f"msg_{self.seq:04d}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self._anthropic_blocks(),
            "stop_reason": "end_turn" if self.turn.kind == "message" else "tool_use",
            "stop_sequence": None,
            "usage": self._anthropic_usage(),
        }

    def _anthropic_usage(self) -> JSON:
        return {
            "input_tokens": self.usage["input"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": self.usage["cached"],
            "output_tokens": self.usage["output"],
        }

    def _anthropic_blocks(self) -> list[JSON]:
        if self.turn.kind == "message":
            return [{"type": "text", "text": self.turn.text}]
        name, args = tool_call(self.turn, "anthropic", self.offered)
        return [{"type": "tool_use", "id": f"toolu_{self.seq:04d}", "name": name, "input": args}]

    def anthropic_stream(self) -> Iterator[bytes]:
        message = self.anthropic_message()
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**self._anthropic_usage(), "output_tokens": 0}
        yield _sse("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                opened: JSON = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": t} for t in _split(block["text"])]
            else:
                opened = {**block, "input": {}}
                raw = json.dumps(block["input"])
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in _split(raw)]
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opened},
            )
            for delta in deltas:
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": self.usage["output"]},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})

    # ---- OpenAI Responses
    def _responses_item(self) -> JSON:
        if self.turn.kind == "message":
            return {
                "type": "message",
                "id": f"msg_{self.seq:04d}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": self.turn.text, "annotations": []}],
            }
        name, args = tool_call(self.turn, "responses", self.offered)
        return {
            "type": "function_call",
            "id": f"fc_{self.seq:04d}",
            "call_id": f"call_{self.seq:04d}",
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }

    def responses_stream(self) -> Iterator[bytes]:
        rid = f"resp_{self.seq:04d}"
        base = {"id": rid, "object": "response", "model": self.model, "created_at": 0}
        seq = iter(range(1_000_000))
        created = {**base, "status": "in_progress", "output": []}
        yield _sse(
            "response.created",
            {"type": "response.created", "sequence_number": next(seq), "response": created},
        )
        item = self._responses_item()
        added = {**item, "status": "in_progress"}
        if item["type"] == "message":
            added["content"] = []
        elif item["type"] == "function_call":
            added["arguments"] = ""
        yield _sse(
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": added,
            },
        )
        if item["type"] == "message":
            for piece in _split(self.turn.text):
                yield _sse(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                    },
                )
        yield _sse(
            "response.output_item.done",
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": 0,
                "item": item,
            },
        )
        usage = {
            "input_tokens": self.usage["input"],
            "input_tokens_details": {"cached_tokens": self.usage["cached"]},
            "output_tokens": self.usage["output"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.usage["input"] + self.usage["output"],
        }
        done = {**base, "status": "completed", "output": [item], "usage": usage}
        yield _sse(
            "response.completed",
            {"type": "response.completed", "sequence_number": next(seq), "response": done},
        )

    # ---- OpenAI chat completions
    def _chat_usage(self) -> JSON:
        return {
            "prompt_tokens": self.usage["input"],
            "completion_tokens": self.usage["output"],
            "total_tokens": self.usage["input"] + self.usage["output"],
            "prompt_tokens_details": {"cached_tokens": self.usage["cached"]},
        }

    def _chat_tool(self) -> tuple[str, JSON] | None:
        """The tool call for this turn, or None when the answer is text (a message, or no tools)."""
        if self.turn.kind == "message" or not self.offered:
            return None
        return tool_call(self.turn, "chat", self.offered)

    def chat_message(self) -> JSON:
        call = self._chat_tool()
        message: JSON = {"role": "assistant", "content": None}
        if call is None:
            message["content"] = whole_file_text(self.turn)
        else:
            message["tool_calls"] = [self._chat_call(call, with_index=False)]
        return {
            "id": f"chatcmpl-{self.seq:04d}",
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "stop" if call is None else "tool_calls",
                }
            ],
            "usage": self._chat_usage(),
        }

    def _chat_call(self, call: tuple[str, JSON], *, with_index: bool) -> JSON:
        out: JSON = {
            "id": f"call_{self.seq:04d}",
            "type": "function",
            "function": {"name": call[0], "arguments": json.dumps(call[1])},
        }
        return {"index": 0, **out} if with_index else out

    def chat_stream(self, include_usage: bool) -> Iterator[bytes]:
        head = {
            "id": f"chatcmpl-{self.seq:04d}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
        }

        def chunk(delta: JSON, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return _sse(None, {**head, "choices": [choice]})

        yield chunk({"role": "assistant", "content": ""})
        call = self._chat_tool()
        if call is None:
            for piece in _split(whole_file_text(self.turn)):
                yield chunk({"content": piece})
        else:
            first = self._chat_call(call, with_index=True)
            args = first["function"]["arguments"]
            pieces = _split(args)
            first["function"] = {"name": call[0], "arguments": pieces[0]}
            yield chunk({"tool_calls": [first]})
            for piece in pieces[1:]:
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        finish = "stop" if call is None else "tool_calls"
        yield chunk({}, finish)
        if include_usage:
            yield _sse(None, {**head, "choices": [], "usage": self._chat_usage()})
        yield _sse(None, "[DONE]")

    # ---- Gemini
    def gemini_response(self) -> JSON:
        if self.turn.kind == "message":
            part: JSON = {"text": self.turn.text}
        else:
            name, args = tool_call(self.turn, "gemini", self.offered)
            part = {"functionCall": {"name": name, "args": args}}
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": self.usage["input"],
                "candidatesTokenCount": self.usage["output"],
                "cachedContentTokenCount": self.usage["cached"],
                "totalTokenCount": self.usage["input"] + self.usage["output"],
            },
            "modelVersion": self.model,
            "responseId": f"resp_{self.seq:04d}",
        }


# --------------------------------------------------------------------------- server


def _api_of(method: str, path: str) -> str:
    if method != "POST":
        return "probe"
    if path.endswith("/messages/count_tokens"):
        return "count_tokens"
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith(":streamGenerateContent"):
        return "gemini_stream"
    if path.endswith(":generateContent"):
        return "gemini"
    if path.endswith(":countTokens"):
        return "gemini_count"
    return "other"


_HEADERS_KEPT = ("user-agent", "content-type", "x-api-key", "authorization", "anthropic-beta")


class ModelServer:
    """The scripted server; ``with ModelServer(script) as server: server.base_url ...``."""

    def __init__(self, script: Script, *, port: int = 0, requests_log: Path | None = None) -> None:
        self.script = script
        self._lock = threading.Lock()
        self._next_turn = 0
        self._requests: list[Recorded] = []
        self._requests_log = requests_log
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def main_requests(self, api: str | None = None) -> list[Recorded]:
        """Requests that were answered with a turn (optionally only those of one API)."""
        return [r for r in self.requests if r.turn is not None and api in (None, r.api)]

    @property
    def turns_used(self) -> int:
        with self._lock:
            return self._next_turn

    def start(self) -> ModelServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    # ---- called by the handler
    def record(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Any,
    ) -> tuple[Recorded, Turn | None]:
        """Record a request; take the next turn if it is a main request."""
        parts = urlsplit(target)
        api = _api_of(method, parts.path)
        with self._lock:
            turn: Turn | None = None
            index: int | None = None
            if self._is_main(api, body) and self._next_turn < len(self.script.turns):
                index = self._next_turn
                turn = self.script.turns[index]
                self._next_turn += 1
            rec = Recorded(
                seq=len(self._requests),
                method=method,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k: v for k, v in headers.items() if k.lower() in _HEADERS_KEPT},
                body=body,
                api=api,
                turn=index,
                at=time.time(),
            )
            self._requests.append(rec)
            if self._requests_log is not None:
                with self._requests_log.open("a") as log:
                    log.write(json.dumps(rec.as_json()) + "\n")
        return rec, turn

    def _is_main(self, api: str, body: Any) -> bool:
        if api not in ("anthropic", "responses", "chat", "gemini_stream"):
            return False
        if self.script.model is None or not isinstance(body, dict):
            return True
        return body.get("model") in (None, self.script.model)

    def side_turn(self) -> Turn:
        """The answer to a side request: ``side_reply`` as a message, with token usage of 1."""
        usage = {"input": 1, "output": 1, "cached": 0}
        return Turn(kind="message", text=self.script.side_reply, usage=usage)


def _decode_body(raw: bytes, encoding: str) -> Any:
    try:
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
    except (OSError, zlib.error):
        return {"_undecodable": encoding, "_bytes": len(raw)}
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read records
            return

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send_json(self, status: int, data: Any, *, head_only: bool = False) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not head_only:
                self.wfile.write(payload)

        def _send_stream(self, chunks: Iterator[bytes]) -> None:
            # No length for a stream: close the connection at its end instead.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_HEAD(self) -> None:
            server.record("HEAD", self.path, dict(self.headers), None)
            self._send_json(200, {}, head_only=True)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/_requests":
                self._send_json(200, [r.as_json() for r in server.requests])
                return
            server.record("GET", self.path, dict(self.headers), None)
            if urlsplit(self.path).path.endswith("/models"):
                model = server.script.model or "test-model"
                self._send_json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
                return
            self._send_json(200, {})

        def do_POST(self) -> None:
            body = _decode_body(self._read_body(), self.headers.get("Content-Encoding", ""))
            rec, turn = server.record("POST", self.path, dict(self.headers), body)
            if turn is not None and turn.delay > 0:
                time.sleep(turn.delay)
            self._answer(rec, turn if turn is not None else server.side_turn(), body)

        def _answer(self, rec: Recorded, turn: Turn, body: Any) -> None:
            req = body if isinstance(body, dict) else {}
            model = str(req.get("model") or server.script.model or "test-model")
            if rec.api.startswith("gemini") and "/models/" in rec.path:
                model = rec.path.split("/models/")[1].split(":")[0]
            answer = _Answer(turn, rec.seq, model, _tool_names(req))
            if rec.api == "anthropic":
                if req.get("stream"):
                    self._send_stream(answer.anthropic_stream())
                else:
                    self._send_json(200, answer.anthropic_message())
            elif rec.api == "count_tokens":
                self._send_json(200, {"input_tokens": 10})
            elif rec.api == "responses":
                self._send_stream(answer.responses_stream())
            elif rec.api == "chat":
                if req.get("stream"):
                    options = req.get("stream_options") or {}
                    self._send_stream(answer.chat_stream(bool(options.get("include_usage"))))
                else:
                    self._send_json(200, answer.chat_message())
            elif rec.api == "gemini_stream":
                self._send_stream(iter([_sse(None, answer.gemini_response())]))
            elif rec.api == "gemini":
                self._send_json(200, answer.gemini_response())
            elif rec.api == "gemini_count":
                self._send_json(200, {"totalTokens": 10})
            else:
                self._send_json(200, {})

    return Handler


# --------------------------------------------------------------------------- standalone


def _write_port(port_file: Path, port: int) -> None:
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, port_file)


@contextmanager
def serve(script: Mapping[str, Any] | Script) -> Iterator[ModelServer]:
    """A running server for ``script`` (its JSON form or a ``Script``), stopped on exit."""
    parsed = script if isinstance(script, Script) else parse_script(script)
    with ModelServer(parsed) as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="model_server", description="scripted model server")
    p.add_argument("--script", type=Path, required=True, help="the script (JSON)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--port-file", type=Path, help="write the port here once listening")
    p.add_argument("--requests-log", type=Path, help="append each request here (JSON lines)")
    args = p.parse_args(argv)
    try:
        script = load_script(args.script)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"model_server: bad script {args.script}: {exc}", file=sys.stderr)
        return 2
    server = ModelServer(script, port=args.port, requests_log=args.requests_log)
    if args.port_file is not None:
        _write_port(args.port_file, server.port)
    print(f"model_server: listening on {server.base_url}", flush=True)
    with suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
