"""The Ray executor on a real local Ray instance: same runs, same results as in-process."""

from __future__ import annotations

import json

import pytest
from cli_helpers import done_dirs, run_shl, shl_env, write_experiment

pytest.importorskip("ray")


def _metrics(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("wall_s", None)
    return rows


def test_ray_executor_matches_inprocess(tmp_path):
    exp = write_experiment(tmp_path, executor={"name": "ray", "num_cpus": 1})
    env = shl_env(RAY_ADDRESS="", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    res = run_shl("ablate", exp, "--out", ray_out, "--no-report", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Started a local Ray instance" in res.stderr + res.stdout
    res = run_shl("ablate", exp, "--out", local_out, "--executor", "inprocess", "--no-report", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    ray_runs, local_runs = done_dirs(ray_out / "runs"), done_dirs(local_out / "runs")
    assert len(ray_runs) == 4 and sorted(ray_runs) == sorted(local_runs)
    for name in ray_runs:
        assert _metrics(ray_runs[name]) == _metrics(local_runs[name]), name
    # a second invocation finds every run complete and starts no Ray task
    res = run_shl("ablate", exp, "--out", ray_out, "--no-report", cwd=tmp_path, env=env)
    assert res.returncode == 0 and "0 to run" in res.stdout
