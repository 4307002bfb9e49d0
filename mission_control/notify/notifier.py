"""Telling the user when a run needs them: a bus subscriber that sends notifications.

The engine's events are folded into notices (a workstream failed, went over its
budget, stalled or waits for an answer; conflicts forecast; a phase or the run
finished) and each notice goes to the
channels that asked for its kind: apprise URLs (ntfy, Slack, Telegram, e-mail,
desktop, JSON webhooks...), a command that reads the notice as JSON on stdin,
and the terminal bell.

A channel must never hold the run up: the subscriber only puts the notice on a
bounded queue (a full queue drops it, with a line in the log); one worker
thread sends, each send in a thread of its own that is given ``timeout``
seconds and then left behind. A failed send is one line in the run's
``notifications.log``, naming the channel by its kind and position only:
channel URLs carry tokens, so they are written nowhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine import events as ev
from ..engine.states import WsState
from ..plan.model import NotifySpec
from ..store.private import append_private

QUEUE_SIZE = 256
SEND_TIMEOUT = 10.0
"""Seconds one send to one channel may take before it is given up."""
LOG_NAME = "notifications.log"

_FAILED = frozenset({WsState.FAILED, WsState.TIMED_OUT})
OVER_BUDGET = "over budget"
"""How the detail of a workstream stopped for its budget starts (``agents``' report)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """What a notification says; also the JSON a notification command reads."""

    kind: str
    run_id: str
    plan: str
    title: str
    message: str
    at: float
    task_id: str | None = None
    phase_id: str | None = None


def notice_of(event: ev.Event, plan: str) -> Notice | None:
    """The notice an engine event makes, if any."""
    match event:
        case ev.WorkstreamStateChanged(run_id=run, task_id=task, new=new, detail=detail, at=at):
            if new is WsState.NEEDS_INPUT:
                title = f"{task} needs input"
                return Notice("needs_input", run, plan, title, detail or title, at, task)
            if new in _FAILED and detail.startswith(OVER_BUDGET):
                title = f"{task} over budget"
                return Notice("over_budget", run, plan, title, detail, at, task)
            if new in _FAILED:
                title = f"{task} {new.value}"
                return Notice("failed", run, plan, title, detail or title, at, task)
        case ev.WorkstreamStalled(run_id=run, task_id=task, stalled=True, idle_seconds=idle, at=at):
            title = f"{task} stalled"
            return Notice("stalled", run, plan, title, f"no output for {idle:.0f}s", at, task)
        case ev.ConflictsForecast(run_id=run, task_id=task, conflicts=pairs, at=at) if pairs:
            names = ", ".join(other for other, _ in pairs)
            title = f"{task} would conflict"
            return Notice("conflicts", run, plan, title, f"with {names}", at, task)
        case ev.PhaseFinished(run_id=run, phase_id=phase, ok=ok, at=at):
            title = f"phase {phase} {'finished' if ok else 'finished with failures'}"
            return Notice("phase_finished", run, plan, title, title, at, phase_id=phase)
        case ev.RunFinished(run_id=run, ok=ok, cancelled=cancelled, at=at):
            how = "was stopped" if cancelled else "succeeded" if ok else "finished with failures"
            title = f"run {run} of {plan} {how}"
            return Notice("run_finished", run, plan, title, title, at)
    return None


Send = Callable[[Notice], None]


@dataclass(frozen=True, slots=True)
class Channel:
    """One place notices go: ``name`` is what the log may say of it (never a URL)."""

    name: str
    kinds: frozenset[str]
    send: Send


def channels_of(
    specs: Sequence[NotifySpec], *, bell: Callable[[], None] | None = None
) -> list[Channel]:
    """Every channel the plan's and the user's ``notify:`` name."""
    found: list[Channel] = []
    for spec in specs:
        for url in spec.urls:
            scheme = url.split("://", 1)[0]
            found.append(Channel(f"{scheme} channel #{len(found) + 1}", spec.on, _apprise(url)))
        if spec.command:
            command = list(spec.command)
            name = f"command {os.path.basename(command[0])}"
            found.append(Channel(name, spec.on, functools.partial(_run_command, command)))
        if spec.bell:
            found.append(Channel("bell", spec.on, lambda _n: (bell or ring_bell)()))
    return found


class Notifier:
    """Subscribe it to the engine's bus; ``close`` when the run is over."""

    def __init__(
        self,
        channels: Sequence[Channel],
        plan: str,
        log_path: Path,
        *,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._channels = list(channels)
        self._plan = plan
        self._log_path = log_path
        self._timeout = timeout
        self._queue: queue.Queue[Notice | None] = queue.Queue(QUEUE_SIZE)
        self._worker = threading.Thread(target=self._work, name="notifications", daemon=True)
        self._worker.start()

    def __call__(self, event: ev.Event) -> None:
        """On the engine's loop: never blocks."""
        notice = notice_of(event, self._plan)
        if notice is None or not any(notice.kind in c.kinds for c in self._channels):
            return
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self._log(f"{notice.kind} of {notice.task_id or notice.run_id}: dropped, queue full")

    def close(self, wait: float = 5.0) -> None:
        """Let the queue drain for at most ``wait`` seconds; a hung channel is left behind."""
        deadline = time.monotonic() + wait
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=wait)
        self._worker.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while (notice := self._queue.get()) is not None:
            for channel in self._channels:
                if notice.kind in channel.kinds:
                    self._send(channel, notice)

    def _send(self, channel: Channel, notice: Notice) -> None:
        errors: list[str] = []

        def attempt() -> None:
            try:
                channel.send(notice)
            except Exception as err:  # any channel's trouble is one log line
                errors.append(_reason(err))

        sender = threading.Thread(target=attempt, name=f"notify {channel.name}", daemon=True)
        sender.start()
        sender.join(self._timeout)
        if sender.is_alive():
            errors.append(f"no answer within {self._timeout:g}s")
        if errors:
            self._log(f"{notice.kind}: {channel.name} failed: {errors[0]}")

    def _log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError):
            append_private(self._log_path, f"{stamp} {line}\n".encode())


def _reason(err: Exception) -> str:
    """An error in a few words, with no URL in them."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return " ".join(word for word in text.split() if "://" not in word)[:200]


def _apprise(url: str) -> Send:
    import apprise  # loaded only by runs that notify

    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its messages may quote URLs
    channel = apprise.Apprise()
    known = channel.add(url)

    def send(notice: Notice) -> None:
        if not known:
            raise ValueError("apprise does not know this kind of URL")
        if not channel.notify(title=f"mission-control: {notice.title}", body=notice.message):
            raise RuntimeError("the service did not accept it")

    return send


def _run_command(command: list[str], notice: Notice) -> None:
    proc = subprocess.run(
        command,
        input=json.dumps(asdict(notice)),
        text=True,
        capture_output=True,
        timeout=SEND_TIMEOUT,
        start_new_session=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"exited with {proc.returncode} {last[0]}".strip())


def ring_bell() -> None:
    """A BEL to the controlling terminal, if there is one (not in a detached run)."""
    with contextlib.suppress(OSError), open("/dev/tty", "wb", buffering=0) as tty:
        tty.write(b"\a")
