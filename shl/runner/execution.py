"""Executing the pending runs of a plan: choosing the executor and its workers, showing progress, recording
failures, and a one-line summary of where the time went."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.experiment import PlannedRun
from ..errors import ShlError
from ..executors import RunResult, RunTask, make_executor
from ..engine.result import BUSY
from ..store import FAILED, TERMINAL, RunStore, claim_dir, is_owned, writer_of
from ..progress_display import ProgressLines
from ..tracking import TrackerPlan
from .plan import Plan

if TYPE_CHECKING:  # pragma: no cover
    from .ablation import AblateOptions


def env_workers() -> int | None:
    """``SHL_WORKERS``: the default number of local workers (e.g. 1 to keep every run in one process)."""
    value = os.environ.get("SHL_WORKERS", "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 256:
        raise ShlError(f"SHL_WORKERS: expected a number of workers in 1..256, got {value!r}")
    return int(value)


def auto_workers(plan: Plan, pending: list[PlannedRun]) -> int:
    """Local worker processes when the user did not say: one per core (at most 4) for CPU runs of small
    models, where runs side by side beat one run with all threads; 1 for GPU runs."""
    from ..executors.local_pool import available_cores

    if any(r.config.device.startswith("cuda") for r in pending):
        return 1
    if any(r.config.device == "auto" for r in pending):
        try:
            import torch

            if torch.cuda.is_available():
                return 1
        except ImportError:
            pass
    return max(1, min(available_cores(), 4, len(pending)))


def execute(plan: Plan, pending: list[PlannedRun], opts: AblateOptions, host, con) -> list[tuple[RunTask, RunResult]]:
    """Run ``pending`` (reset first) on the executor the options and the experiment choose, with a progress bar;
    returns (task, result) pairs in the order the runs finished."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not pending:
        return []
    name = opts.executor or plan.exp.executor.name
    workers = opts.workers or env_workers() or plan.exp.executor.workers or auto_workers(plan, pending)
    if name == "ray":
        executor = make_executor(
            "ray", address=opts.ray_address or plan.exp.executor.address,
            num_cpus=plan.exp.executor.num_cpus, num_gpus=plan.exp.executor.num_gpus,
        )
    elif name == "local" or (name == "auto" and workers > 1):
        executor = make_executor("local", workers=workers, lock=plan.lock)
    else:
        executor = make_executor("inprocess", host=host)
    if opts.share:
        claim_dir(plan.out / "shared", "the shared-stage cache")
    tasks = []
    for run in pending:
        store = plan.store(run)
        store.check_writable()  # the worker resets it under the run's writer lock
        meta = {"experiment": plan.exp.name, "arm": run.arm, "seed": run.seed, "config_hash": run.hash,
                "experiment_file": str(plan.path)}
        tasks.append(RunTask(str(store.dir), run.config.model_dump(mode="json"), meta,
                             str(plan.path.parent.resolve()), f"{run.arm} seed {run.seed}",
                             str((plan.out / "shared").resolve()) if opts.share else None,
                             trackers=TrackerPlan(plan.trackers, str(plan.out.resolve())) if plan.trackers else None))
    results: list[tuple[RunTask, RunResult]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stage]}"))
    with Progress(*columns, console=con, transient=False) as bar:
        tid = bar.add_task("runs", total=len(tasks), stage="")

        def on_result(task: RunTask, res: RunResult) -> None:
            if res.status not in TERMINAL:
                record_failure(RunStore(task.run_dir), res)
            results.append((task, res))
            if res.status in TERMINAL:  # a finished run: its last round's numbers
                last = res.metrics[-1] if res.metrics else {}
                summary = ", ".join(f"{k}={last[k]:.3f}" for k in ("trait", "coherence")
                                    if isinstance(last.get(k), float))
            else:  # a failed run: why (its metrics rows stop before the failure, so they would mislead)
                summary = " ".join(res.message.split()) or "no reason given"
            bar.console.print(f"{task.label}: {res.status} ({summary or res.message})", markup=False)
            bar.advance(tid)

        shown = ProgressLines(con.is_terminal, lambda text: bar.update(tid, stage=text),
                              lambda line: bar.console.print(line, markup=False, highlight=False))

        def progress(label: str, stage: str) -> None:
            shown.update(f"{label}: {stage}")

        t0 = time.time()
        try:
            executor.run(tasks, on_result, progress)
        finally:
            executor.close()
        bar.update(tid, stage=f"done in {time.time() - t0:.0f}s")
    return results


def record_failure(store: RunStore, res: RunResult) -> None:
    """Make the FAILED.json of a run that did not finish hold its reason and traceback: written from the result
    when the worker wrote none (a worker process that died, a remote worker), or given the result's traceback when
    the worker's has none. Only in a directory shl owns that no live process is writing."""
    if res.status == BUSY or not is_owned(store.dir) or writer_of(store.dir):
        return
    path = store.dir / FAILED
    record = None
    if path.exists():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None
    if not isinstance(record, dict):
        store.fail(res.status, res.message, res.traceback)
    elif not record.get("traceback") and res.traceback:
        store.fail(str(record.get("status") or res.status), str(record.get("error") or res.message), res.traceback)


def print_stage_summary(con, run_dirs: list[Path]) -> None:
    """One line: where the wall time of the runs executed now went, by stage, largest first."""
    if not run_dirs:
        return
    from shl_analysis.timings import stage_breakdown

    df = stage_breakdown(run_dirs)
    if not df.empty:
        parts = ", ".join(f"{r.stage} {r.seconds:.1f}s ({100 * r.share:.0f}%)" for r in df.itertuples())
        con.print(f"time by stage over {len(run_dirs)} run(s): {parts}", markup=False)
