"""The app under load, beside mprocs: CPU, memory, agents' output rate, key latency.

    uv run python benchmarks/bench_tui.py [--seconds 12] [--agents 8] [--panes 4]

For each workload (every agent printing as fast as it can, then 100 lines/s
each) it measures, over the same window:

- the agents alone, writing to files with nothing watching (the baseline rate);
- the app (``mission-control``'s TUI and engine, one process) in tmux at
  200x50, following ``--panes`` of the logs, supervising the same agents;
- ``mprocs`` (the npm package's binary) in tmux at 200x50 running the same agents.

CPU is the process's own user+system time over the window (100% = one core);
memory is its peak resident size; the agents' rate comes from the bytes they
wrote (``/proc/<pid>/io``), whatever their output is connected to. Key latency
is the time from ``tmux send-keys`` until the screen shows the change: a cursor
move in the table, and ``f`` (the filter box, which lays the screen out again);
``cat`` in tmux under the same load gives the terminal's own share.

With every core busy, Linux shares CPU between sessions (autogroups), and each
attempt runs in its own session, so the app gets about 1/(agents+1) of the
machine. ``MC_BENCH_NICE=N`` lowers the agents' priority (nice and autogroup) to
show what that costs the agents and gives the app.

The app runs from this same file (``--serve PLAN STATE``) so the tmux pane's
process is the app itself. mprocs is installed with npm into a cache folder
when it is not on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import make_git_repo  # noqa: E402
from tests.helpers import agent_argv  # noqa: E402

MPROCS_VERSION = "0.9.6"
WORKLOADS: dict[str, list[str]] = {
    "full speed": ["--lines", "-1"],
    "100 lines/s": ["--lines", "-1", "--rate", "100"],
}
TARGET_CPU = {"full speed": 50.0, "100 lines/s": 15.0}
TARGET_RSS_MB = 200.0
TARGET_RATE_RATIO = 0.9
TARGET_KEY_MS = 100.0


@dataclass
class Sample:
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    lines_per_s: float = 0.0
    agents: int = 0
    key_ms: list[float] | None = None
    filter_ms: list[float] | None = None
    """Key latency of ``f`` (the filter box appears: a new layout)."""
    floor_ms: list[float] | None = None
    """Key latency of ``cat`` in tmux under the same load: the terminal's share."""
    out_kb_s: float = 0.0
    """What the supervisor wrote (mostly to its terminal), KB per second."""


# ---------------------------------------------------------------- helpers


def _agents_under(root: psutil.Process | None) -> list[psutil.Process]:
    procs = root.children(recursive=True) if root is not None else []
    out = []
    for proc in procs:
        try:
            if any(part.endswith("agent.py") for part in proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def _written(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        try:
            total += proc.io_counters().write_chars
        except psutil.Error:
            continue
    return total


def _measure(
    owner: psutil.Process | None,
    agents: Callable[[], list[psutil.Process]],
    seconds: float,
    line_bytes: int,
) -> Sample:
    procs = agents()
    cpu0 = owner.cpu_times() if owner is not None else None
    out0 = owner.io_counters().write_chars if owner is not None else 0
    w0 = _written(procs)
    t0 = time.monotonic()
    peak = 0
    while time.monotonic() - t0 < seconds:
        time.sleep(0.25)
        if owner is not None:
            try:
                peak = max(peak, owner.memory_info().rss)
            except psutil.Error:
                break
    dt = time.monotonic() - t0
    w1 = _written(procs)
    sample = Sample(agents=len(procs), lines_per_s=(w1 - w0) / line_bytes / dt)
    if owner is not None and cpu0 is not None:
        if not owner.is_running():
            raise SystemExit("benchmark: the supervisor exited during the measurement")
        cpu1 = owner.cpu_times()
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        sample.cpu_percent = 100.0 * used / dt
        sample.rss_mb = peak / (1 << 20)
        sample.out_kb_s = (owner.io_counters().write_chars - out0) / 1024 / dt
    return sample


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: timed out waiting for {what}")
        time.sleep(0.1)


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def _new_session(session: str, command: str) -> None:
    """A fresh 200x50 tmux session running ``command`` (an older one by the name goes)."""
    _tmux("kill-session", "-t", session)
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command],
        check=True,
    )


