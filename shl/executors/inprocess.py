"""The default executor: runs tasks one after another in this process."""

from __future__ import annotations

from typing import Callable, Sequence

from .base import Executor, RunResult, RunTask
from .task import execute_task


class InProcessExecutor(Executor):
    name = "inprocess"

    def __init__(self, host=None):
        self.host = host

    def run(
        self,
        tasks: Sequence[RunTask],
        on_result: Callable[[RunTask, RunResult], None],
        progress: Callable[[str, str], None] | None = None,
    ) -> None:
        for task in tasks:
            stage = (lambda s, _l=task.label: progress(_l, s)) if progress else None
            on_result(task, execute_task(task, stage, self.host))
