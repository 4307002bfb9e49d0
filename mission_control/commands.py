"""The commands that run plans and read runs: run, tui, resume, attach, status, logs,
conflicts, clean and demo.

They share one path: load the plan, open the store, build an ``Engine`` and hand it
to a view (the Textual app on a terminal, the line reporter otherwise). The app is
imported only inside the commands that open it, so headless runs never load Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from .engine.backend import BACKENDS
from .engine.branches import FLAGS as BRANCH_FLAGS
from .engine.branches import ExistingBranches, commits, existing_branches, refuse_earlier_work
from .engine.engine import Engine, RunOptions
from .engine.events import Event, RunStarted
from .engine.recovery import exit_file_for
from .engine.states import ACTIVE, DONE_FOR_DEPENDENTS
from .engine.tools import render_command
from .errors import SetupError
from .git.claims import (
    ROLE_BACKGROUND,
    ROLE_FOREGROUND,
    BranchClaims,
    holders,
    inherit_env,
    take_claims,
    targets_of,
)
from .git.worktrees import OLD_REF_PREFIX, EarlierWork, earlier_work
from .headless import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TAKEN_OVER,
    TAKE_OVER_SIGNAL,
    run_headless,
)
from .plan.loader import load_plan_or_raise
from .plan.model import BaseMode, Plan, Workstream
from .report import format_duration, format_table
from .store.logs import run_dir
from .store.private import make_private_dir, open_private
from .store.runs import (
    AttemptRecord,
    RunRecord,
    RunStore,
    new_run_id,
    process_alive,
    process_identity,
)

STATE_DIR_NAME = ".mission-control"

PREDECESSOR_SECONDS = 60.0
"""How long a background driver waits for the driver that started it to exit."""
_BACKGROUND_ENV = "MISSION_CONTROL_BACKGROUND"
"""Set for a driver started in the background (``attach`` takes it over without --force)."""
_PREDECESSOR_ENV = "MISSION_CONTROL_PREDECESSOR"
"""``pid:start time`` of the driver a background driver takes the run over from."""


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
    run.set_defaults(handler=_cmd_run)

    tui = commands.add_parser("tui", parents=[common], help="run a plan in the app")
    tui.add_argument("plan", type=Path, metavar="PLAN")
    run_options(tui)
    tui.set_defaults(handler=_cmd_tui)

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
    resume.set_defaults(handler=_cmd_resume)

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
    attach.set_defaults(handler=_cmd_attach)

    status = commands.add_parser("status", parents=[common], help="what a run did")
    status.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    status.add_argument("--plan", type=Path, help="find the run beside this plan")
    status.add_argument("--json", action="store_true", help="the run ledger as JSON")
    state_option(status)
    status.set_defaults(handler=_cmd_status)

    logs = commands.add_parser("logs", parents=[common], help="print a workstream's log")
    logs.add_argument("task", metavar="PHASE::WS")
    logs.add_argument("--attempt", type=int, metavar="N", help="attempt (default: the last)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    logs.add_argument("--plan", type=Path, help="find the run beside this plan")
    state_option(logs)
    logs.set_defaults(handler=_cmd_logs)

    conflicts = commands.add_parser(
        "conflicts", parents=[common], help="branches forecast to conflict"
    )
    conflicts.add_argument("--run", metavar="ID", help="run id (default: the latest)")
    conflicts.add_argument("--plan", type=Path, help="find the run beside this plan")
    conflicts.add_argument("--json", action="store_true")
    state_option(conflicts)
    conflicts.set_defaults(handler=_cmd_conflicts)

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
    clean.set_defaults(handler=_cmd_clean)

    demo = commands.add_parser(
        "demo", parents=[common], help="a realistic run with simulated agents, offline"
    )
    demo.add_argument("--dir", type=Path, help="where to build the demo (default: a new temp dir)")
    demo.add_argument("--headless", action="store_true", help="plain output, no app")
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    demo.add_argument("--theme", metavar="NAME", help="the app's theme")
    backend_options(demo)
    demo.set_defaults(handler=_cmd_demo)


# ------------------------------------------------------------------ helpers


def _state_dir(args: argparse.Namespace) -> Path:
    explicit: Path | None = getattr(args, "state_dir", None)
    if explicit is not None:
        return explicit.expanduser().resolve()
    plan = getattr(args, "plan", None)
    if plan is not None:
        return Path(plan).expanduser().resolve().parent / STATE_DIR_NAME
    return Path.cwd() / STATE_DIR_NAME


def _open_store(state_dir: Path) -> RunStore:
    if not state_dir.is_dir():
        raise SetupError(
            f"no runs in {state_dir}: pass --plan PLAN or --state-dir DIR, "
            "or start one with `mission-control run PLAN`"
        )
    return RunStore(state_dir)


def _find_run(
    store: RunStore, run_id: str | None, *, plan: Path | None = None, resumable: bool = False
) -> RunRecord:
    """The run a command acts on: ``run_id``, else the latest (``resumable``: the one
    ``resume`` continues); with ``plan``, only a run of that plan (plans may share a folder)."""
    plan_key = None if plan is None else str(plan.expanduser().resolve())
    if run_id is not None:
        record = store.get_run(run_id)
        if record is None:
            known = ", ".join(r.run_id for r in store.list_runs(5)) or "none"
            raise SetupError(f"no run {run_id} in {store.db_path.parent}: recent runs: {known}")
        if plan_key is not None and record.plan_path != plan_key:
            raise SetupError(
                f"run {run_id} is a run of {record.plan_path}, not of {plan}: drop --plan,"
                f" or pick a run of that plan (`mission-control status --plan {plan}`)"
            )
        return record
    record = store.resumable_run(plan_key) if resumable else store.latest_run(plan_key)
    if record is None:
        of = "" if plan is None else f" of {plan}"
        latest = store.latest_run(plan_key) if resumable else None
        last = "" if latest is None else f" (the latest, {latest.run_id}, {latest.status})"
        what = "unfinished or stopped run" if resumable else "run"
        raise SetupError(
            f"no {what}{of} in {store.db_path.parent}{last}: start one with"
            f" `mission-control run {plan or 'PLAN'}`"
        )
    return record


def _is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _require_terminal(command: str, instead: str) -> None:
    """Refuse before anything is recorded: the app cannot run without a terminal."""
    if not _is_terminal():
        raise SetupError(
            f"{command} opens the app, which needs a terminal (stdin and stdout are not one):"
            f" run it from a terminal, or use {instead}"
        )


def _drive(
    plan: Plan,
    state_dir: Path,
    options: RunOptions,
    *,
    headless: bool,
    json_lines: bool = False,
    theme: str | None = None,
) -> int:
    """Run an engine under a view; the one place runs and resumes go through.

    The run's branches and worktrees are claimed first (one driver each), so a second
    driver is refused before it touches anything.
    """
    background, predecessor = _driver_role()
    if predecessor is not None:
        _wait_for_predecessor(*predecessor)
    if options.run_id is not None:
        _refuse_live_owner(state_dir, options.run_id)
    options = dataclasses.replace(options, run_id=options.run_id or new_run_id())
    with _claim_branches(plan, state_dir, options, background=background) as claims:
        if headless:
            return _drive_headless(plan, state_dir, options, claims, json_lines=json_lines)
        return _drive_app(plan, state_dir, options, claims, theme=theme)


def _drive_headless(
    plan: Plan, state_dir: Path, options: RunOptions, claims: BranchClaims, *, json_lines: bool
) -> int:
    engine = Engine(plan, state_dir=state_dir, options=options)
    engine.connect()
    handed = _HandOver(plan, state_dir, options, claims)
    engine.subscribe(handed.watch)
    code = asyncio.run(run_headless(engine, json_lines=json_lines, hand_over=handed.start))
    return EXIT_OK if handed.log is not None else code


def _drive_app(
    plan: Plan, state_dir: Path, options: RunOptions, claims: BranchClaims, *, theme: str | None
) -> int:
    from .tui.app import build_app  # Textual only when the app opens

    engine = Engine(plan, state_dir=state_dir, options=dataclasses.replace(options, linger=True))
    if options.backend != "local":
        print(f"connecting to the {options.backend} cluster…", flush=True)
    engine.connect()
    app = build_app(engine, plan, theme=theme)
    handed = _HandOver(plan, state_dir, options, claims)
    engine.subscribe(handed.watch)
    taken_over = False

    def on_hangup(_signum: int, _frame: object) -> None:
        # The terminal is gone: start the background driver first (it waits for this
        # process to let go), then leave; handlers run on the main thread, the app's.
        with contextlib.suppress(Exception):  # else started once the app has ended
            handed.start()
        app.exit("detach")

    def on_take_over(_signum: int, _frame: object) -> None:
        nonlocal taken_over
        taken_over = True
        app.exit("detach")

    previous = {
        signal.SIGHUP: signal.signal(signal.SIGHUP, on_hangup),
        TAKE_OVER_SIGNAL: signal.signal(TAKE_OVER_SIGNAL, on_take_over),
    }
    try:
        result = app.run()
    except OSError:  # the terminal vanished under the app
        result = None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    snapshot = engine.snapshot()
    if taken_over:
        _say(
            f"run {options.run_id} is taken over by another mission-control (`attach --force`):"
            " this one lets go; the agents keep running under it"
        )
        return EXIT_TAKEN_OVER
    if handed.log is None and result is None and not snapshot.finished:
        result = "detach"  # the app ended without a choice (terminal closed): keep going
    if handed.log is not None or result == "detach":
        log = handed.start()
        _say(
            f"run {options.run_id} goes on in the background (its output: {log});"
            f" `mission-control attach {options.run_id} --state-dir {state_dir}` reopens it"
        )
        return EXIT_OK
    if result == "stopped":
        return EXIT_INTERRUPTED
    ok = all(v.state in DONE_FOR_DEPENDENTS for v in snapshot.workstreams.values())
    return EXIT_OK if ok else EXIT_FAILED


class _HandOver:
    """Starts, once, the background driver that takes a run over from this process."""

    def __init__(
        self, plan: Plan, state_dir: Path, options: RunOptions, claims: BranchClaims
    ) -> None:
        self._plan = plan
        self._state_dir = state_dir
        self._options = options
        self._claims = claims
        self._recorded = False
        self.log: Path | None = None

    def watch(self, event: Event) -> None:
        """Bus callback: from ``RunStarted`` on, the run is in the ledger (``resume`` it)."""
        if isinstance(event, RunStarted):
            self._recorded = True

    def start(self) -> Path:
        # Safe from a signal handler: no lock of this process is taken.
        if self.log is None:
            run_id = self._options.run_id
            assert run_id is not None
            self.log = _spawn_driver(
                self._state_dir,
                run_id,
                plan=None if self._recorded else self._plan.path,
                options=self._options,
                claims=self._claims,
                after_me=True,
            )
        return self.log


def _say(line: str) -> None:
    """Print a line the user may no longer be there to read (the terminal may be gone)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, flush=True)


