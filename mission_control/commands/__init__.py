"""The commands that run plans and read runs: run, tui, resume, attach, continue, status,
runs, logs, conflicts, land, clean and demo, one module per family.

They share one path: load the plan, open the store, build an ``Engine`` and hand it
to a view (the Textual app on a terminal, the line reporter otherwise; ``drive``).
This module only declares the commands: a command's module is imported when that
command runs, and the app only inside the commands that open it, so headless runs
never load Textual.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ..engine.backend_names import BACKENDS

STATE_DIR_NAME = ".mission-control"
"""Where runs and logs live, beside the plan, unless ``--state-dir`` says otherwise."""


def _handler(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``name`` of ``commands.<module>``, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return cast(Callable[[argparse.Namespace], int], command)(args)

    return run


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's commands to the CLI's subparsers."""

    def state_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--state-dir",
            type=Path,
            metavar="DIR",
            help=f"where runs and logs live (default: {STATE_DIR_NAME}/ beside the plan)",
        )

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--phase", metavar="ID", help="run only this phase")
        p.add_argument("--max-parallel", type=int, metavar="N", help="global parallel limit")
        p.add_argument(
            "--keep-going", action="store_true", help="start later phases despite failures"
        )
        p.add_argument("--theme", metavar="NAME", help="the app's theme")
        branch_options(p)
        backend_options(p)
        state_option(p)

    def branch_options(p: argparse.ArgumentParser) -> None:
        # A new run stops when its branches hold earlier runs' commits, unless told.
        group = p.add_mutually_exclusive_group()
        group.add_argument(
            "--continue-branches",
            dest="existing_branches",
            action="store_const",
            const="continue",
            help="a new run builds on the commits earlier runs left on its branches",
        )
        group.add_argument(
            "--fresh",
            dest="existing_branches",
            action="store_const",
            const="fresh",
            help="a new run starts every branch from its base (old tips are kept under"
            " refs/mission-control/old/)",
        )
        p.set_defaults(existing_branches="refuse")

    def backend_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default="local",
            help="where attempts run: this machine (local) or a Ray cluster (ray)",
        )
        p.add_argument(
            "--ray-address",
            metavar="ADDRESS",
            help="the Ray cluster (host:port or ray://host:10001); default auto: a running"
            " local cluster, else one started for the run",
        )

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a plan (the app on a terminal, plain lines otherwise)",
        description="Run a plan. On a terminal the app opens; without one (or with"
        " --headless) one line per state change and a summary. Exit 0 if every workstream"
        " succeeded, 1 if one did not, 2 on a plan or setup error, 130 on Ctrl-C.",
    )
    run.add_argument("plan", type=Path, metavar="PLAN")
    run_options(run)
    run.add_argument("--headless", action="store_true", help="plain output, no app")
    run.add_argument("--json", action="store_true", help="headless: one JSON event per line")
    run.add_argument(
        "--dry-run", action="store_true", help="print worktrees, branches and argv; touch nothing"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the plan's unfinished or stopped (Ctrl-C, stop all) run",
    )
    run.add_argument(
        "--detach", action="store_true", help="run in the background; `attach` opens it"
    )
    run.add_argument("--run-id", help=argparse.SUPPRESS)
    run.set_defaults(handler=_handler("run", "cmd_run"))

    tui = commands.add_parser("tui", parents=[common], help="run a plan in the app")
    tui.add_argument("plan", type=Path, metavar="PLAN")
    run_options(tui)
    tui.set_defaults(handler=_handler("run", "cmd_tui"))

    resume = commands.add_parser(
        "resume",
        parents=[common],
        help="continue an unfinished or stopped run: adopt live agents, restart lost ones",
    )
    resume.add_argument(
        "run", nargs="?", metavar="RUN", help="run id (default: the latest unfinished or stopped)"
    )
    resume.add_argument("--plan", type=Path, help="find the run beside this plan")
    resume.add_argument("--headless", action="store_true", help="plain output, no app")
    resume.add_argument("--json", action="store_true", help="headless: one JSON event per line")
    resume.add_argument("--theme", metavar="NAME", help="the app's theme")
    state_option(resume)
    resume.set_defaults(handler=_handler("resume", "cmd_resume"))

    attach = commands.add_parser(
        "attach", parents=[common], help="open the app on a run left running"
    )
    attach.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the latest)")
    attach.add_argument("--plan", type=Path, help="find the run beside this plan")
    attach.add_argument("--theme", metavar="NAME", help="the app's theme")
    attach.add_argument(
        "--force",
        action="store_true",
        help="also take the run from a driver in the foreground (it exits with code 3)",
    )
    state_option(attach)
    attach.set_defaults(handler=_handler("resume", "cmd_attach"))

    serve = commands.add_parser(
        "serve", parents=[common], help="the app of a run in a browser (textual-serve)"
    )
    serve.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the latest)")
    serve.add_argument("--plan", type=Path, help="find the run beside this plan")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1 only)"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    state_option(serve)
    serve.set_defaults(handler=_handler("serve", "cmd_serve"))

    status = commands.add_parser("status", parents=[common], help="what a run did")
    status.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    status.add_argument("--plan", type=Path, help="find the run beside this plan")
    status.add_argument("--json", action="store_true", help="the run ledger as JSON")
    state_option(status)
    status.set_defaults(handler=_handler("status", "cmd_status"))

    follow_up = commands.add_parser(
        "continue",
        parents=[common],
        help="send a workstream's agent a message: it goes on with its conversation",
        description="Give the agent of PHASE::WS a follow-up message. An agent that takes"
        " input while it runs (claude) gets it at once; otherwise a new attempt in the same"
        " worktree continues the agent's conversation with it (claude --resume, codex exec"
        " resume, gemini --resume, opencode --session, aider's restored chat) once the"
        " current attempt has ended. A run nobody drives is resumed to hand it over.",
    )
    follow_up.add_argument("task", metavar="PHASE::WS")
    said = follow_up.add_mutually_exclusive_group(required=True)
    said.add_argument("--message", "-m", metavar="TEXT", help="the message")
    said.add_argument(
        "--message-file", metavar="FILE", help="read the message from FILE (- for stdin)"
    )
    follow_up.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    follow_up.add_argument("--plan", type=Path, help="find the run beside this plan")
    follow_up.add_argument("--headless", action="store_true", help="plain output, no app")
    follow_up.add_argument("--json", action="store_true", help="headless: one JSON event per line")
    follow_up.add_argument("--theme", metavar="NAME", help="the app's theme")
    state_option(follow_up)
    follow_up.set_defaults(handler=_handler("message", "cmd_continue"))

    runs = commands.add_parser("runs", parents=[common], help="the runs, newest first")
    runs.add_argument("--plan", type=Path, help="only runs of this plan (and find them beside it)")
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    runs.add_argument("--json", action="store_true", help="the list as JSON")
    state_option(runs)
    runs.set_defaults(handler=_handler("runs", "cmd_runs"))

    logs = commands.add_parser("logs", parents=[common], help="print a workstream's log")
    logs.add_argument("task", metavar="PHASE::WS")
    logs.add_argument("--attempt", type=int, metavar="N", help="attempt (default: the last)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--raw",
        action="store_true",
        help="an agent's output exactly as its CLI wrote it (its JSON events), not the transcript",
    )
    logs.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    logs.add_argument("--plan", type=Path, help="find the run beside this plan")
    state_option(logs)
    logs.set_defaults(handler=_handler("logs", "cmd_logs"))

    conflicts = commands.add_parser(
        "conflicts", parents=[common], help="branches forecast to conflict"
    )
    conflicts.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    conflicts.add_argument("--plan", type=Path, help="find the run beside this plan")
    conflicts.add_argument("--json", action="store_true")
    state_option(conflicts)
    conflicts.set_defaults(handler=_handler("status", "cmd_conflicts"))

    land = commands.add_parser(
        "land",
        parents=[common],
        help="merge a phase's succeeded branches, in dependency order, into one branch",
        description="Merge the succeeded workstreams' branches of a phase (or of the whole run)"
        " in dependency order into an integration branch, in a worktree of its own, running the"
        " plan's checks; then push it and open its pull request. A conflict or a failed check"
        " stops it (exit 1); run it again to go on from there.",
    )
    land.add_argument("--phase", metavar="ID", help="land this phase (default: the whole run)")
    land.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    land.add_argument("--plan", type=Path, help="find the run beside this plan")
    land.add_argument(
        "--into", metavar="BRANCH", help="the integration branch (default: mc/land/PHASE or RUN)"
    )
    land.add_argument(
        "--checks",
        choices=("each", "end", "none"),
        default="each",
        help="run the plan's checks after each merge (default), once at the end, or not",
    )
    land.add_argument(
        "--resolve", metavar="TOOL", help="on a conflict, let this tool of the plan resolve it"
    )
    land.add_argument(
        "--close-prs", action="store_true", help="close the workstreams' PRs with a link"
    )
    land.add_argument(
        "--dry-run", action="store_true", help="print the order and expected conflicts only"
    )
    land.add_argument("--json", action="store_true", help="one JSON object per merge and check")
    state_option(land)
    land.set_defaults(handler=_handler("land", "cmd_land"))

    clean = commands.add_parser(
        "clean", parents=[common], help="remove finished workstreams' worktrees"
    )
    clean.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    clean.add_argument("--plan", type=Path, help="find the run beside this plan")
    clean.add_argument("--branches", action="store_true", help="delete the branches too")
    clean.add_argument(
        "--force", action="store_true", help="also uncommitted work and unpushed branches"
    )
    state_option(clean)
    clean.set_defaults(handler=_handler("clean", "cmd_clean"))

    demo = commands.add_parser(
        "demo", parents=[common], help="a realistic run with simulated agents, offline"
    )
    demo.add_argument("--dir", type=Path, help="where to build the demo (default: a new temp dir)")
    demo.add_argument("--headless", action="store_true", help="plain output, no app")
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    demo.add_argument("--theme", metavar="NAME", help="the app's theme")
    backend_options(demo)
    demo.set_defaults(handler=_handler("run", "cmd_demo"))


__all__ = ["register"]
