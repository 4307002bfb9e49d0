"""The relay: a small process between an agent CLI and mission-control.

An attempt whose tool names an adapter runs as
``python -m mission_control.agents.relay --events NAME --stream RAW --report JSON -- ARGV...``.
The relay starts ``ARGV`` with its stdout and stderr appended to ``RAW`` (the stream exactly as
the CLI wrote it: ``logs --raw``), reads that file as it grows, feeds the adapter and writes:

- on its own stdout (the attempt's log, which the panes and ``logs`` show): one readable,
  escaped line per event: the transcript;
- ``JSON`` (:mod:`.report`): the running totals, replaced whole whenever they change.

It also keeps the agent to its budget (``--max-cost-usd``, ``--max-tokens``: the agent is
stopped, and the report says why) and, with ``--live-input``, hands the agent the prompt and
then every message dropped into ``--inbox`` as stream-json user messages on its stdin, closing
it once the agent has answered them all.

The relay belongs to the attempt: it lives in the attempt's process tree, so pausing, killing
or adopting the attempt covers it, and a crash of mission-control leaves it working. It exits
with the CLI's own exit status. Signals asking it to stop are passed on to the CLI, and the
relay ends when the CLI does, after reading the last of its stream.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Final

import psutil

from . import ADAPTER_NAMES, ADAPTERS
from .adapter import LineAdapter
from .events import (
    AgentAction,
    AgentError,
    AgentEvent,
    AgentFinished,
    AgentMessage,
    AgentNeedsInput,
    AgentStarted,
    AgentSummary,
    AgentUsage,
)
from .pricing import ModelPrice, Pricing, over_budget
from .report import AgentReport, write_report
from .transcript import render, safe_line

POLL: Final = 0.1
"""Seconds between reads of the stream while the agent is quiet."""
REPORT_EVERY: Final = 0.25
"""Least seconds between two reports while the totals change (the last is always written)."""
STOP_GRACE: Final = 5.0
"""Seconds an agent stopped for its budget gets before it is killed."""
READ_CHUNK: Final = 1 << 20

_STYLE: Final = {
    AgentAction: "36",  # cyan
    AgentMessage: "1",  # bold
    AgentError: "31",  # red
    AgentNeedsInput: "33;1",  # bold yellow
    AgentStarted: "2",  # dim
    AgentFinished: "2",
}


def user_message(text: str) -> bytes:
    """One stream-json user message, as claude's ``--input-format stream-json`` reads it."""
    message = {
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
    }
    return (json.dumps(message, ensure_ascii=False) + "\n").encode()


def transcript_line(event: AgentEvent) -> str | None:
    """The log's line for ``event`` (escaped, coloured by kind); None for running totals,
    which the report carries and the closing line repeats."""
    if isinstance(event, AgentUsage):
        return None
    text = render(event)
    style = _STYLE.get(type(event))
    return f"\x1b[{style}m{text}\x1b[0m" if style else text