def _driver_role() -> tuple[bool, tuple[int, float] | None]:
    """Whether this process is a background driver, and the driver it takes over from."""
    background = os.environ.pop(_BACKGROUND_ENV, "") == "1"
    raw = os.environ.pop(_PREDECESSOR_ENV, "")
    pid, _, create_time = raw.partition(":")
    try:
        return background, (int(pid), float(create_time))
    except ValueError:
        return background, None


def _wait_for_predecessor(pid: int, create_time: float) -> None:
    """Wait for the driver that started this one to exit; end it if it hangs.

    It has handed the run over (or its terminal died under it): its agents are
    adopted from the ledger, so ending a driver stuck in its own shutdown loses
    nothing, and its dead children are reaped once it is gone.
    """
    deadline = time.monotonic() + PREDECESSOR_SECONDS
    while process_alive(pid, create_time):
        if time.monotonic() >= deadline:
            print(f"the driver before this one (pid {pid}) hangs: ending it", flush=True)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + PREDECESSOR_SECONDS
        time.sleep(0.1)


def _claim_branches(
    plan: Plan, state_dir: Path, options: RunOptions, *, background: bool, wait: float = 0.0
) -> BranchClaims:
    scope = plan.phase(options.phase).workstreams if options.phase else plan.workstreams
    assert options.run_id is not None
    return take_claims(
        targets_of(scope),
        run_id=options.run_id,
        plan=plan.path,
        state_dir=state_dir,
        role=ROLE_BACKGROUND if background else ROLE_FOREGROUND,
        wait=wait,
    )


