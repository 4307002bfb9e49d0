"""A port (or a few) for each running workstream, unique among all runs on this machine.

Two agents starting the same dev server in two worktrees would collide on its
port; each attempt gets its own in ``MC_PORT`` (``MC_PORT_0..N-1`` for
``ports: N``) and as ``{port}``. Each port in use by mission-control is a lock file,
``ports/<port>.lock`` in ``$XDG_STATE_HOME/mission-control``, held with ``flock`` by
the driver that claimed it and by the attempt's tool, which inherits the open file.
The kernel lets go once the last of them has ended, however it ended (a crash, a
kill), so nothing needs cleaning up by hand, and claiming, holding and letting go
cost a few system calls, with no file rewritten. The file's text names the run and
the workstream, for a resumed driver; it never decides who holds the port. A port
is handed out only after binding it succeeds, so one held by any other program is
skipped. Lock files are never deleted (that would race with a claim opening one).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissionControlError, SetupError
from ..lock_files import let_go, lock_now, name_holder
from ..plan.model import Workstream
from ..store.private import open_private_in

PORT_PLACEHOLDER = "{port}"


class PortClaim:
    """The ports of one attempt, held by this process's open lock files until ``release``."""

    def __init__(self, ports: tuple[int, ...] = (), fds: tuple[int, ...] = ()) -> None:
        self.ports = ports
        self.fds = fds
        """The lock files this process holds: the attempt's tool inherits them."""

    def release(self) -> None:
        """Let go (the tool, if it lives on, still holds its ports); safe to call twice."""
        fds, self.fds = self.fds, ()
        let_go(fds)


_next: dict[tuple[str, int, int], int] = {}
"""Where this process's next claim in a registry folder and range starts looking."""


def registry_dir() -> Path:
    """``$XDG_STATE_HOME/mission-control`` (``~/.local/state/mission-control``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "mission-control"


class PortRegistry:
    """The machine's claims on ports; every method is blocking (files, binds)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = (folder or registry_dir()) / "ports"

    def claim(
        self, run_id: str, task_id: str, count: int, port_range: tuple[int, int]
    ) -> PortClaim:
        """``count`` free ports for the attempt of ``task_id``; SetupError when none is left."""
        if count <= 0:
            return PortClaim()
        low, high = port_range
        ports: list[int] = []
        fds: list[int] = []
        held = 0
        # Round the range from past the last port handed out: the ports before it are
        # likely still held, and one just let go may still be bound by its server.
        start = _next.get((str(self.folder), low, high), low)
        try:
            for port in itertools.chain(range(start, high + 1), range(low, start)):
                fd = self._lock(port)
                if fd is None:
                    held += 1
                elif not bindable(port):
                    os.close(fd)
                else:
                    _name(fd, run_id, task_id)
                    ports.append(port)
                    fds.append(fd)
                    if len(ports) == count:
                        _next[(str(self.folder), low, high)] = port + 1 if port < high else low
                        return PortClaim(tuple(ports), tuple(fds))
        except BaseException:
            let_go(fds)
            raise
        let_go(fds)
        raise SetupError(
            f"{task_id}: no free port left in port_range [{low}, {high}]"
            f" ({held} held by mission-control runs, the others by other programs):"
            " widen port_range in the plan, or lower `ports:`"
        )

    def reclaim(self, run_id: str, task_id: str, ports: Sequence[int]) -> PortClaim:
        """The recorded ports of an attempt taken back (resume): those its tool still holds,
        and those nobody holds (held again here); those another claim took are left out."""
        kept: list[int] = []
        fds: list[int] = []
        for port in ports:
            fd = self._lock(port)
            if fd is not None:
                _name(fd, run_id, task_id)
                kept.append(port)
                fds.append(fd)
            elif self._named(port) == (run_id, task_id):
                kept.append(port)
        return PortClaim(tuple(kept), tuple(fds))

    def _path(self, port: int) -> Path:
        return self.folder / f"{port}.lock"

    def _lock(self, port: int) -> int | None:
        """The port's lock file, locked by this process; None when another holds it."""
        fd = open_private_in(self._path(port), os.O_RDWR)
        if lock_now(fd):
            return fd
        os.close(fd)
        return None

    def _named(self, port: int) -> tuple[str, str] | None:
        """(run, workstream) as the port's lock file names them."""
        try:
            fd = os.open(self._path(port), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            data = json.loads(os.read(fd, 4096))
            return (str(data["run"]), str(data["task"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        finally:
            os.close(fd)


def _name(fd: int, run_id: str, task_id: str) -> None:
    """Write who holds the port into its (locked) file."""
    name_holder(fd, json.dumps({"run": run_id, "task": task_id, "pid": os.getpid()}))


def bindable(port: int) -> bool:
    """Nothing listens on ``port`` (nor holds it) on any address of this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def port_env(ports: Sequence[int]) -> dict[str, str]:
    """``MC_PORT`` and ``MC_PORT_0..N-1`` for an attempt's environment."""
    if not ports:
        return {}
    return {"MC_PORT": str(ports[0]), **{f"MC_PORT_{i}": str(p) for i, p in enumerate(ports)}}


def fill_port(argv: Sequence[str], ports: Sequence[int], what: str) -> list[str]:
    """``argv`` with ``{port}`` replaced by the first port; an error when there is none."""
    if not any(PORT_PLACEHOLDER in item for item in argv):
        return list(argv)
    if not ports:
        raise MissionControlError(
            f"{what} uses {PORT_PLACEHOLDER}, but the workstream has no port:"
            " remove `ports: 0` from the plan"
        )
    return [item.replace(PORT_PLACEHOLDER, str(ports[0])) for item in argv]


def claim_ports(run_id: str, ws: Workstream, port_range: tuple[int, int]) -> PortClaim:
    """The ports of a new attempt of ``ws``, held by this process until released (blocking)."""
    if ws.ports <= 0:
        return PortClaim()
    return PortRegistry().claim(run_id, ws.task_id, ws.ports, port_range)
