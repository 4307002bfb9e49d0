"""The plan file's own shape (format version 1), before defaults and paths are resolved.

These models mirror what a person writes: every setting optional where
``defaults:`` may supply it, strings as written, short forms (a check as one
command line, ``depends_on: WS-01``, ``pr: false``, ``memory: 4GiB``) accepted.
They are strict (``7`` is not a string, ``true`` is not a number) and forbid
unknown keys, so pydantic finds every type mistake; the loader maps each error
location back to a line and words it with ``describe_error``. ``model.py``
holds the resolved plan the engine runs.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

_T = TypeVar("_T")

MAX_MINUTES = 525_600.0
"""A year: a longer timeout is a typo."""

MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    **dict.fromkeys(("k", "ki", "kib"), 1024),
    **dict.fromkeys(("m", "mi", "mib"), 1024**2),
    **dict.fromkeys(("g", "gi", "gib"), 1024**3),
    **dict.fromkeys(("t", "ti", "tib"), 1024**4),
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
"""Memory units, lower case: KB..TB count in 1000s; bare K..T and KiB..TiB in 1024s."""

MEMORY_FORMS = (
    "write bytes (4294967296) or a number and a unit: 512MiB, 4GiB, 2G, 1.5GB;"
    " units B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB in any case"
    " (KB/MB/GB/TB count in 1000s, the others in 1024s)"
)
"""The accepted forms of ``memory:``, named in every message about it."""

MAX_PORTS = 16
"""The most ports one workstream may ask for (``ports:``)."""

NotifyEvent = Literal[
    "failed", "stalled", "needs_input", "over_budget", "conflicts", "phase_finished", "run_finished"
]
"""What ``notify: {on: [...]}`` may name."""
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)

RESOURCE_PRECISION = 0.0001
"""The finest amount Ray schedules: a smaller non-zero amount is refused by Ray."""

RESERVED_RESOURCES: dict[str, str] = {
    "CPU": "set `cpus:` under `resources:` instead",
    "memory": "set `memory:` under `resources:` instead",
    "GPU": "Ray counts GPUs apart from custom resources; ask for a custom resource"
    " your GPU nodes advertise, e.g. `gpu_box: 1`",
    "object_store_memory": "Ray sizes the object store itself: remove it",
    "bundle": "Ray uses this name for placement groups: choose another",
}
"""Names Ray refuses in an actor's custom ``resources`` (ray/_common/utils.py)."""

_MEMORY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)")


def _reject_null(value: object) -> object:
    if value is None:
        raise PydanticCustomError("mc_null", "has no value")
    return value


def _null_as_empty_list(value: object) -> object:
    return [] if value is None else value


def _null_as_empty_dict(value: object) -> object:
    return {} if value is None else value


def _one_or_list(value: object) -> object:
    """``depends_on: WS-01`` is short for ``depends_on: [WS-01]``."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _text_or_list(value: object) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise PydanticCustomError(
                    "mc_argv_item",
                    "item {index} of the argument list is not text",
                    {"index": index},
                )
        return list(value)
    raise PydanticCustomError(
        "mc_text_or_list", "must be a command line (text) or a list of arguments"
    )


def _pr_from_bool(value: object) -> object:
    """``pr: false`` is short for ``pr: {enabled: false}``."""
    if isinstance(value, bool):
        return {"enabled": value}
    return _reject_null(value)


def _env_values(value: object) -> object:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {
            key: (
                ("true" if item else "false")
                if isinstance(item, bool)
                else str(item)
                if isinstance(item, int | float)
                else item
            )
            for key, item in value.items()
        }
    return value


def _memory_bytes(value: object) -> int:
    """``4GiB``, ``1.5GB``, ``512m`` or a plain byte count, as a whole number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "mc_memory_type", "must be a number of bytes or text such as 4GiB"
        )
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError(
                "mc_memory_fraction",
                "{value} is not a whole number of bytes",
                {"value": value},
            )
        value = int(value)
    if isinstance(value, int):
        if value <= 0:
            raise PydanticCustomError(
                "mc_memory_positive", "must be more than 0 bytes, got {value}", {"value": value}
            )
        return value
    text = repr(value)
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise PydanticCustomError(
            "mc_memory_text", "{text} is not an amount of memory", {"text": text}
        )
    number, unit = match.groups()
    scale = MEMORY_UNITS.get(unit.lower())
    if scale is None:
        raise PydanticCustomError(
            "mc_memory_unit",
            "unknown unit {unit} in {text}",
            {"unit": repr(unit), "text": text},
        )
    amount = Decimal(number) * scale
    if amount <= 0:
        raise PydanticCustomError(
            "mc_memory_positive", "must be more than 0 bytes, got {text}", {"text": text}
        )
    if amount != amount.to_integral_value():
        raise PydanticCustomError(
            "mc_memory_fraction",
            "{text} is {amount} bytes, not a whole number",
            {"text": text, "amount": str(amount.normalize())},
        )
    return int(amount)


