"""Find the real agent CLIs and point each at a scripted model server on loopback.

``.ci/install-agents`` puts pinned versions under ``.agents/`` (npm packages in
``.agents/npm``, aider in its own virtual environment ``.agents/aider``); a CLI found there
wins over one on PATH, so tests run the pinned version. A missing CLI skips the test with a
reason naming it and the command that installs it.

Each ``*_env`` builds the whole environment from scratch (nothing of the user's keys, config
or home leaks in): a private HOME, the model server's URL, a dummy key, telemetry and update
checks off, and the fixed git identity of ``tests/conftest.py``. ``*_argv`` is the headless,
structured invocation that the reference doc (shared/reference/agent-clis.md) describes;
the prompt always goes on stdin.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IDENTITY, ISOLATION

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / ".agents"
MODEL = "test-model"
"""The model name every CLI is told to use; the script's ``model`` so other names are side calls."""
SIDE_MODEL = "side-model"
"""The name given to a CLI's small/weak model, so its background calls consume no turn."""

RUN_TIMEOUT = 300.0
"""Seconds one CLI run may take: generous, the machine is shared and aider starts slowly."""

_INSTALLED: Mapping[str, Path] = {
    "claude": AGENTS / "npm" / "node_modules" / ".bin" / "claude",
    "codex": AGENTS / "npm" / "node_modules" / ".bin" / "codex",
    "gemini": AGENTS / "npm" / "node_modules" / ".bin" / "gemini",
    "opencode": AGENTS / "npm" / "node_modules" / ".bin" / "opencode",
    "aider": AGENTS / "aider" / "bin" / "aider",
}


def find_cli(name: str) -> Path | None:
    """The pinned CLI under ``.agents/``, else one on PATH, else None."""
    pinned = _INSTALLED.get(name)
    if pinned is not None and os.access(pinned, os.X_OK):
        return pinned
    found = shutil.which(name)
    return Path(found) if found else None


@functools.cache
def _version_problem(path: Path) -> str | None:
    """Why ``path --version`` fails (a half-installed package, a missing platform binary)."""
    try:
        proc = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env={**os.environ, "NO_COLOR": "1"},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def require_cli(name: str) -> Path:
    """The CLI's path; skip the test (naming the CLI) when it is not installed or cannot run."""
    path = find_cli(name)
    if path is None:
        pytest.skip(f"agent CLI {name!r} is not installed (run .ci/install-agents)")
    problem = _version_problem(path)
    if problem is not None:
        pytest.skip(
            f"agent CLI {name!r} at {path} does not run ({problem}); rerun .ci/install-agents"
        )
    return path


def _base_env(home: Path) -> dict[str, str]:
    """A clean environment: PATH (with node), a private HOME, the tests' git identity."""
    home.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if node:
        path = f"{Path(node).parent}:{path}"
    return {
        "PATH": path,
        "HOME": str(home),
        "USER": "test",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        **ISOLATION,
        **IDENTITY,
    }


