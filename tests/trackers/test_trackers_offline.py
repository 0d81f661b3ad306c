"""W&B (offline files) and MLflow (a local SQLite store) switched on by one line of an experiment: a real
`shl ablate` of 2 arms x 2 seeds, then everything the libraries stored is read back with their own tools and
compared with what shl stored: one tracker run per shl run, grouped by experiment and arm, the resolved config,
every metrics.jsonl row at its round, the status, the report once; and nothing logged twice on resume.
The tests share one ablation and run in file order (the last one resumes it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from cli_helpers import run_shl, write_experiment
from tracker_helpers import metrics_rows, mlflow_runs, mlflow_step_rows, numeric, tracker_env, wandb_runs

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, mlflow_uri):
    tmp = tmp_path_factory.mktemp("tracked")
    trackers = [{"name": "wandb", "params": {"project": "shl-test", "mode": "offline", "dir": "wb"}},
                {"name": "mlflow", "params": {"tracking_uri": mlflow_uri, "experiment": "live"}}]
    exp = write_experiment(tmp, trackers=trackers)
    env = tracker_env(tmp)
    proc = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wb, ml = wandb_runs(tmp / "wb", env), mlflow_runs(mlflow_uri, "live")
    runs = sorted(d for d in (tmp / "abl" / "runs").iterdir() if d.is_dir())
    return SimpleNamespace(tmp=tmp, exp=exp, env=env, uri=mlflow_uri, proc=proc, runs=runs, wandb=wb, mlflow=ml)


def by_name(runs: list[dict], report: bool) -> dict[str, dict]:
    def is_report(r: dict) -> bool:
        return r["job_type"] == "report" if "job_type" in r else r["tags"].get("shl.kind") == "report"

    picked = [r for r in runs if is_report(r) == report]
    named = {r["name"]: r for r in picked}
    assert len(named) == len(picked), "two tracker runs with the same name"
    return named


def who(run_dir: Path) -> tuple[str, int]:
    meta = json.loads((run_dir / "meta.json").read_text())
    return meta["arm"], meta["seed"]


def test_no_warnings_and_one_tracker_run_per_shl_run(tracked):
    assert "warning" not in tracked.proc.stdout + tracked.proc.stderr
    assert len(tracked.runs) == 4
    expected = {f"{arm}-seed{seed}" for arm, seed in map(who, tracked.runs)}
    assert set(by_name(tracked.wandb, report=False)) == expected
    assert set(by_name(tracked.mlflow, report=False)) == expected


def test_every_metrics_row_is_logged_at_its_round(tracked):
    wb, ml = by_name(tracked.wandb, False), by_name(tracked.mlflow, False)
    for d in tracked.runs:
        arm, seed = who(d)
        rows = {row["round"]: numeric(row) for row in metrics_rows(d)}
        assert len(rows) == 2 and rows[1]["trait"] == metrics_rows(d)[1]["trait"]
        assert wb[f"{arm}-seed{seed}"]["history"] == rows
        assert mlflow_step_rows(ml[f"{arm}-seed{seed}"]) == {
            step: {k: float(v) for k, v in row.items()} for step, row in rows.items()}


def test_runs_are_grouped_by_experiment_arm_and_seed_with_the_resolved_config_and_status(tracked):
    wb, ml = by_name(tracked.wandb, False), by_name(tracked.mlflow, False)
    for d in tracked.runs:
        arm, seed = who(d)
        config = yaml.safe_load((d / "config.yaml").read_text())
        w = wb[f"{arm}-seed{seed}"]
        assert (w["project"], w["group"], w["job_type"]) == ("shl-test", "exp", arm)
        assert {arm, f"seed{seed}"} <= set(w["tags"])
        assert w["config"] == config
        assert w["summary"]["shl_status"] == "complete" and w["exit_code"] == 0
        m = ml[f"{arm}-seed{seed}"]
        assert m["status"] == "FINISHED"
        assert {k: m["tags"][k] for k in ("shl.experiment", "shl.arm", "shl.seed", "shl.run_id", "shl.status")} == {
            "shl.experiment": "exp", "shl.arm": arm, "shl.seed": str(seed), "shl.run_id": d.name,
            "shl.status": "complete"}
        assert m["tags"]["shl.run_dir"] == str(d.resolve())
        assert m["params"]["heal.barrier.aggregator.name"] == arm and m["params"]["seed"] == str(seed)
        logged = json.loads(Path(m["client"].download_artifacts(m["id"], "config.json", str(tracked.tmp))).read_text())
        assert logged == config


def test_the_report_is_logged_once(tracked):
    report = tracked.tmp / "abl" / "report"
    table = list(csv.DictReader((report / "comparison.csv").open()))
    pngs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert table and pngs
    (w,) = by_name(tracked.wandb, True).values()
    assert (w["name"], w["group"], w["job_type"]) == ("exp-report", "exp", "report")
    (logged,) = w["history"].values()
    assert logged["comparison._type"] == "table-file" and logged["comparison.nrows"] == len(table)
    assert sorted({k.split(".")[0] for k in logged if k.startswith("figures/")}) == [f"figures/{p[:-4]}" for p in pngs]
    assert {logged[f"figures/{p[:-4]}._type"] for p in pngs} == {"image-file"}
    (m,) = by_name(tracked.mlflow, True).values()
    assert m["status"] == "FINISHED" and m["tags"]["shl.experiment"] == "exp"
    assert {"comparison.json", "report/comparison.csv", "report/comparison.md"} <= set(m["artifacts"])
    assert {f"report/figures/{p}" for p in pngs} <= set(m["artifacts"])
    rows = json.loads(Path(m["client"].download_artifacts(m["id"], "comparison.json", str(tracked.tmp))).read_text())
    assert len(rows["data"]) == len(table)


def test_trackers_change_no_result(tracked, plain):
    for d in tracked.runs:
        assert (d / "metrics.jsonl").read_bytes() == (plain / "abl" / "runs" / d.name / "metrics.jsonl").read_bytes()
    assert {d.name for d in tracked.runs} == {d.name for d in (plain / "abl" / "runs").iterdir() if d.is_dir()}


def test_a_resumed_ablation_logs_nothing_twice(tracked):
    record = (tracked.tmp / "abl" / "tracked.jsonl").read_text()
    assert len(record.splitlines()) == 2 * 4 + 2  # each tracker: every run, and the report
    again = run_shl("ablate", tracked.exp.name, "--out", "abl", cwd=tracked.tmp, env=tracked.env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "4 done, 0 to run" in again.stdout and "trackers: logged" not in again.stdout
    assert len(list((tracked.tmp / "wb" / "wandb").glob("offline-run-*"))) == len(tracked.wandb) == 5
    assert len(mlflow_runs(tracked.uri, "live")) == len(tracked.mlflow) == 5
    assert (tracked.tmp / "abl" / "tracked.jsonl").read_text() == record
