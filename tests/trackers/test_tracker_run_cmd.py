"""`shl run --tracker`: a lone run mirrored to W&B (mode from WANDB_MODE) and MLflow (experiment 'shl' unless
named), with the same numbers as its metrics.jsonl."""

from __future__ import annotations

import pytest
from cli_helpers import run_shl, write_run_config
from tracker_helpers import metrics_rows, mlflow_runs, mlflow_step_rows, numeric, tracker_env, wandb_runs

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


def test_shl_run_with_trackers(mlflow_uri, tmp_path):
    cfg = write_run_config(tmp_path)
    env = tracker_env(tmp_path)
    proc = run_shl("run", cfg.name, "--out", "one", "--tracker", "wandb:dir=wb",
                   "--tracker", f"mlflow:tracking_uri={mlflow_uri}", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "warning" not in proc.stdout + proc.stderr
    rows = {row["round"]: numeric(row) for row in metrics_rows(tmp_path / "one")}
    (w,) = wandb_runs(tmp_path / "wb", env)
    assert (w["name"], w["group"], w["job_type"], w["project"]) == ("tiny-seed0", None, "run", "shl")
    assert w["history"] == rows and w["summary"]["shl_status"] == "complete"
    (m,) = mlflow_runs(mlflow_uri, "shl")
    assert m["name"] == "tiny-seed0" and m["status"] == "FINISHED" and m["tags"]["shl.run_id"] == "one"
    assert mlflow_step_rows(m) == {s: {k: float(v) for k, v in r.items()} for s, r in rows.items()}
