"""The 'wandb' tracker: one Weights & Biases run per shl run, grouped by experiment (W&B group) and arm (job
type), with the resolved config as its config; the ablation's report as one more run of the group."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from shl import api

FINISHED = ("complete", "stopped", "starved")


def _wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ImportError(f"the wandb tracker needs the wandb package: pip install 'shl[wandb]' ({exc})") from None
    return wandb


class WandbTracker(api.Tracker):
    """Logs each run to W&B: group = experiment, job type = arm, name = <arm>-seed<seed>; every metrics row at
    its round as the step; shl's status and reason in the summary (``shl_status``, ``shl_message``), and a run
    that did not finish marked failed. The report: a ``report`` run of the group with the comparison table and
    the PNG figures."""

    name = "wandb"
    description = "Weights & Biases: a run per shl run, grouped by experiment and arm; the report once"

    class Params(api.Params):
        project: str = Field("shl", description="W&B project")
        entity: Optional[str] = Field(None, description="W&B entity (team or user); null: your default")
        mode: Optional[Literal["online", "offline", "disabled"]] = Field(
            None, description="online, offline (files under dir, 'wandb sync' later) or disabled; null: "
            "WANDB_MODE, else online")
        dir: Optional[str] = Field(None, description="where W&B writes its files (a wandb/ folder inside); null: "
                                   "WANDB_DIR, else the working directory")
        tags: list[str] = Field(default_factory=list, description="tags added to every run")

    def __init__(self, params: Any = None):
        super().__init__(params)
        self.run: Any = None

    def check(self) -> None:
        _wandb()

    def _init(self, **kwargs: Any) -> Any:
        wandb = _wandb()
        p = self.params
        if p.dir:
            Path(p.dir).mkdir(parents=True, exist_ok=True)
        return wandb.init(project=p.project, entity=p.entity, mode=p.mode, dir=p.dir, reinit="create_new",
                          settings=wandb.Settings(silent=True, console="off"), **kwargs)

    def start_run(self, run: api.TrackedRun) -> None:
        tags = [t for t in (run.arm, f"seed{run.seed}") if t] + list(self.params.tags)
        self.run = self._init(group=run.experiment, job_type=run.arm or "run", name=run.name,
                              config=run.config, tags=tags, notes=f"shl run directory: {run.run_dir}")

    def log_metrics(self, step: int, row: dict[str, Any]) -> None:
        self.run.log(api.numeric_metrics(row), step=step)

    def end_run(self, status: str, message: str) -> None:
        self.run.summary["shl_status"] = status
        if message:
            self.run.summary["shl_message"] = message
        run, self.run = self.run, None
        run.finish(exit_code=0 if status in FINISHED else 1)

    def log_ablation(self, ablation: api.TrackedAblation) -> None:
        wandb = _wandb()
        run = self._init(group=ablation.experiment, job_type="report", name=f"{ablation.experiment}-report",
                         tags=["report", *self.params.tags], notes=f"shl ablation: {ablation.out_dir}")
        try:
            columns = list(dict.fromkeys(k for row in ablation.comparison for k in row))
            logged: dict[str, Any] = {
                "comparison": wandb.Table(columns=columns, data=[[row.get(c) for c in columns]
                                                                 for row in ablation.comparison]),
            }
            for name, path in sorted(ablation.figures.items()):
                if name.endswith(".png"):
                    logged[f"figures/{name[:-4]}"] = wandb.Image(path)
            run.log(logged)
        finally:
            run.finish()