def _schedulable(value: float) -> float:
    if 0 < value < RESOURCE_PRECISION:
        raise PydanticCustomError(
            "mc_precision",
            "must be 0 or at least {least} (the finest amount Ray schedules)",
            {"least": RESOURCE_PRECISION},
        )
    return value


Opt = Annotated[_T | None, BeforeValidator(_reject_null)]
"""May be left out (``None``) but not written as an empty value."""

Minutes = Annotated[float, Field(gt=0, le=MAX_MINUTES, allow_inf_nan=False)]
TextOrList = Annotated[str | list[str], PlainValidator(_text_or_list)]
Env = Annotated[dict[str, str], BeforeValidator(_env_values)]
OneOrList = Annotated[list[str], BeforeValidator(_one_or_list)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_schedulable)]
"""A resource amount: CPUs or a custom resource; fractions share a node's unit."""
Memory = Annotated[int, PlainValidator(_memory_bytes)]
Port = Annotated[int, Field(ge=1024, le=65535)]


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RawCheck(_Raw):
    name: Opt[str] = None
    run: TextOrList
    shell: Opt[bool] = None
    timeout_minutes: Opt[Minutes] = None


class RawPr(_Raw):
    enabled: Opt[bool] = None
    draft: Opt[bool] = None
    title: Opt[str] = None
    body: Opt[str] = None
    base: Opt[str] = None
    labels: OneOrList = Field(default_factory=list)


class RawTool(_Raw):
    argv: TextOrList
    prompt_via: Opt[Literal["file", "stdin", "arg"]] = None
    env: Env = Field(default_factory=dict)
    shell: Opt[bool] = None
    install_hint: Opt[str] = None
    events: Opt[str] = None
    """The adapter that reads the tool's output (``agents.ADAPTER_NAMES``); text by default."""
    continue_argv: Opt[TextOrList] = None
    """How to go on with the agent's conversation; may use ``{session_id}``."""
    live_input: Opt[bool] = None
    """The tool takes further messages as stream-json on stdin while it runs (claude)."""
    budget_argv: Opt[TextOrList] = None
    """Arguments added when the workstream has a cost budget; may use ``{max_cost_usd}``."""


Usd = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=1, le=10**15)]


class RawBudget(_Raw):
    """A cap on what an agent (or the whole run) may spend."""

    max_cost_usd: Opt[Usd] = None
    max_tokens: Opt[Tokens] = None


class RawPrice(_Raw):
    """USD per million tokens of one model."""

    input: Usd
    output: Usd
    cached: Opt[Usd] = None


class RawResources(_Raw):
    """What an attempt needs from the machine that runs it; cluster backends read it."""

    cpus: Opt[Amount] = None
    memory: Opt[Memory] = None
    custom: Annotated[dict[str, Amount], BeforeValidator(_null_as_empty_dict)] = Field(
        default_factory=dict
    )


