"""The wildcard folder guard: `__name__` reads only files inside the wildcards folder."""

from pathlib import Path

import pytest

from kekong.errors import ParameterError
from kekong.prompt.syntax import resolve_dynamic


@pytest.fixture
def folders(tmp_path):
    wildcards = tmp_path / "wildcards"
    (wildcards / "colours").mkdir(parents=True)
    (wildcards / "colours" / "warm.txt").write_text("red\n")
    secret = tmp_path / "wildcards_secret"  # shares the folder name's prefix
    secret.mkdir()
    (secret / "notes.txt").write_text("the password\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    return wildcards


def test_subfolders_inside_the_wildcards_folder_resolve(folders):
    assert resolve_dynamic("a __colours/warm__ star", 1, folders) == "a red star"
    assert resolve_dynamic("a __colours/../colours/warm__ star", 1, folders) == "a red star"


@pytest.mark.parametrize("name", ["../wildcards_secret/notes", "../outside"])
def test_a_wildcard_cannot_read_beside_the_folder(folders, name):
    with pytest.raises(ParameterError, match="points outside the wildcards folder"):
        resolve_dynamic(f"__{name}__", 1, folders)


def test_a_symlink_out_of_the_folder_is_refused(folders):
    (folders / "link.txt").symlink_to(folders.parent / "wildcards_secret" / "notes.txt")
    with pytest.raises(ParameterError, match="points outside the wildcards folder"):
        resolve_dynamic("__link__", 1, folders)


def test_a_relative_folder_is_guarded_too(folders, monkeypatch):
    monkeypatch.chdir(folders.parent)
    assert resolve_dynamic("__colours/warm__", 1, Path("wildcards")) == "red"
    with pytest.raises(ParameterError, match="points outside"):
        resolve_dynamic("__../wildcards_secret/notes__", 1, Path("wildcards"))