def _refuse_live_owner(state_dir: Path, run_id: str) -> None:
    """Say so before any view opens when another mission-control drives the run."""
    if not (state_dir / "state.db").exists():
        return
    store = RunStore(state_dir)
    try:
        record = store.get_run(run_id)
        if record is not None and store.owner_alive(record):
            raise SetupError(
                f"run {run_id} is driven by mission-control pid {record.owner_pid}: "
                f"`mission-control attach {run_id}` takes it over, or stop that process"
            )
    finally:
        store.close()


def _spawn_driver(
    state_dir: Path,
    run_id: str,
    *,
    plan: Path | None = None,
    options: RunOptions | None = None,
    claims: BranchClaims | None = None,
    after_me: bool = False,
) -> Path:
    """Start a detached headless mission-control that drives the run on; returns its log.

    With ``plan`` it runs (or continues) the run with ``options``, else it resumes the
    run as recorded. ``claims`` are handed down as open files, so the branches are never
    free in between; ``after_me`` makes it wait for this process to exit first.
    """
    log = run_dir(state_dir, run_id) / "driver.log"
    make_private_dir(log.parent)
    argv = [sys.executable, "-m", "mission_control"]
    if plan is not None:
        argv += ["run", str(plan), "--headless", "--run-id", run_id]
        argv += _option_args(options or RunOptions())
    else:
        argv += ["resume", run_id, "--headless"]
    argv += ["--state-dir", str(state_dir)]
    env = {**os.environ, _BACKGROUND_ENV: "1", **inherit_env(claims)}
    if after_me:
        pid, create_time = process_identity()
        env[_PREDECESSOR_ENV] = f"{pid}:{create_time!r}"
    with os.fdopen(open_private(log, os.O_WRONLY | os.O_APPEND), "ab") as out:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=claims.fds if claims is not None else (),
            env=env,
        )
    return log