class RawSettings(_Raw):
    """What ``defaults:`` may set and every workstream may override."""

    repo: Opt[str] = None
    base_branch: Opt[str] = None
    tool: Opt[str] = None
    timeout_minutes: Opt[Minutes] = None
    checks: Annotated[list[Any] | None, BeforeValidator(_null_as_empty_list)] = None
    """Each item a command line or a ``RawCheck`` mapping, checked one by one by the loader."""
    env: Env | None = None
    worktree_root: Opt[str] = None
    retries: Opt[Annotated[int, Field(ge=0, le=100)]] = None
    base: Opt[Literal["deps", "branch", "landed"]] = None
    pr: Annotated[RawPr | None, BeforeValidator(_pr_from_bool)] = None
    push: Opt[bool] = None
    remote: Opt[str] = None
    require_changes: Opt[bool] = None
    stall_minutes: Opt[Minutes] = None
    on_stall: Opt[Literal["notify", "kill", "retry"]] = None
    command: Opt[TextOrList] = None
    shell: Opt[bool] = None
    resources: Opt[RawResources] = None
    """Replaces the ``defaults:`` mapping as a whole: keys are not merged one by one."""
    budget: Opt[RawBudget] = None
    # Around the agent: the worktree's set-up, untracked files, ports, where the branch starts.
    setup: Annotated[list[Any] | None, BeforeValidator(_one_or_list)] = None
    """Commands run in a new worktree before the tool, each like a check."""
    teardown: Annotated[list[Any] | None, BeforeValidator(_one_or_list)] = None
    """Commands run in the worktree before ``clean`` removes it."""
    copy_files: OneOrList | None = Field(default=None, alias="copy")
    link_files: OneOrList | None = Field(default=None, alias="link")
    ports: Opt[Annotated[int, Field(ge=0, le=MAX_PORTS)]] = None
    start_from: Opt[str] = Field(default=None, alias="from")


class RawDefaults(RawSettings):
    pass


class RawWorkstream(RawSettings):
    id: str
    name: Opt[str] = None
    prompt: Opt[str] = None
    prompt_file: Opt[str] = None
    depends_on: OneOrList = Field(default_factory=list)


class RawPhase(_Raw):
    id: str
    name: Opt[str] = None
    max_parallel_workstreams: Annotated[int, Field(ge=1)]
    land: Opt[Literal["auto", "manual"]] = None
    workstreams: Annotated[list[Any], BeforeValidator(_reject_null)]


class RawNotify(_Raw):
    """Where and when to tell the user about a run (also in the user's config file)."""

    urls: OneOrList = Field(default_factory=list)
    on: Annotated[list[NotifyEvent] | None, BeforeValidator(_one_or_list)] = None
    bell: Opt[bool] = None
    command: Opt[TextOrList] = None


class RawPlan(_Raw):
    version: Opt[Literal[1]] = None
    name: Opt[str] = None
    defaults: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=dict
    )
    tools: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=dict
    )
    phases: Opt[list[Any]] = None
    grace_seconds: Opt[Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]] = None
    port_range: Opt[Annotated[list[Port], Field(min_length=2, max_length=2)]] = None
    notify: Opt[RawNotify] = None
    budget: Opt[RawBudget] = None
    """The whole run's cap: no new attempt starts once it is spent."""
    pricing: Annotated[dict[str, RawPrice], BeforeValidator(_null_as_empty_dict)] = Field(
        default_factory=dict
    )


SETTINGS_KEYS: frozenset[str] = frozenset(RawSettings.model_fields)
WRITTEN_SETTINGS_KEYS: frozenset[str] = frozenset(
    info.alias or name for name, info in RawSettings.model_fields.items()
)
"""The settings as written in a plan (``from``, not the field name ``start_from``)."""
WORKSTREAM_KEYS: frozenset[str] = frozenset(
    info.alias or name for name, info in RawWorkstream.model_fields.items()
)
PHASE_KEYS: frozenset[str] = frozenset(RawPhase.model_fields)
PLAN_KEYS: frozenset[str] = frozenset(RawPlan.model_fields)

