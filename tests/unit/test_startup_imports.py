"""What the command line imports before it knows the command: nothing heavy.

``mission-control --help`` should answer at once; the plan models (pydantic, yaml),
GitPython, psutil, the engine and the TUI are imported by the commands that use
them. Each check runs a fresh interpreter, as a user's shell does.
"""

from __future__ import annotations

import json
import subprocess
import sys

_HEAVY = ("pydantic", "yaml", "git", "psutil", "textual", "ray")


def _loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (
        f"import json, sys; {statement}; "
        f"print(json.dumps(sorted({{m.split('.')[0] if m.split('.')[0] != 'mission_control' else m "
        f"for m in sys.modules if m.split('.')[0] in {_HEAVY!r} "
        f"or m.startswith({prefixes!r})}})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_command_line_module_imports_nothing_heavy() -> None:
    loaded = _loaded_after(
        "import mission_control.cli, mission_control.__main__",
        ("mission_control.plan", "mission_control.engine", "mission_control.git",
         "mission_control.tui"),
    )  # fmt: skip
    assert loaded == []


def test_the_supervisor_and_sampler_need_no_plan_git_or_tui() -> None:
    loaded = _loaded_after(
        "import mission_control.engine.supervisor, mission_control.engine.metrics",
        ("mission_control.plan", "mission_control.git", "mission_control.tui"),
    )
    assert loaded == ["psutil"]


def test_help_builds_every_command_without_the_engine_store_or_models() -> None:
    loaded = _loaded_after(
        "from mission_control.cli import build_parser; build_parser()",
        ("mission_control.plan", "mission_control.store", "mission_control.git",
         "mission_control.tui", "mission_control.engine"),
    )  # fmt: skip
    assert loaded == ["mission_control.engine", "mission_control.engine.backend_names"]
