"""The built-in tools: how each known agent CLI is started, headless, in a worktree.

Each argv follows the tool's own ``--help`` of a current release; the README
lists them. A plan's ``tools:`` may override any of these by name.
"""

from __future__ import annotations

from .model import PromptVia, ToolSpec

BUILTIN_TOOLS: dict[str, ToolSpec] = {
    # aider 0.86: --message-file runs one message and exits; the --no-* flags keep it
    # from asking questions, committing on its own or running shell commands.
    "aider": ToolSpec(
        argv=[
            "aider",
            "--yes-always",
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
        ],
        prompt_via=PromptVia.FILE,
        install_hint="python -m pip install aider-install && aider-install",
    ),
    # codex 0.171: `exec` never asks for approval; `-` reads the prompt from stdin.
    "codex": ToolSpec(
        argv=["codex", "exec", "--sandbox", "workspace-write", "--color", "never", "-"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @openai/codex",
    ),
    # Claude Code 2.1: -p is non-interactive and reads the prompt from stdin.
    "claude": ToolSpec(
        argv=["claude", "-p", "--permission-mode", "acceptEdits"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @anthropic-ai/claude-code",
    ),
    # gemini 0.61: headless when stdin is not a terminal; a fresh worktree is an
    # untrusted folder, which would force the default (asking) approval mode.
    "gemini": ToolSpec(
        argv=["gemini", "--skip-trust", "--approval-mode", "auto_edit"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @google/gemini-cli",
    ),
    # opencode 1.18: `run` takes the message from stdin when none is given as argument.
    "opencode": ToolSpec(
        argv=["opencode", "run"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g opencode-ai",
    ),
    # Runs the workstream's own ``command`` (an argv, or one line when ``shell: true``);
    # a prompt, if any, goes to stdin.
    "shell": ToolSpec(
        argv=["{command}"],
        prompt_via=PromptVia.STDIN,
        install_hint="",
    ),
}
