"""The built-in tools: how each known agent CLI is started, headless, in a worktree.

Each argv follows the tool's own ``--help`` of a current release; the README
lists them. A plan's ``tools:`` may override any of these by name.
"""

from __future__ import annotations

from .model import PromptVia, ToolSpec

BUILTIN_TOOLS: dict[str, ToolSpec] = {
    "aider": ToolSpec(
        argv=["aider", "--yes-always", "--no-pretty", "--message-file", "{prompt_file}"],
        prompt_via=PromptVia.FILE,
        install_hint="python -m pip install aider-install && aider-install",
    ),
    "codex": ToolSpec(
        argv=["codex", "exec", "--full-auto", "-"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @openai/codex",
    ),
    "claude": ToolSpec(
        argv=["claude", "-p", "--permission-mode", "acceptEdits"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @anthropic-ai/claude-code",
    ),
    "gemini": ToolSpec(
        argv=["gemini", "--yolo"],
        prompt_via=PromptVia.STDIN,
        install_hint="npm install -g @google/gemini-cli",
    ),
    "opencode": ToolSpec(
        argv=["opencode", "run", "{prompt}"],
        prompt_via=PromptVia.ARG,
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
