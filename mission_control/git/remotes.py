"""Remotes: which a repository has, fetching a base branch, the environment a push needs,
and the upstream a pushed branch records.

What is read of a repository's remote settings is kept while the config file says the
same of them: every push sets its branch's upstream, which rewrites only the file's
``[branch]`` sections, so those are left out of the key.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError
from .repo import (
    NETWORK_TIMEOUT,
    common_git_dir,
    remembered,
    repo_lock,
    run_git,
    trim_message,
)


def has_remote(repo: Path, remote: str) -> bool:
    """The repository has a remote of that name (remembered under ``_config_key``).

    Asked for every workstream several times; ``git remote add`` or ``remove``
    changes the key.
    """
    key = _config_key(repo)
    if key is None:
        return remote in _remote_names(repo)
    return remote in remembered(_remotes, key, lambda: _remote_names(repo))


def _remote_names(repo: Path) -> frozenset[str]:
    return frozenset(run_git(["remote"], repo, what="listing remotes").stdout.split())


def _config_key(repo: Path) -> tuple[Path, str] | None:
    """The repository's config file as it is now, but for its ``[branch]`` sections: what
    answers about remotes are kept under. Every push sets its branch's upstream, which
    rewrites only those sections; ``git remote add`` or ``set-url`` changes the key."""
    common = common_git_dir(repo)
    try:
        text = (common / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    kept: list[str] = []
    keep = True
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            keep = not line.lower().startswith("[branch")
        if keep:
            kept.append(line)
    return (common, "\n".join(kept))


_remotes: dict[tuple[Path, str], frozenset[str]] = {}
_remote_settings: dict[tuple[Path, str], tuple[tuple[str, str], ...]] = {}


@dataclass(slots=True)
class _FetchSlot:
    lock: threading.Lock
    last_started: float = float("-inf")
    last_error: GitError | None = None
    last_missing: bool = False


_fetch_slots: dict[tuple[Path, str, str], _FetchSlot] = {}
_slots_lock = threading.Lock()

FETCH_FRESH_SECONDS = 15.0
"""How long a fetched base counts as current."""


def fetch_branch(
    repo: Path, remote: str, branch: str, *, max_age: float = FETCH_FRESH_SECONDS
) -> bool:
    """Update ``refs/remotes/<remote>/<branch>`` from the remote.

    Returns False when the remote has no such branch. Concurrent callers for
    the same repository, remote and branch share one fetch: whoever waited
    while a fetch that started after its own request ran takes that result.
    A fetch that started less than ``max_age`` seconds before the request is
    taken too (0: only one that started after it).
    """
    requested = time.monotonic()
    key = (common_git_dir(repo), remote, branch)
    with _slots_lock:
        slot = _fetch_slots.setdefault(key, _FetchSlot(threading.Lock()))
    with slot.lock:
        # A base fetched moments ago is fresh enough: a phase starting many
        # workstreams on one base fetches it once, not once per workstream.
        fresh = slot.last_error is None and slot.last_started >= requested - max_age
        if slot.last_started >= requested or fresh:
            if slot.last_error is not None:
                raise slot.last_error
            return not slot.last_missing
        slot.last_started = time.monotonic()
        slot.last_error = None
        slot.last_missing = False
        out = run_git(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                remote,
                f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
            ],
            repo,
            check=False,
            timeout=NETWORK_TIMEOUT,
            retry_on_lock=True,
            env=remote_env(repo, remote),
        )
        if out.returncode == 0:
            return True
        if "couldn't find remote ref" in out.stderr:
            slot.last_missing = True
            return False
        slot.last_error = GitError(
            f"{repo}: fetching {branch} from {remote} failed: {trim_message(out.stderr)}"
            f" — check the network and that `git fetch {remote}` works without a prompt"
        )
        raise slot.last_error


def remote_env(path: Path, remote: str) -> dict[str, str]:
    """Environment that makes a relative local-path URL of ``remote`` work from ``path``.

    git resolves a URL like ``../origin.git`` against the folder it runs in: the
    main checkout when the user runs it, a workstream's worktree when we do, where
    the path leads elsewhere. Each such URL (and push URL) is rewritten to the
    absolute path the main checkout means, with ``url.<absolute>.insteadOf``: the
    remote keeps its name, so its remote-tracking refs and settings still apply.
    Given as ``GIT_CONFIG_*`` variables, not ``-c``, so a path may hold any character.
    """
    key = _config_key(path)
    settings = (
        _read_remote_settings(path)
        if key is None
        else remembered(_remote_settings, key, lambda: _read_remote_settings(path))
    )
    wanted = {f"remote.{remote}.url", f"remote.{remote}.pushurl"}
    urls = [value for name, value in settings if name in wanted and _is_relative_path(value)]
    if not urls:
        return {}
    top = _main_worktree(path)
    pairs = [(f"url.{os.path.normpath(top / u)}.insteadOf", u) for u in dict.fromkeys(urls)]
    return config_env(pairs)


def _read_remote_settings(path: Path) -> tuple[tuple[str, str], ...]:
    """Every ``remote.*`` setting, (key, value), in one call: a pattern naming one remote
    would have to escape its name for git's regular expressions."""
    out = run_git(["config", "--get-regexp", r"^remote\."], path, check=False)
    return tuple((k, v) for k, _, v in (line.partition(" ") for line in out.stdout.splitlines()))


def config_env(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n`` for ``pairs``, after any the user set."""
    try:
        start = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        start = 0
    env = {"GIT_CONFIG_COUNT": str(start + len(pairs))}
    for i, (key, value) in enumerate(pairs, start):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _is_relative_path(url: str) -> bool:
    """A local path that is not absolute, by git's rule: no ``scheme://``, no ``host:``."""
    if not url or os.path.isabs(url) or "://" in url or url.startswith("~"):
        return False
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or 0 <= slash < colon


def _main_worktree(path: Path) -> Path:
    """The repository's main checkout (or bare folder): where git resolves its relative URLs.
    Asked once per repository: git cannot move a main checkout."""

    def ask() -> Path:
        out = run_git(["worktree", "list", "--porcelain"], path, what="listing worktrees")
        return Path(out.stdout.split("\n", 1)[0].removeprefix("worktree "))

    return remembered(_main_worktrees, common_git_dir(path), ask)


_main_worktrees: dict[Path, Path] = {}


def set_upstream(repo: Path, branch: str, remote: str) -> None:
    """Record ``remote``'s ``branch`` as the upstream of local ``branch`` (like ``push -u``)."""
    with repo_lock(repo):
        # One call when the push left a remote-tracking branch (a remote with a fetch refspec).
        quick = run_git(
            ["branch", "--quiet", f"--set-upstream-to={remote}/{branch}", branch],
            repo,
            check=False,
            retry_on_lock=True,
        )
        if quick.returncode == 0:
            return
        for key, value in (("remote", remote), ("merge", f"refs/heads/{branch}")):
            run_git(
                ["config", f"branch.{branch}.{key}", value],
                repo,
                what=f"setting the upstream of {branch}",
                retry_on_lock=True,
            )
