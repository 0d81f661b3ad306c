"""claim_dir: a directory shl marks for its output, and the leftovers of a marker write that a kill interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from shl.errors import ShlError
from shl.store import DIR_MARKER
from shl.store.files import claim_dir


def test_a_killed_marker_write_leaves_nothing_once_the_directory_is_claimed(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    leftover = runs / f".{DIR_MARKER}.shl-x6vaywrt.tmp"  # killed between writing the temp file and the rename
    leftover.write_text("shl the runs (form")
    claim_dir(runs, "the runs")
    assert sorted(p.name for p in runs.iterdir()) == [DIR_MARKER]

    again = runs / f".{DIR_MARKER}.shl-abcdefgh.tmp"  # the same, when the marker was already there
    again.write_text("x")
    users = runs / ".notes.tmp"
    users.write_text("mine")
    claim_dir(runs, "the runs")
    assert not again.exists() and users.read_text() == "mine"


def test_a_users_folder_is_refused_and_keeps_its_files(tmp_path: Path):
    mine = tmp_path / "runs"
    mine.mkdir()
    (mine / f".{DIR_MARKER}.shl-abcdefgh.tmp").write_text("x")
    (mine / "thesis.tex").write_text("chapter 1")
    with pytest.raises(ShlError, match="was not made by shl"):
        claim_dir(mine, "the runs")
    assert sorted(p.name for p in mine.iterdir()) == [f".{DIR_MARKER}.shl-abcdefgh.tmp", "thesis.tex"]
