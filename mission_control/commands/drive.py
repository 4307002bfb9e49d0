"""Driving a run: one engine under one view (the app on a terminal, lines otherwise),
its branches claimed first, and the hand-over to a driver in the background.

The app is imported only inside ``_drive_app``, so headless runs never load Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.branches import FLAGS as BRANCH_FLAGS
from ..engine.engine import Engine, RunOptions
from ..engine.events import Event, RunStarted
from ..engine.states import DONE_FOR_DEPENDENTS
from ..errors import SetupError
from ..git.claims import (
    ROLE_BACKGROUND,
    ROLE_FOREGROUND,
    BranchClaims,
    inherit_env,
    take_claims,
    targets_of,
)
from ..headless import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TAKEN_OVER,
    MESSAGES_SIGNAL,
    TAKE_OVER_SIGNAL,
    run_headless,
)
from ..plan.model import Plan
from ..report import format_summary
from ..store.logs import run_dir
from ..store.private import make_private_dir, open_private
from ..store.runs import RunRecord, RunStore, new_run_id, process_alive, process_identity

if TYPE_CHECKING:
    from ..notify import Notifier

PREDECESSOR_SECONDS = 60.0
"""How long a background driver waits for the driver that started it to exit."""
_BACKGROUND_ENV = "MISSION_CONTROL_BACKGROUND"
"""Set for a driver started in the background (``attach`` takes it over without --force)."""
_PREDECESSOR_ENV = "MISSION_CONTROL_PREDECESSOR"
"""``pid:start time`` of the driver a background driver takes the run over from."""


def drive(
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
        refuse_live_owner(state_dir, options.run_id)
    options = dataclasses.replace(options, run_id=options.run_id or new_run_id())
    from ..notify import start_notifier

    with claim_branches(plan, state_dir, options, background=background) as claims:
        notifier = start_notifier(plan, state_dir, options.run_id or "")
        try:
            if headless:
                return _drive_headless(
                    plan, state_dir, options, claims, json_lines=json_lines, notifier=notifier
                )
            return _drive_app(plan, state_dir, options, claims, theme=theme, notifier=notifier)
        finally:
            if notifier is not None:
                notifier.close()


def _drive_headless(
    plan: Plan,
    state_dir: Path,
    options: RunOptions,
    claims: BranchClaims,
    *,
    json_lines: bool,
    notifier: Notifier | None,
) -> int:
    engine = Engine(plan, state_dir=state_dir, options=options)
    engine.connect()
    if notifier is not None:
        engine.subscribe(notifier)
    handed = _HandOver(plan, state_dir, options, claims)
    engine.subscribe(handed.watch)
    code = asyncio.run(run_headless(engine, json_lines=json_lines, hand_over=handed.start))
    return EXIT_OK if handed.log is not None else code


def _drive_app(
    plan: Plan,
    state_dir: Path,
    options: RunOptions,
    claims: BranchClaims,
    *,
    theme: str | None,
    notifier: Notifier | None,
) -> int:
    from ..tui.app import build_app  # Textual only when the app opens

    engine = Engine(plan, state_dir=state_dir, options=dataclasses.replace(options, linger=True))
    if notifier is not None:
        engine.subscribe(notifier)
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

    def on_messages(_signum: int, _frame: object) -> None:
        # A handler runs between the app's loop steps on this thread: schedule, not await.
        app.call_later(lambda: app.run_worker(engine.check_messages(), exit_on_error=False))

    previous = {
        signal.SIGHUP: signal.signal(signal.SIGHUP, on_hangup),
        TAKE_OVER_SIGNAL: signal.signal(TAKE_OVER_SIGNAL, on_take_over),
        MESSAGES_SIGNAL: signal.signal(MESSAGES_SIGNAL, on_messages),
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
    # The app is gone: say what became of the run, and what to type next.
    _say(format_summary(snapshot, time.time()))
    where = f"{options.run_id} --state-dir {state_dir}"
    if result == "stopped":
        _say(f"stopped: `mission-control resume {where}` continues it")
        return EXIT_INTERRUPTED
    ok = all(v.state in DONE_FOR_DEPENDENTS for v in snapshot.workstreams.values())
    if not ok:
        _say(f"`mission-control status --run {where}` shows it again")
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
            self.log = spawn_driver(
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


def claim_branches(
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


def refuse_live_owner(state_dir: Path, run_id: str) -> None:
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


def spawn_driver(
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


def wait_released(store: RunStore, run: RunRecord, timeout: float) -> None:
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
