"""Helpers for the tracker tests: an environment in which W&B writes only offline files under a temporary folder
(no network, no home-directory state), and readers that load back what W&B and MLflow stored, through their own
supported tools (``wandb leet inspect --json`` over a run's .wandb log; ``MlflowClient`` over the store)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli_helpers import shl_env


def tracker_env(tmp: Path, **extra: str) -> dict[str, str]:
    """``shl_env`` with W&B kept offline, silent and inside ``tmp`` (its cache, config and staging folders too)."""
    env = shl_env(**extra)
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
               WANDB_CACHE_DIR=str(tmp / "wandb-home" / "cache"), WANDB_CONFIG_DIR=str(tmp / "wandb-home" / "config"),
               WANDB_DATA_DIR=str(tmp / "wandb-home" / "data"))
    env.update(extra)
    return env


def copy_experiment(plain: Path, to: Path, with_runs: bool = False) -> Path:
    """The plain experiment's files (and with ``with_runs`` its finished ablation ``abl``) copied into ``to``."""
    for name in ("exp.yaml", "exp_base.yaml"):
        shutil.copy(plain / name, to / name)
    if with_runs:
        shutil.copytree(plain / "abl", to / "abl")
    return to / "exp.yaml"


def numeric(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def metrics_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ W&B


def wandb_records(wandb_file: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", str(wandb_file), "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def wandb_runs(root: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Every offline W&B run under ``root/wandb``: id, name, group, job_type, project, config (without W&B's own
    ``_wandb``), tags, history ({step: logged values}), summary (merged updates) and exit_code."""
    runs = []
    for f in sorted(Path(root).glob("wandb/offline-run-*/run-*.wandb")):
        run: dict[str, Any] = {"history": {}, "summary": {}, "exit_code": None, "dir": f.parent}
        for rec in wandb_records(f, env):
            kind = rec.get("type")
            if kind == "run":
                r = rec["run"]
                config = dict(r.get("config", {}).get("update", {}))
                config.pop("_wandb", None)
                run.update(id=r["run_id"], name=r.get("display_name"), group=r.get("run_group"),
                           job_type=r.get("job_type"), project=r.get("project"), tags=r.get("tags", []),
                           config=config)
            elif kind == "history":
                item = rec["history"]["item"]
                run["history"][int(rec["history"]["step"]["num"])] = {k: v for k, v in item.items()
                                                                       if not k.startswith("_")}
            elif kind == "summary":
                run["summary"].update(rec["summary"].get("update", {}))
            elif kind == "exit":
                run["exit_code"] = rec["exit"].get("exit_code", 0)
        runs.append(run)
    return runs


# ------------------------------------------------------------------------------------------ MLflow


def mlflow_runs(uri: str, experiment: str) -> list[dict[str, Any]]:
    """Every run of an MLflow experiment: name, status, tags, params, history ({key: {step: value}}) and the
    artifact paths (recursively)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out = []
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        history = {key: {m.step: m.value for m in client.get_metric_history(r.info.run_id, key)}
                   for key in r.data.metrics}
        artifacts, todo = [], [None]
        while todo:
            for a in client.list_artifacts(r.info.run_id, todo.pop()):
                (todo if a.is_dir else artifacts).append(a.path)
        out.append({"id": r.info.run_id, "name": r.info.run_name, "status": r.info.status, "tags": r.data.tags,
                    "params": r.data.params, "history": history, "artifacts": sorted(artifacts), "client": client})
    return out


def mlflow_step_rows(run: dict[str, Any]) -> dict[int, dict[str, float]]:
    """An MLflow run's metric history regrouped by step: {step: {key: value}}."""
    rows: dict[int, dict[str, float]] = {}
    for key, by_step in run["history"].items():
        for step, value in by_step.items():
            rows.setdefault(step, {})[key] = value
    return rows
