"""Kill -9 in the middle of `shl ablate`, then resume: exactly one complete run per (arm, seed), runs that were
complete before the kill are not redone, and no run holds duplicated metric rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import TINY_ARMS, run_shl, shl_cmd, shl_env, write_experiment

ROUNDS = 2


def _state(runs: Path) -> tuple[list[Path], list[Path]]:
    if not runs.is_dir():
        return [], []
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    done = [d for d in dirs if (d / "DONE.json").is_file()]
    partial = [d for d in dirs if not (d / "DONE.json").is_file() and (d / "metrics.jsonl").is_file()]
    return done, partial


@pytest.mark.system
@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_and_resume(tmp_path: Path, workers: str):
    """Killed in process (1 worker) or with a pool of worker processes (2): the whole process group dies."""
    exp = write_experiment(tmp_path, base_over={"loop": {"rounds": ROUNDS}})
    runs = tmp_path / "abl" / "runs"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(shl_cmd("ablate", exp.name, "--out", "abl", "--no-report", "--workers", workers), cwd=tmp_path,
                            env=shl_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    killed_while_partial = False
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            done, partial = _state(runs)
            # a run has started writing (metrics.jsonl exists) after at least one finished
            if done and partial:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_while_partial = True
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    assert killed_while_partial, (
        f"could not catch the ablation between runs (rc={proc.returncode}):\n" + (tmp_path / "first.log").read_text()[-3000:]
    )
    assert proc.returncode == -signal.SIGKILL

    done_before, partial = _state(runs)
    assert done_before and partial
    for d in partial:
        assert not (d / "DONE.json").exists()
    before = {d.name: (d / "DONE.json").stat().st_mtime_ns for d in done_before}
    metrics_before = {d.name: (d / "metrics.jsonl").read_text() for d in done_before}

    dry = run_shl("ablate", exp.name, "--out", "abl", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert f"{len(before)} done, {4 - len(before)} pending" in dry.stdout

    resumed = run_shl("ablate", exp.name, "--out", "abl", "--no-report", "--workers", workers, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"{len(before)} done, {4 - len(before)} to run" in resumed.stdout

    dirs = [d for d in runs.iterdir() if d.is_dir()]
    by_key: dict[tuple[str, int], list[Path]] = {}
    for d in dirs:
        meta = json.loads((d / "meta.json").read_text())
        by_key.setdefault((meta["arm"], meta["seed"]), []).append(d)
    assert set(by_key) == {(a, s) for a in TINY_ARMS for s in (0, 1)}
    for key, ds in by_key.items():
        assert len(ds) == 1, (key, ds)
        d = ds[0]
        done = json.loads((d / "DONE.json").read_text())
        assert done["status"] == "complete"
        assert not (d / "FAILED.json").exists()
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        assert [r["round"] for r in rows] == list(range(ROUNDS + 1)), (d.name, rows)
    for name, mtime in before.items():
        assert (runs / name / "DONE.json").stat().st_mtime_ns == mtime, f"{name} was re-executed"
        assert (runs / name / "metrics.jsonl").read_text() == metrics_before[name]
