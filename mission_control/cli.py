"""The ``mission-control`` command: argparse subcommands over the engine, no Textual here.

Each subcommand is a ``_cmd_<name>(args) -> int`` registered in
``build_parser``; ``main`` turns every ``MissionControlError`` into one line on
stderr and exit code 2 (tracebacks only with ``--debug``), so user mistakes
never print a traceback. Whatever is heavy to import (the plan models with
pydantic and yaml, the engine, the TUI) is imported inside the command that
needs it, so ``--help`` and the headless commands start fast.

Exit codes: 0 ok, 1 unexpected internal error, 2 plan or setup error (and
usage errors, as argparse does), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import (
    __version__,
    crashpoints,  # noqa: F401  (takes MC_CRASH_AT out of the environment first)
)
from .errors import MissionControlError, PlanError

if TYPE_CHECKING:
    from .plan.model import Phase, Plan, ToolSpec

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_PLAN = 2
EXIT_INTERRUPTED = 130

_MAX_SHOWN = 8
"""Workstream ids shown per layer before '+N more'."""


# ---------------------------------------------------------------- parser


def _common() -> argparse.ArgumentParser:
    """Options every command accepts, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo `mission-control --debug validate`.
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks for errors",
    )
    common.add_argument("--version", action="version", version=f"mission-control {__version__}")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subparser per command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="mission-control",
        description="Run many AI coding agents in parallel on one codebase, from a phase plan.",
        parents=[common],
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        parents=[common],
        help="check a plan and show its phases, layers, tools and worst-case duration",
        description=(
            "Check a plan file (every problem at once, with its line) and show each phase's"
            " dependency layers, the tools used and the worst-case duration."
            " Exit 0 when the plan is valid, 2 when it is not."
        ),
    )
    validate.add_argument("plan", type=Path, metavar="PLAN", help="the plan file (YAML)")
    validate.add_argument("--phase", metavar="ID", help="show only this phase")
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.set_defaults(handler=_cmd_validate)

    # The commands that run plans and read runs live in their own module.
    from . import commands as run_commands

    run_commands.register(commands, common)
    return parser


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    _tolerate_unencodable(sys.stdout)
    _tolerate_unencodable(sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_PLAN
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_PLAN
    debug = bool(getattr(args, "debug", False))
    try:
        code: int = handler(args)
        return code
    except PlanError as exc:
        if debug:
            traceback.print_exc()
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PLAN
    except MissionControlError as exc:
        if debug:
            traceback.print_exc()
        print(f"mission-control: {exc}", file=sys.stderr)
        return EXIT_PLAN
    except KeyboardInterrupt:
        print("mission-control: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            print(f"mission-control: {_no_space(exc)}", file=sys.stderr)
            return EXIT_PLAN  # the user's to fix, like a setup error
        print(
            f"mission-control: internal error: {type(exc).__name__}: {exc}"
            " (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _no_space(exc: OSError) -> str:
    where = f" for {exc.filename}" if exc.filename else ""
    return (
        f"no space left on the device{where}: free space there (or pass --state-dir on"
        " another disk) and try again; `mission-control resume` continues a run cut short"
    )


def run() -> None:
    """Entry point that exits the process (``python -m mission_control``)."""
    sys.exit(main())


def _tolerate_unencodable(stream: TextIO) -> None:
    """A plan may hold characters the terminal cannot show: escape them, never crash."""
    if isinstance(stream, io.TextIOWrapper):
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="backslashreplace")


# ---------------------------------------------------------------- validate


def _cmd_validate(args: argparse.Namespace) -> int:
    from .plan.loader import load_plan  # pydantic and yaml: only for commands that read plans

    result = load_plan(args.plan)
    plan = result.plan
    if plan is None or result.problems:
        if args.json:
            _print_json({"ok": False, "problems": [_problem_json(p) for p in result.problems]})
        else:
            for problem in result.problems:
                print(problem, file=sys.stderr)
            count = len(result.problems)
            print(
                f"{args.plan}: {count} problem{'s' if count != 1 else ''}; the plan was not loaded",
                file=sys.stderr,
            )
        return EXIT_PLAN
    phases = plan.phases
    if args.phase is not None:
        chosen = [p for p in plan.phases if p.id == args.phase]
        if not chosen:
            known = ", ".join(p.id for p in plan.phases)
            message = f"{args.plan}: no phase '{args.phase}' — phases in this plan: {known}"
            if args.json:
                _print_json({"ok": False, "problems": [], "error": message})
            else:
                print(f"mission-control: {message}", file=sys.stderr)
            return EXIT_PLAN
        phases = chosen
    if args.json:
        _print_json(_plan_json(plan, phases))
    else:
        _print_plan(plan, phases)
    return EXIT_OK


def format_duration(seconds: float) -> str:
    """``5400`` -> ``1h 30m``; whole minutes unless under a minute."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 60 * 24)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes or not parts:
        parts.append(f"{minutes}m")
    return " ".join(parts)


def _layers_line(phase: Phase) -> str:
    from .plan import dag

    parts = []
    for number, layer in enumerate(dag.layers(phase), start=1):
        shown = ", ".join(layer[:_MAX_SHOWN])
        if len(layer) > _MAX_SHOWN:
            shown += f" +{len(layer) - _MAX_SHOWN} more"
        parts.append(f"layer {number}: {shown}")
    return " | ".join(parts)


def _tools_of(phases: Sequence[Phase]) -> list[str]:
    return sorted({ws.tool for phase in phases for ws in phase.workstreams})


def _tool_line(name: str, spec: ToolSpec) -> str:
    command = spec.argv[0] if name != "shell" else ""
    found = not command or "{" in command or shutil.which(command) is not None
    note = ""
    if not found:
        note = "   (not on PATH"
        note += f"; install: {spec.install_hint})" if spec.install_hint else ")"
    argv = " ".join(spec.argv)
    return f"  {name:<10} {argv}  [prompt via {spec.prompt_via.value}]{note}"


def _print_plan(plan: Plan, phases: Sequence[Phase]) -> None:
    from .plan import dag

    count = sum(len(p.workstreams) for p in phases)
    print(f"{plan.name} — {plan.path}")
    print(
        f"{len(phases)} phase{'s' if len(phases) != 1 else ''},"
        f" {count} workstream{'s' if count != 1 else ''}"
    )
    for phase in phases:
        seconds, path = dag.longest_path(phase)
        size = len(phase.workstreams)
        print()
        print(
            f"{phase.id}  {phase.name}  ({size} workstream{'s' if size != 1 else ''},"
            f" up to {phase.max_parallel_workstreams} at once)"
        )
        print(f"  {_layers_line(phase)}")
        print(f"  tools: {', '.join(_tools_of([phase]))}")
        chain = " -> ".join(task.split("::", 1)[1] for task in path)
        print(
            f"  worst case: {format_duration(dag.makespan(phase))}"
            f" (longest chain {format_duration(seconds)}: {chain})"
        )
    print()
    print("Tools used:")
    for name in _tools_of(phases):
        print(_tool_line(name, plan.tools[name]))
    total = sum(dag.makespan(phase) for phase in phases)
    print()
    print(
        f"Worst-case duration: {format_duration(total)}"
        " (every attempt and check running to its timeout)"
    )
    print("OK: the plan is valid")


def _plan_json(plan: Plan, phases: Sequence[Phase]) -> dict[str, Any]:
    from .plan import dag

    phase_items = []
    for phase in phases:
        seconds, path = dag.longest_path(phase)
        phase_items.append(
            {
                "id": phase.id,
                "name": phase.name,
                "line": phase.line,
                "max_parallel_workstreams": phase.max_parallel_workstreams,
                "workstreams": [ws.id for ws in phase.workstreams],
                "layers": dag.layers(phase),
                "tools": _tools_of([phase]),
                "worst_case_seconds": dag.makespan(phase),
                "longest_chain": path,
                "longest_chain_seconds": seconds,
            }
        )
    tools = {}
    for name in _tools_of(phases):
        spec = plan.tools[name]
        command = spec.argv[0]
        tools[name] = {
            "argv": spec.argv,
            "prompt_via": spec.prompt_via.value,
            "shell": spec.shell,
            "on_path": name == "shell" or "{" in command or shutil.which(command) is not None,
            "install_hint": spec.install_hint,
            "env_keys": sorted(spec.env),  # names only: values hold secrets
        }
    return {
        "ok": True,
        "plan": {
            "name": plan.name,
            "path": str(plan.path),
            "version": plan.version,
            "grace_seconds": plan.grace_seconds,
        },
        "phases": phase_items,
        "tools": tools,
        "worst_case_seconds": sum(dag.makespan(phase) for phase in phases),
        "problems": [],
    }


def _problem_json(problem: Any) -> dict[str, Any]:
    return {
        "file": str(problem.path),
        "line": problem.line,
        "column": problem.column,
        "key_path": problem.key_path,
        "message": problem.message,
        "hint": problem.hint,
        "text": str(problem),
    }


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))
