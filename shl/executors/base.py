"""The executor interface: the runner submits one picklable task per run; the executor only runs it.

All bookkeeping (what is done, what to redo, markers, the report) stays in the runner, so an executor is a
small class: ``submit`` every task, then report each result through ``on_result`` as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..engine.result import RunResult


@dataclass
class RunTask:
    """Everything a worker needs to execute one run, as plain data (picklable, no torch objects)."""

    run_dir: str
    config: dict[str, Any]
    meta: dict[str, Any]
    data_root: str | None = None
    label: str = ""
    shared_dir: str | None = None  # stage cache shared by runs whose early stages read identical inputs
    trackers: Any = None  # a shl.tracking.TrackerPlan: the trackers the run is mirrored to (W&B, MLflow)


class Executor:
    """Runs tasks. ``progress(label, stage)`` may be called with the current stage of a run."""

    name = "base"

    def run(
        self,
        tasks: Sequence[RunTask],
        on_result: Callable[[RunTask, RunResult], None],
        progress: Callable[[str, str], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (a no-op by default)."""
