"""LocalPoolExecutor: a real 2-worker pool (spawn) on tiny runs gives the in-process executor's metrics; a run
that fails and a worker that dies are reported as failed; shared-stage leaders run before their followers."""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path

import pytest

from shl.executors import InProcessExecutor, RunResult, RunTask, make_executor
from shl.executors.local_pool import LocalPoolExecutor, share_group

_spec = importlib.util.spec_from_file_location("cli_helpers", Path(__file__).parents[1] / "cli" / "cli_helpers.py")
cli_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli_helpers)


def _tasks(root: Path, arms=("mean", "rmse"), seeds=(0, 1), shared: bool = True) -> list[RunTask]:
    """RunTasks built like ``shl.runner.execution.execute`` builds them (seed-major: arm x seed)."""
    from shl.config import load_run_config
    from shl.manager import get_host

    root.mkdir(parents=True, exist_ok=True)
    path = cli_helpers.write_run_config(root)
    out = []
    for arm in arms:
        for seed in seeds:
            cfg = load_run_config(path, [f"seed={seed}", f"heal.barrier.aggregator={arm}"], get_host().registry)
            run_dir = root / f"{arm}-s{seed}"
            meta = {"experiment": "pool", "arm": arm, "seed": seed}
            out.append(RunTask(str(run_dir), cfg.model_dump(mode="json"), meta, None, f"{arm} seed {seed}",
                               str(root / "shared") if shared else None))
    return out


def _collect(executor, tasks):
    results, stages = {}, []
    executor.run(tasks, lambda t, r: results.__setitem__(t.label, r), lambda label, stage: stages.append((label, stage)))
    executor.close()
    return results, stages


def _strip(metrics):
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in metrics]


@pytest.mark.system
def test_two_workers_give_the_inprocess_metrics(tmp_path):
    results, stages = _collect(LocalPoolExecutor(workers=2, threads=1), _tasks(tmp_path / "pool"))
    want, _ = _collect(InProcessExecutor(), _tasks(tmp_path / "inproc"))
    assert set(results) == set(want) and len(results) == 4
    for label, res in results.items():
        assert res.status == "complete", (label, res.message)
        assert _strip(res.metrics) == _strip(want[label].metrics), label
    assert any(stage == "evaluate base" for _, stage in stages)  # progress is forwarded
    # the leaders (first arm of each seed) start before any follower: one shared-stage entry per seed, no race
    started = [label for label, stage in stages if stage == "load model"]
    assert set(started[:2]) == {"mean seed 0", "mean seed 1"}, started
    assert len(list((tmp_path / "pool" / "shared").iterdir())) == 2  # one shared entry per seed


@pytest.mark.system
def test_a_failing_run_and_a_dying_worker_are_reported_as_failed(tmp_path):
    tasks = _tasks(tmp_path, arms=("mean",), seeds=(0, 1), shared=False)
    tasks[0].config["steer"]["layers"] = [99]  # fails inside the run (no such layer)
    executor = LocalPoolExecutor(workers=2, threads=1)
    killed = []

    def progress(label, stage):
        if label == "mean seed 1" and not killed:
            wid = next(w for w, i in executor._running.items() if tasks[i].label == label)
            killed.append(executor._procs[wid].pid)
            os.kill(killed[-1], signal.SIGKILL)  # the worker running seed 1 dies mid-run

    results = {}
    executor.run(tasks, lambda t, r: results.__setitem__(t.label, r), progress)
    executor.close()
    assert set(results) == {"mean seed 0", "mean seed 1"}
    assert results["mean seed 0"].status == "failed"
    assert "99" in results["mean seed 0"].message
    assert results["mean seed 1"].status == "failed"
    assert "worker process died" in results["mean seed 1"].message
    assert killed
    assert not executor._procs  # every worker is gone


def test_share_groups_are_the_arms_of_one_seed(tmp_path):
    tasks = _tasks(tmp_path, arms=("mean", "rmse", "max"), seeds=(0, 1, 2))
    groups = [share_group(t) for t in tasks]
    assert groups[0] == groups[3] == groups[6] and groups[0] != groups[1]  # same seed, different arms
    unshared = _tasks(tmp_path, shared=False)
    assert share_group(unshared[0]) is None


def test_make_executor_local(tmp_path):
    ex = make_executor("local", workers=3)
    assert isinstance(ex, LocalPoolExecutor) and ex.workers == 3 and ex.threads >= 1
    ex.close()
