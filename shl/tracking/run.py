"""Mirroring one run to its trackers while it executes, through the engine's observer hooks."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import TrackedRun
from ..hookspecs import hookimpl
from .common import Warn, warn_stderr, _one_line
from .guarded import _Guarded
from .record import _append_record


@dataclass
class TrackerPlan:
    """The trackers a task's run is mirrored to (resolved refs), and the ablation output directory whose record
    notes the runs logged (None for a lone ``shl run``). Plain data: it travels with the task to a worker."""

    refs: list[dict[str, Any]] = field(default_factory=list)
    out: str | None = None


class _Bridge:
    """The per-run plugin: the engine's observer hooks for this run's directory, passed to ``RunTracking``."""

    def __init__(self, tracking: RunTracking):
        self.tracking = tracking

    @hookimpl
    def shl_run_start(self, run_dir: str, config: dict[str, Any]) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.start(config)

    @hookimpl
    def shl_round_end(self, run_dir: str, round_index: int, metrics: dict[str, Any]) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.log(round_index, metrics)

    @hookimpl
    def shl_run_end(self, run_dir: str, status: str, message: str) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.end(status, message)


class RunTracking:
    """The trackers of one run, while it executes::

        with RunTracking(plan, host, run_dir, meta) as tracking:
            result = tracking.finished(Run(...).execute())

    Entering registers a per-run plugin on the host's plugin manager (removed on exit); with no trackers it does
    nothing. ``finish`` closes the tracker runs the engine did not (a run that raised); a run that finished
    (complete, stopped, starved) is recorded as logged for each tracker that logged all of it.
    """

    def __init__(self, plan: TrackerPlan | None, host, run_dir: str | Path, meta: dict[str, Any],
                 warn: Warn = warn_stderr):
        self.plan = plan
        self.host = host
        self.run_dir = str(Path(run_dir))
        self.meta = meta
        self.warn = warn
        self.trackers: list[_Guarded] = []
        self.started = False
        self.ended = False
        self._plugin_name: str | None = None

    def __enter__(self) -> RunTracking:
        if self.plan is None or not self.plan.refs:
            return self
        from ..manager import get_host

        self.host = self.host or get_host()
        label = f"{self.meta.get('arm')} seed {self.meta.get('seed')}" if self.meta.get("arm") else self.run_dir
        then = f"run {label} goes on without it"
        self.trackers = [_Guarded(r, self.host.registry, self.warn, then) for r in self.plan.refs]
        self._plugin_name = f"shl-tracking-{id(self)}"
        self.host.pm.register(_Bridge(self), name=self._plugin_name)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.started and not self.ended:
            self.end("failed", _one_line(f"{exc_type.__name__}: {exc}") if exc_type else "ended without a status")
        if self._plugin_name is not None:
            self.host.pm.unregister(name=self._plugin_name)
            self._plugin_name = None

    def is_mine(self, run_dir: str) -> bool:
        return str(Path(run_dir)) == self.run_dir

    def start(self, config: dict[str, Any]) -> None:
        run = TrackedRun(
            run_id=Path(self.run_dir).name, run_dir=str(Path(self.run_dir).resolve()),
            experiment=self.meta.get("experiment"), arm=self.meta.get("arm"),
            seed=int(self.meta.get("seed", config.get("seed", 0))), config=config,
        )
        self.started = True
        for t in self.trackers:
            t.call("start_run", copy.deepcopy(run))

    def log(self, step: int, row: dict[str, Any]) -> None:
        for t in self.trackers:
            t.call("log_metrics", int(step), copy.deepcopy(row))

    def end(self, status: str, message: str) -> None:
        if self.ended or not self.started:
            return
        from ..store import TERMINAL

        self.ended = True
        for t, ref in zip(self.trackers, self.plan.refs):
            if t.call("end_run", status, message) and status in TERMINAL and self.plan.out:
                _append_record(self.plan.out, ref, "run", Path(self.run_dir).name)

    def finish(self, status: str, message: str) -> None:
        """The run's outcome: closes tracker runs still open (the engine closes them itself when it can)."""
        if self.started and not self.ended:
            self.end(status, message)

    def finished(self, result: Any) -> Any:
        """``finish`` with a ``RunResult`` (its status and message), which it returns."""
        self.finish(result.status, result.message)
        return result
