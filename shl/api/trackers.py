"""Trackers: mirror runs and ablations to an experiment tracker (W&B, MLflow, ...). They never change results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .component import Component


@dataclass
class TrackedRun:
    """Who a run is, for a tracker to name and group it by.

    ``run_id`` is the run directory's name: stable across resumes and unique per experiment, arm, seed and
    resolved config, so a tracker can use it as its own run id (a retried run then continues the same tracker
    run instead of making a second one). ``experiment`` and ``arm`` are None for a lone ``shl run``.
    ``config`` is the fully resolved run config (a copy).
    """

    run_id: str
    run_dir: str
    experiment: str | None
    arm: str | None
    seed: int
    config: dict[str, Any]


@dataclass
class TrackedAblation:
    """A finished ablation's report, logged once per ``shl ablate``.

    ``comparison`` holds the comparison table's rows (one dict per declared metric and arm, as in
    ``comparison.csv``); ``files`` the report's files by name (tables, the HTML page); ``figures`` the figure
    files by name.
    """

    experiment: str
    out_dir: str
    comparison: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)


class Tracker(Component):
    """Mirrors what shl records to an external tracker. One instance per run (``start_run`` ... ``end_run``),
    and one per ablation report (``log_ablation`` alone).

    ``start_run(run)`` opens the tracker's run; ``log_metrics(step, row)`` logs one metrics.jsonl row at its heal
    round ``step``; ``end_run(status, message)`` closes it with shl's status (complete, stopped, starved, failed,
    nan) and, for a run that did not complete, the reason. A tracker must not change anything shl stores: the
    engine calls it with copies, and an exception it raises becomes a one-line warning naming the tracker.
    """

    family: ClassVar[str] = "tracker"

    def start_run(self, run: TrackedRun) -> None:
        raise NotImplementedError

    def log_metrics(self, step: int, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def end_run(self, status: str, message: str) -> None:
        raise NotImplementedError

    def log_ablation(self, ablation: TrackedAblation) -> None:
        """Log the report of an ablation (its comparison table and figures). The default logs nothing."""
