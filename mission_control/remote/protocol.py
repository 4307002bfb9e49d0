"""The records that travel between mission-control and an attempt on a cluster node.

They are plain frozen dataclasses of builtins, paths and engine events, so
any serializer (Ray's pickling) carries them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..agents.report import AgentReport
from ..engine.events import Event, ProcessSample
from ..engine.finish import Committed, Pushed
from ..engine.supervisor import ExitStatus
from ..engine.tools import FollowUp
from ..plan.model import Price, ToolSpec, Workstream

CHUNK_BYTES = 1 << 20
"""Most log bytes one chunk carries: a chatty tool's backlog arrives in pieces."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """All a node needs to run one attempt; nothing in it points at the user's machine."""

    run_id: str
    attempt: int
    ws: Workstream
    tool: ToolSpec
    remote_url: str
    dependencies: tuple[str, ...]
    """Branches (on the remote) to merge into the new branch."""
    prompt_text: str | None
    grace_seconds: float
    seed_commit: str | None = None
    seed_base: str | None = None
    seed_bundle: bytes | None = None
    fresh: bool = False
    wip_commit: str | None = None
    """An earlier attempt's kept uncommitted work (in ``seed_bundle``) to put back."""
    orphan_seconds: float = 3600.0
    """With no word from any mission-control for this long, the attempt stops itself."""
    follow_up: FollowUp | None = None
    """The user's message the attempt continues the agent's conversation with."""
    spent_before: tuple[int, float] = (0, 0.0)
    pricing: dict[str, Price] | None = None


@dataclass(frozen=True, slots=True)
class NodePrepared:
    node: str
    """The node's address, for the views."""
    path: Path
    base_commit: str
    merged: tuple[str, ...]
    wip_applied: bool = False
    node_id: str = ""
    """Ray's id of the node: a later mission-control finds the attempt's leftovers there."""


@dataclass(frozen=True, slots=True)
class NodeStarted:
    pid: int
    create_time: float


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """Where an attempt stands, for a mission-control that takes it over."""

    node: str
    pid: int
    create_time: float
    paused: bool
    ended: bool
    dependencies: tuple[str, ...]
    log_size: int
    status: ExitStatus | None = None
    """How the tool ended, for an attempt taken back from what its node kept (else None)."""
    stopped: bool = False
    """Its tool was stopped on the node because no mission-control watched it."""


@dataclass(frozen=True, slots=True)
class NodeEnded:
    status: ExitStatus
    log_size: int
    """The node log's size at the end: the driver has the whole log once it holds this much."""
    report: AgentReport | None = None
    """The agent's last report (``agents.report``), for a tool with an adapter."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """What a node sends as it happens: new log bytes, finishing events, a metrics sample."""

    offset: int
    data: bytes
    events: tuple[Event, ...] = ()
    sample: ProcessSample | None = None
    log_size: int = 0
    report: AgentReport | None = None
    """The agent's report, when it changed (it rides with a sample)."""
    events_total: int = 0
    """Events the node has sent in all, this chunk's included."""


@dataclass(frozen=True, slots=True)
class NodeFinished:
    """The node's half of finishing (checks, commit, push); the work comes back as a bundle."""

    committed: Committed
    pushed: Pushed
    bundle: bytes | None
    """The branch's commits beyond the remote's base and dependency branches."""
    log_size: int
    events: int
    """How many events the node has streamed in all: the driver has them all once it counts this."""