def _screen(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def _pane_pid(session: str) -> int:
    return int(_tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())


def _kill_marked(marker: str) -> None:
    """Kill every process group whose argv mentions ``marker`` (the run's folder).

    Attempts run in their own sessions, and outlive a supervisor that died: the
    wrapper's argv names its exit file under the run's folder, so this finds them.
    """
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline) and proc.pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _kill_tree(root: psutil.Process | None) -> None:
    if root is None:
        return
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.kill()


# ---------------------------------------------------------------- runs


def run_baseline(flags: list[str], count: int, seconds: float, work: Path) -> tuple[Sample, int]:
    """The agents alone, writing to files; also the mean line length they write."""
    procs = []
    logs = [work / f"baseline-{i}.log" for i in range(count)]
    for log in logs:
        out = log.open("wb")
        procs.append(subprocess.Popen(agent_argv(*flags, "--color"), stdout=out, stderr=out))
    try:
        time.sleep(1.5)
        ps = [psutil.Process(p.pid) for p in procs]
        sample = _measure(None, lambda: ps, seconds, 1)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    data = logs[0].read_bytes()[-(1 << 20) :]
    line_bytes = max(1, len(data) // max(1, data.count(b"\n")))
    sample.lines_per_s /= line_bytes
    for log in logs:
        log.unlink()
    return sample, line_bytes


def write_plan(work: Path, flags: list[str], count: int) -> Path:
    repo = make_git_repo(work / "git")
    doc = {
        "version": 1,
        "name": "tui benchmark",
        "defaults": {
            "repo": str(repo.path),
            "base_branch": "main",
            "timeout_minutes": 30,
            "push": False,
            "stall_minutes": 30,
        },
        "phases": [
            {
                "id": "BENCH",
                "name": "agents writing",
                "max_parallel_workstreams": count,
                "workstreams": [
                    {
                        "id": f"A{i}",
                        "name": f"agent {i}",
                        "tool": "shell",
                        "command": agent_argv(*flags, "--color"),
                    }
                    for i in range(count)
                ],
            }
        ],
    }
    path = work / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def terminal_floor(tries: int = 6) -> list[float]:
    """The same measurement against ``cat`` in tmux: what the terminal alone costs now."""
    session = f"mc-floor-{os.getpid()}"
    _tmux("kill-session", "-t", session)
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", "cat"], check=True
    )
    out = []
    try:
        time.sleep(0.5)
        for i in range(tries):
            mark = f"k{i}x"
            t0 = time.monotonic()
            _tmux("send-keys", "-t", session, mark)
            while mark not in _screen(session) and time.monotonic() - t0 < 5:
                time.sleep(0.005)
            out.append((time.monotonic() - t0) * 1000)
            time.sleep(0.2)
    finally:
        _tmux("kill-session", "-t", session)
    return out


def _table_rows(session: str) -> str:
    """The start of the table's rows, with their colours: the cursor's highlight shows here."""
    screen = _tmux("capture-pane", "-e", "-p", "-t", session).splitlines()
    return "\n".join(line[:160] for line in screen[2:12])


def key_latency(session: str, tries: int = 6) -> list[float]:
    """Milliseconds from ``send-keys`` of a cursor move (Down, Up, ...) to the screen showing it."""
    out = []
    for i in range(tries):
        before = _table_rows(session)
        t0 = time.monotonic()
        _tmux("send-keys", "-t", session, "Down" if i % 2 == 0 else "Up")
        while _table_rows(session) == before and time.monotonic() - t0 < 5:
            time.sleep(0.003)
        out.append((time.monotonic() - t0) * 1000)
        time.sleep(0.3)
    return out


def filter_latency(session: str, tries: int = 4) -> list[float]:
    """Milliseconds from ``f`` to the filter box on screen: a key that changes the layout."""
    out = []
    marker = "filter: id, name"
    for _ in range(tries):
        t0 = time.monotonic()
        _tmux("send-keys", "-t", session, "f")
        while marker not in _screen(session) and time.monotonic() - t0 < 5:
            time.sleep(0.003)
        out.append((time.monotonic() - t0) * 1000)
        _tmux("send-keys", "-t", session, "Escape")
        t1 = time.monotonic()
        while marker in _screen(session) and time.monotonic() - t1 < 5:
            time.sleep(0.005)
        time.sleep(0.3)
    return out