# Where a key that is unknown at one level does belong, for the hint.
_MISPLACED: dict[str, str] = {
    **dict.fromkeys(
        SETTINGS_KEYS,
        "'{key}' is a workstream setting: put it on each workstream or under `defaults:`",
    ),
    **dict.fromkeys(
        ("id", "name", "prompt", "prompt_file", "depends_on"),
        "'{key}' is set on each workstream, not under `defaults:`",
    ),
    **dict.fromkeys(
        ("cpus", "memory", "custom"),
        "'{key}' is a resource: put it under `resources:` (on a workstream or under `defaults:`)",
    ),
    **dict.fromkeys(
        ("max_parallel_workstreams", "land"), "'{key}' is a phase setting: put it on the phase"
    ),
    "workstreams": "'{key}' goes inside a phase: `phases: [{id: PH-01, workstreams: [...]}]`",
    **dict.fromkeys(
        ("from", "copy", "link"),
        "'{key}' is a workstream setting: put it on each workstream or under `defaults:`",
    ),
    **dict.fromkeys(
        ("phases", "grace_seconds", "tools", "defaults", "version", "pricing"),
        "'{key}' is a top-level key of the plan",
    ),
    **dict.fromkeys(
        ("port_range", "notify"),
        "'{key}' is a top-level key of the plan",
    ),
}

_REQUIRED_HINTS: dict[str, str] = {
    "id": "give it an id such as WS-01 (letters, digits, '-', '_', '.')",
    "phases": "add `phases:` with at least one phase",
    "workstreams": "add `workstreams:` with at least one workstream",
    "max_parallel_workstreams": "say how many of its workstreams may run at once, e.g. 3",
    "run": "give the check its command: `run: pytest -q`",
    "argv": "give the tool its command line: `argv: [mytool, --message-file, '{prompt_file}']`",
}

_FIELD_HINTS: dict[str, str] = {
    "timeout_minutes": "minutes; fractions are fine (0.5 is 30 s)",
    "stall_minutes": "minutes without output; fractions are fine (0.5 is 30 s)",
    "max_parallel_workstreams": "1 runs the phase's workstreams one at a time",
    "retries": "how many more attempts after a failure; 0 means none",
    "grace_seconds": "seconds a stopped process gets before it is killed",
    "version": "this mission-control reads plan format version 1: `version: 1`",
    "depends_on": "a list of workstream ids: [WS-01, PH-01::WS-02]",
    "labels": "a list of label names",
    "base": "`deps`: the base branch with the dependencies merged in; `branch`: the base"
    " branch; `landed`: the previous phase's landing branch, with the dependencies",
    "land": "`auto`: land the phase when all its workstreams succeeded; `manual` (the default)",
    "on_stall": "notify, kill or retry",
    "prompt_via": "file (path in {prompt_file}), stdin, or arg (text in {prompt})",
    "checks": "a list of command lines or {name, run, shell, timeout_minutes}",
    "pr": "true, false, or {enabled, draft, title, body, base, labels}",
    "resources": "a mapping: {cpus: 2, memory: 4GiB, custom: {gpu_box: 1}}",
    "cpus": "CPUs the attempt reserves on a node; fractions are fine (0.5), 0 reserves none",
    "memory": MEMORY_FORMS,
    "custom": "Ray custom resources, each name: amount, e.g. {gpu_box: 1}",
    "custom resource": "an amount such as 1 or 0.5 of a resource the nodes advertise",
    "setup": "a list of command lines or {name, run, shell, timeout_minutes}",
    "teardown": "a list of command lines or {name, run, shell, timeout_minutes}",
    "copy": "a list of patterns of untracked files, e.g. [.env, '.env.*']",
    "link": "a list of patterns of untracked files or folders, e.g. [node_modules]",
    "ports": f"how many ports the workstream gets (MC_PORT_0..), 0 to {MAX_PORTS}",
    "from": "pr:NUMBER (a pull request) or REMOTE/BRANCH, e.g. origin/feature-x",
    "port_range": "the lowest and highest port to hand out: [20000, 29999]",
    "notify": "a mapping: {urls: [...], on: [failed, run_finished], bell: true, command: [...]}",
    "urls": "a list of apprise URLs, e.g. [ntfy://mytopic, json://127.0.0.1:8080/hook]",
    "on": "a list of: " + ", ".join(NOTIFY_EVENTS),
    "bell": "true rings the terminal bell",
    "budget": "a mapping: {max_cost_usd: 2.5, max_tokens: 2000000}",
    "max_cost_usd": "US dollars, e.g. 2.5",
    "max_tokens": "a whole number of tokens (input and output together), e.g. 2000000",
    "pricing": "per model, USD per million tokens: {gpt-5: {input: 1.25, output: 10}}",
    "events": "the adapter that reads the tool's output, e.g. claude-stream-json or text",
    "continue_argv": "the command line that continues a conversation, with {session_id}",
}

