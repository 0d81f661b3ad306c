"""The function an executor runs for one task, in whatever process it lives in."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

from ..store import RunStore
from .base import RunResult, RunTask


def execute_task(task: RunTask, progress: Callable[[str], None] | None = None, host=None) -> RunResult:
    """Run one task from scratch in ``task.run_dir``; never raises (failures are recorded in the store).

    A failed result carries its traceback, so it reaches FAILED.json even where this process could not write
    it (the runner writes FAILED.json from the result when the run directory has none). ``SystemExit`` raised by
    a component fails the run like any other exception instead of ending the process (Ctrl-C still does)."""
    from ..config.models import RunConfig
    from ..engine.loop import Run
    from ..manager import get_host
    from ..tracking import RunTracking

    store = RunStore(task.run_dir)
    store.reset()
    try:
        host = host or get_host()
        cfg = RunConfig.model_validate(task.config)
        run = Run(cfg, host, store, progress=progress, data_root=Path(task.data_root) if task.data_root else None,
                  meta=task.meta, shared_dir=task.shared_dir)
        with RunTracking(task.trackers, host, task.run_dir, task.meta) as tracking:
            return tracking.finished(run.execute())
    except (Exception, SystemExit) as exc:
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        tb = traceback.format_exc()
        try:
            store.dir.mkdir(parents=True, exist_ok=True)
            store.fail("failed", message, tb)
        except Exception:
            pass
        return RunResult("failed", message, traceback=tb)