def claude_env(base_url: str, home: Path, model: str = MODEL) -> dict[str, str]:
    return {
        **_base_env(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": SIDE_MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": SIDE_MODEL,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def claude_argv(exe: Path, resume: str | None = None) -> list[str]:
    argv = [str(exe), "-p", "--permission-mode", "acceptEdits"]
    argv += ["--output-format", "stream-json", "--verbose"]
    return argv + (["--resume", resume] if resume else [])


_CODEX_NETWORK_FEATURES = (
    "plugins",
    "remote_plugin",
    "plugin_sharing",
    "apps",
    "tool_suggest",
    "skill_mcp_dependency_install",
)
"""codex features that reach its vendor's servers at start (a git clone of its plugin
marketplace, featured plugins, apps): off, so a run touches only the model server."""


def codex_env(base_url: str, home: Path, model: str = MODEL) -> dict[str, str]:
    """Codex reads its provider from ``$CODEX_HOME/config.toml``; we write one there."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "scripted"\n'
        "check_for_update_on_startup = false\n"
        "\n"
        "[model_providers.scripted]\n"
        'name = "scripted"\n'
        f'base_url = "{base_url}/v1"\n'
        'env_key = "SCRIPTED_MODEL_KEY"\n'
        'wire_api = "responses"\n'
        "\n"
        "[analytics]\n"
        "enabled = false\n"
        "\n"
        "[features]\n" + "".join(f"{name} = false\n" for name in _CODEX_NETWORK_FEATURES)
    )
    return {**_base_env(home), "CODEX_HOME": str(codex_home), "SCRIPTED_MODEL_KEY": "test-key"}


def codex_argv(exe: Path, resume: str | None = None) -> list[str]:
    argv = [str(exe), "exec", "--json", "--sandbox", "workspace-write"]
    return argv + (["resume", resume, "-"] if resume else ["-"])


def gemini_env(base_url: str, home: Path, model: str = MODEL) -> dict[str, str]:
    """gemini needs its auth type in settings as well as the key (else exit 41); the same
    settings turn off usage statistics, telemetry and update checks."""
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(
        json.dumps(
            {
                "security": {"auth": {"selectedType": "gemini-api-key"}},
                "privacy": {"usageStatisticsEnabled": False},
                "telemetry": {"enabled": False},
                "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            }
        )
    )
    return {
        **_base_env(home),
        "GEMINI_CLI_HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "GEMINI_API_KEY": "test-key",
        "GEMINI_MODEL": model,
        "GEMINI_TELEMETRY_ENABLED": "false",
        "GEMINI_CLI_NO_RELAUNCH": "true",
    }


def gemini_argv(exe: Path, resume: str | None = None, model: str = MODEL) -> list[str]:
    """``-m`` names the model outright, so gemini skips its model router (a side call)."""
    argv = [str(exe), "--skip-trust", "--approval-mode", "auto_edit"]
    argv += ["--output-format", "stream-json", "-m", model]
    return argv + (["--resume", resume] if resume else [])


def opencode_env(base_url: str, home: Path, model: str = MODEL) -> dict[str, str]:
    """opencode resolves npm packages for its config folder at start; offline mode and a dead
    registry keep that from reaching the network (it goes on without them)."""
    config = home / "opencode.json"
    home.mkdir(parents=True, exist_ok=True)
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "scripted",
        "options": {"baseURL": f"{base_url}/v1", "apiKey": "test-key"},
        "models": {model: {"name": model}, SIDE_MODEL: {"name": SIDE_MODEL}},
    }
    config.write_text(
        json.dumps(
            {
                "provider": {"scripted": provider},
                "model": f"scripted/{model}",
                "small_model": f"scripted/{SIDE_MODEL}",
                "autoupdate": False,
                "share": "disabled",
            }
        )
    )
    return {
        **_base_env(home),
        "OPENCODE_CONFIG": str(config),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
        "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
        "OPENCODE_PURE": "1",
        "npm_config_offline": "true",
        "npm_config_registry": "http://127.0.0.1:9/",
    }


def opencode_argv(exe: Path, resume: str | None = None) -> list[str]:
    argv = [str(exe), "run", "--format", "json"]
    return argv + (["--session", resume] if resume else [])


AIDER_PRICE_IN = 0.000001
AIDER_PRICE_OUT = 0.000002
"""USD per token for the scripted model, so aider prints a cost we can check."""


def aider_env(base_url: str, home: Path, model: str = MODEL) -> dict[str, str]:
    """aider reads every option from ``AIDER_*``; its model metadata file stops it fetching
    litellm's price list from the internet at start."""
    home.mkdir(parents=True, exist_ok=True)
    metadata = home / "model-metadata.json"
    entry: dict[str, object] = {"max_input_tokens": 128000, "max_output_tokens": 8192}
    entry |= {"max_tokens": 8192, "litellm_provider": "openai", "mode": "chat"}
    metadata.write_text(
        json.dumps(
            {
                f"openai/{model}": {
                    **entry,
                    "input_cost_per_token": AIDER_PRICE_IN,
                    "output_cost_per_token": AIDER_PRICE_OUT,
                },
                f"openai/{SIDE_MODEL}": {
                    **entry,
                    "input_cost_per_token": 0,
                    "output_cost_per_token": 0,
                },
            }
        )
    )
    return {
        **_base_env(home),
        "OPENAI_API_BASE": f"{base_url}/v1",
        "OPENAI_API_KEY": "test-key",
        "AIDER_MODEL": f"openai/{model}",
        "AIDER_WEAK_MODEL": f"openai/{SIDE_MODEL}",
        "AIDER_EDIT_FORMAT": "whole",
        "AIDER_MODEL_METADATA_FILE": str(metadata),
        "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS_DISABLE": "true",
        "AIDER_SHOW_RELEASE_NOTES": "false",
        "AIDER_SHOW_MODEL_WARNINGS": "false",
        "AIDER_MAP_TOKENS": "0",
        "AIDER_GITIGNORE": "false",
        "AIDER_PRETTY": "false",
        "AIDER_YES_ALWAYS": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def aider_argv(exe: Path, message: str, *, restore_chat: bool = False) -> list[str]:
    """aider takes the prompt as ``--message``; ``--no-stream`` so it reports the server's usage
    (streamed, it asks for no usage and counts tokens itself)."""
    argv = [str(exe), "--no-stream", "--message", message]
    return argv + (["--restore-chat-history"] if restore_chat else [])


_TRACED = "trace=connect,sendto,sendmsg,sendmmsg"
"""Calls that name an address: connect(), and UDP sends that name theirs (DNS lookups)."""
_ADDRESS = re.compile(r"\{sa_family=AF_INET6?, (sin6?_port=htons\(\d+\).*?)\}")
_LOOPBACK = re.compile(r'inet_addr\("127\.|inet_pton\(AF_INET6, "(::1|::ffff:127\.)')


@functools.cache
def _strace() -> list[str] | None:
    """strace's argv prefix that logs calls naming an address, when strace is here and allowed."""
    exe = shutil.which("strace")
    if exe is None:
        return None
    for prefix in ([exe, "--seccomp-bpf", "-f", "-qq"], [exe, "-f", "-qq"]):
        argv = [*prefix, "-e", _TRACED, "-o", os.devnull, "true"]
        if subprocess.run(argv, capture_output=True, check=False).returncode == 0:
            return [*prefix, "-e", _TRACED]
    return None


@dataclass(frozen=True)
class CliRun:
    """What one CLI run left: exit code, output, and stdout parsed as JSON lines."""

    argv: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    outside_connects: Sequence[str] = ()
    """Addresses off loopback that the CLI (or a child) tried to reach, DNS servers included;
    empty when it only used loopback, or when strace is not available to tell."""

    @property
    def events(self) -> list[dict[str, Any]]:
        """stdout's JSON objects, one a line; other lines are skipped."""
        out: list[dict[str, Any]] = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


def _outside_connects(trace: Path) -> list[str]:
    if not trace.exists():
        return []
    found = []
    for line in trace.read_text(errors="replace").splitlines():
        for match in _ADDRESS.finditer(line):
            if not _LOOPBACK.search(match[1]) and match[1] not in found:
                found.append(match[1])
    return found


def run_cli(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    prompt: str = "",
    timeout: float = RUN_TIMEOUT,
) -> CliRun:
    """Run a CLI to its end with ``prompt`` on stdin; its own session, killed whole on timeout.

    Under strace (when available) every address the CLI names is logged, so a test can check
    that it reached for nothing but the loopback model server (a DNS lookup counts)."""
    with tempfile.TemporaryDirectory(prefix="mc-connects-") as folder:
        trace = Path(folder) / "connects.log"
        strace = _strace()
        full = [*strace, "-o", str(trace), *argv] if strace else list(argv)
        proc = subprocess.Popen(
            full,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(prompt, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise AssertionError(
                f"{argv[0]} did not finish within {timeout:.0f} s\n"
                f"{stdout[-4000:]}\n{stderr[-4000:]}"
            ) from None
        return CliRun(
            argv=list(argv),
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            outside_connects=_outside_connects(trace),
        )
