"""Whatever the file holds, loading gives a plan or problems: never another exception.

Two generators: arbitrary text (and bytes) with YAML's punctuation mixed in, and
structures of plan-like dicts (right keys, wrong keys, right and wrong types)
written out as YAML. Every plan that does load must also hold together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mission_control.errors import PlanError, PlanProblem
from mission_control.plan import dag
from mission_control.plan.loader import LoadResult, load_plan_or_raise, parse_plan
from mission_control.plan.model import Plan

_FRAGMENTS = [
    "phases:",
    "\n",
    "  ",
    "- ",
    "id: ",
    "PH-1",
    "WS-A",
    ": ",
    "workstreams:",
    "max_parallel_workstreams: 1",
    "depends_on: [",
    "]",
    "{",
    "}",
    '"C:\\Repos\\x"',
    "'",
    '"',
    "&a ",
    "*a",
    "<<: ",
    "!tag ",
    "---",
    "\t",
    "#",
    "|",
    ">",
    "~",
    "null",
    "0.5",
    "-1",
    "tool: shell",
    "command: ls",
    "prompt: x",
    "repo: .",
    "defaults:",
    "tools:",
    "argv: [a, '{prompt_file}']",
]

_yamlish = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=6), min_size=0, max_size=40).map(
    "".join
)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plans")
    (folder / "p.txt").write_text("prompt\n")
    return folder


def _check(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    assert all(isinstance(p, PlanProblem) for p in result.problems)
    if result.plan is None:
        assert result.problems
        for problem in result.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert problem.message
            str(problem)
    else:
        assert result.problems == []
        _check_plan(result.plan)


def _check_plan(plan: Plan) -> None:
    phase_of = {ws.task_id: i for i, phase in enumerate(plan.phases) for ws in phase.workstreams}
    for index, phase in enumerate(plan.phases):
        flat = [ws_id for layer in dag.layers(phase) for ws_id in layer]
        assert sorted(flat) == sorted(ws.id for ws in phase.workstreams)
        for ws in phase.workstreams:
            assert ws.tool in plan.tools
            assert ws.timeout_minutes > 0
            for dep in ws.depends_on:
                assert phase_of[dep] <= index
                assert dep != ws.task_id
    assert dag.makespan(plan) >= dag.longest_path(plan)[0] - 1e-6


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_yamlish | st.text())
def test_any_text_loads_or_gives_problems(text: str, plan_dir: Path) -> None:
    _check(parse_plan(text, plan_dir / "plan.yaml", environ={}))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_load_or_raise_plan_error(data: bytes, plan_dir: Path) -> None:
    file = plan_dir / "bytes.yaml"
    file.write_bytes(data)
    try:
        plan = load_plan_or_raise(file, environ={})
    except PlanError as exc:
        assert exc.problems
    else:
        _check_plan(plan)


# ---------------------------------------------------------------- plan-like structures

_anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_ids = st.sampled_from(
    ["PH-1", "PH-2", "WS-A", "WS-B", "WS-C", "ws-a", "CON", "a b", ""]
) | st.text(max_size=6)
_good_ids = st.sampled_from(["PH-1", "PH-2", "WS-A", "WS-B", "WS-C"])


class _Gen:
    """Plan-like structures; ``clean`` ones mostly load, noisy ones mostly do not."""

    def __init__(self, repo: str, clean: bool) -> None:
        self.repo = repo
        self.clean = clean

    def maybe(self, good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return good if self.clean else st.one_of(good, good, good, _anything)

    def pick(self, good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
        return self.maybe(st.sampled_from(good if self.clean else good + bad))

    def settings(self) -> dict[str, st.SearchStrategy[Any]]:
        pick, maybe = self.pick, self.maybe
        return {
            "repo": pick([self.repo], ["../nope", ".", "$UNSET_MC_VAR", "~"]),
            "base_branch": pick(["main"], ["mian", "origin/main"]),
            "tool": pick(["aider", "codex", "mine"], ["aidr", "shell"]),
            "timeout_minutes": pick([1, 0.5, 90], [0, -1, 1e9]),
            "checks": maybe(
                st.lists(
                    self.pick(["pytest -q"], ["a && b", "'x", ""])
                    | st.fixed_dictionaries(
                        {"run": maybe(st.just("make"))}, optional={"shell": maybe(st.booleans())}
                    ),
                    max_size=2,
                )
            ),
            "env": maybe(
                st.dictionaries(
                    st.sampled_from(["A", "B"] if self.clean else ["A", "B", "B=", ""]),
                    maybe(st.text(max_size=3)),
                    max_size=2,
                )
            ),
            "retries": maybe(st.integers(0 if self.clean else -1, 3)),
            "base": pick(["deps", "branch"], ["x"]),
            "pr": maybe(
                st.booleans() | st.fixed_dictionaries({}, optional={"draft": maybe(st.booleans())})
            ),
            "push": maybe(st.booleans()),
            "worktree_root": pick(["../wt"], ["p.txt"]),
        }

    def workstream(self) -> st.SearchStrategy[Any]:
        optional = {
            **self.settings(),
            "name": self.maybe(st.text(max_size=5)),
            "depends_on": self.maybe(
                st.lists(
                    self.pick(["WS-A", "WS-B", "PH-1::WS-A"], ["PH-2::WS-C", "::"]), max_size=3
                )
            ),
        }
        if self.clean:
            prompt = st.one_of(
                st.fixed_dictionaries({"prompt": st.just("do it")}),
                st.fixed_dictionaries({"prompt_file": st.just("p.txt")}),
            )
        else:
            prompt = st.fixed_dictionaries(
                {},
                optional={
                    "prompt": self.pick(["do it"], [""]),
                    "prompt_file": self.pick(["p.txt"], ["missing.txt"]),
                },
            )
            optional["shell"] = self.maybe(st.booleans())
            optional["command"] = self.pick(["ls", ["ls", "-l"]], ["a | b"])
            optional["timout_minutes"] = _anything
        core = st.fixed_dictionaries(
            {"id": self.maybe(_good_ids if self.clean else _ids)}, optional=optional
        )
        return self.maybe(st.builds(lambda a, b: {**a, **b}, core, prompt))

    def plan(self) -> st.SearchStrategy[Any]:
        maybe = self.maybe
        phase = maybe(
            st.fixed_dictionaries(
                {
                    "id": maybe(_good_ids if self.clean else _ids),
                    "max_parallel_workstreams": maybe(st.integers(1 if self.clean else 0, 3)),
                    "workstreams": maybe(st.lists(self.workstream(), min_size=1, max_size=4)),
                },
                optional={"name": maybe(st.text(max_size=5))},
            )
        )
        tool = maybe(
            st.fixed_dictionaries(
                {"argv": self.pick([["m", "{prompt_file}"], "m {prompt_file}"], [["m", "{x}"]])},
                optional={"prompt_via": self.pick(["file"], ["stdin", "arg"])},
            )
        )
        required: dict[str, st.SearchStrategy[Any]] = {
            "phases": maybe(st.lists(phase, min_size=1, max_size=3))
        }
        if self.clean:
            settings = self.settings()
            needed = ("repo", "base_branch", "tool", "timeout_minutes")
            required["defaults"] = st.fixed_dictionaries(
                {k: settings[k] for k in needed},
                optional={k: v for k, v in settings.items() if k not in needed},
            )
            required["tools"] = st.fixed_dictionaries({"mine": tool})
        return maybe(
            st.fixed_dictionaries(
                required,
                optional={
                    k: v
                    for k, v in {
                        "version": maybe(st.just(1)),
                        "defaults": maybe(st.fixed_dictionaries({}, optional=self.settings())),
                        "tools": maybe(
                            st.dictionaries(
                                st.sampled_from(["mine", "aider", ""]), tool, max_size=2
                            )
                        ),
                        "grace_seconds": self.pick([0, 5.5], [-1]),
                    }.items()
                    if k not in required
                },
            )
        )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), clean=st.booleans())
def test_any_plan_like_structure_loads_or_gives_problems(
    data: st.DataObject, clean: bool, plan_dir: Path, shared_git_repo: Any
) -> None:
    structure = data.draw(_Gen(str(shared_git_repo.path), clean).plan())
    text = yaml.safe_dump(structure, allow_unicode=True)
    _check(parse_plan(text, plan_dir / "plan.yaml", environ={}))
