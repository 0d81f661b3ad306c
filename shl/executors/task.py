"""The function that executes one run, in whatever process it lives in: ``shl run``, the in-process, local-pool
and Ray executors all call ``execute_task``."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

from ..engine.result import BUSY
from ..store import RunBusy, RunStore, is_owned
from .base import RunResult, RunTask


def execute_task(task: RunTask, progress: Callable[[str], None] | None = None, host=None,
                 echo: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> RunResult:
    """Run one task from scratch in ``task.run_dir`` under the directory's writer lock; never raises (failures
    are recorded in the store).

    A run another live process is writing is not touched (status ``busy``). A failed result carries its
    traceback, so it reaches FAILED.json even where this process could not write it (the runner writes
    FAILED.json from the result when the run directory has none); ``input_error`` marks a failure caused by the
    user's input (a ShlError), which ``shl run`` reports as one line. ``SystemExit`` raised by a component fails
    the run like any other exception instead of ending the process (Ctrl-C still does). ``echo`` receives the
    run's log lines and ``warn`` the trackers' warnings (``shl run`` prints both)."""
    from ..errors import ShlError

    store = RunStore(task.run_dir)
    try:
        with store.writing():
            return _execute(task, store, progress, host, echo, warn)
    except RunBusy as exc:  # another live process writes this run: touch nothing
        return RunResult(BUSY, str(exc), input_error=True)
    except ShlError as exc:  # the directory cannot be written (not shl's, a link): nothing was written
        return RunResult("failed", str(exc), traceback=traceback.format_exc(), input_error=True)


def _execute(task: RunTask, store: RunStore, progress, host, echo, warn) -> RunResult:
    from ..config.models import RunConfig
    from ..engine.loop import Run
    from ..errors import ShlError
    from ..manager import get_host
    from ..tracking import RunTracking
    from ..tracking.common import warn_stderr

    try:
        store.reset()
        host = host or get_host()
        cfg = RunConfig.model_validate(task.config)
        run = Run(cfg, host, store, progress=progress, data_root=Path(task.data_root) if task.data_root else None,
                  meta=task.meta, shared_dir=task.shared_dir, echo=echo)
        with RunTracking(task.trackers, host, task.run_dir, task.meta, warn or warn_stderr) as tracking:
            return tracking.finished(run.execute())
    except (Exception, SystemExit) as exc:
        user = isinstance(exc, ShlError)
        fault = isinstance(exc, OSError) and bool(getattr(exc, "filename", None))
        if fault:  # the environment: one line naming the path, as the CLI prints any filesystem fault
            message = f"{exc.filename}: {exc.strerror or exc}"
        else:
            message = str(exc) if user else " ".join(f"{type(exc).__name__}: {exc}".split())
        tb = traceback.format_exc()
        try:
            if is_owned(store.dir):
                store.fail("failed", message, "" if user else tb)
        except Exception:
            pass
        return RunResult("failed", message, traceback=tb, input_error=user, fault=fault)
