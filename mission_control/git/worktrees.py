"""A workstream's worktree from birth to clean-up, in one place to import from.

Each step of a worktree's life has a module of its own (``prepare``: register,
check out, merge dependencies, record base; ``merges``: dependency merges;
``commits``: commit and push; ``removal``: clean-up; ``fresh_start``: resets and
a new run's branches; ``worktree_list``: the worktree list and the base ref).
This module gathers their public names, so callers say
``worktrees.prepare_worktree(...)`` whichever module holds it.
"""

from __future__ import annotations

from .commits import (
    CommitResult,
    MadeCommit,
    commit_message,
    commit_work,
    describe_commit,
    described_without_git,
    make_commit,
    push_branch,
)
from .errors import MergeConflictError, PushRejectedError, WorktreePathError
from .fresh_start import (
    OLD_REF_PREFIX,
    EarlierWork,
    FreshStart,
    earlier_work,
    local_branches,
    reset_worktree,
    start_branch_afresh,
)
from .merges import merge_dependencies
from .prepare import (
    CREATION_STEPS,
    STAGE_CREATING,
    STAGE_FILE,
    STAGE_MERGING,
    STAGE_READY,
    PreparedWorktree,
    prepare_worktree,
)
from .removal import CleanResult, remove_worktree
from .worktree_list import BASE_REF_PREFIX, WorktreeEntry, base_ref, list_worktrees

__all__ = [
    "BASE_REF_PREFIX",
    "CREATION_STEPS",
    "OLD_REF_PREFIX",
    "STAGE_CREATING",
    "STAGE_FILE",
    "STAGE_MERGING",
    "STAGE_READY",
    "CleanResult",
    "CommitResult",
    "EarlierWork",
    "FreshStart",
    "MadeCommit",
    "MergeConflictError",
    "PreparedWorktree",
    "PushRejectedError",
    "WorktreeEntry",
    "WorktreePathError",
    "base_ref",
    "commit_message",
    "commit_work",
    "describe_commit",
    "described_without_git",
    "earlier_work",
    "list_worktrees",
    "local_branches",
    "make_commit",
    "merge_dependencies",
    "prepare_worktree",
    "push_branch",
    "remove_worktree",
    "reset_worktree",
    "start_branch_afresh",
]
