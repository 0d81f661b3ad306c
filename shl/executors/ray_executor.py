"""Dispatch runs to a Ray cluster (``pip install 'shl[ray]'``). Each run is one Ray task.

A failed run's traceback comes back in its ``RunResult``, so the runner writes it to FAILED.json even when the
worker's own write did not reach the output directory; a Ray-level failure (worker lost) carries Ray's error."""

from __future__ import annotations

import traceback
from typing import Callable, Sequence

from ..errors import ShlError
from .base import Executor, RunResult, RunTask
from .task import execute_task


def _remote_run(task: RunTask) -> RunResult:
    return execute_task(task)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0, init_kwargs=None):
        try:
            import ray
        except ImportError:
            raise ShlError("executor 'ray': Ray is not installed (pip install 'shl[ray]')") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs = dict(init_kwargs or {})
            if address:
                kwargs["address"] = address
            ray.init(**kwargs)
            self.started = True
        self.options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": 0}

    def run(
        self,
        tasks: Sequence[RunTask],
        on_result: Callable[[RunTask, RunResult], None],
        progress: Callable[[str, str], None] | None = None,
    ) -> None:
        remote = self.ray.remote(**self.options)(_remote_run)
        pending = {remote.remote(t): t for t in tasks}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as exc:  # the worker died (OOM, node lost), or the task raised outside the run
                    first = (str(exc).strip().splitlines() or [""])[0]
                    # a RayTaskError's text holds the remote traceback; keep it all for FAILED.json
                    result = RunResult("failed", f"ray task failed: {type(exc).__name__}: {first}",
                                       traceback=f"{exc}\n\n{traceback.format_exc()}")
                on_result(task, result)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
