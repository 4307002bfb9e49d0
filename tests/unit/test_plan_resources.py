"""``resources:`` in a plan: defaults, overrides, memory sizes, and every mistake with its line.

Each test writes a real plan file next to a real repository and loads it through
``load_plan``. ``HEAD`` is 5 lines long, so a body's first line is line 6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mission_control.errors import PlanProblem
from mission_control.plan.loader import LoadResult, load_plan
from mission_control.plan.model import Resources, Workstream

HEAD = """\
defaults:
  repo: @REPO@
  base_branch: main
  tool: claude
  timeout_minutes: 5
"""

PHASE = """\
phases:
  - id: PH-1
    max_parallel_workstreams: 2
    workstreams:
"""

GIB = 1024**3
MIB = 1024**2


@pytest.fixture
def repo(shared_git_repo: Any) -> Path:
    return Path(shared_git_repo.path)


@pytest.fixture
def load(tmp_path: Path, repo: Path) -> Any:
    """Write the text (``@REPO@`` = the test repository) to plan.yaml and load it."""

    def _load(text: str) -> LoadResult:
        plan = tmp_path / "plan.yaml"
        plan.write_text(text.replace("@REPO@", str(repo)))
        return load_plan(plan)

    return _load


def workstreams(result: LoadResult) -> dict[str, Workstream]:
    assert result.plan is not None, [str(p) for p in result.problems]
    return {ws.id: ws for ws in result.plan.workstreams}


def only(result: LoadResult) -> PlanProblem:
    assert result.plan is None
    assert len(result.problems) == 1, [str(p) for p in result.problems]
    return result.problems[0]


def one_workstream(resources: str) -> str:
    """A plan whose only workstream (line 10) has ``resources:`` on line 12."""
    return HEAD + PHASE + "      - id: WS-A\n        prompt: x\n" + resources


# ---------------------------------------------------------------- resolution


def test_a_plan_without_resources_asks_for_one_cpu_and_nothing_else(load: Any) -> None:
    ws = workstreams(load(HEAD + PHASE + "      - id: WS-A\n        prompt: x\n"))["WS-A"]
    assert ws.resources == Resources()
    assert (ws.resources.cpus, ws.resources.memory_bytes, ws.resources.custom) == (1.0, None, {})


def test_defaults_apply_and_a_workstream_replaces_them_as_a_whole(load: Any) -> None:
    text = (
        HEAD
        + """\
  resources:
    cpus: 2
    memory: 4GiB
    custom:
      gpu_box: 1
"""
        + PHASE
        + """\
      - id: WS-A
        prompt: x
      - id: WS-B
        prompt: x
        resources:
          cpus: 0.5
      - id: WS-C
        prompt: x
        resources:
          memory: 512MiB
          custom: {license: 0.25, ssd: 2}
      - id: WS-D
        prompt: x
        resources: {}
