"""The built-in tools: how each known agent CLI is started, headless, in a worktree.

Each argv follows the tool's own ``--help`` of a current release; the README
lists them. A plan's ``tools:`` may override any of these by name.
"""

from __future__ import annotations

from .model import PromptVia, ToolSpec

_CLAUDE = [
    "claude",
    "-p",
    "--permission-mode",
    "acceptEdits",
    "--output-format",
    "stream-json",
    "--verbose",
]
_GEMINI = [
    "gemini",
    "--skip-trust",
    "--approval-mode",
    "auto_edit",
    "--output-format",
    "stream-json",
]
_AIDER = [
    "aider",
    "--yes-always",
    "--no-stream",  # the provider's own token counts, not aider's estimate
    "--no-pretty",
    "--no-fancy-input",
    "--no-check-update",
    "--no-show-release-notes",
    "--no-analytics",
    "--no-auto-commits",
    "--no-detect-urls",
    "--no-suggest-shell-commands",
    "--message-file",
    "{prompt_file}",
]

BUILTIN_TOOLS: dict[str, ToolSpec] = {
    # aider 0.86: --message-file runs one message and exits; the --no-* flags keep it
    # from asking questions, committing on its own or running shell commands.
    "aider": ToolSpec(
        argv=_AIDER,
        prompt_via=PromptVia.FILE,
        install_hint="python -m pip install aider-install && aider-install",
        events="aider-text",
        # aider keeps its chat in the worktree's .aider.chat.history.md.
        continue_argv=[*_AIDER, "--restore-chat-history"],
    ),
    # codex 0.171: `exec` never asks for approval; `-` reads the prompt from stdin; --json
    # prints one event per line as it works.
    "codex": ToolSpec(
        argv=["codex", "exec", "--json", "--sandbox", "workspace-write", "--color", "never", "-"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @openai/codex",
        events="codex-json",
        continue_argv=[
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--color",
            "never",
            "resume",
            "{session_id}",
            "-",
        ],
    ),
    # Claude Code 2.1: -p is non-interactive; in text mode it prints nothing until it ends,
    # so stream-json: every message and tool use as it happens. With stream-json input it
    # takes further messages while it runs.
    "claude": ToolSpec(
        argv=[*_CLAUDE, "--input-format", "stream-json"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @anthropic-ai/claude-code",
        events="claude-stream-json",
        continue_argv=[*_CLAUDE, "--input-format", "stream-json", "--resume", "{session_id}"],
        live_input=True,
        budget_argv=["--max-budget-usd", "{max_cost_usd}"],
    ),
    # gemini 0.61: headless when stdin is not a terminal; a fresh worktree is an
    # untrusted folder, which would force the default (asking) approval mode.
    "gemini": ToolSpec(
        argv=[*_GEMINI],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @google/gemini-cli",
        events="gemini-stream-json",
        continue_argv=[*_GEMINI, "--resume", "{session_id}"],
    ),
    # opencode 1.18: `run` takes the message from stdin when none is given as argument.
    "opencode": ToolSpec(
        argv=["opencode", "run", "--format", "json"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g opencode-ai",
        events="opencode-json",
        continue_argv=["opencode", "run", "--format", "json", "--session", "{session_id}"],
    ),
    # Runs the workstream's own ``command`` (an argv, or one line when ``shell: true``);
    # a prompt, if any, goes to stdin.
    "shell": ToolSpec(
        argv=["{command}"],
        prompt_via=PromptVia.STDIN,
        install_hint="",
    ),
}
