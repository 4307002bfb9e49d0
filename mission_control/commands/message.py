"""``continue``: give a workstream's agent a follow-up message.

The message is kept in the run's ledger first, so it survives whatever happens next. A
driver that runs the run now is told with a signal and hands it over (live, to an agent
that takes input while it runs, else as a new attempt once the current one ends); a run
nobody drives is resumed to do so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..errors import SetupError
from ..headless import EXIT_OK, MESSAGES_SIGNAL
from ..plan.files import FileReadError, read_regular_file
from ..plan.loader import load_plan_or_raise
from .common import find_run, open_store, state_dir_of
from .resume import drive_again

MAX_MESSAGE_BYTES = 1 << 20
"""A longer message is a mistake (a binary file, the wrong path)."""


def cmd_continue(args: argparse.Namespace) -> int:
    text = _message_text(args)
    state_dir = state_dir_of(args)
    store = open_store(state_dir)
    record = find_run(store, args.run, plan=args.plan)
    names = [w.task_id for w in store.workstreams(record.run_id)]
    task_id = args.task
    if task_id not in names:
        matches = [n for n in names if n.partition("::")[2] == task_id]
        if len(matches) != 1:
            raise SetupError(
                f"{task_id} is not a workstream of run {record.run_id}: give PHASE::WS,"
                f" one of {', '.join(names)}"
            )
        task_id = matches[0]
    ws = store.workstream(record.run_id, task_id)
    assert ws is not None
    if not store.attempts(record.run_id, task_id):
        raise SetupError(
            f"{task_id} has not started in run {record.run_id} ({ws.state.value}): a message"
            " goes to an agent that has run; change its prompt instead"
        )
    store.add_message(record.run_id, task_id, text, time.time())
    if store.owner_alive(record) and record.owner_pid is not None:
        os.kill(record.owner_pid, MESSAGES_SIGNAL)
        print(
            f"message for {task_id} kept in run {record.run_id}; its driver (pid"
            f" {record.owner_pid}) hands it over: `mission-control logs {task_id} -f` shows"
            " the agent's answer"
        )
        return EXIT_OK
    print(f"message for {task_id} kept in run {record.run_id}; resuming the run to hand it over")
    sys.stdout.flush()
    return drive_again(load_plan_or_raise(Path(record.plan_path)), state_dir, record, args)


def _message_text(args: argparse.Namespace) -> str:
    if args.message_file is not None:
        path = Path(args.message_file)
        if str(path) == "-":
            text = sys.stdin.read(MAX_MESSAGE_BYTES + 1)
        else:
            try:
                data = read_regular_file(path, limit=MAX_MESSAGE_BYTES)
            except FileReadError as err:
                raise SetupError(
                    f"--message-file {path}: the file {err.problem}: {err.hint}"
                ) from None
            text = data.decode("utf-8", errors="replace")
    else:
        text = args.message
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise SetupError(f"the message is over {MAX_MESSAGE_BYTES >> 20} MiB: shorten it")
    if not text.strip():
        raise SetupError("the message is empty: write what the agent should do next")
    return text
