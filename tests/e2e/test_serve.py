"""``serve``: the app of a run answered over HTTP on loopback, behind the token it prints."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import GitRepo


def _finished_run(git_repo: GitRepo, tmp_path: Path) -> Path:
    plan = tmp_path / "plan.yaml"
    doc = {
        "version": 1,
        "name": "served",
        "defaults": {"repo": str(git_repo.path), "base_branch": "main", "timeout_minutes": 1},
        "phases": [
            {
                "id": "P1",
                "max_parallel_workstreams": 1,
                "workstreams": [{"id": "A", "tool": "shell", "command": ["true"]}],
            }
        ],
    }
    plan.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "mission_control", "run", str(plan), "--headless"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return plan


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_page_loads_with_the_token_and_is_refused_without_it(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = _finished_run(git_repo, tmp_path)
    serve = subprocess.Popen(
        [sys.executable, "-m", "mission_control", "serve", "--plan", str(plan)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline().strip()
        assert " in a browser: http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[1]
        token = url.rstrip("/").rsplit("/", 1)[1]
        assert len(token) >= 24
        base = url[: -len(token) - 1]
        status = 0
        for _ in range(200):  # the server starts listening just after it prints
            try:
                status, page = _get(url)
                break
            except urllib.error.URLError:
                import time

                time.sleep(0.05)
        assert status == 200
        assert f"ws://127.0.0.1:{base.rsplit(':', 1)[1].rstrip('/')}/{token}/ws" in page
        assert _get(base)[0] == 403
        assert _get(f"{base}{'x' * len(token)}/")[0] == 403
        assert _get(f"{base}{'x' * len(token)}/ws")[0] == 403
    finally:
        serve.terminate()
        serve.wait(30)


def test_serve_without_a_run_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mission_control", "serve", "--state-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    pytest.importorskip("textual_serve")