class Relay:
    """Runs one agent CLI to its end (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.adapter: LineAdapter = ADAPTERS[args.events](
            pricing=_pricing(args.pricing), model=args.model, cost_before=args.session_cost_before
        )
        self.stream = Path(args.stream)
        self.report_path = Path(args.report)
        self.inbox = Path(args.inbox) if args.inbox else None
        self.offset = 0
        self.over_budget: str | None = None
        self.delivered: list[str] = []
        self.answered = True  # the agent ended a turn since it was last given a message
        self.last_report: AgentReport | None = None
        self.reported_at = 0.0
        self.stop_sent_at: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ running

    def run(self) -> int:
        fd = os.open(self.stream, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self.offset = os.fstat(fd).st_size  # an earlier attempt's bytes are not ours
            live = self.args.live_input
            self.proc = subprocess.Popen(
                self.args.argv,
                stdin=subprocess.PIPE if live else None,
                stdout=fd,
                stderr=fd,
                close_fds=True,
            )
        except OSError as err:
            self._say(f"✗ cannot start {safe_line(self.args.argv[0])}: {err.strerror}", "31")
            self._write_report(ended=True)
            return 127
        finally:
            os.close(fd)
        self._pass_on_signals()
        if live:
            self._give(sys.stdin.buffer.read().decode("utf-8", errors="replace"))
        status = self._watch()
        self._drain()
        for event in self.adapter.close():
            self._show(event)
        if self.over_budget is None:  # its last words came after the last look, with its end
            self.over_budget = self._spent_over()
            if self.over_budget is not None:
                self._say(f"✗ {self.over_budget}", "31;1")
        self._say(_totals_line(self.adapter.summary), "2")
        self._write_report(ended=True)
        return status

    def _watch(self) -> int:
        assert self.proc is not None
        with open(self.stream, "rb") as raw:
            while True:
                got = self._read(raw)
                self._deliver()
                self._check_budget()
                self._maybe_report()
                code = self.proc.poll()
                if code is not None:
                    return code
                if not got:
                    time.sleep(POLL)

    def _drain(self) -> None:
        with open(self.stream, "rb") as raw:
            while self._read(raw):
                pass

    def _read(self, raw: IO[bytes]) -> bool:
        raw.seek(self.offset)
        chunk = raw.read(READ_CHUNK)
        if not chunk:
            return False
        self.offset += len(chunk)
        for event in self.adapter.feed(chunk):
            self._show(event)
        return True

    def _show(self, event: AgentEvent) -> None:
        if isinstance(event, AgentFinished):
            self.answered = True
        line = transcript_line(event)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def _say(self, text: str, style: str) -> None:
        self.out.write(f"\x1b[{style}m{safe_line(text)}\x1b[0m\n")
        self.out.flush()

    # ------------------------------------------------------------------ input

    def _give(self, text: str) -> None:
        """Hand the agent one user message on its stdin."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(user_message(text))
            self.proc.stdin.flush()
            self.answered = False
        except OSError:
            self._close_input()

    def _deliver(self) -> None:
        """Messages dropped in the inbox go to the agent; its stdin closes once it ends a
        turn with none left to give (the CLI then ends). claude takes a message that comes
        while it works into the turn under way, so one answer may cover several."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        if self.inbox is not None and self.over_budget is None:
            for message in sorted(self.inbox.glob("*.msg")):
                try:
                    text = message.read_text(encoding="utf-8", errors="replace")
                    message.rename(message.with_suffix(".sent"))
                except OSError:
                    continue
                self._say(f"› you: {text}", "35")
                self._give(text)
                self.delivered.append(message.stem)
        if self.answered:
            self._close_input()

    def _close_input(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    # ------------------------------------------------------------------ budget

    def _spent_over(self) -> str | None:
        """What the agent spent so far (with earlier attempts) against its caps: the reason
        it is over budget, or None."""
        summary = self.adapter.summary
        cost = summary.cost_usd
        if cost is not None:
            cost += self.args.spent_before_usd
        tokens = summary.input_tokens + summary.output_tokens + self.args.spent_before_tokens
        return over_budget(self.args.max_cost_usd, self.args.max_tokens, cost, tokens)

    def _check_budget(self) -> None:
        if self.over_budget is None:
            self.over_budget = self._spent_over()
            if self.over_budget is not None:
                self._say(f"✗ {self.over_budget}: stopping the agent", "31;1")
                self._write_report(ended=False)
                self._signal(signal.SIGTERM)
                self.stop_sent_at = time.monotonic()
                self._close_input()
        elif self.stop_sent_at is not None and time.monotonic() - self.stop_sent_at > STOP_GRACE:
            self._signal(signal.SIGKILL)
            self.stop_sent_at = None

    def _signal(self, signum: int) -> None:
        """Signal the agent and every process it started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signum)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.send_signal(signum)

    def _pass_on_signals(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._signal(signum)  # the relay ends when the agent does

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)

    # ------------------------------------------------------------------ report

    def _maybe_report(self) -> None:
        if time.monotonic() - self.reported_at >= REPORT_EVERY:
            self._write_report(ended=False)

    def _write_report(self, *, ended: bool) -> None:
        report = AgentReport.from_summary(
            self.args.events,
            self.adapter.summary,
            over_budget=self.over_budget,
            delivered=tuple(self.delivered),
            ended=ended,
        )
        if report == self.last_report:
            return
        with contextlib.suppress(OSError):  # a full disk must not stop the agent
            write_report(self.report_path, report)
            self.last_report = report
            self.reported_at = time.monotonic()


def _totals_line(summary: AgentSummary) -> str:
    tokens = summary.input_tokens + summary.output_tokens
    text = f"■ agent ended · {tokens:,} tokens"
    if summary.cost_usd is not None:
        text += f" · ${summary.cost_usd:.4f}"
    return text


def _pricing(text: str | None) -> Pricing | None:
    if not text:
        return None
    try:
        rows = json.loads(text)
        return {
            str(model): ModelPrice(float(row["input"]), float(row["output"]), row.get("cached"))
            for model, row in rows.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def relay_argv(
    python: str,
    argv: Sequence[str],
    *,
    events: str,
    stream: Path,
    report: Path,
    inbox: Path | None,
    live_input: bool,
    max_cost_usd: float | None,
    max_tokens: int | None,
    pricing: Pricing | None,
    spent_before: tuple[int, float] = (0, 0.0),
    session_cost_before: float = 0.0,
) -> list[str]:
    """The command line that runs ``argv`` under the relay. ``spent_before``: tokens and USD
    the workstream's earlier attempts used (its budget covers them all);
    ``session_cost_before``: what the continued session had cost."""
    out = [python, "-m", "mission_control.agents.relay", "--events", events]
    out += ["--stream", str(stream), "--report", str(report)]
    if inbox is not None:
        out += ["--inbox", str(inbox)]
    if live_input:
        out.append("--live-input")
    if max_cost_usd is not None:
        out += ["--max-cost-usd", repr(max_cost_usd)]
    if max_tokens is not None:
        out += ["--max-tokens", str(max_tokens)]
    if spent_before != (0, 0.0):
        out += ["--spent-before-tokens", str(spent_before[0])]
        out += ["--spent-before-usd", repr(spent_before[1])]
    if session_cost_before:
        out += ["--session-cost-before", repr(session_cost_before)]
    if pricing:
        rows = {
            model: {"input": p.input, "output": p.output, "cached": p.cached}
            for model, p in pricing.items()
        }
        out += ["--pricing", json.dumps(rows, separators=(",", ":"))]
    return [*out, "--", *argv]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mission_control.agents.relay")
    p.add_argument("--events", required=True, choices=ADAPTER_NAMES)
    p.add_argument("--stream", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--inbox")
    p.add_argument("--live-input", action="store_true")
    p.add_argument("--max-cost-usd", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--pricing")
    p.add_argument("--model")
    p.add_argument("--session-cost-before", type=float, default=0.0)
    p.add_argument("--spent-before-usd", type=float, default=0.0)
    p.add_argument("--spent-before-tokens", type=int, default=0)
    p.add_argument("argv", nargs="+")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    status = Relay(args, sys.stdout).run()
    if status < 0:  # the agent died of a signal: so does the relay, for the same status
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main())
