"""Landing a phase: real runs of real plans (shell tools writing files, a bare origin, the
stand-in ``gh``), then ``mission-control land`` in a child process as a user runs it.

Each test checks what the integration branch holds afterwards: which files, and how
many merge commits each workstream's branch got (exactly one, however the landing
was stopped, run again or killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mission_control.engine import events as ev
from mission_control.engine.landing_order import dependency_order
from mission_control.engine.states import WsState
from mission_control.plan.model import Workstream
from mission_control.store.runs import RunStore
from tests.helpers import mc_argv

from .conftest import GitSandbox, git
from .engine_helpers import Recorder, make_engine, write_plan
from .engine_helpers import ws as agent_ws

RESOLVER = """\
import pathlib, sys
prompt = sys.stdin.read()
print("resolver got:", " ".join(prompt.split()[:40]))
path = pathlib.Path("f.txt")
text = path.read_text()
assert "<<<<<<<" in text, text
path.write_text("line X and line Y\\n")
"""


def _writer(ws_id: str, path: str, text: str, deps: list[str], **extra: Any) -> dict[str, Any]:
    line = f"mkdir -p $(dirname {path}) && printf '%s\\n' '{text}' > {path}"
    return {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "shell": True,
        "command": [line],
        "depends_on": deps,
        **extra,
    }


def _plan(sb: GitSandbox, workstreams: list[dict[str, Any]], checks: list[Any]) -> Path:
    resolver = sb.tmp / "resolver.py"
    resolver.write_text(RESOLVER)
    doc: dict[str, Any] = {
        "version": 1,
        "name": "landing",
        "defaults": {
            "repo": str(sb.repo),
            "base_branch": "main",
            "timeout_minutes": 2,
            "worktree_root": str(sb.worktree_root),
            "checks": checks,
        },
        "tools": {"resolver": {"argv": [sys.executable, str(resolver)], "prompt_via": "stdin"}},
        "phases": [
            {"id": "P", "name": "one", "max_parallel_workstreams": 4, "workstreams": workstreams}
        ],
    }
    path = sb.tmp / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _run(sb: GitSandbox, plan: Path) -> None:
    done = subprocess.run(
        mc_argv("run", str(plan), "--headless", state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _land(
    sb: GitSandbox, plan: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mc_argv("land", "--plan", str(plan), "--phase", "P", *args, state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def _mc(sb: GitSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mc_argv(*args, state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _landed_order(sb: GitSandbox, branch: str = "mc/land/P") -> list[str]:
    """The workstreams merged into ``branch``, oldest first, from its merge commits."""
    subjects = git(sb.repo, "log", "--first-parent", "--reverse", "--format=%s", branch)
    return [
        s.removeprefix("Land ").split(": ")[0]
        for s in subjects.splitlines()
        if s.startswith("Land ")
    ]


def _files(sb: GitSandbox, ref: str) -> set[str]:
    return set(git(sb.repo, "ls-tree", "-r", "--name-only", ref).split())


def _bare_ws(ws_id: str, deps: list[str]) -> Workstream:
    return Workstream(
        id=ws_id, name=ws_id, phase_id="P", repo=Path("/r"), base_branch="main", tool="shell",
        timeout_minutes=1, depends_on=[f"P::{d}" for d in deps], worktree_root=Path("/w"),
    )  # fmt: skip


@given(st.lists(st.lists(st.integers(0, 30), max_size=4), min_size=1, max_size=12))
def test_the_order_puts_dependencies_first_and_otherwise_keeps_plan_order(
    raw: list[list[int]],
) -> None:
    # workstream i may depend on any earlier one; listed in reverse, so plan order differs
    deps = {i: sorted({d % i for d in wanted}) if i else [] for i, wanted in enumerate(raw)}
    plan = [_bare_ws(f"W{i}", [f"W{d}" for d in deps[i]]) for i in reversed(range(len(raw)))]
    order = [ws.id for ws in dependency_order(plan)]
    assert sorted(order) == sorted(ws.id for ws in plan)
    place = {ws_id: n for n, ws_id in enumerate(order)}
    for i, wanted in deps.items():
        assert all(place[f"W{d}"] < place[f"W{i}"] for d in wanted)
    # each one comes as early as its dependencies let it, plan order breaking ties
    placed: set[str] = set()
    for ws_id in order:
        ready = [w.id for w in plan if w.id not in placed and
                 all(d.split("::")[1] in placed for d in w.depends_on)]  # fmt: skip
        assert ws_id == ready[0]
        placed.add(ws_id)


def test_dependencies_outside_the_landing_do_not_hold_it() -> None:
    plan = [_bare_ws("B", ["A"]), _bare_ws("C", [])]
    plan[0] = plan[0].model_copy(update={"depends_on": ["EARLIER::A"]})
    assert [ws.id for ws in dependency_order(plan)] == ["B", "C"]


DIAMOND = [  # listed dependents first: the order comes from the DAG, ties from the plan
    ("D", ["B", "C"]),
    ("C", ["A"]),
    ("B", ["A"]),
    ("A", []),
]


def _diamond(sb: GitSandbox, checks: list[Any] | None = None) -> Path:
    workstreams = [_writer(w, f"out/{w}.txt", f"{w} was here", deps) for w, deps in DIAMOND]
    return _plan(sb, workstreams, checks if checks is not None else ["test -f README.md"])


def _ran_diamond(sb: GitSandbox) -> tuple[Path, dict[str, bytes]]:
    """The diamond run to its end, and the user's checkout as it was then."""
    assert sb.origin is not None
    plan = _diamond(sb)
    _run(sb, plan)
    return plan, sb.snapshot()


