"""A scripted stand-in for an AI coding agent: a small real program driven by flags.

Run it as ``sys.executable tests/helpers/agent.py [flags]`` (see ``AGENT`` in
``tests/helpers/__init__.py``). Actions happen in this order, each only when asked:

  --echo-prompt            read the prompt from stdin and print it (``prompt: <text>``)
  --prompt-file PATH       read the prompt from PATH and print it the same way
  --print-env NAME         print ``env NAME=<value>`` (``<unset>`` if missing); repeatable
  --write PATH=TEXT        write TEXT to PATH (relative to cwd), creating folders; repeatable
  --append PATH=TEXT       append TEXT and a newline to PATH; repeatable
  --fail-first             exit 1 at once (after the steps above) when MC_ATTEMPT is 1 or unset
  --pid-file PATH          append one JSON line ``{"role": ..., "pid": ...}`` per process started
                           here (main, child, grandchild, daemon); lets tests find them
  --children N             fork N children; each sleeps (``--child-sleep``) then exits
  --grandchildren M        each child forks M grandchildren that sleep the same way
  --child-sleep S          how long children, grandchildren and the daemon sleep (default 300)
  --child-busy             children and grandchildren burn CPU instead of sleeping
  --daemon                 double-fork a daemon that calls setsid() and sleeps
  --ignore-term            ignore SIGTERM here and in every child, grandchild and the daemon
  --lines N                print N lines (``line <i> of <N>``); N < 0 prints forever
  --rate R                 lines per second for --lines (0, the default, is as fast as possible)
  --color                  wrap each line in ANSI colour codes
  --busy S                 burn CPU for S seconds (S < 0: forever)
  --sleep S                sleep S seconds
  --forever                sleep forever at the end
  --kill-self SIGNAL       end by sending itself SIGNAL (a name like TERM or a number)
  --exit CODE              exit with CODE (default 0)

Output is line-buffered so a reader of the log sees each line as soon as it is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

_COLOURS = ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m")
_RESET = "\x1b[0m"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agent", description="scripted test agent")
    p.add_argument("--echo-prompt", action="store_true")
    p.add_argument("--prompt-file", type=Path)
    p.add_argument("--print-env", action="append", default=[])
    p.add_argument("--write", action="append", default=[])
    p.add_argument("--append", action="append", default=[])
    p.add_argument("--fail-first", action="store_true")
    p.add_argument("--pid-file", type=Path)
    p.add_argument("--children", type=int, default=0)
    p.add_argument("--grandchildren", type=int, default=0)
    p.add_argument("--child-sleep", type=float, default=300.0)
    p.add_argument("--child-busy", action="store_true")
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--lines", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--color", action="store_true")
    p.add_argument("--busy", type=float, default=0.0)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--forever", action="store_true")
    p.add_argument("--kill-self")
    p.add_argument("--exit", type=int, default=0)
    return p.parse_args(argv)


def _record(pid_file: Path | None, role: str) -> None:
    if pid_file is None:
        return
    # One short O_APPEND write per line keeps records from several processes whole.
    line = json.dumps({"role": role, "pid": os.getpid()}) + "\n"
    fd = os.open(pid_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _split(spec: str) -> tuple[Path, str]:
    path, sep, text = spec.partition("=")
    if not sep:
        raise SystemExit(f"agent: expected PATH=TEXT, got {spec!r}")
    return Path(path), text


def _sleeper(args: argparse.Namespace, role: str) -> None:
    """Body of every forked process: record itself, sleep (or burn CPU), leave without cleanup."""
    _record(args.pid_file, role)
    busy = args.child_busy and role != "daemon"
    print(f"{role} {os.getpid()} {'busy' if busy else 'sleeping'}", flush=True)
    if busy:
        _burn(args.child_sleep)
    deadline = time.monotonic() + args.child_sleep
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
    os._exit(0)


def _fork_children(args: argparse.Namespace) -> None:
    for _ in range(args.children):
        sys.stdout.flush()
        if os.fork() == 0:
            for _ in range(args.grandchildren):
                if os.fork() == 0:
                    _sleeper(args, "grandchild")
            _sleeper(args, "child")


def _double_fork_daemon(args: argparse.Namespace) -> None:
    sys.stdout.flush()
    first = os.fork()
    if first == 0:
        os.setsid()
        if os.fork() == 0:
            _sleeper(args, "daemon")
        os._exit(0)
    os.waitpid(first, 0)


def _signal_number(name: str) -> int:
    if name.isdigit():
        return int(name)
    name = name.upper()
    return int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))


def _print_lines(args: argparse.Namespace) -> None:
    i = 0
    delay = 1.0 / args.rate if args.rate > 0 else 0.0
    next_at = time.monotonic()
    while args.lines < 0 or i < args.lines:
        i += 1
        text = f"line {i} of {args.lines if args.lines >= 0 else 'forever'}"
        if args.color:
            text = f"{_COLOURS[i % len(_COLOURS)]}{text}{_RESET}"
        print(text)
        if delay:
            next_at += delay
            time.sleep(max(0.0, next_at - time.monotonic()))


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds if seconds >= 0 else float("inf")
    x = 0
    while time.monotonic() < end:
        for _ in range(10_000):
            x = (x * 31 + 7) % 1_000_003


def main(argv: list[str]) -> int:
    args = _parse(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.ignore_term:
        # Inherited by forks, so children and the daemon ignore TERM as well.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _record(args.pid_file, "main")

    if args.echo_prompt:
        print(f"prompt: {sys.stdin.read()}")
    if args.prompt_file is not None:
        print(f"prompt: {args.prompt_file.read_text()}")
    for name in args.print_env:
        print(f"env {name}={os.environ.get(name, '<unset>')}")
    for spec in args.write:
        path, text = _split(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for spec in args.append:
        path, text = _split(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(text + "\n")
    if args.fail_first and os.environ.get("MC_ATTEMPT", "1") == "1":
        print("failing on the first attempt", flush=True)
        return 1

    _fork_children(args)
    if args.daemon:
        _double_fork_daemon(args)

    _print_lines(args)
    if args.busy:
        _burn(args.busy)
    if args.sleep:
        time.sleep(args.sleep)
    while args.forever:
        time.sleep(3600)
    if args.kill_self:
        sys.stdout.flush()
        signum = _signal_number(args.kill_self)
        with contextlib.suppress(OSError):
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        time.sleep(5)
    return int(args.exit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
