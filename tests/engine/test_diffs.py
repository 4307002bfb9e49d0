"""The diff view shows new files too, whatever their names."""

from __future__ import annotations

from mission_control.git.diffs import diff_against
from tests.conftest import GitRepo


def test_new_files_with_spaces_and_accents_are_in_the_diff(git_repo: GitRepo) -> None:
    base = git_repo.git("rev-parse", "HEAD")
    (git_repo.path / "a b.txt").write_text("spaced\n")
    (git_repo.path / "café.txt").write_text("accented\n")
    (git_repo.path / "README.md").write_text("changed\n")
    text = diff_against(git_repo.path, base)
    assert "spaced" in text
    assert "accented" in text
    assert "changed" in text