def run_app(
    flags: list[str], count: int, seconds: float, work: Path, lb: int, panes: int
) -> Sample:
    plan = write_plan(work, flags, count)
    session = f"mc-bench-{os.getpid()}"
    cmd = f"cd {ROOT} && exec {sys.executable} {Path(__file__)} --serve {plan} {work / 'state'}"
    env_cfg = work / "config"
    _new_session(session, f"MISSION_CONTROL_CONFIG_DIR={env_cfg} {cmd}")
    app: psutil.Process | None = None
    try:
        app = psutil.Process(_pane_pid(session))
        _wait(lambda: len(_agents_under(app)) >= count, 60, f"{count} agents under the app")
        if os.environ.get("MC_BENCH_NICE"):  # experiment: agents at a lower priority
            for proc in _agents_under(app):
                with contextlib.suppress(OSError, psutil.Error):
                    proc.nice(int(os.environ["MC_BENCH_NICE"]))
                    Path(f"/proc/{proc.pid}/autogroup").write_text(os.environ["MC_BENCH_NICE"])
        for _ in range(panes - 1):
            _tmux("send-keys", "-t", session, "Down", "a")
            time.sleep(0.3)
        time.sleep(1.5)
        sample = _measure(app, lambda: _agents_under(app), seconds, lb)
        sample.key_ms = key_latency(session)
        sample.filter_ms = filter_latency(session)
        sample.floor_ms = terminal_floor()
        if os.environ.get("MC_BENCH_SHOW_SCREEN"):
            print(_screen(session))
        _tmux("send-keys", "-t", session, "q")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "s")
        try:
            app.wait(20)
        except psutil.TimeoutExpired:
            print("benchmark: the app did not quit after q, s", file=sys.stderr)
        return sample
    finally:
        _kill_tree(app)
        _kill_marked(str(work))
        _tmux("kill-session", "-t", session)


def mprocs_binary(cache: Path) -> Path:
    found = shutil.which("mprocs")
    if found:
        return Path(found)
    binary = (
        cache / "node_modules" / "mprocs" / f"mprocs-{MPROCS_VERSION}-linux-x86_64-musl" / "mprocs"
    )
    if not binary.exists():
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(cache),
                f"mprocs@{MPROCS_VERSION}",
            ],
            check=True,
            capture_output=True,
        )
    return binary


def run_mprocs(flags: list[str], count: int, seconds: float, work: Path, lb: int) -> Sample:
    binary = mprocs_binary(Path.home() / ".cache" / "mission-control-bench")
    config = work / "mprocs.yaml"
    pids = work / "agents.pids"
    config.write_text(
        yaml.safe_dump(
            {
                "procs": {
                    # the pid file names this run's folder: cleanup finds the agents by it
                    f"A{i}": {"cmd": agent_argv(*flags, "--color", "--pid-file", str(pids))}
                    for i in range(count)
                }
            }
        )
    )
    session = f"mprocs-bench-{os.getpid()}"
    _new_session(session, f"exec {binary} --config {config}")
    owner: psutil.Process | None = None
    try:
        owner = psutil.Process(_pane_pid(session))
        _wait(lambda: len(_agents_under(owner)) >= count, 30, f"{count} agents under mprocs")
        time.sleep(1.5)
        return _measure(owner, lambda: _agents_under(owner), seconds, lb)
    finally:
        _kill_tree(owner)
        _kill_marked(str(work))
        _tmux("kill-session", "-t", session)


# ---------------------------------------------------------------- serve


