"""Builds the demo: a throwaway repository, its bare origin, prompts and a phase plan.

Everything lives under one folder so the demo can be thrown away whole. The
plan is a real one: the demo runs it with the real engine; only the agent is a
simulation (``mission_control.demo.agent``) and ``gh`` a local stand-in.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetupError

_SOURCES: dict[str, str] = {
    "README.md": "# inventory\n\nA small inventory service.\n",
    "inventory/__init__.py": '"""Inventory service."""\n',
    "inventory/app.py": (
        "from inventory.utils import normalize_sku\n\n\n"
        "def main() -> None:\n"
        '    print(normalize_sku(" ab-12 "))\n'
    ),
    "inventory/utils.py": (
        "def normalize_sku(sku):\n"
        "    return sku.strip().upper()\n\n\n"
        "def parse_qty(text):\n"
        "    return int(text)\n"
    ),
    "inventory/storage.py": ("class Storage:\n    def __init__(self):\n        self.items = {}\n"),
    "tests/test_utils.py": (
        "from inventory.utils import normalize_sku\n\n\n"
        "def test_normalize():\n"
        '    assert normalize_sku(" ab ") == "AB"\n'
    ),
    ".gitignore": "__pycache__/\n",
}


@dataclass(frozen=True, slots=True)
class _Ws:
    id: str
    name: str
    duration: int
    body: str
    depends_on: tuple[str, ...] = ()
    extra: str = ""


_PHASES: list[tuple[str, str, int, list[_Ws]]] = [
    (
        "PH-01",
        "Foundations",
        3,
        [
            _Ws(
                "WS-01A",
                "Add a config loader",
                12,
                "Add a config module that reads INVENTORY_* environment variables.\n"
                "@write inventory/config.py\n"
                "import os\n\n\n"
                "def load() -> dict[str, str]:\n"
                '    return {k: v for k, v in os.environ.items() if k.startswith("INVENTORY_")}\n'
                "@end\n",
            ),
            _Ws(
                "WS-01B",
                "Structured logging helpers",
                9,
                "Add logging helpers with one JSON object per line.\n"
                "@write inventory/log.py\n"
                "import json\n\n\n"
                "def event(name: str, **fields: object) -> str:\n"
                '    return json.dumps({"event": name, **fields})\n'
                "@end\n",
            ),
            _Ws(
                "WS-01C",
                "Make SKU normalisation strict",
                14,
                "Reject empty SKUs in normalize_sku.\n"
                "@replace inventory/utils.py     return sku.strip().upper() => "
                "    sku = sku.strip().upper()\\n"
                '    if not sku:\\n        raise ValueError("empty SKU")\\n    return sku\n',
            ),
            _Ws(
                "WS-01D",
                "Type-annotate the utils",
                10,
                "Add type hints to inventory/utils.py.\n"
                "@replace inventory/utils.py def normalize_sku(sku):\\n"
                "    return sku.strip().upper() => def normalize_sku(sku: str) -> str:\\n"
                "    return sku.strip().upper().replace(' ', '')\n",
            ),
            _Ws(
                "WS-01E",
                "Wire config and logging into the app",
                10,
                "Use the config loader and log helpers in app.main.\n"
                "@append inventory/app.py # config: inventory.config.load(); logs: inventory.log\n",
                ("WS-01A", "WS-01B"),
            ),
        ],
    ),
    (
        "PH-02",
        "Features",
        2,
        [
            _Ws(
                "WS-02A",
                "Command-line flags",
                12,
                "Add --verbose and --config flags.\n"
                "@write inventory/cli.py\n"
                "import argparse\n\n\n"
                "def parser() -> argparse.ArgumentParser:\n"
                "    p = argparse.ArgumentParser()\n"
                '    p.add_argument("--verbose", action="store_true")\n'
                '    p.add_argument("--config")\n'
                "    return p\n"
                "@end\n",
                ("PH-01::WS-01E",),
            ),
            _Ws(
                "WS-02B",
                "Storage migration (flaky first try)",
                10,
                "Add a schema version to Storage.\n"
                "@fail-attempt 1\n"
                "@append inventory/storage.py SCHEMA_VERSION = 2\n"
                "@ask Should old files be migrated on start, or by a command?\n",
                ("PH-01::WS-01E",),
            ),
            _Ws(
                "WS-02C",
                "Long refactor of storage (pause or kill me)",
                40,
                "Split storage into a repository and a cache.\n"
                "@write inventory/cache.py\n"
                "class Cache(dict):\n"
                '    """Cache in front of Storage."""\n'
                "@end\n"
                "@append inventory/storage.py # the cache lives in inventory.cache\n",
                ("WS-02A",),
            ),
        ],
    ),
]


@dataclass(frozen=True, slots=True)
class Demo:
    folder: Path
    repo: Path
    origin: Path
    plan_path: Path
    bin_dir: Path


def _git(cwd: Path, *args: str) -> None:
    env = dict(os.environ)
    env.setdefault("GIT_AUTHOR_NAME", "Demo Author")
    env.setdefault("GIT_AUTHOR_EMAIL", "demo@example.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "Demo Author")
    env.setdefault("GIT_COMMITTER_EMAIL", "demo@example.invalid")
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SetupError(f"demo: git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")


def create_demo(folder: Path, *, speed: float = 1.0) -> Demo:
    """Lay out a fresh demo in ``folder`` (which must be missing or empty).

    ``speed`` divides every agent's duration (tests run the demo fast).
    """
    folder = folder.expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise SetupError(
            f"demo folder {folder} is not empty: pass --dir with a new folder, or delete it"
        )
    if shutil.which("git") is None:
        raise SetupError("git not found on PATH: install git to run the demo")
    repo = folder / "inventory"
    origin = folder / "origin.git"
    prompts = folder / "prompts"
    bin_dir = folder / "bin"
    for path in (repo, prompts, bin_dir):
        path.mkdir(parents=True, exist_ok=True)
    for rel, text in _SOURCES.items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(folder, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "Initial inventory service")
    _git(repo, "remote", "add", "origin", str(origin))
    _git(repo, "push", "--quiet", "-u", "origin", "main")

    _write_gh_stand_in(bin_dir, folder / "pull-requests.jsonl")
    plan_lines = [
        "# The mission-control demo: an inventory service improved by simulated agents.",
        "# Phase PH-01 runs four workstreams in parallel (WS-01C and WS-01D edit the same",
        "# lines: watch the conflict forecast), then WS-01E on top of two of them.",
        "# Phase PH-02 fails WS-02B once (retry it with `r`; it then asks a question:",
        "# answer it with `m`) and runs WS-02C long enough to pause (`p`) or kill (`K`).",
        "version: 1",
        "name: inventory demo",
        "defaults:",
        "  repo: inventory",
        "  base_branch: main",
        "  tool: demo-agent",
        "  timeout_minutes: 5",
        "  stall_minutes: 2",
        "  checks:",
        f"    - name: compile\n      run: ['{sys.executable}', -m, compileall, -q, inventory]",
        "tools:",
        "  demo-agent:",
        f"    argv: ['{sys.executable}', -m, mission_control.demo.agent]",
        "    prompt_via: stdin",
        "    events: claude-stream-json",
        f"    continue_argv: ['{sys.executable}', -m, mission_control.demo.agent,"
        " --resume, '{session_id}']",
        "phases:",
    ]
    for phase_id, phase_name, limit, workstreams in _PHASES:
        plan_lines += [
            f"  - id: {phase_id}",
            f"    name: {phase_name}",
            f"    max_parallel_workstreams: {limit}",
            "    workstreams:",
        ]
        for ws in workstreams:
            prompt = prompts / f"{ws.id}.txt"
            duration = max(1.0, ws.duration / speed)
            prompt.write_text(f"{ws.body}@duration {duration:g}\n", encoding="utf-8")
            deps = ", ".join(f'"{d}"' for d in ws.depends_on)
            plan_lines += [
                f"      - id: {ws.id}",
                f'        name: "{ws.name}"',
                f"        prompt_file: prompts/{ws.id}.txt",
                f"        depends_on: [{deps}]",
            ]
    plan_path = folder / "plan.yaml"
    plan_path.write_text("\n".join(plan_lines) + "\n", encoding="utf-8")
    return Demo(folder, repo, origin, plan_path, bin_dir)


def _write_gh_stand_in(bin_dir: Path, ledger: Path) -> None:
    """A ``gh`` that records pull requests in a local file instead of GitHub."""
    script = bin_dir / "gh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from mission_control.demo.gh import main\n"
        f"sys.exit(main(sys.argv[1:], {str(ledger)!r}))\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
