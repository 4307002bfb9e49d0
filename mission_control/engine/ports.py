"""A port (or a few) for each running workstream, unique among all runs on this machine.

Two agents starting the same dev server in two worktrees would collide on its
port; each attempt gets its own in ``MC_PORT`` (``MC_PORT_0..N-1`` for
``ports: N``) and as ``{port}``. The ports in use by mission-control live in
one small file shared by every run of the user (``ports.json`` in
``$XDG_STATE_HOME/mission-control``), changed only under an exclusive lock on
its lock file. Each claim names its holders by pid and start time: the driver
that claimed it and, once started, the attempt's tool; a claim whose holders
are all dead (a crash, a kill) is free again, so nothing needs cleaning up by
hand. A port is handed out only after binding it succeeds, so one held by any
other program is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..errors import MissionControlError, SetupError
from ..plan.model import Workstream

PORT_PLACEHOLDER = "{port}"


@dataclass(frozen=True, slots=True)
class Holder:
    """A process that keeps a claim alive: (pid, start time)."""

    pid: int
    create_time: float

    @classmethod
    def this_process(cls) -> Holder:
        return _this_process(os.getpid())

    def alive(self) -> bool:
        if self.pid == os.getpid():  # the driver's own claims: no look at /proc
            return abs(_this_process(self.pid).create_time - self.create_time) < 1.0
        try:
            return abs(psutil.Process(self.pid).create_time() - self.create_time) < 1.0
        except (psutil.Error, OSError):
            return False


@functools.cache
def _this_process(pid: int) -> Holder:
    """This process as a holder (by pid: a forked child is another process)."""
    return Holder(pid, psutil.Process(pid).create_time())


def registry_dir() -> Path:
    """``$XDG_STATE_HOME/mission-control`` (``~/.local/state/mission-control``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "mission-control"


class PortRegistry:
    """The machine's claims on ports; every method is blocking (file lock, binds)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or registry_dir()
        self.path = self.folder / "ports.json"

    def claim(
        self,
        run_id: str,
        task_id: str,
        count: int,
        port_range: tuple[int, int],
        holder: Holder,
        token: str = "",
    ) -> tuple[int, ...]:
        """``count`` free ports for the attempt of ``task_id``; SetupError when none is left.

        ``token`` names this claim: ``release`` with it lets go of this claim only."""
        if count <= 0:
            return ()
        with self._locked() as claims:
            claims[:] = [c for c in claims if not (c["run"] == run_id and c["task"] == task_id)]
            taken = {int(c["port"]) for c in claims}
            low, high = port_range
            found: list[int] = []
            for port in range(low, high + 1):
                if port not in taken and bindable(port):
                    found.append(port)
                    if len(found) == count:
                        break
            if len(found) < count:
                raise SetupError(
                    f"{task_id}: no free port left in port_range [{low}, {high}]"
                    f" ({len(taken)} held by mission-control runs, the others by other programs):"
                    " widen port_range in the plan, or lower `ports:`"
                )
            holders = [[holder.pid, holder.create_time]]
            claims += [
                {"port": p, "run": run_id, "task": task_id, "holders": holders, "claim": token}
                for p in found
            ]
            return tuple(found)

    def hold(self, run_id: str, task_id: str, holder: Holder) -> None:
        """Add a holder (the attempt's tool) to the claims of ``task_id``."""
        with self._locked(prune=False) as claims:
            for claim in claims:
                if claim["run"] == run_id and claim["task"] == task_id:
                    claim["holders"] = [*claim["holders"], [holder.pid, holder.create_time]]

    def reclaim(
        self, run_id: str, task_id: str, ports: Sequence[int], holder: Holder, token: str = ""
    ) -> tuple[int, ...]:
        """Hold again the recorded ports of an attempt taken back (resume); those another
        claim took meanwhile are left out."""
        with self._locked() as claims:
            mine = [c for c in claims if c["run"] == run_id and c["task"] == task_id]
            for claim in mine:
                claim["holders"] = [*claim["holders"], [holder.pid, holder.create_time]]
                claim["claim"] = token
            taken = {int(c["port"]) for c in claims}
            holders = [[holder.pid, holder.create_time]]
            for port in ports:
                if port not in taken:
                    claims.append(
                        {
                            "port": port,
                            "run": run_id,
                            "task": task_id,
                            "holders": holders,
                            "claim": token,
                        }
                    )
            ours = {int(c["port"]) for c in claims if c["run"] == run_id and c["task"] == task_id}
            return tuple(p for p in ports if p in ours)

    def release(self, run_id: str, task_id: str, token: str | None = None) -> None:
        """Let go of the claims of ``task_id`` (only the one named ``token``, if given)."""

        def ours(claim: dict[str, Any]) -> bool:
            mine = claim["run"] == run_id and claim["task"] == task_id
            return mine and (token is None or claim.get("claim") == token)

        with self._locked(prune=False) as claims:
            claims[:] = [c for c in claims if not ours(c)]

    def held(self) -> dict[int, tuple[str, str]]:
        """Live claims: port -> (run, task)."""
        with self._locked() as claims:
            return {int(c["port"]): (c["run"], c["task"]) for c in claims}

    @contextlib.contextmanager
    def _locked(self, *, prune: bool = True) -> Iterator[list[dict[str, Any]]]:
        """The live claims, written back when the block ends without an error.

        ``prune=False`` keeps the claims of dead holders too (for a change to one's own
        claims): asking whether each holder lives costs a look at each process, and the
        next claim drops them anyway."""
        folder = str(self.folder)
        try:
            fd = os.open(f"{folder}/ports.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(f"{folder}/ports.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            claims = [c for c in self._read() if not prune or _live(c)]
            yield claims
            tmp = f"{folder}/ports.json.{os.getpid()}.tmp"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(out, json.dumps(claims).encode())
            finally:
                os.close(out)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)  # closing the descriptor lets go of the lock

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(_read_all(str(self.path)))
        except (OSError, ValueError):
            return []  # none yet, or damaged by hand (os.replace never leaves half a file)
        return [c for c in data if _well_formed(c)] if isinstance(data, list) else []


def _read_all(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _well_formed(claim: object) -> bool:
    return (
        isinstance(claim, dict)
        and isinstance(claim.get("port"), int)
        and isinstance(claim.get("run"), str)
        and isinstance(claim.get("task"), str)
        and isinstance(claim.get("holders"), list)
    )


def _live(claim: dict[str, Any]) -> bool:
    for item in claim["holders"]:
        with contextlib.suppress(TypeError, ValueError):
            if Holder(int(item[0]), float(item[1])).alive():
                return True
    return False


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


def claim_ports(
    run_id: str, ws: Workstream, port_range: tuple[int, int], token: str
) -> tuple[int, ...]:
    """The ports of a new attempt of ``ws``, held by this process until released (blocking)."""
    if ws.ports <= 0:
        return ()
    holder = Holder.this_process()
    return PortRegistry().claim(run_id, ws.task_id, ws.ports, port_range, holder, token)


def release_ports(run_id: str, task_id: str, token: str) -> None:
    """Let go of one claim, from a worker thread; a release that fails is left to the
    holders' deaths (blocking)."""
    with contextlib.suppress(OSError):
        PortRegistry().release(run_id, task_id, token)
