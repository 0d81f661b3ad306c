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


@pytest.mark.system
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


@pytest.mark.slow
def test_a_killed_ray_driver_leaves_no_task_writing(tmp_path):
    """SIGKILL the driver once a run is mid-way: within seconds no run directory is held by a live writer (Ray
    ends the dead driver's tasks), and the resumed ablation completes every run with the uninterrupted results."""
    import signal
    import subprocess
    import time

    from cli_helpers import shl_cmd

    from shl.store import inspect_run, writer_of

    exp = write_experiment(tmp_path, executor={"name": "ray", "num_cpus": 1}, seeds="0-3")
    env = shl_env(RAY_ADDRESS="", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    out = tmp_path / "ray"
    proc = subprocess.Popen(shl_cmd("ablate", exp, "--out", out, "--no-report"), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("runs/*/vectors/round_0.safetensors")):
        time.sleep(0.05)
    held = [d for d in (out / "runs").iterdir() if writer_of(d)]
    assert held, "a task was writing when the driver was killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while [d for d in held if writer_of(d)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [d.name for d in held if writer_of(d)], "a Ray task kept writing after its driver died"
    res = run_shl("ablate", exp, "--out", out, "--no-report", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    local = tmp_path / "local"
    res = run_shl("ablate", exp, "--out", local, "--executor", "inprocess", "--no-report", cwd=tmp_path, env=env)
    assert res.returncode == 0
    ray_runs, local_runs = done_dirs(out / "runs"), done_dirs(local / "runs")
    assert sorted(ray_runs) == sorted(local_runs) and len(ray_runs) == 8
    for name in ray_runs:
        assert inspect_run(ray_runs[name]).status == "complete"
        assert _metrics(ray_runs[name]) == _metrics(local_runs[name]), name