def test_a_diamond_lands_in_dependency_order_and_opens_one_pr(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan, before = _ran_diamond(sb)

    dry = _land(sb, plan, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [line.split()[1] for line in dry.stdout.splitlines() if line.strip()[:2] in
            ("1.", "2.", "3.", "4.")] == ["P::A", "P::C", "P::B", "P::D"]  # fmt: skip
    assert "nothing merged" in dry.stdout
    assert git(sb.repo, "branch", "--list", "mc/land/P") == ""

    landed = _land(sb, plan, "--json", "--close-prs")
    assert landed.returncode == 0, landed.stdout + landed.stderr
    events = [json.loads(line) for line in landed.stdout.splitlines()]
    merges = [e["task_id"] for e in events if e["event"] == "merge"]
    assert merges == ["P::A", "P::C", "P::B", "P::D"]
    assert [e["ok"] for e in events if e["event"] == "check"] == [True] * 4
    assert _landed_order(sb) == ["P::A", "P::C", "P::B", "P::D"]
    assert _files(sb, "mc/land/P") >= {f"out/{w}.txt" for w, _ in DIAMOND}
    # pushed, one PR for the integration branch listing what it holds; the others closed
    assert git(sb.origin, "rev-parse", "mc/land/P") == git(sb.repo, "rev-parse", "mc/land/P")
    prs = json.loads((fake_gh / "prs.json").read_text())
    land_pr = next(pr for pr in prs if pr["head"] == "mc/land/P")
    assert land_pr["base"] == "main" and land_pr["state"] == "OPEN"
    for w, _ in DIAMOND:
        assert f"`P::{w}`" in land_pr["body"]
    own = [pr for pr in prs if pr["head"].startswith("ws/P/")]
    assert len(own) == 4 and all(pr["state"] == "CLOSED" for pr in own)
    assert all(land_pr["url"] in pr["comment"] for pr in own)
    finished = events[-1]
    assert finished["event"] == "landing_finished" and finished["pr_url"] == land_pr["url"]
    # the user's checkout is as it was
    assert sb.snapshot() == before

    # a rerun finds everything landed: nothing merged twice, the PR updated, not doubled
    again = _land(sb, plan)
    assert again.returncode == 0, again.stderr
    assert _landed_order(sb) == ["P::A", "P::C", "P::B", "P::D"]
    prs = json.loads((fake_gh / "prs.json").read_text())
    assert len([pr for pr in prs if pr["head"] == "mc/land/P"]) == 1
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None
        (landing,) = store.landings(run.run_id)
        assert landing.status == "landed" and landing.into_branch == "mc/land/P"
        rows = store.landing_merges(landing.landing_id)
        assert [r.task_id for r in rows] == ["P::A", "P::C", "P::B", "P::D"]
        assert all(r.state == "landed" and r.pr_closed for r in rows)
    # clean removes the finished landing's worktree; its branch stays
    cleaned = _mc(sb, "clean", "--plan", str(plan))
    assert f"landing mc/land/P: removed {landing.worktree}" in cleaned.stdout, cleaned.stdout
    assert not Path(landing.worktree).exists()
    assert git(sb.repo, "branch", "--list", "mc/land/P") != ""


def _conflicting(sb: GitSandbox) -> Path:
    workstreams = [
        _writer("X", "f.txt", "line X", []),
        _writer("Y", "f.txt", "line Y", []),
        _writer("Z", "out/Z.txt", "Z was here", []),
    ]
    # in a landing, the check leaves a file beside the work (as builds do)
    check = {"name": "readme", "run": 'test -z "$MC_LANDING" || date > check-ran.txt',
             "shell": True}  # fmt: skip
    return _plan(sb, workstreams, [check])


def test_a_same_line_conflict_stops_at_its_branch_and_a_rerun_with_a_resolver_goes_on(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _conflicting(sb)
    _run(sb, plan)

    dry = _land(sb, plan, "--dry-run")
    assert "expected conflict with P::Y in f.txt" in dry.stdout, dry.stdout

    stopped = _land(sb, plan)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    message = stopped.stderr.strip().splitlines()
    assert len(message) == 1, stopped.stderr
    assert "stopped at P::Y" in message[0] and "conflicts in f.txt" in message[0]
    assert _landed_order(sb) == ["P::X"]  # what merged stays; Z never started
    assert not (fake_gh / "prs.json").exists() or all(
        pr["head"] != "mc/land/P" for pr in json.loads((fake_gh / "prs.json").read_text())
    )

    resolved = _land(sb, plan, "--resolve", "resolver", "--json")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    events = [json.loads(line) for line in resolved.stdout.splitlines()]
    assert any(e["event"] == "resolve" and e["ok"] for e in events)
    assert _landed_order(sb) == ["P::X", "P::Y", "P::Z"]  # X not merged a second time
    assert git(sb.repo, "show", "mc/land/P:f.txt") == "line X and line Y"
    assert "out/Z.txt" in _files(sb, "mc/land/P")
    assert "check-ran.txt" not in _files(sb, "mc/land/P")  # only the resolution is committed


def test_a_conflict_resolved_by_hand_in_the_worktree_is_taken_by_the_rerun(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _conflicting(sb)
    _run(sb, plan)
    assert _land(sb, plan).returncode == 1
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None
        (landing,) = store.landings(run.run_id)
    worktree = Path(landing.worktree)
    assert "<<<<<<<" in (worktree / "f.txt").read_text()  # the conflict is left in place
    (worktree / "f.txt").write_text("line X, then Y\n")

    again = _land(sb, plan)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _landed_order(sb) == ["P::X", "P::Y", "P::Z"]
    assert git(sb.repo, "show", "mc/land/P:f.txt") == "line X, then Y"


def test_dry_run_json_gives_the_order_and_the_expected_conflicts(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _conflicting(sb)
    _run(sb, plan)
    dry = _land(sb, plan, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert data["into"] == "mc/land/P"
    order = {item["task_id"]: item["conflicts"] for item in data["order"]}
    assert list(order) == ["P::X", "P::Y", "P::Z"]
    assert order["P::Y"] == [{"with": "P::X", "files": ["f.txt"]}]
    assert order["P::Z"] == []
    assert git(sb.repo, "branch", "--list", "mc/land/*") == ""


def test_into_a_branch_checked_out_in_the_users_checkout_lands_on_the_remote_only(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan, before = _ran_diamond(sb)
    landed = _land(sb, plan, "--into", "main", "--close-prs")
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert sb.snapshot() == before  # the local main and the checkout are as they were
    subjects = git(sb.origin, "log", "--first-parent", "--reverse", "--format=%s", "main")
    assert [s.removeprefix("Land ").split(": ")[0] for s in subjects.splitlines()[1:]] == [
        "P::A",
        "P::C",
        "P::B",
        "P::D",
    ]
    prs = json.loads((fake_gh / "prs.json").read_text())
    assert all(pr["head"].startswith("ws/P/") for pr in prs)  # no PR into main from main
    assert all(pr["state"] == "CLOSED" and "main at" in pr["comment"] for pr in prs)


def test_a_resolver_that_leaves_markers_stops_the_landing(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _conflicting(sb)
    (sb.tmp / "resolver.py").write_text("print('doing nothing')\n")
    _run(sb, plan)
    stopped = _land(sb, plan, "--resolve", "resolver")
    assert stopped.returncode == 1
    assert "left conflict markers in f.txt" in stopped.stderr, stopped.stderr
    assert _landed_order(sb) == ["P::X"]
    assert git(sb.repo, "status", "--porcelain") == ""


def test_a_failing_check_stops_at_the_branch_that_breaks_it_and_a_rerun_stops_there_again(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    workstreams = [
        _writer("A", "out/A.txt", "A", []),
        _writer("B", "out/B.txt", "B", ["A"]),
        _writer("C", "out/C.txt", "C", ["A"]),
    ]
    # passes on each branch alone; fails once B and C are both in
    check = {
        "name": "not both",
        "run": "echo checking; if test -f out/B.txt && test -f out/C.txt; then"
        " echo 'B and C clash'; exit 3; fi",
        "shell": True,
    }
    plan = _plan(sb, workstreams, [check])
    _run(sb, plan)
    for _ in range(2):
        stopped = _land(sb, plan)
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert "stopped at P::C: check 'not both' exited with code 3" in stopped.stderr
        assert "B and C clash" in stopped.stderr  # the check's last lines
        assert _landed_order(sb) == ["P::A", "P::B"]
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None
        (landing,) = store.landings(run.run_id)
        assert landing.status == "stopped"
        states = {r.task_id: r.state for r in store.landing_merges(landing.landing_id)}
        assert states == {"P::A": "landed", "P::B": "landed", "P::C": "check_failed"}

    cleaned = _mc(sb, "clean", "--plan", str(plan))
    assert "landing mc/land/P: stopped, its worktree left alone" in cleaned.stdout
    assert Path(landing.worktree).is_dir()

    # checks once at the end: everything merges, the end check stops it, the merges stay
    at_end = _land(sb, plan, "--checks", "end")
    assert at_end.returncode == 1
    assert "after every branch merged" in at_end.stderr
    assert _landed_order(sb) == ["P::A", "P::B", "P::C"]


def test_a_whole_run_lands_across_phases_into_its_run_branch(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _plan(
        sb,
        [_writer("B", "out/B.txt", "B", []), _writer("A", "out/A.txt", "A", [])],
        ["test -f README.md"],
    )
    doc = yaml.safe_load(plan.read_text())
    doc["phases"].append(
        {
            "id": "Q",
            "max_parallel_workstreams": 1,
            "workstreams": [_writer("C", "out/C.txt", "C", ["P::A"])],
        }
    )
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    _run(sb, plan)
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None
    landed = subprocess.run(
        mc_argv("land", "--plan", str(plan), "--checks", "end", state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert landed.returncode == 0, landed.stdout + landed.stderr
    branch = f"mc/land/{run.run_id}"
    assert _landed_order(sb, branch) == ["P::B", "P::A", "Q::C"]
    assert landed.stdout.count("check ok") == 1  # once, at the end
    status = subprocess.run(
        mc_argv("status", "--plan", str(plan), state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"landing {branch}: landed, 3 of 3 branches, PR https://" in status.stdout
    as_json = subprocess.run(
        mc_argv("status", "--plan", str(plan), "--json", state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    (landing,) = json.loads(as_json.stdout)["landings"]
    assert (landing["into_branch"], landing["status"]) == (branch, "landed")
    assert [m["task_id"] for m in landing["merges"]] == ["P::B", "P::A", "Q::C"]


CRASH_POINTS = [
    ("land.merging", 2),
    ("land.merged", 2),
    ("land.merged", 4),
    ("ledger.written", 9),
    ("land.pushed", 1),
    ("land.pr_opened", 1),
]


@pytest.mark.parametrize(("point", "occurrence"), CRASH_POINTS,
                         ids=[f"{p}@{n}" for p, n in CRASH_POINTS])  # fmt: skip
def test_killed_mid_landing_a_rerun_loses_and_repeats_no_merge(
    git_sandbox: GitSandbox, fake_gh: Path, point: str, occurrence: int
) -> None:
    sb = git_sandbox
    assert sb.origin is not None
    plan = _diamond(sb)
    _run(sb, plan)
    crashed = _land(sb, plan, env={**os.environ, "MC_CRASH_AT": f"{point}@{occurrence}"})
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)

    resumed = _land(sb, plan)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _landed_order(sb) == ["P::A", "P::C", "P::B", "P::D"]
    assert _files(sb, "mc/land/P") >= {f"out/{w}.txt" for w, _ in DIAMOND}
    assert git(sb.origin, "rev-parse", "mc/land/P") == git(sb.repo, "rev-parse", "mc/land/P")
    prs = json.loads((fake_gh / "prs.json").read_text())
    assert len([pr for pr in prs if pr["head"] == "mc/land/P"]) == 1
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None
        (landing,) = store.landings(run.run_id)
        assert landing.status == "landed"
        # every merge had its checks run: none is taken as merely "already there"
        assert {r.state for r in store.landing_merges(landing.landing_id)} == {"landed"}
    # a merge committed before the kill is kept as it is, not undone and made again
    reflog = git(Path(landing.worktree), "reflog", "show", "--format=%gs", "HEAD").splitlines()
    undone = [
        e for e in reflog if e.startswith("reset: moving to") and e != "reset: moving to HEAD"
    ]
    assert undone == [], reflog


def _auto_plan(sb: GitSandbox, b_text: str) -> Path:
    """P1 (``land: auto``) writes A and B; P2's C starts from P1's landing (``base: landed``)
    and fails unless it finds both files there."""
    plan = _plan(
        sb,
        [_writer("A", "out/A.txt", "A", []), _writer("B", "out/B.txt", b_text, [])],
        ["test -f README.md"],
    )
    doc = yaml.safe_load(plan.read_text())
    doc["phases"][0]["id"] = "P1"
    doc["phases"][0]["land"] = "auto"
    c = _writer("C", "out/C.txt", "C", [], base="landed")
    c["command"] = ["test -f out/A.txt && test -f out/B.txt && echo C > out/C.txt"]
    doc["phases"].append({"id": "P2", "max_parallel_workstreams": 1, "workstreams": [c]})
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    return plan


def _run_headless(sb: GitSandbox, plan: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mc_argv("run", str(plan), "--headless", state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_a_land_auto_phase_lands_before_the_next_phase_starts_from_it(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _auto_plan(sb, "B")
    done = _run_headless(sb, plan)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _landed_order(sb, "mc/land/P1") == ["P1::A", "P1::B"]
    assert "phase P1 landing: merge ok" in done.stdout
    # C started from the landing: its branch holds P1's work, and its PR stacks on it
    assert {"out/A.txt", "out/B.txt", "out/C.txt"} <= _files(sb, "ws/P2/C")
    assert git(sb.repo, "merge-base", "--is-ancestor", "mc/land/P1", "ws/P2/C") == ""
    prs = json.loads((fake_gh / "prs.json").read_text())
    assert {pr["head"]: pr["base"] for pr in prs}["ws/P2/C"] == "mc/land/P1"
    lines = done.stdout.splitlines()
    landed_at = next(i for i, line in enumerate(lines) if "landing: push ok" in line)
    started_at = next(i for i, line in enumerate(lines) if "P2::C" in line)
    assert landed_at < started_at


def test_a_land_auto_phase_that_cannot_land_stops_the_run_before_the_next_phase(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    plan = _auto_plan(sb, "B")
    doc = yaml.safe_load(plan.read_text())
    doc["phases"][0]["workstreams"][1] = _writer("B", "out/A.txt", "not A", [])
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = _run_headless(sb, plan)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stopped at P1::B" in done.stdout
    with RunStore(sb.tmp / "state") as store:
        run = store.latest_run()
        assert run is not None and run.status == "failed"
        states = {w.task_id: w.state.value for w in store.workstreams(run.run_id)}
    assert states == {"P1::A": "succeeded", "P1::B": "succeeded", "P2::C": "pending"}


def test_a_second_run_starts_the_landing_branch_over_and_keeps_the_old_tip(
    git_sandbox: GitSandbox, fake_gh: Path
) -> None:
    sb = git_sandbox
    assert sb.origin is not None
    plan = _auto_plan(sb, "B")
    assert _run_headless(sb, plan).returncode == 0
    with RunStore(sb.tmp / "state") as store:
        first = store.latest_run()
        assert first is not None
    old_tip = git(sb.repo, "rev-parse", "mc/land/P1")
    again = subprocess.run(
        mc_argv("run", str(plan), "--headless", "--fresh", state=sb.tmp / "state"),
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started over" in again.stdout
    kept = git(sb.repo, "rev-parse", f"refs/mission-control/old/mc/land/P1/{first.run_id}")
    assert kept == old_tip
    new_tip = git(sb.repo, "rev-parse", "mc/land/P1")
    assert new_tip != old_tip and _landed_order(sb, "mc/land/P1") == ["P1::A", "P1::B"]
    assert git(sb.origin, "rev-parse", "mc/land/P1") == new_tip  # the remote's copy replaced
    # the next phase was started over too, from the new landing, not the old one
    assert git(sb.repo, "merge-base", "--is-ancestor", new_tip, "ws/P2/C") == ""


async def test_the_engine_lands_a_phase_when_asked_while_the_run_lingers(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    plan = write_plan(
        tmp_path,
        sb.repo,
        [("P", 2, [agent_ws("A", "--write", "a.txt=a"), agent_ws("B", "--write", "b.txt=b")])],
        worktree_root=str(sb.worktree_root),
        pr=False,
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    rec = Recorder(engine)
    run = asyncio.create_task(engine.run())
    await rec.state("P::A", WsState.SUCCEEDED)
    await rec.state("P::B", WsState.SUCCEEDED)
    assert await engine.land("Q") == "phase Q is not in this run"
    assert await engine.land("P") == "landing phase P into mc/land/P"

    def landed() -> bool:
        return any(isinstance(e, ev.PhaseLandingStep) and e.kind == "push" for e in rec.events)

    await rec.until(landed)
    assert _landed_order(sb) == ["P::A", "P::B"]
    await engine.cancel()
    assert await run is True  # a manual landing never holds or fails the run
