"""Wall time per stage of a run, kept apart from the metrics rows (which the determinism promise covers)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

STAGES = ("load", "evaluate_base", "extract", "dose", "generate", "filter", "evaluate_steered", "calibrate_tau",
          "heal", "evaluate", "save")


class StageClock:
    """Accumulates wall seconds per named stage until ``take``. One stage runs at a time: ``start`` ends the
    running one. ``label`` (when given) is passed to the progress callback."""

    def __init__(self, progress: Callable[[str], None] | None = None):
        self.progress = progress or (lambda label: None)
        self._seconds: dict[str, float] = {}
        self._notes: dict[str, Any] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str, label: str | None = None) -> None:
        self.stop()
        if label:
            self.progress(label)
        self._current = (name, time.perf_counter())

    def stop(self) -> None:
        if self._current is not None:
            name, t0 = self._current
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - t0
            self._current = None

    @contextmanager
    def __call__(self, name: str, label: str | None = None) -> Iterator[None]:
        self.start(name, label)
        try:
            yield
        finally:
            self.stop()

    def note(self, **values: Any) -> None:
        self._notes.update(values)

    def take(self) -> dict[str, Any]:
        """``{"stages": {name: seconds}, "total_s": ..., **notes}`` since the last take; then start afresh."""
        self.stop()
        stages = {k: round(v, 4) for k, v in self._seconds.items()}
        out = {"stages": stages, "total_s": round(sum(stages.values()), 4), **self._notes}
        self._seconds, self._notes = {}, {}
        return out