"""
    )
    found = workstreams(load(text))
    assert found["WS-A"].resources == Resources(
        cpus=2.0, memory_bytes=4 * GIB, custom={"gpu_box": 1.0}
    )
    # Only what the workstream writes: the defaults' memory and custom are not merged in.
    assert found["WS-B"].resources == Resources(cpus=0.5)
    assert found["WS-C"].resources == Resources(
        cpus=1.0, memory_bytes=512 * MIB, custom={"license": 0.25, "ssd": 2.0}
    )
    assert found["WS-D"].resources == Resources()


def test_resources_reach_every_workstream_of_every_phase(load: Any) -> None:
    text = (
        HEAD
        + "  resources: {cpus: 3}\n"
        + PHASE
        + "      - id: WS-A\n        prompt: x\n"
        + "  - id: PH-2\n    max_parallel_workstreams: 1\n    workstreams:\n"
        + "      - id: WS-B\n        prompt: x\n        resources: {cpus: 0}\n"
    )
    plan = load(text).plan
    assert plan is not None
    assert [ws.resources.cpus for ws in plan.workstreams] == [3.0, 0.0]


def test_custom_resources_keep_their_names_and_amounts(load: Any) -> None:
    text = one_workstream(
        "        resources:\n"
        "          custom:\n"
        "            gpu_box: 1\n"
        "            accelerator_type:A100: 0.5\n"
        "            Licence-Seat: 0\n"
    )
    ws = workstreams(load(text))["WS-A"]
    assert ws.resources.custom == {
        "gpu_box": 1.0,
        "accelerator_type:A100": 0.5,
        "Licence-Seat": 0.0,
    }
    assert ws.resources.cpus == 1.0


def test_an_empty_custom_mapping_means_none(load: Any) -> None:
    ws = workstreams(load(one_workstream("        resources:\n          custom:\n")))["WS-A"]
    assert ws.resources.custom == {}


# ---------------------------------------------------------------- memory sizes


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("100000", 100_000),
        ("'100000'", 100_000),
        ("1_000_000", 1_000_000),
        ("2.0e+9", 2_000_000_000),
        ("64B", 64),
        ("64b", 64),
        ("1K", 1024),
        ("1k", 1024),
        ("1KB", 1000),
        ("1kb", 1000),
        ("1024KiB", MIB),
        ("1024kib", MIB),
        ("500M", 500 * MIB),
        ("500MB", 500_000_000),
        ("512MiB", 512 * MIB),
        ("512mib", 512 * MIB),
        ("512Mi", 512 * MIB),
        ("2G", 2 * GIB),
        ("2g", 2 * GIB),
        ("4GiB", 4 * GIB),
        ("4GIB", 4 * GIB),
        ("4Gi", 4 * GIB),
        ("4 GiB", 4 * GIB),
        ("1.5GB", 1_500_000_000),
        ("1.5G", 3 * GIB // 2),
        ("0.5GiB", GIB // 2),
        (".5GiB", GIB // 2),
        ("2T", 2 * 1024**4),
        ("1TB", 10**12),
        ("1TiB", 1024**4),
        ("'  8MiB '", 8 * MIB),
    ],
)
def test_memory_forms(load: Any, written: str, expected: int) -> None:
    ws = workstreams(load(one_workstream(f"        resources:\n          memory: {written}\n")))
    assert ws["WS-A"].resources.memory_bytes == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("lots", "'lots' is not an amount of memory"),
        ("GiB", "'GiB' is not an amount of memory"),
        ("''", "'' is not an amount of memory"),
        ("1e9", "'1e9' is not an amount of memory"),
        ("4 GiB 2", "'4 GiB 2' is not an amount of memory"),
        ("4 gigs", "unknown unit 'gigs' in '4 gigs'"),
        ("4GiBs", "unknown unit 'GiBs' in '4GiBs'"),
        ("2P", "unknown unit 'P' in '2P'"),
        ("0", "must be more than 0 bytes, got 0"),
        ("-1", "must be more than 0 bytes, got -1"),
        ("'0'", "must be more than 0 bytes, got '0'"),
        ("0GiB", "must be more than 0 bytes, got '0GiB'"),
        ("-1GiB", "must be more than 0 bytes, got '-1GiB'"),
        ("0.3K", "'0.3K' is 307.2 bytes, not a whole number"),
        ("'1.5'", "'1.5' is 1.5 bytes, not a whole number"),
        ("1.5", "1.5 is not a whole number of bytes"),
        ("true", "must be a number of bytes or text such as 4GiB, got true"),
        ("[4GiB]", "must be a number of bytes or text such as 4GiB, got a list"),
    ],
)
def test_bad_memory_names_the_accepted_forms(load: Any, written: str, message: str) -> None:
    problem = only(load(one_workstream(f"        resources:\n          memory: {written}\n")))
    assert (problem.line, problem.column) == (13, 19)
    assert problem.key_path == "phases[PH-1].workstreams[WS-A].resources.memory"
    assert problem.message == message
    assert "512MiB, 4GiB, 2G, 1.5GB" in problem.hint
    assert "KB/MB/GB/TB count in 1000s" in problem.hint
    assert str(problem).startswith(
        f"plan.yaml:13:19: phases[PH-1].workstreams[WS-A].resources.memory: {message} — "
    )


# ---------------------------------------------------------------- mistakes


def test_negative_cpus_must_be_at_least_zero(load: Any) -> None:
    problem = only(load(one_workstream("        resources:\n          cpus: -1\n")))
    assert str(problem) == (
        "plan.yaml:13:17: phases[PH-1].workstreams[WS-A].resources.cpus: must be at least 0,"
        " got -1 — CPUs the attempt reserves on a node; fractions are fine (0.5),"
        " 0 reserves none"
    )


@pytest.mark.parametrize("written", ["true", "no", "two", "'2'", ".inf", ".nan", "[2]"])
def test_cpus_must_be_a_number(load: Any, written: str) -> None:
    problem = only(load(one_workstream(f"        resources:\n          cpus: {written}\n")))
    assert (problem.line, problem.column) == (13, 17)
    assert problem.message.startswith("must be a number, got ")
    assert "fractions are fine" in problem.hint


def test_cpus_finer_than_ray_schedules_are_refused(load: Any) -> None:
    problem = only(load(one_workstream("        resources:\n          cpus: 0.00001\n")))
    assert (problem.line, problem.column) == (13, 17)
    assert problem.message == (
        "must be 0 or at least 0.0001 (the finest amount Ray schedules), got 0.00001"
    )


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("cpu", "did you mean 'cpus'?"),
        ("Cpus", "did you mean 'cpus'?"),
        ("num_cpus", "did you mean 'cpus'?"),
        ("mem", "did you mean 'memory'?"),
        ("RAM", "did you mean 'memory'?"),
        ("memroy", "did you mean 'memory'?"),
        ("custon", "did you mean 'custom'?"),
        ("resources", "did you mean 'custom'?"),
        ("gpus", "custom resource your GPU nodes advertise: `custom: {gpu_box: 1}`"),
        ("disk", "known keys: cpus, custom, memory"),
    ],
)
def test_unknown_key_in_resources_suggests_the_right_one(load: Any, key: str, hint: str) -> None:
    problem = only(load(one_workstream(f"        resources:\n          {key}: 1\n")))
    assert (problem.line, problem.column) == (13, 11)
    assert problem.key_path == f"phases[PH-1].workstreams[WS-A].resources.{key}"
    assert problem.message == f"unknown key '{key}'"
    assert hint in problem.hint


def test_unknown_key_in_the_defaults_resources_has_its_line(load: Any) -> None:
    text = HEAD + "  resources:\n    cpu: 2\n" + PHASE + "      - id: WS-A\n        prompt: x\n"
    problem = only(load(text))
    assert (
        str(problem)
        == "plan.yaml:7:5: defaults.resources.cpu: unknown key 'cpu' — did you mean 'cpus'?"
    )


@pytest.mark.parametrize("key", ["cpus", "memory", "custom"])
def test_a_resource_written_on_the_workstream_itself_says_where_it_goes(
    load: Any, key: str
) -> None:
    problem = only(load(one_workstream(f"        {key}: 2\n")))
    assert (problem.line, problem.column) == (12, 9)
    assert problem.message == f"unknown key '{key}'"
    assert problem.hint == (
        f"'{key}' is a resource: put it under `resources:` (on a workstream or under `defaults:`)"
    )


def test_resources_on_a_phase_belong_to_workstreams(load: Any) -> None:
    text = HEAD + PHASE.replace(
        "    workstreams:\n", "    resources: {cpus: 1}\n    workstreams:\n"
    )
    text += "      - id: WS-A\n        prompt: x\n"
    problem = only(load(text))
    assert (problem.line, problem.column) == (9, 5)
    assert "put it on each workstream or under `defaults:`" in problem.hint


def test_resources_must_be_a_mapping(load: Any) -> None:
    problem = only(load(one_workstream("        resources: 4\n")))
    assert str(problem) == (
        "plan.yaml:12:20: phases[PH-1].workstreams[WS-A].resources: must be a mapping"
        " (key: value), got 4 — a mapping: {cpus: 2, memory: 4GiB, custom: {gpu_box: 1}}"
    )


def test_empty_resources_has_no_value(load: Any) -> None:
    problem = only(load(one_workstream("        resources:\n")))
    assert (problem.line, problem.message) == (12, "has no value")
    assert problem.hint == "give it a value, or remove the key"


def test_custom_must_be_a_mapping(load: Any) -> None:
    problem = only(load(one_workstream("        resources:\n          custom: [gpu_box]\n")))
    assert (problem.line, problem.column) == (13, 19)
    assert problem.message == "must be a mapping (key: value), got a list"
    assert problem.hint == "Ray custom resources, each name: amount, e.g. {gpu_box: 1}"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-1", "must be at least 0, got -1"),
        ("true", "must be a number, got true"),
        ("lots", "must be a number, got lots"),
        ("0.00001", "must be 0 or at least 0.0001 (the finest amount Ray schedules), got 0.00001"),
    ],
)
def test_bad_custom_amount(load: Any, amount: str, message: str) -> None:
    text = one_workstream(f"        resources:\n          custom:\n            gpu_box: {amount}\n")
    problem = only(load(text))
    assert str(problem) == (
        f"plan.yaml:14:22: phases[PH-1].workstreams[WS-A].resources.custom.gpu_box: {message}"
        " — an amount such as 1 or 0.5 of a resource the nodes advertise"
    )


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        ("'gpu box'", "custom resource name 'gpu box' cannot be empty or hold spaces", "gpu_box"),
        ("''", "custom resource name '' cannot be empty or hold spaces", "gpu_box"),
        ("CPU", "'CPU' cannot be a custom resource (Ray reserves the name)", "set `cpus:`"),
        ("memory", "'memory' cannot be a custom resource (Ray reserves the name)", "`memory:`"),
        ("GPU", "'GPU' cannot be a custom resource (Ray reserves the name)", "gpu_box: 1"),
        ("object_store_memory", "(Ray reserves the name)", "remove it"),
        ("bundle", "(Ray reserves the name)", "choose another"),
    ],
)
def test_bad_custom_names(load: Any, name: str, message: str, hint: str) -> None:
    text = one_workstream(f"        resources:\n          custom:\n            {name}: 1\n")
    problem = only(load(text))
    assert (problem.line, problem.column) == (14, 13)
    assert message in problem.message
    assert hint in problem.hint


def test_bad_custom_name_in_defaults(load: Any) -> None:
    text = HEAD + "  resources:\n    custom: {CPU: 2}\n" + PHASE
    text += "      - id: WS-A\n        prompt: x\n"
    problem = only(load(text))
    assert (problem.line, problem.column, problem.key_path) == (
        7,
        14,
        "defaults.resources.custom.CPU",
    )


def test_every_resource_mistake_is_reported_at_once(load: Any) -> None:
    text = (
        HEAD
        + "  resources:\n    mem: 1G\n"  # line 7
        + PHASE
        + """\
      - id: WS-A
        prompt: x
        resources:
          cpus: -2
          memory: 4 gigs
          custom:
            'a b': 1
            ssd: -1
      - id: WS-B
        prompt: x
        resources: {cpu: 1, memory: 0}
"""
    )
    result = load(text)
    assert result.plan is None
    found = [(p.line, p.column, p.key_path.rsplit(".", 1)[-1]) for p in result.problems]
    assert found == [
        (7, 5, "mem"),
        (15, 17, "cpus"),
        (16, 19, "memory"),
        (18, 13, "a b"),
        (19, 18, "ssd"),
        (22, 21, "cpu"),
        (22, 37, "memory"),
    ]
