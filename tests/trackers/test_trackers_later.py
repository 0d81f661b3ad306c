"""A tracker added to an ablation that already finished (here with --tracker on the command line): the next
`shl ablate` runs nothing, and logs every finished run from its stored config, metrics and status, and the
report; the one after logs nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import run_shl
from tracker_helpers import (
    copy_experiment, metrics_rows, mlflow_runs, mlflow_step_rows, numeric, tracker_env, wandb_runs,
)

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


def test_trackers_added_to_a_finished_ablation_log_every_run_once(plain, mlflow_uri, tmp_path):
    exp = copy_experiment(plain, tmp_path, with_runs=True)
    env = tracker_env(tmp_path)
    args = ("ablate", exp.name, "--out", "abl", "--tracker", "wandb:mode=offline,dir=wb,project=later",
            "--tracker", f"mlflow:tracking_uri={mlflow_uri},experiment=later")
    proc = run_shl(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 done, 0 to run" in proc.stdout and "trackers: logged 8 finished run(s)" in proc.stdout
    assert "warning" not in proc.stdout + proc.stderr

    wb = {r["name"]: r for r in wandb_runs(tmp_path / "wb", env)}
    ml = {r["name"]: r for r in mlflow_runs(mlflow_uri, "later")}
    runs = sorted(d for d in (tmp_path / "abl" / "runs").iterdir() if d.is_dir())
    assert len(wb) == len(ml) == len(runs) + 1 == 5  # and the report
    for d in runs:
        meta = json.loads((d / "meta.json").read_text())
        name = f"{meta['arm']}-seed{meta['seed']}"
        rows = {row["round"]: numeric(row) for row in metrics_rows(d)}
        assert wb[name]["history"] == rows
        assert (wb[name]["group"], wb[name]["job_type"], wb[name]["project"]) == ("exp", meta["arm"], "later")
        assert wb[name]["config"] == yaml.safe_load((d / "config.yaml").read_text())
        assert wb[name]["summary"]["shl_status"] == "complete" and wb[name]["exit_code"] == 0
        assert mlflow_step_rows(ml[name]) == {s: {k: float(v) for k, v in r.items()} for s, r in rows.items()}
        assert ml[name]["status"] == "FINISHED" and ml[name]["tags"]["shl.arm"] == meta["arm"]
        assert (d / "metrics.jsonl").read_bytes() == (plain / "abl" / "runs" / d.name / "metrics.jsonl").read_bytes()
    assert wb["exp-report"]["job_type"] == "report" and ml["exp-report"]["tags"]["shl.kind"] == "report"

    again = run_shl(*args, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trackers: logged" not in again.stdout
    assert len(list((tmp_path / "wb" / "wandb").glob("offline-run-*"))) == 5
    assert len(mlflow_runs(mlflow_uri, "later")) == 5
