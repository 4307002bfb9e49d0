"""``land --resolve TOOL``: a tool of the plan resolves a landing's conflict in place.

The tool is rendered like a workstream's (``tools.render_command``: its argv,
how it takes its prompt, its environment) for a workstream made for the
occasion, whose prompt names the branches and the conflicted files; it runs in
the landing's worktree with the conflict there, its output in the landing's log.
What it leaves is judged by the landing (exit 0, no markers, the checks).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SetupError
from ..plan.model import Plan, Workstream
from ..store.private import make_private_dir
from .landing_order import LandingScope
from .landing_processes import ProcessEnd, run_logged
from .tools import find_executable, render_command


def check_resolver(plan: Plan, tool: str) -> None:
    """Refuse a ``--resolve`` tool the plan does not know, before anything merges."""
    if tool not in plan.tools:
        known = ", ".join(sorted(plan.tools))
        raise SetupError(
            f"--resolve {tool}: no such tool in {plan.path} (tools: {known})"
            " — name one of them, or add it under `tools:`"
        )
    spec = plan.tools[tool]
    if "{command}" in spec.argv:
        raise SetupError(
            f"--resolve {tool}: that tool runs a workstream's own command, and a resolution has"
            " none — add a tool under `tools:` that runs your agent"
        )


def resolve_prompt(scope: LandingScope, ws: Workstream, files: tuple[str, ...]) -> str:
    landed = [w.branch for w in scope.order[: scope.order.index(ws)]]
    shown = "\n".join(f"- {name}" for name in files)
    held = ", ".join(landed) if landed else f"only the base, {scope.base_branch}"
    return (
        f"You are in a git worktree on branch {scope.into}, in the middle of merging branch"
        f" {ws.branch} ({ws.task_id}: {ws.name}) into it. {scope.into} holds {held}.\n\n"
        f"The merge conflicts in these files:\n{shown}\n\n"
        "Resolve every conflict so that both sides' intent is kept: edit the files, remove"
        " every conflict marker (<<<<<<<, =======, >>>>>>>), and make the project's checks"
        " pass. Do not commit, and do not abort the merge: the landing commits the merge"
        " when you exit 0 and the checks pass.\n"
    )


def run_resolver(
    plan: Plan,
    tool: str,
    scope: LandingScope,
    ws: Workstream,
    files: tuple[str, ...],
    env: dict[str, str],
) -> ProcessEnd:
    """Run ``tool`` in the landing's worktree on the conflict of merging ``ws``."""
    spec = plan.tools[tool]
    folder = scope.log_path.parent / f"resolve-{ws.phase_id}-{ws.id}"
    make_private_dir(folder)
    attempt = sum(1 for _ in folder.glob("attempt-*")) + 1
    attempt_dir = make_private_dir(folder / f"attempt-{attempt}")
    resolving = ws.model_copy(
        update={
            "tool": tool,
            "prompt": resolve_prompt(scope, ws, files),
            "prompt_file": None,
            "command": None,
            "shell": False,
        }
    )
    rendered = render_command(
        spec,
        resolving,
        run_id=scope.run_id,
        attempt=attempt,
        attempt_dir=attempt_dir,
        worktree=scope.worktree,
    )
    argv = list(rendered.argv)
    argv[0] = find_executable(
        argv[0], f"--resolve tool '{tool}'", spec.install_hint, cwd=Path(scope.worktree)
    )
    return run_logged(
        argv,
        f"--resolve {tool} on {ws.task_id}",
        " ".join(rendered.argv),
        cwd=scope.worktree,
        log_path=scope.log_path,
        env={**rendered.env, **env},
        timeout=ws.timeout_seconds,
        stdin_path=rendered.stdin_path,
    )
