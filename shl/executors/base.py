"""The executor interface: the runner submits one picklable task per run; the executor only runs it.

All bookkeeping (what is done, what to redo, markers, the report) stays in the runner, so an executor is a
small class: ``submit`` every task, then report each result through ``on_result`` as it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass
class RunTask:
    """Everything a worker needs to execute one run, as plain data (picklable, no torch objects)."""

    run_dir: str
    config: dict[str, Any]
    meta: dict[str, Any]
    data_root: str | None = None
    label: str = ""
    shared_dir: str | None = None  # stage cache shared by runs whose early stages read identical inputs


@dataclass
class RunResult:
    """The outcome of one task: ``status`` (complete, stopped, starved, failed, nan), a one-line ``message`` (the
    reason, for a run that did not finish), the heal rounds done, the metrics rows, and for a failed run the
    ``traceback`` (or, where none exists, e.g. a worker process that died, a line saying why), which the runner
    writes to FAILED.json when the worker could not."""

    status: str
    message: str
    rounds: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    traceback: str = ""


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
