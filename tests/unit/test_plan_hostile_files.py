"""Plan and prompt files that are not what they claim: devices, FIFOs, huge files, huge numbers.

Each is refused at once with one line (file:line:col, what is wrong, the fix) and
exit 2. The CLI runs as a real subprocess under a deadline (a hang fails the test
instead of hanging the suite) and an address-space limit (reading /dev/zero into
memory fails instead of eating the machine).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mission_control.plan.files import MAX_FILE_BYTES
from mission_control.plan.loader import load_plan
from mission_control.plan.yaml_nodes import MAX_NODES

_DEADLINE = 90.0
"""Seconds: generous for a busy machine, yet a hang or a gigabyte read ends the test."""
_MEMORY = 1 << 30
"""Address space for the CLI: far more than a refusal needs, far less than /dev/zero takes."""

PLAN = """\
version: 1
defaults:
  repo: @REPO@
  base_branch: main
  timeout_minutes: 5
phases:
  - id: P1
    max_parallel_workstreams: 1
    workstreams:
      - id: W1
        tool: codex
        prompt_file: @PROMPT@
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY, _MEMORY))


def validate(
    plan: Path | str, *, prefix: tuple[str, ...] = (), command: str = "validate"
) -> subprocess.CompletedProcess[str]:
    """``mission-control validate PLAN`` as a user runs it, bounded in time and memory."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mission_control", command, str(plan)],
        capture_output=True,
        text=True,
        check=False,
        timeout=_DEADLINE,
        stdin=subprocess.DEVNULL,
        preexec_fn=_limit_memory,
    )


def refused(proc: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit 2, ``line`` as the one problem, the count line after it, nothing else."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0] == line, proc.stderr
    assert lines[1].endswith(": 1 problem; the plan was not loaded")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


# ---------------------------------------------------------------- the plan file


@pytest.mark.parametrize(
    ("device", "kind"),
    [("/dev/zero", "a character device"), ("/dev/urandom", "a character device")],
)
def test_a_device_as_the_plan_is_refused_at_once(device: str, kind: str) -> None:
    name = Path(device).name
    refused(
        validate(device),
        f"{name}:1:1: cannot read the plan file: it is {kind}, not a regular file"
        " — give the path of a YAML plan file",
    )


def test_a_fifo_as_the_plan_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    refused(
        validate(fifo),
        "pipe.yaml:1:1: cannot read the plan file: it is a named pipe (FIFO),"
        " not a regular file — give the path of a YAML plan file",
    )


@pytest.mark.parametrize("command", ["run", "tui"])
def test_run_and_tui_refuse_a_fifo_the_same_way(fifo: Path, command: str) -> None:
    proc = validate(fifo, command=command)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "pipe.yaml:1:1: cannot read the plan file: it is a named pipe (FIFO),"
        " not a regular file — give the path of a YAML plan file"
    ]
    assert sorted(p.name for p in fifo.parent.iterdir()) == ["pipe.yaml"]  # no state made


def test_a_folder_as_the_plan_is_named_so(tmp_path: Path) -> None:
    refused(
        validate(tmp_path),
        f"{tmp_path.name}:1:1: cannot read the plan file: it is a folder, not a regular file"
        " — give the path of a YAML plan file",
    )


def test_a_plan_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    # Valid YAML all the way: the loader must not compose it to find out.
    line = "  - 1\n"
    with big.open("w") as out:
        out.write("phases:\n")
        out.write(line * (MAX_FILE_BYTES // len(line) + 1))
    size = big.stat().st_size
    assert size > MAX_FILE_BYTES
    refused(
        validate(big),
        f"big.yaml:1:1: cannot read the plan file: it is {size:,} bytes, more than the"
        " 10 MiB a plan or prompt file may be — check the path: a plan of thousands of"
        " workstreams takes well under 1 MiB",
    )


def test_a_sparse_file_of_56_mib_is_refused_as_quickly(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as out:
        out.truncate(56 * 1024 * 1024)
    proc = validate(sparse)
    assert proc.returncode == 2, proc.stderr
    assert "sparse.yaml:1:1: cannot read the plan file: it is 58,720,256 bytes" in proc.stderr


def test_too_many_values_under_the_size_limit_stop_at_the_count(tmp_path: Path) -> None:
    plan = tmp_path / "many.yaml"
    plan.write_text("phases:\n" + "  - 1\n" * (MAX_NODES + 10))
    # The plan, `phases` and its list come first: item MAX_NODES - 2 is one too many.
    refused(
        validate(plan),
        f"many.yaml:{MAX_NODES - 1}:5: the plan holds more than 200,000 values"
        " — a plan of thousands of workstreams holds far fewer: check the file",
    )


# ---------------------------------------------------------------- huge numbers


def _huge(digits: int = 1_000_001) -> str:
    return "9" * digits


@pytest.mark.parametrize(
    ("field", "line", "column"),
    [("timeout_minutes", 5, 20), ("retries", 5, 12), ("max_parallel_workstreams", 8, 31)],
)
def test_a_number_of_a_million_digits_is_a_plan_error_at_its_place(
    tmp_path: Path, shared_git_repo: Any, field: str, line: int, column: int
) -> None:
    text = PLAN.replace("@REPO@", str(shared_git_repo.path)).replace("@PROMPT@", "p.md")
    text = text.replace("prompt_file: p.md", "prompt: go")
    if field == "max_parallel_workstreams":
        text = text.replace("max_parallel_workstreams: 1", f"max_parallel_workstreams: {_huge()}")
    elif field == "timeout_minutes":
        text = text.replace("timeout_minutes: 5", f"timeout_minutes: {_huge()}")
    else:
        text = text.replace(
            "  timeout_minutes: 5\n", f"  timeout_minutes: 5\n  retries: {_huge()}\n"
        )
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    if field == "retries":
        line += 1
    where = f"defaults.{field}" if field != "max_parallel_workstreams" else f"phases[P1].{field}"
    refused(
        validate(plan),
        f"plan.yaml:{line}:{column}: {where}: a number of 1,000,001 digits is too long"
        " — write a number of at most 1,000 digits, or put it in quotes if it is text",
    )


def test_huge_numbers_in_any_spelling_are_one_problem_each(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "phases:\n"
        "  - id: P1\n"
        f"    max_parallel_workstreams: {'1_' * 3000}1\n"  # YAML 1.1 digit groups
        f"    name: {_huge(5000)}\n"
        "    workstreams: [{id: W1, tool: shell, command: [ls], timeout_minutes: 1,"
        f" repo: ., base_branch: main, env: {{BIG: {_huge(4301)}}}}}]\n"
    )
    problems = load_plan(plan, check_filesystem=False).problems
    assert [(p.line, p.column, p.message) for p in problems] == [
        (3, 31, "a number of 3,001 digits is too long"),
        (4, 11, "a number of 5,000 digits is too long"),
        (
            5,
            plan.read_text().splitlines()[4].index("BIG: ") + 6,
            "a number of 4,301 digits is too long",
        ),
    ]
    # A long number that is text stays text.
    plan.write_text(plan.read_text().replace(f"BIG: {_huge(4301)}", f"BIG: '{_huge(4301)}'"))
    assert [p.line for p in load_plan(plan, check_filesystem=False).problems] == [3, 4]


# ---------------------------------------------------------------- prompt files


@pytest.fixture
def plan_with_prompt(tmp_path: Path, shared_git_repo: Any) -> Any:
    def _write(prompt: Path | str) -> Path:
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            PLAN.replace("@REPO@", str(shared_git_repo.path)).replace("@PROMPT@", str(prompt))
        )
        return plan

    return _write


def _prompt_line(prompt: Path | str, problem: str) -> str:
    return (
        f"plan.yaml:12:22: phases[P1].workstreams[W1].prompt_file: prompt file '{prompt}' {problem}"
    )


def test_a_fifo_prompt_file_fails_validation_at_once(plan_with_prompt: Any, fifo: Path) -> None:
    refused(
        validate(plan_with_prompt(fifo)),
        _prompt_line(fifo, "is a named pipe (FIFO), not a regular file")
        + " — give the path of a text file",
    )


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_prompt_file_is_not_called_a_folder(plan_with_prompt: Any, device: str) -> None:
    problems = load_plan(plan_with_prompt(device)).problems
    assert [str(p) for p in problems] == [
        _prompt_line(device, "is a character device, not a regular file")
        + " — give the path of a text file"
    ]


def test_prompt_files_the_run_could_not_read(plan_with_prompt: Any, tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "gone.md")
    loop = tmp_path / "loop.md"
    loop.symlink_to(loop)
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("Fix the café\n".encode("latin-1"))
    big = tmp_path / "big.md"
    with big.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    cases = {
        folder: "is a folder, not a file",
        dangling: "is a symbolic link to a file that does not exist",
        loop: "cannot be read (Too many levels of symbolic links)",
        latin1: "is not UTF-8 text (byte 12 cannot be decoded)",
        big: f"is {MAX_FILE_BYTES + 1:,} bytes, more than the 10 MiB a plan or prompt file may be",
    }
    for prompt, problem in cases.items():
        problems = load_plan(plan_with_prompt(prompt)).problems
        assert len(problems) == 1, (prompt, problems)
        assert str(problems[0]).startswith(_prompt_line(prompt, problem) + " — "), problems


def _without_read_override() -> tuple[str, ...]:
    """A prefix that runs a command unable to read a mode-0000 file, or skip the test.

    Root reads any file whatever its mode (CAP_DAC_OVERRIDE), so as root the
    command runs without the two capabilities that bypass file permissions.
    """
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    prefix = (setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search")
    if setpriv is None or subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("running as root without setpriv: a mode-0000 file stays readable")
    return prefix


def test_an_unreadable_prompt_file_fails_validation_not_the_run(
    plan_with_prompt: Any, tmp_path: Path
) -> None:
    prefix = _without_read_override()
    secret = tmp_path / "secret.md"
    secret.write_text("do the thing\n")
    secret.chmod(0)
    refused(
        validate(plan_with_prompt(secret), prefix=prefix),
        _prompt_line(secret, "cannot be read (Permission denied)")
        + " — check the path and its permissions",
    )
