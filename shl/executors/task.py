"""The function an executor runs for one task, in whatever process it lives in."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

from ..store import RunStore
from .base import RunResult, RunTask


def execute_task(task: RunTask, progress: Callable[[str], None] | None = None, host=None) -> RunResult:
    """Run one task from scratch in ``task.run_dir``; never raises (failures are recorded in the store)."""
    from ..config.models import RunConfig
    from ..engine.loop import Run
    from ..manager import get_host

    store = RunStore(task.run_dir)
    store.reset()
    try:
        host = host or get_host()
        cfg = RunConfig.model_validate(task.config)
        run = Run(cfg, host, store, progress=progress, data_root=Path(task.data_root) if task.data_root else None,
                  meta=task.meta, shared_dir=task.shared_dir)
        outcome = run.execute()
        return RunResult(outcome.status, outcome.message, outcome.rounds, outcome.metrics)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        try:
            store.dir.mkdir(parents=True, exist_ok=True)
            store.fail("failed", message, traceback.format_exc())
        except Exception:
            pass
        return RunResult("failed", message)
