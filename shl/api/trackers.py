"""Trackers: mirror runs and ablations to an experiment tracker (W&B, MLflow, ...). They never change results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .component import Component


def numeric_metrics(row: dict[str, Any]) -> dict[str, float | int]:
    """The values of a metrics row a tracker logs: finite numbers (booleans, strings, nulls and lists left out)."""
    return {k: v for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


@dataclass
class TrackedRun:
    """Who a run is, for a tracker to name and group it by.

    ``run_id`` is the run directory's name (unique within an ablation's output directory; in an ablation
    ``<arm>__seed<seed>__<config hash>``). ``experiment`` and ``arm`` are None for a lone ``shl run``.
    ``config`` is the fully resolved run config (a copy). A run that is redone (it failed, or was killed) is a
    new attempt: ``start_run`` is called again for it, and a tracker should open a new tracker run.
    """

    run_id: str
    run_dir: str
    experiment: str | None
    arm: str | None
    seed: int
    config: dict[str, Any]

    @property
    def name(self) -> str:
        """A display name: ``<arm>-seed<seed>`` (``<config name>-seed<seed>`` for a lone ``shl run``)."""
        return f"{self.arm or self.config.get('name') or 'run'}-seed{self.seed}"


@dataclass
class TrackedAblation:
    """A finished ablation's report, logged once per ablation (again only when the comparison changes).

    ``comparison`` holds the comparison table's rows (one dict per declared metric and arm, as in
    ``comparison.csv``); ``files`` the report's files by name (tables, the HTML page); ``figures`` the figure
    files by name (PNG and SVG).
    """

    experiment: str
    out_dir: str
    comparison: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)


class Tracker(Component):
    """Mirrors what shl records to an external tracker. One instance per run (``start_run`` ... ``end_run``),
    and one per ablation report (``log_ablation`` alone).

    ``check()`` runs once before an ablation's runs: raise if the tracker cannot work here (its library is
    missing), and the ablation runs without it. ``start_run(run)`` opens the tracker's run; ``log_metrics(step,
    row)`` logs one metrics.jsonl row at its round ``step`` (round 0 is the evaluation before any heal);
    ``end_run(status, message)`` closes it with shl's status (complete, stopped, starved, failed, nan) and, for
    a run that did not complete, the reason. A tracker must not change anything shl stores: it gets copies, and
    an exception it raises becomes a one-line warning naming it, after which it is not called again for that
    run (or report).
    """

    family: ClassVar[str] = "tracker"

    def check(self) -> None:
        """Raise if this tracker cannot work here (e.g. its library is not installed). The default checks
        nothing."""

    def start_run(self, run: TrackedRun) -> None:
        raise NotImplementedError

    def log_metrics(self, step: int, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def end_run(self, status: str, message: str) -> None:
        raise NotImplementedError

    def log_ablation(self, ablation: TrackedAblation) -> None:
        """Log the report of an ablation (its comparison table and figures). The default logs nothing."""
