"""The ablation record of an output directory (what ``shl report`` compares) and the directory's upkeep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..config.experiment import plan_runs
from ..errors import ShlError
from ..store import (
    DIR_MARKER, FORMAT_VERSION, OUT_RECORD, RUNS_DIR, atomic_write, claim_dir, is_owned, is_plain_dir, is_plain_file,
    read_ablation_record, remove_stale_tmp, writer_of,
)
from .plan import Plan


def read_record(out: Path) -> dict[str, Any] | None:
    """The ablation record of an output directory (None when there is none); a malformed one is an error."""
    return read_ablation_record(out)


def write_experiment_record(plan: Plan, registry) -> list[str]:
    """Record the resolved experiment (comparison spec included) and the run directories ``shl report``
    compares: every (arm, seed) planned by this or an earlier invocation on this directory (``--seeds 5-9``
    after ``--seeds 0-4`` compares all ten), each under the CURRENT config. Runs of an older config stay on disk
    but are not compared; an (arm, seed) that was never run under the current config counts as missing."""
    path = plan.out / OUT_RECORD
    previous = read_record(plan.out) or {}
    if previous.get("name") != plan.exp.name:
        previous = {}
    seeds = sorted(set(previous.get("plan_seeds") or []) | {r.seed for r in plan.runs})
    arms = [a for a in plan.exp.arms if a in set(previous.get("plan_arms") or []) | {r.arm for r in plan.runs}]
    if seeds == sorted({r.seed for r in plan.runs}) and set(arms) == {r.arm for r in plan.runs}:
        recorded = plan.runs
    else:
        recorded = plan_runs(plan.path, plan.exp, plan.base, registry, plan.overrides, seeds, arms)
    record = {"format": "shl-ablation", "version": FORMAT_VERSION, **plan.exp.model_dump(mode="json")}
    record.update(overrides=plan.overrides, source=str(plan.path), plan_seeds=seeds, plan_arms=arms,
                  runs=[r.dirname for r in recorded])
    if previous.get("adaptive"):
        record["adaptive"] = previous["adaptive"]
    atomic_write(path, yaml.safe_dump(record, sort_keys=False))
    return record["runs"]


def prepare_out(plan: Plan, con) -> None:
    """Claim the output's subdirectories for shl and clear temporary files left by killed writes: only shl's own
    temporary names (``.<name>.shl-<random>.tmp``), only in directories shl marked (in the output directory itself,
    only those of the ablation record), never through a symbolic link, never in a run another process writes."""
    claim_dir(plan.out / RUNS_DIR, "the runs")
    removed = remove_stale_tmp(plan.out, targets={OUT_RECORD})
    for d in (plan.out / RUNS_DIR).iterdir():
        if is_plain_dir(d) and is_owned(d) and not writer_of(d):
            removed += remove_stale_tmp(d)
            removed += remove_stale_tmp(d / "vectors")
    for d in (plan.out / "shared", plan.out / "report", plan.out / "report" / "figures"):
        if is_plain_dir(d) and is_plain_file(d / DIR_MARKER):
            removed += remove_stale_tmp(d)
    if removed:
        con.print(f"removed {len(removed)} temporary file(s) left by an interrupted write", markup=False)
