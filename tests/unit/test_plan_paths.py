"""Paths in a plan: variables, defaults, `~`, relative to the plan's folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mission_control.plan.paths import PathExpansionError, expand_path, expand_vars


def test_variables_and_defaults() -> None:
    env = {"A": "/x", "EMPTY": ""}
    assert expand_vars("$A/b", env) == "/x/b"
    assert expand_vars("${A}b", env) == "/xb"
    assert expand_vars("${MISSING:-/d}/e", env) == "/d/e"
    assert expand_vars("${EMPTY:-dflt}", env) == "dflt"
    assert expand_vars("${EMPTY-dflt}", env) == ""
    assert expand_vars("${MISSING-dflt}", env) == "dflt"
    assert expand_vars("cost$$5", env) == "cost$5"


def test_unset_variable_is_named() -> None:
    with pytest.raises(PathExpansionError) as caught:
        expand_vars("${HOME_REPO}/x", {})
    assert str(caught.value) == "environment variable HOME_REPO is not set"
    assert "${HOME_REPO:-...}" in caught.value.hint


def test_relative_home_and_normalised(tmp_path: Path) -> None:
    assert expand_path("a/../b/./c", tmp_path, {}) == tmp_path / "b" / "c"
    assert expand_path("/abs//x/", tmp_path, {}) == Path("/abs/x")
    home = expand_path("~/w", tmp_path, {})
    assert home == Path(os.path.expanduser("~/w"))


def test_empty_and_unknown_user(tmp_path: Path) -> None:
    with pytest.raises(PathExpansionError, match="the path is empty"):
        expand_path("${NOTHING:-}", tmp_path, {})
    with pytest.raises(PathExpansionError, match="no such user"):
        expand_path("~no-such-user-mc-test/x", tmp_path, {})