# Keys people write inside `resources:` that the plan spells another way.
_RESOURCE_ALIASES: dict[str, str] = {
    **dict.fromkeys(("cpu", "num_cpus", "ncpus", "cores"), "did you mean 'cpus'?"),
    **dict.fromkeys(("mem", "ram", "memory_bytes", "mem_bytes"), "did you mean 'memory'?"),
    **dict.fromkeys(
        ("gpu", "gpus", "num_gpus"),
        "GPUs are asked for as a custom resource your GPU nodes advertise: `custom: {gpu_box: 1}`",
    ),
    "resources": "did you mean 'custom'? (custom resources: `custom: {gpu_box: 1}`)",
}


def allowed_keys(loc_kind: str) -> frozenset[str]:
    """The keys valid in a mapping of the given kind (as named in key paths), as written."""
    models: dict[str, type[BaseModel]] = {
        "plan": RawPlan,
        "phase": RawPhase,
        "workstream": RawWorkstream,
        "defaults": RawDefaults,
        "tool": RawTool,
        "check": RawCheck,
        "pr": RawPr,
        "resources": RawResources,
        "notify": RawNotify,
        "budget": RawBudget,
        "price": RawPrice,
    }
    fields = models[loc_kind].model_fields
    return frozenset(info.alias or name for name, info in fields.items())


def resource_key_hint(key: str) -> str | None:
    """The fix for an unknown key inside ``resources:`` that has a well-known other name."""
    return _RESOURCE_ALIASES.get(key.lower())


def misplaced_hint(key: str) -> str | None:
    """Where ``key`` belongs when it is known elsewhere in a plan."""
    template = _MISPLACED.get(key)
    return template.replace("{key}", key) if template is not None else None


def describe_error(err: ErrorDetails, field: str, got: str | None) -> tuple[str, str]:
    """The message and the fix for one pydantic error on ``field``.

    ``got`` is the value as written in the file (``None`` when it must not be
    shown, e.g. environment values).
    """
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    shown = f", got {got}" if got else ""
    hint = _FIELD_HINTS.get(field, "")
    if kind == "missing":
        return f"missing required key '{field}'", _REQUIRED_HINTS.get(field, hint)
    if kind == "mc_null":
        return "has no value", "give it a value, or remove the key"
    if kind == "string_type":
        quoted = f": '{got}'" if got and not got.startswith("a ") else ""
        return f"must be text{shown}", f"put it in quotes{quoted}" if quoted else hint
    if kind in ("int_type", "int_from_float"):
        return f"must be a whole number{shown}", hint
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a number{shown}", hint
    if kind == "bool_type":
        return f"must be true or false{shown}", hint
    if kind == "list_type":
        return f"must be a list{shown}", hint
    if kind in ("dict_type", "model_type"):
        return f"must be a mapping (key: value){shown}", hint
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}{shown}", hint
    if kind == "greater_than":
        return f"must be more than {_num(ctx.get('gt'))}{shown}", hint
    if kind == "greater_than_equal":
        return f"must be at least {_num(ctx.get('ge'))}{shown}", hint
    if kind == "less_than_equal":
        return f"must be at most {_num(ctx.get('le'))}{shown}", hint
    if kind in ("mc_memory_type", "mc_precision"):
        return f"{err['msg']}{shown}", hint
    if kind.startswith("mc_"):
        return err["msg"], hint
    return f"{err['msg'].lower()}{shown}", hint  # pragma: no cover - a type not listed above


def _num(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