def serve(plan_path: Path, state_dir: Path) -> None:
    """The app as a user runs it: the engine and the TUI in this one process."""
    from mission_control.engine.engine import Engine, RunOptions
    from mission_control.plan.loader import load_plan_or_raise
    from mission_control.tui.app import build_app

    plan = load_plan_or_raise(plan_path)
    engine = Engine(plan, state_dir=state_dir, options=RunOptions(linger=True, grace_seconds=1))
    result = build_app(engine, plan).run()
    print(f"app result: {result}")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--panes", type=int, default=4)
    parser.add_argument("--skip-mprocs", action="store_true")
    parser.add_argument("--workload", choices=list(WORKLOADS), action="append")
    parser.add_argument("--serve", nargs=2, metavar=("PLAN", "STATE"))
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return
    if shutil.which("tmux") is None:
        raise SystemExit("benchmark: tmux is needed (apt-get install tmux)")

    rows: list[tuple[str, str, Sample]] = []
    failures: list[str] = []
    for name, flags in WORKLOADS.items():
        if args.workload and name not in args.workload:
            continue
        with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
            work = Path(tmp)
            base, lb = run_baseline(flags, args.agents, args.seconds, work)
            rows.append((name, "agents alone", base))
            (work / "app").mkdir()
            app = run_app(flags, args.agents, args.seconds, work / "app", lb, args.panes)
            rows.append((name, "mission-control", app))
            if not args.skip_mprocs:
                (work / "mprocs").mkdir()
                rows.append(
                    (
                        name,
                        "mprocs",
                        run_mprocs(flags, args.agents, args.seconds, work / "mprocs", lb),
                    )
                )
            if app.cpu_percent > TARGET_CPU[name]:
                failures.append(f"{name}: app CPU {app.cpu_percent:.0f}% > {TARGET_CPU[name]:.0f}%")
            if app.rss_mb > TARGET_RSS_MB:
                failures.append(f"{name}: app memory {app.rss_mb:.0f} MB > {TARGET_RSS_MB:.0f} MB")
            if app.key_ms and statistics.median(app.key_ms) > TARGET_KEY_MS:
                failures.append(
                    f"{name}: cursor key to screen {statistics.median(app.key_ms):.0f} ms"
                    f" > {TARGET_KEY_MS:.0f} ms (cat in tmux: "
                    f"{statistics.median(app.floor_ms or [0]):.0f} ms)"
                )
            ratio = app.lines_per_s / base.lines_per_s if base.lines_per_s else 0.0
            if name == "full speed" and ratio < TARGET_RATE_RATIO:
                failures.append(f"{name}: agents at {ratio:.2f}x their unwatched rate")

    print()
    print(
        f"{args.agents} agents, {args.seconds:.0f} s windows, tmux 200x50, {args.panes} log panes"
    )
    print(
        f"{'workload':<13} {'supervisor':<16} {'CPU %':>7} {'RSS MB':>7} "
        f"{'agent lines/s':>14} {'vs alone':>8} {'out KB/s':>9} {'cursor ms med/max':>17} "
        f"{'filter ms med':>13} {'cat ms med':>10}"
    )
    base_rate: dict[str, float] = {}
    for name, who, s in rows:
        if who == "agents alone":
            base_rate[name] = s.lines_per_s
        ratio = s.lines_per_s / base_rate[name] if base_rate.get(name) else 0.0
        cpu = f"{s.cpu_percent:7.1f}" if who != "agents alone" else f"{'-':>7}"
        rss = f"{s.rss_mb:7.0f}" if who != "agents alone" else f"{'-':>7}"
        keys = f"{statistics.median(s.key_ms):9.0f} / {max(s.key_ms):5.0f}" if s.key_ms else ""
        filt = f"{statistics.median(s.filter_ms):13.0f}" if s.filter_ms else ""
        floor = f"{statistics.median(s.floor_ms):10.0f}" if s.floor_ms else ""
        out = f"{s.out_kb_s:9.0f}" if who != "agents alone" else f"{'-':>9}"
        print(
            f"{name:<13} {who:<16} {cpu} {rss} {s.lines_per_s:14.0f} {ratio:7.2f}x {out} {keys:>17}"
            f" {filt:>13} {floor}"
        )
    print()
    if failures:
        print("targets missed:\n  " + "\n  ".join(failures))
        raise SystemExit(1)
    print(
        "targets met: CPU < 15% (100 lines/s) and < 50% (full speed) of a core, "
        "RSS < 200 MB, agents >= 0.9x their unwatched rate, cursor key to screen < 100 ms"
    )


if __name__ == "__main__":
    main()
