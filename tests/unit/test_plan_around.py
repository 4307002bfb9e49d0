"""The settings around the agent in a plan: set-up, files, ports, ``from:`` and ``notify:``.

Each mistake is reported at its line with the fix; good values reach the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mission_control.plan.loader import LoadResult, load_plan
from mission_control.plan.model import Check

HEAD = """\
defaults:
  repo: @REPO@
  base_branch: main
  tool: shell
  timeout_minutes: 5
phases:
  - id: PH-1
    max_parallel_workstreams: 2
    workstreams:
      - id: WS-1
        command: [make]
"""


@pytest.fixture
def load(tmp_path: Path, shared_git_repo: Any) -> Any:
    def _load(text: str) -> LoadResult:
        plan = tmp_path / "plan.yaml"
        plan.write_text(text.replace("@REPO@", str(shared_git_repo.path)))
        return load_plan(plan)

    return _load


def problems(result: LoadResult) -> list[str]:
    assert result.plan is None
    return [str(p).split(": ", 1)[1] for p in result.problems]


def test_good_values_reach_the_model(load: Any) -> None:
    text = HEAD.replace(
        "  timeout_minutes: 5\n",
        "  timeout_minutes: 5\n  setup: ['npm ci']\n  copy: [.env, '.env.*']\n",
    ) + (
        "        setup: [{name: db, run: 'make db PORT={port}', shell: true, timeout_minutes: 2}]\n"
        "        teardown: make stop\n"
        "        link: node_modules\n"
        "        ports: 3\n"
        "        from: origin/feature-x\n"
        "port_range: [30000, 30100]\n"
        "notify: {urls: ['json://127.0.0.1:9/hook'], on: run_finished, bell: true,"
        " command: 'notify-me --json'}\n"
    )
    result = load(text)
    assert result.problems == []
    assert result.plan is not None
    ws = result.plan.workstreams[0]
    assert ws.setup == [
        Check(name="db", argv=["make db PORT={port}"], shell=True, timeout_minutes=2)
    ]
    assert [c.argv for c in ws.teardown] == [["make", "stop"]]
    assert ws.copy_files == [".env", ".env.*"]
    assert ws.link_files == ["node_modules"]
    assert ws.ports == 3
    assert ws.start_from == "origin/feature-x"
    assert result.plan.port_range == (30000, 30100)
    notify = result.plan.notify
    assert notify is not None
    assert notify.on == {"run_finished"} and notify.bell
    assert notify.command == ["notify-me", "--json"]


def test_defaults_give_one_port_and_nothing_else(load: Any) -> None:
    result = load(HEAD)
    assert result.plan is not None
    ws = result.plan.workstreams[0]
    assert (ws.ports, ws.setup, ws.copy_files, ws.start_from) == (1, [], [], None)
    assert result.plan.port_range == (20000, 29999)
    assert result.plan.notify is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "copy: ['../secrets/.env']",
            "copy[0]: pattern '../secrets/.env' leaves the repository ('..') — patterns name"
            " untracked files of the repository's checkout, relative to its top folder,"
            " e.g. .env, '.env.*', node_modules",
        ),
        ("link: ['~/.ssh']", "link[0]: pattern '~/.ssh' names a place outside the repository"),
        ("copy: ['.git/config']", "copy[0]: pattern '.git/config' reaches into the repository's"),
        (
            "from: pr:12x",
            "from: 'pr:12x' has no pull request number after 'pr:' — write `from: pr:123`"
            " (a pull request, through gh) or `from: origin/feature-x` (a remote branch)",
        ),
        ("from: feature-x", "from: 'feature-x' is neither pr:NUMBER nor REMOTE/BRANCH"),
        ("from: origin/a..b", "from: 'origin/a..b' has a part 'a..b' that contains '..'"),
        ("ports: 17", "ports: must be at most 16, got 17 — how many ports the workstream gets"),
        (
            "setup: ['npm ci && npm run build']",
            "setup[0].run: 'npm ci && npm run build' uses shell syntax (&&) but runs without a"
            " shell — add `shell: true`",
        ),
        ("teardown: [{name: x}]", "teardown[0]: missing required key 'run'"),
        (
            "ports: 0\n        checks: ['curl localhost:{port}']",
            "ports: `ports: 0` gives no port, but the workstream's commands use {port} — remove",
        ),
    ],
)
def test_a_bad_workstream_setting_is_named_with_its_fix(
    load: Any, line: str, expected: str
) -> None:
    found = problems(load(HEAD + f"        {line}\n"))
    assert len(found) == 1, found
    assert found[0].startswith("phases[PH-1].workstreams[WS-1]." + expected), found[0]


def test_bad_top_level_settings_are_named_with_their_fix(load: Any) -> None:
    text = HEAD + "port_range: [29999, 20000]\nnotify: {urls: [mytopic], on: [done]}\n"
    found = problems(load(text))
    assert found == [
        "port_range: port_range [29999, 20000] starts above its end — write the lowest port"
        " first: [20000, 29999]",
        "notify.on[0]: must be 'failed', 'stalled', 'needs_input', 'over_budget', 'conflicts',"
        " 'phase_finished' or 'run_finished', got done — a list of: failed, stalled,"
        " needs_input, over_budget, conflicts, phase_finished, run_finished",
    ]
    found = problems(load(HEAD + "notify: {urls: [mytopic]}\nport_range: [80, 90]\n"))
    assert found == [
        "notify.urls[0]: a notification channel is a URL with a scheme — e.g. ntfy://mytopic,"
        " json://127.0.0.1:8080/hook (see apprise's list of services)",
        "port_range[0]: must be at least 1024, got 80 — the lowest and highest port to hand"
        " out: [20000, 29999]",
        "port_range[1]: must be at least 1024, got 90 — the lowest and highest port to hand"
        " out: [20000, 29999]",
    ]


def test_a_channel_url_is_never_echoed_in_a_message(load: Any) -> None:
    found = problems(load(HEAD + "notify: {urls: ['secret-token-123'], on: nope}\n"))
    assert found and not any("secret-token-123" in p for p in found)
