"""Notifications: apprise URLs against a loopback HTTP server, a recording command, the
user's config file, and a channel that hangs without holding the run up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mission_control.errors import SetupError
from mission_control.notify import start_notifier
from mission_control.notify.config import user_notify
from mission_control.notify.notifier import Notifier, channels_of
from mission_control.plan.model import NotifySpec
from tests.conftest import GitRepo
from tests.engine.engine_helpers import make_engine, write_plan

RECORDER = (
    "import sys\nwith open(sys.argv[1], 'a') as out:\n    out.write(sys.stdin.read() + '\\n')\n"
)
"""A notification command that appends the notice it reads to the file it is given."""


class _Hook:
    """A loopback HTTP server recording the JSON posted to it; ``hang`` holds each answer."""

    def __init__(self, hang: bool = False) -> None:
        self.posts: list[dict[str, object]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hang:
            self.release.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append(json.loads(body))
                hook.entered.set()
                hook.release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[_Hook]:
    server = _Hook()
    yield server
    server.close()


def _recorded(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plan(tmp_path: Path, repo: Path, notify: dict[str, object] | None = None) -> Path:
    plan = write_plan(
        tmp_path,
        repo,
        [
            (
                "P1",
                2,
                [
                    {"id": "A", "tool": "shell", "command": ["false"]},
                    {"id": "B", "tool": "shell", "command": ["true"]},
                ],
            )
        ],
    )
    if notify is not None:
        text = plan.path.read_text() + "notify: " + json.dumps(notify) + "\n"
        plan.path.write_text(text)
    return plan.path


async def test_a_json_url_and_a_command_hear_what_they_asked_for(
    git_repo: GitRepo, tmp_path: Path, hook: _Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    record = tmp_path / "record.jsonl"
    notify = {
        "urls": [f"json://127.0.0.1:{hook.port}/hook"],
        "on": ["failed", "run_finished"],
        "command": [sys.executable, "-c", RECORDER, str(record)],
    }
    from mission_control.plan.loader import load_plan_or_raise

    plan = load_plan_or_raise(_plan(tmp_path, git_repo.path, notify))
    engine = make_engine(plan, tmp_path / "state")
    notifier = start_notifier(plan, tmp_path / "state", engine.run_id)
    assert notifier is not None
    engine.subscribe(notifier)
    assert await engine.run() is False
    notifier.close(wait=30)
    titles = [str(post["title"]) for post in hook.posts]
    assert titles == [
        "mission-control: P1::A failed",
        f"mission-control: run {engine.run_id} of test plan finished with failures",
    ]
    assert hook.posts[0]["message"] == "tool 'shell' exited 1"
    notices = _recorded(record)
    assert [(n["kind"], n["task_id"]) for n in notices] == [
        ("failed", "P1::A"),
        ("run_finished", None),
    ]
    assert notices[0]["run_id"] == engine.run_id and notices[0]["plan"] == "test plan"


async def test_a_hanging_channel_does_not_hold_the_run_and_its_url_is_never_written(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    hanging = _Hook(hang=True)
    record = tmp_path / "record.jsonl"
    try:
        spec = NotifySpec(
            urls=[f"json://127.0.0.1:{hanging.port}/SECRET-TOKEN-123"],
            on=frozenset({"failed", "run_finished"}),
            command=[sys.executable, "-c", RECORDER, str(record)],
        )
        from mission_control.plan.loader import load_plan_or_raise

        plan = load_plan_or_raise(_plan(tmp_path, git_repo.path))
        state = tmp_path / "state"
        engine = make_engine(plan, state)
        log = state / "runs" / engine.run_id / "notifications.log"
        notifier = Notifier(channels_of([spec]), plan.name, log, timeout=0.5)
        engine.subscribe(notifier)
        # The channel answers nothing until the test lets it: a run it held up would
        # never end, and the bound below fails the test instead of hanging it.
        assert await asyncio.wait_for(engine.run(), 120) is False
        assert not hanging.release.is_set()
        notifier.close(wait=30)
        assert hanging.entered.is_set()
        lines = log.read_text().splitlines()
        assert [line.split(" ", 2)[2] for line in lines] == [
            "failed: json channel #1 failed: no answer within 0.5s",
            "run_finished: json channel #1 failed: no answer within 0.5s",
        ]
        # The next channel still heard both.
        assert [n["kind"] for n in _recorded(record)] == ["failed", "run_finished"]
        for file in state.rglob("*"):
            if file.is_file():
                assert b"SECRET-TOKEN-123" not in file.read_bytes(), file
    finally:
        hanging.close()


def test_the_users_config_file_is_read_and_its_mistakes_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("notify:\n  urls: [ntfy://my-topic]\n  on: [run_finished]\n  bell: true\n")
    spec = user_notify(config)
    assert spec is not None and spec.urls == ["ntfy://my-topic"] and spec.bell
    config.write_text("notify:\n  on: [finished]\n")
    with pytest.raises(SetupError) as caught:
        user_notify(config)
    assert str(caught.value).startswith(f"{config}: notify.on.0: input should be 'failed',")
    config.write_text("notify:\n  urls: [my-secret-topic]\n")
    with pytest.raises(SetupError) as caught:
        user_notify(config)
    assert "my-secret-topic" not in str(caught.value)
    assert user_notify(tmp_path / "absent.yaml") is None


def test_a_headless_run_notifies_through_the_users_config_file(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    config_home = tmp_path / "config-home"
    (config_home / "mission-control").mkdir(parents=True)
    command = json.dumps([sys.executable, "-c", RECORDER, str(record)])
    (config_home / "mission-control" / "config.yaml").write_text(
        f"notify:\n  command: {command}\n  on: [phase_finished, run_finished]\n"
    )
    plan = _plan(tmp_path, git_repo.path)
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    done = subprocess.run(
        [sys.executable, "-m", "mission_control", "run", str(plan), "--headless"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    deadline = time.monotonic() + 30
    while len(_recorded(record) if record.exists() else []) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [n["kind"] for n in _recorded(record)] == ["phase_finished", "run_finished"]


def test_the_bell_rings_for_the_kinds_it_asked_for(tmp_path: Path) -> None:
    from mission_control.engine import events as ev
    from mission_control.engine.states import WsState

    rung = threading.Event()
    spec = NotifySpec(bell=True, on=frozenset({"run_finished"}))
    notifier = Notifier(channels_of([spec], bell=rung.set), "plan", tmp_path / "n.log")
    notifier(ev.WorkstreamStateChanged("r", "P::A", WsState.RUNNING, WsState.FAILED, 1.0))
    notifier.close(wait=30)
    assert not rung.is_set()
    notifier = Notifier(channels_of([spec], bell=rung.set), "plan", tmp_path / "n.log")
    notifier(ev.RunFinished("r", True, 2.0))
    notifier.close(wait=30)
    assert rung.is_set()


def test_needs_input_and_over_budget_are_kinds_of_their_own() -> None:
    from mission_control.engine import events as ev
    from mission_control.engine.states import WsState
    from mission_control.notify.notifier import notice_of

    def kind(new: WsState, detail: str) -> tuple[str, str] | None:
        notice = notice_of(
            ev.WorkstreamStateChanged("r", "P::A", WsState.RUNNING, new, 1.0, detail), "p"
        )
        return None if notice is None else (notice.kind, notice.message)

    assert kind(WsState.NEEDS_INPUT, "asks: which port?") == ("needs_input", "asks: which port?")
    over = "over budget: $2.0134 spent, max_cost_usd is 2"
    assert kind(WsState.FAILED, over) == ("over_budget", over)
    assert kind(WsState.FAILED, "tool 'shell' exited 1") == ("failed", "tool 'shell' exited 1")
    assert kind(WsState.SUCCEEDED, "pushed") is None
