"""A real local Ray cluster (2 CPUs) shared by the tests of a module.

Started once in the test process (``ray.init`` starts the head node's
processes); the engine's ray backend finds it already connected and uses it.
Node-side work (mirrors, worktrees, node logs) goes to a folder of the
session's own, set before the cluster starts so its workers inherit it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test process runs under `uv run`: without this, Ray would package the checkout
# and build a fresh environment for its workers.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The address-less local cluster, for one module (it is not left running under the
    tests that follow); yields the nodes' work folder."""
    node_dir = tmp_path_factory.mktemp("ray-node")
    previous = os.environ.get("MC_NODE_DIR")
    os.environ["MC_NODE_DIR"] = str(node_dir)
    _start_cluster()
    try:
        yield node_dir
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("MC_NODE_DIR", None)
        else:
            os.environ["MC_NODE_DIR"] = previous


def _start_cluster(tries: int = 3) -> None:
    """Start the cluster; again if its node gave up starting (its agents start slowly on a
    busy machine, and the node waits for them only so long)."""
    for left in range(tries - 1, -1, -1):
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                object_store_memory=80 * 1024 * 1024,
                log_to_driver=False,
                logging_level=logging.ERROR,
                namespace="mission-control",
            )
            return
        except Exception as err:
            if left == 0 or "timed out during startup" not in str(err):
                raise
            ray.shutdown()