def _option_args(options: RunOptions) -> list[str]:
    """``options`` as command-line arguments again, for a driver started in the background."""
    extra = ["--backend", options.backend]
    if options.ray_address is not None:
        extra += ["--ray-address", options.ray_address]
    if options.phase is not None:
        extra += ["--phase", options.phase]
    if options.max_parallel is not None:
        extra += ["--max-parallel", str(options.max_parallel)]
    if options.keep_going:
        extra.append("--keep-going")
    if (flag := BRANCH_FLAGS.get(options.existing_branches)) is not None:
        extra.append(flag)
    return extra


def _wait_released(store: RunStore, run: RunRecord, timeout: float) -> None:
    """Ask a live driver to let go of a run and wait until its process has ended."""
    if run.owner_pid is None or run.owner_create_time is None or not store.owner_alive(run):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(run.owner_pid, TAKE_OVER_SIGNAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(run.owner_pid, run.owner_create_time):
            return
        time.sleep(0.1)
    raise SetupError(
        f"run {run.run_id} is still driven by pid {run.owner_pid}: stop it, then attach again"
    )


# ------------------------------------------------------------------ run, tui


def _run_options(args: argparse.Namespace, run_id: str | None) -> RunOptions:
    if args.max_parallel is not None and args.max_parallel < 1:
        raise SetupError(f"--max-parallel {args.max_parallel}: give a number of at least 1")
    return dataclasses.replace(
        _backend_options(args),
        phase=args.phase,
        max_parallel=args.max_parallel,
        keep_going=args.keep_going,
        run_id=run_id,
        existing_branches=existing_branches(args.existing_branches),
    )


def _backend_options(args: argparse.Namespace) -> RunOptions:
    if args.ray_address is not None and args.backend != "ray":
        raise SetupError("--ray-address is for the ray backend: add --backend ray")
    return RunOptions(backend=args.backend, ray_address=args.ray_address)


def _check_phase(plan: Plan, phase: str | None) -> None:
    if phase is not None and phase not in {p.id for p in plan.phases}:
        known = ", ".join(p.id for p in plan.phases)
        raise SetupError(f"--phase {phase}: no such phase in {plan.path.name} (phases: {known})")


def _cmd_run(args: argparse.Namespace) -> int:
    plan = load_plan_or_raise(args.plan)
    _check_phase(plan, args.phase)
    state_dir = _state_dir(args)
    if args.dry_run:
        return _dry_run(plan, args.phase, existing_branches(args.existing_branches))
    run_id: str | None = args.run_id
    if args.resume:
        store = RunStore(state_dir)
        record = store.resumable_run(plan.path)
        if record is None:
            print(
                f"no unfinished or stopped run of {plan.path.name}: starting a new one",
                file=sys.stderr,
            )
        else:
            run_id = record.run_id
    if args.detach:
        if run_id is None and args.existing_branches == "refuse":  # say it here, not in a log
            refuse_earlier_work(_in_scope(plan, args.phase))
        return _detach(plan, state_dir, _run_options(args, run_id), resume=run_id is not None)
    headless = args.headless or args.json or not _is_terminal()
    return _drive(
        plan,
        state_dir,
        _run_options(args, run_id),
        headless=headless,
        json_lines=args.json,
        theme=args.theme,
    )


def _detach(plan: Plan, state_dir: Path, options: RunOptions, *, resume: bool) -> int:
    """Start the run's driver in the background, its branches claimed here first."""
    if options.run_id is not None:
        _refuse_live_owner(state_dir, options.run_id)
    run_id = options.run_id or new_run_id()
    options = dataclasses.replace(options, run_id=run_id)
    with _claim_branches(plan, state_dir, options, background=True) as claims:
        log = _spawn_driver(
            state_dir, run_id, plan=None if resume else plan.path, options=options, claims=claims
        )
    print(f"run {run_id} started in the background; output: {log}")
    print(f"  mission-control attach {run_id} --state-dir {state_dir}")
    return EXIT_OK


def _cmd_tui(args: argparse.Namespace) -> int:
    # The plan's own mistakes first: they are what the user came to fix.
    plan = load_plan_or_raise(args.plan)
    _check_phase(plan, args.phase)
    _require_terminal("tui", f"`mission-control run {args.plan} --headless`")
    return _drive(
        plan, _state_dir(args), _run_options(args, None), headless=False, theme=args.theme
    )


def _dry_run(plan: Plan, phase: str | None, mode: ExistingBranches) -> int:
    from .git.repo import has_remote

    remotes: dict[tuple[Path, str], bool] = {}
    stopping: list[str] = []
    for p in plan.phases:
        if phase is not None and p.id != phase:
            continue
        print(f"phase {p.id} ({p.name}), at most {p.max_parallel_workstreams} at once")
        for ws in p.workstreams:
            key = (ws.repo, ws.remote)
            if key not in remotes:
                remotes[key] = has_remote(ws.repo, ws.remote)
            start = f"{ws.remote}/{ws.base_branch}" if remotes[key] else ws.base_branch
            with tempfile.TemporaryDirectory() as scratch:
                command = render_command(
                    plan.tools[ws.tool],
                    ws,
                    run_id="RUN",
                    attempt=1,
                    attempt_dir=Path(scratch),
                    worktree=ws.worktree_path,
                )
                argv = shlex.join(command.argv).replace(scratch, "<attempt-dir>")
            deps = ", ".join(ws.depends_on) if ws.base is BaseMode.DEPS else ""
            deps = deps or "none"
            work = earlier_work(ws)
            if work is not None and work.commits and mode == "refuse":
                stopping.append(ws.branch)
            where = ws.worktree_path
            print(f"  {ws.task_id}  {ws.name}")
            print(f"    branch   {_dry_branch(ws.branch, start, work, mode)}, merging: {deps}")
            print(f"    worktree {where}{' (exists)' if where.exists() else ''}")
            print(f"    argv     {argv}")
            if command.stdin_path is not None:
                print("    stdin    the prompt")
            print(f"    timeout  {format_duration(ws.timeout_seconds)}")
    if stopping:
        print(
            f"a new run stops before it starts: {', '.join(stopping)} hold work of earlier"
            " runs; --continue-branches builds on it, --fresh starts from the base"
        )
    return EXIT_OK


def _dry_branch(branch: str, start: str, work: EarlierWork | None, mode: ExistingBranches) -> str:
    """What a new run would do with ``branch``, in the words of the dry run."""
    if work is None:
        return f"{branch} from {start}"
    if not work.commits:
        done = f"started again from {start}" if mode == "fresh" else "re-attached"
        return f"{branch} exists at {work.tip[:10]}, nothing beyond {work.base}: {done}"
    if mode == "fresh":
        return (
            f"{branch} exists: started again from {start}"
            f" (its tip {work.tip[:10]} kept under {OLD_REF_PREFIX}{branch}/)"
        )
    held = f"{branch} exists with {commits(work.commits)} not on {work.base}"
    return f"{held}: built on" if mode == "continue" else f"{held}: the run stops (see below)"


def _in_scope(plan: Plan, phase: str | None) -> list[Workstream]:
    return [ws for p in plan.phases if phase is None or p.id == phase for ws in p.workstreams]


# ------------------------------------------------------------ resume, attach


def _resume_target(args: argparse.Namespace) -> tuple[Plan, Path, RunRecord]:
    state_dir = _state_dir(args)
    store = _open_store(state_dir)
    record = _find_run(store, args.run, plan=args.plan, resumable=args.run is None)
    plan = load_plan_or_raise(Path(record.plan_path))
    return plan, state_dir, record


def _stored_options(record: RunRecord) -> RunOptions:
    """The options a run was started with, to continue it the same way."""
    options = record.options
    return RunOptions(
        phase=options.get("phase"),
        max_parallel=options.get("max_parallel"),
        keep_going=bool(options.get("keep_going", False)),
        run_id=record.run_id,
        backend=str(options.get("backend") or "local"),
        ray_address=options.get("ray_address"),
        existing_branches=existing_branches(options.get("existing_branches")),
    )


def _cmd_resume(args: argparse.Namespace) -> int:
    plan, state_dir, record = _resume_target(args)
    return _drive(
        plan,
        state_dir,
        _stored_options(record),
        headless=args.headless or args.json or not _is_terminal(),
        json_lines=args.json,
        theme=args.theme,
    )


def _cmd_attach(args: argparse.Namespace) -> int:
    plan, state_dir, record = _resume_target(args)
    store = _open_store(state_dir)
    if not args.force and store.owner_alive(record):
        _refuse_foreground(plan, record)
    _require_terminal("attach", "`mission-control status` or `logs --follow` to watch the run")
    _wait_released(store, record, timeout=PREDECESSOR_SECONDS)
    return _drive(
        plan,
        state_dir,
        _stored_options(record),
        headless=False,
        theme=args.theme,
    )


def _refuse_foreground(plan: Plan, record: RunRecord) -> None:
    """A run driven in the foreground (a terminal, a CI job) is not taken without --force."""
    roles = {h.role for h in holders(targets_of(plan.workstreams)) if h.run_id == record.run_id}
    if ROLE_BACKGROUND in roles:
        return
    raise SetupError(
        f"run {record.run_id} is driven in the foreground by mission-control pid"
        f" {record.owner_pid} (a `run` in a terminal or a CI job): wait for it to end, or"
        f" `mission-control attach {record.run_id} --force` takes it over (that one then"
        f" exits with code {EXIT_TAKEN_OVER})"
    )


# -------------------------------------------------------------- read commands


def _read_run(args: argparse.Namespace) -> tuple[RunStore, RunRecord]:
    store = _open_store(_state_dir(args))
    return store, _find_run(store, args.run, plan=args.plan)


def _cmd_status(args: argparse.Namespace) -> int:
    store, record = _read_run(args)
    ledger = store.to_ledger_json(record.run_id)
    if args.json:
        print(json.dumps(ledger, indent=2, default=str))
        return EXIT_OK
    owner = ledger.get("owner")
    driven = f", driven by pid {owner['pid']}" if owner and owner.get("alive") else ""
    if not driven and not record.finished:  # its driver died (crash, full disk, kill)
        driven = f", no driver: `mission-control resume {record.run_id}` continues it"
    print(f"run {record.run_id} of {record.plan_name} ({record.status}{driven})")
    rows = [("WORKSTREAM", "STATE", "TRY", "BRANCH", "CHANGES", "PR", "DETAIL")]
    for ws in ledger["workstreams"]:
        changes = f"+{ws['insertions']} -{ws['deletions']}" if ws["files_changed"] else "-"
        rows.append(
            (
                ws["task_id"],
                ws["state"],
                str(ws["attempts"]),
                ws["branch"],
                changes,
                ws["pr_url"] or "-",
                ws["detail"],
            )
        )
    print("\n".join(format_table(rows)))
    conflicted = [ws for ws in ledger["workstreams"] if ws["conflicts"]]
    for ws in conflicted:
        for c in ws["conflicts"]:
            print(f"conflict forecast: {ws['task_id']} with {c['with']}: {', '.join(c['files'])}")
    return EXIT_OK


_FOLLOW_POLL = 0.5
"""Seconds between looks at the ledger while following (log growth wakes it sooner)."""
_DRIVER_GRACE = 3.0
"""Seconds a run may look undriven (starting, changing hands) before a follower gives up."""
_DETACHED_WAIT = 30.0
"""Seconds to wait for a run started with ``run --detach`` to be recorded by its driver."""


def _cmd_logs(args: argparse.Namespace) -> int:
    if args.follow:
        _wait_for_detached_run(_state_dir(args), args.run)
    store, record = _read_run(args)
    chosen = _pick_attempt(store, record, args.task, args.attempt, wait=args.follow)
    path = Path(chosen.log_path)
    if args.follow:
        return _follow(store, chosen)
    if not path.exists():
        raise SetupError(f"log {path} is missing: it was removed after the run")
    out = sys.stdout.buffer
    with path.open("rb") as log:
        while chunk := log.read(1 << 16):
            out.write(chunk)
    out.flush()
    return EXIT_OK


def _pick_attempt(
    store: RunStore, record: RunRecord, task: str, number: int | None, *, wait: bool
) -> AttemptRecord:
    """The attempt to show (the last by default); ``wait``: while the run is driven, wait
    for its first attempt (``logs -f`` right after ``run --detach``)."""
    names = [w.task_id for w in store.workstreams(record.run_id)]
    if task not in names:
        raise SetupError(
            f"{task} is not a workstream of run {record.run_id} (workstreams: {', '.join(names)})"
        )
    driver = _DriverWatch(store, record.run_id)
    while not (attempts := store.attempts(record.run_id, task)):
        if not (wait and driver.live()):
            raise SetupError(
                f"{task} has no attempt in run {record.run_id} ({record.status}):"
                " it never started; `mission-control status` says why"
            )
        time.sleep(_FOLLOW_POLL)
    if number is None:
        return attempts[-1]
    match = [a for a in attempts if a.attempt == number]
    if not match:
        raise SetupError(f"{task} has attempts 1..{attempts[-1].attempt}, not {number}")
    return match[0]


class _DriverWatch:
    """Whether a mission-control still drives a run, forgiving a short spell with none
    (between recording the run and claiming it, or while `attach` takes it over)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self._undriven_since: float | None = None

    def live(self) -> bool:
        run = self._store.get_run(self._run_id)
        if run is None or run.finished:
            return False
        if self._store.owner_alive(run):
            self._undriven_since = None
            return True
        now = time.monotonic()
        if self._undriven_since is None:
            self._undriven_since = now
        return now - self._undriven_since < _DRIVER_GRACE


def _attempt_over(store: RunStore, attempt: AttemptRecord, driver: _DriverWatch) -> bool:
    """True when nothing more will be written to the attempt's log: it ended and its
    finishing steps (check, commit, push, PR) are over, or no one is left to write."""
    attempts = store.attempts(attempt.run_id, attempt.task_id)
    current = next((a for a in attempts if a.attempt == attempt.attempt), None)
    ws = store.workstream(attempt.run_id, attempt.task_id)
    if current is None or ws is None:
        return True
    if current.ended_at is not None and (ws.attempts > current.attempt or ws.state not in ACTIVE):
        return True
    if driver.live():
        return False
    # No driver: only the tool itself may still write, until it exits.
    if exit_file_for(Path(current.log_path)).exists() or current.pid is None:
        return True
    return not process_alive(current.pid, current.pid_create_time or 0.0)


def _follow(store: RunStore, attempt: AttemptRecord) -> int:
    """Print the attempt's log as it grows, until ``_attempt_over`` (Ctrl-C stops sooner)."""
    from .store.watch import LogWatcher

    path = Path(attempt.log_path)
    driver = _DriverWatch(store, attempt.run_id)
    grew = threading.Event()
    out = sys.stdout.buffer
    with LogWatcher() as watcher, contextlib.ExitStack() as files:
        watcher.watch(path, lambda _p: grew.set())
        log: BinaryIO | None = None
        try:
            while True:
                # Decided before reading: whatever was written before it is printed below.
                over = _attempt_over(store, attempt, driver)
                if log is None and path.exists():
                    log = files.enter_context(path.open("rb"))
                if log is not None:
                    while chunk := log.read(1 << 16):
                        out.write(chunk)
                    out.flush()
                if over:
                    if log is None:
                        raise SetupError(f"log {path} is missing: it was removed after the run")
                    return EXIT_OK
                grew.wait(_FOLLOW_POLL)
                grew.clear()
        except KeyboardInterrupt:
            return EXIT_OK


def _wait_for_detached_run(state_dir: Path, run_id: str | None) -> None:
    """Right after ``run --detach`` its driver may not have recorded the run yet: wait."""
    runs = state_dir / "runs"
    if not runs.is_dir():
        return
    if run_id is None:  # the newest run folder; run ids sort by start time
        run_id = max((p.name for p in runs.iterdir() if p.is_dir()), default=None)
        if run_id is None:
            return
    driver_log = run_dir(state_dir, run_id) / "driver.log"
    try:
        fresh = time.time() - driver_log.stat().st_mtime < 2 * _DETACHED_WAIT
    except OSError:
        return
    if not fresh:
        return
    with RunStore(state_dir) as store:
        deadline = time.monotonic() + _DETACHED_WAIT
        while store.get_run(run_id) is None:
            if time.monotonic() > deadline:
                raise SetupError(
                    f"run {run_id}, started in the background, was not recorded after"
                    f" {_DETACHED_WAIT:g} s: its driver's output is in {driver_log}"
                )
            time.sleep(0.2)


def _cmd_conflicts(args: argparse.Namespace) -> int:
    store, record = _read_run(args)
    pairs = [
        {"workstream": ws.task_id, "with": other, "files": list(files)}
        for ws in store.workstreams(record.run_id)
        for other, files in ws.conflicts
    ]
    if args.json:
        print(json.dumps(pairs, indent=2))
    elif not pairs:
        print(f"run {record.run_id}: no conflicts forecast")
    else:
        for pair in pairs:
            print(f"{pair['workstream']} conflicts with {pair['with']}: {', '.join(pair['files'])}")
    return EXIT_OK


def _cmd_clean(args: argparse.Namespace) -> int:
    from .engine.states import TERMINAL
    from .git.worktrees import remove_worktree

    store, record = _read_run(args)
    if store.owner_alive(record):
        raise SetupError(
            f"run {record.run_id} is still driven by pid {record.owner_pid}: wait for it or stop it"
        )
    plan = load_plan_or_raise(Path(record.plan_path))
    remote_run = (record.options.get("backend") or "local") != "local"
    refused = 0
    for ws_record in store.workstreams(record.run_id):
        if ws_record.state not in TERMINAL:
            print(f"{ws_record.task_id}: {ws_record.state.value}, left alone")
            continue
        try:
            ws = plan.workstream(ws_record.task_id)
        except KeyError:
            continue
        result = remove_worktree(
            ws.repo,
            Path(ws_record.worktree_path),
            ws_record.branch,
            delete_branch=args.branches,
            force=args.force,
            remote=ws.remote,
            base_branch=ws.base_branch,
        )
        for reason in result.refusals:
            refused += 1
            print(f"{ws_record.task_id}: refused: {reason}")
        if remote_run:
            # Not this command's doing: a node removes its worktree when the attempt ends.
            tried = store.attempts(record.run_id, ws_record.task_id)
            where = f" ({tried[-1].worktree})" if tried else ""
            print(
                f"{ws_record.task_id}: its worktree was on a cluster node{where}, which removes"
                " it when the attempt ends: nothing to remove here"
            )
        elif result.worktree_removed:
            print(f"{ws_record.task_id}: removed {ws_record.worktree_path}")
        if result.branch_deleted:
            print(f"{ws_record.task_id}: deleted branch {ws_record.branch}")
    if refused:
        print("some were refused: commit or push their work, or pass --force")
        return EXIT_FAILED
    return EXIT_OK


# ------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo.scaffold import create_demo

    folder = args.dir or Path(tempfile.mkdtemp(prefix="mission-control-demo-"))
    demo = create_demo(folder, speed=args.speed)
    os.environ["PATH"] = f"{demo.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    print(f"demo in {demo.folder}: plan {demo.plan_path}")
    plan = load_plan_or_raise(demo.plan_path)
    state_dir = demo.folder / STATE_DIR_NAME
    code = _drive(
        plan,
        state_dir,
        _backend_options(args),
        headless=args.headless or not _is_terminal(),
        theme=args.theme,
    )
    print(f"the demo's repository, worktrees and run state are in {demo.folder}")
    print(f"  mission-control status --state-dir {state_dir}")
    return code


__all__ = ["register"]
