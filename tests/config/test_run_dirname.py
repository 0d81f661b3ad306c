"""A planned run's directory name is the store's format, and the store reads it back."""

from __future__ import annotations

from shl.config.experiment import PlannedRun
from shl.config.models import RunConfig
from shl.store import parse_run_dirname, run_dirname


def test_planned_run_dirname_round_trips_through_the_store():
    run = PlannedRun("lam_0.1-x", 7, RunConfig(), "0123456789abcdef" * 4)
    assert run.dirname == run_dirname("lam_0.1-x", 7, run.hash) == "lam_0.1-x__seed7__0123456789ab"
    assert parse_run_dirname(run.dirname) == ("lam_0.1-x", 7, "0123456789ab")
    assert parse_run_dirname("my-notes") is None
