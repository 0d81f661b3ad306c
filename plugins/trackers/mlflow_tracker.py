"""The 'mlflow' tracker: one MLflow run per shl run in an MLflow experiment named after the shl experiment,
tagged with arm and seed, the resolved config as params (and config.json); the report as one more run."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from pydantic import Field

from shl import api

FINISHED = ("complete", "stopped", "starved")
MAX_PARAM = 6000  # MLflow's limit on a param value
MAX_TAG = 5000


def _client(tracking_uri: str | None) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise ImportError(f"the mlflow tracker needs MLflow: pip install 'shl[mlflow]' ({exc})") from None
    return MlflowClient(tracking_uri=tracking_uri)


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys; strings as they are, other values as JSON text."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = (value if isinstance(value, str) else json.dumps(value, default=str))[:MAX_PARAM]
    return out


class MLflowTracker(api.Tracker):
    """Logs each run to MLflow: experiment = the shl experiment (or ``experiment``), run name
    <arm>-seed<seed>, tags ``shl.experiment``, ``shl.arm``, ``shl.seed``, ``shl.run_id``, ``shl.run_dir``; the
    resolved config as dotted params and the artifact config.json; every metrics row at its round as the step;
    ``shl.status`` (and ``shl.message``) at the end, the run FINISHED or FAILED. The report: a run tagged
    ``shl.kind=report`` with the comparison table (comparison.json) and the report's files and figures."""

    name = "mlflow"
    description = "MLflow: a run per shl run, tagged by experiment, arm and seed; the report once"

    class Params(api.Params):
        tracking_uri: Optional[str] = Field(
            None, description="the tracking store, e.g. sqlite:///mlflow.db or http://host:5000; null: "
            "MLFLOW_TRACKING_URI, else MLflow's default")
        experiment: Optional[str] = Field(None, description="MLflow experiment; null: the shl experiment's name "
                                          "('shl' for a lone shl run)")
        artifact_location: Optional[str] = Field(None, description="where a new MLflow experiment keeps "
                                                 "artifacts; null: the store's default")
        tags: dict[str, str] = Field(default_factory=dict, description="tags added to every run")

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.client: Any = None
        self.run_id: str | None = None

    def check(self) -> None:
        _client(self.params.tracking_uri).search_experiments(max_results=1)  # creates a new local store now

    def _experiment_id(self, client: Any, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=self.params.artifact_location)
        except MlflowException:  # created meanwhile by a run in another worker
            return client.get_experiment_by_name(name).experiment_id

    def _create_run(self, experiment: str | None, name: str, tags: dict[str, str]) -> str:
        self.client = _client(self.params.tracking_uri)
        exp_id = self._experiment_id(self.client, self.params.experiment or experiment or "shl")
        return self.client.create_run(exp_id, run_name=name, tags={**tags, **self.params.tags}).info.run_id

    def start_run(self, run: api.TrackedRun) -> None:
        from mlflow.entities import Param

        tags = {"shl.experiment": run.experiment or "", "shl.arm": run.arm or "", "shl.seed": str(run.seed),
                "shl.run_id": run.run_id, "shl.run_dir": run.run_dir}
        self.run_id = self._create_run(run.experiment, run.name, tags)
        params = [Param(k, v) for k, v in flat_params(run.config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_dict(self.run_id, run.config, "config.json")

    def log_metrics(self, step: int, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in api.numeric_metrics(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def end_run(self, status: str, message: str) -> None:
        self.client.set_tag(self.run_id, "shl.status", status)
        if message:
            self.client.set_tag(self.run_id, "shl.message", message[:MAX_TAG])
        self.client.set_terminated(self.run_id, "FINISHED" if status in FINISHED else "FAILED")

    def log_ablation(self, ablation: api.TrackedAblation) -> None:
        import pandas as pd

        run_id = self._create_run(ablation.experiment, f"{ablation.experiment}-report",
                                  {"shl.experiment": ablation.experiment, "shl.kind": "report",
                                   "shl.out_dir": ablation.out_dir})
        try:
            self.client.log_table(run_id, data=pd.DataFrame(ablation.comparison), artifact_file="comparison.json")
            for path in ablation.files.values():
                self.client.log_artifact(run_id, path, "report")
            for path in ablation.figures.values():
                self.client.log_artifact(run_id, path, "report/figures")
        except Exception:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
