"""Read the runner's on-disk result store into pandas tables (the format is ``shl.store``'s)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Collection, Any

import pandas as pd
from shl.store import (
    META, METRICS, RUNS_DIR, UNTRUSTED, USABLE, inspect_run, parse_json, parse_run_dirname, read_lines, read_meta,
)

TIDY_COLUMNS = ["experiment", "arm", "seed", "run_id", "status", "round", "metric", "value"]
RUN_COLUMNS = ["experiment", "arm", "seed", "run_id", "status", "message"]
USABLE_STATUSES = USABLE

__all__ = ["RUN_COLUMNS", "TIDY_COLUMNS", "UNTRUSTED", "USABLE_STATUSES", "load_runs", "missing_values", "read_metric_rows",
           "run_table"]


def _run_dirs(out_dir: Path, run_ids: Collection[str] | None = None) -> list[Path]:
    runs = Path(out_dir) / RUNS_DIR
    if not runs.is_dir():
        return []
    found = (p for p in runs.iterdir() if p.is_dir() and (parse_run_dirname(p.name) or (p / META).is_file()))
    return sorted(p for p in found if run_ids is None or p.name in run_ids)


def _run_info(run_dir: Path) -> dict[str, Any]:
    meta = read_meta(run_dir)
    named = parse_run_dirname(run_dir.name)
    arm = meta.get("arm", named[0] if named else None)
    seed = meta.get("seed", named[1] if named else None)
    state = inspect_run(run_dir)
    status, message = state.status, state.reason
    return {
        "experiment": meta.get("experiment"),
        "arm": arm,
        "seed": None if seed is None else int(seed),
        "run_id": run_dir.name,
        "status": status,
        "message": message,
    }


def read_metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Parsed metrics.jsonl rows of one run (malformed lines and rows without an int round skipped)."""
    rows: list[dict[str, Any]] = []
    for line in read_lines(Path(run_dir) / METRICS):
        line = line.strip()
        if not line:
            continue
        try:
            obj = parse_json(line)
        except ValueError:
            continue
        r = obj.get("round") if isinstance(obj, dict) else None
        if isinstance(r, bool) or not isinstance(r, (int, float)) or (isinstance(r, float) and not r.is_integer()):
            continue
        obj["round"] = int(r)
        rows.append(obj)
    return rows


def run_table(out_dir: str | Path, run_ids: Collection[str] | None = None) -> pd.DataFrame:
    """One row per run directory: experiment, arm, seed, run_id, status, message.

    ``run_ids`` restricts the table to those run directory names (e.g. the runs of the current plan, so
    runs of an older config in the same directory are not compared).

    status is the verified state of the run directory (``shl.store.inspect_run``): "complete", "stopped",
    "starved", "failed", "nan", "corrupt" (a finished run that fails its integrity check; ``message`` says
    why), "incomplete" or "foreign".
    """
    recs = [_run_info(d) for d in _run_dirs(Path(out_dir), run_ids)]
    df = pd.DataFrame(recs, columns=RUN_COLUMNS)
    return df.astype({"seed": "Int64"}) if len(df) else df


def load_runs(out_dir: str | Path, run_ids: Collection[str] | None = None) -> pd.DataFrame:
    """Tidy table, one row per (run, round, metric): experiment, arm, seed, run_id,
    status, round, metric, value. Only int/float metric values are kept (not bool,
    strings, lists, null or NaN). Unknown files and directories are ignored."""
    recs: list[tuple] = []
    for run_dir in _run_dirs(Path(out_dir), run_ids):
        info = _run_info(run_dir)
        if info["status"] in UNTRUSTED:
            continue  # rows that fail their integrity check, or that shl did not write, are never read
        for row in read_metric_rows(run_dir):
            for key, v in row.items():
                if key == "round" or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                if isinstance(v, float) and math.isnan(v):
                    continue
                recs.append((info["experiment"], info["arm"], info["seed"], info["run_id"],
                             info["status"], row["round"], key, float(v)))
    df = pd.DataFrame.from_records(recs, columns=TIDY_COLUMNS)
    return df.astype({"seed": "Int64", "round": "int64", "value": "float64"})


def missing_values(out_dir: str | Path, run_ids: Collection[str] | None = None) -> set[tuple[str, int, str]]:
    """(run_id, round, metric) of every metric value a run stored as null or NaN: ``load_runs`` leaves those rows
    out, and an endpoint must not silently read an earlier round in their place (see ``report._endpoints``)."""
    out: set[tuple[str, int, str]] = set()
    for run_dir in _run_dirs(Path(out_dir), run_ids):
        info = _run_info(run_dir)
        if info["status"] in UNTRUSTED:
            continue
        for row in read_metric_rows(run_dir):
            if not isinstance(row.get("round"), int) or isinstance(row.get("round"), bool):
                continue
            for key, v in row.items():
                if key != "round" and (v is None or (isinstance(v, float) and math.isnan(v))):
                    out.add((info["run_id"], row["round"], key))
    return out
