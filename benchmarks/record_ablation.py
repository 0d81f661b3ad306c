"""Run a shipped experiment with `shl ablate` and record what the README says about it: one results file per
experiment, ``benchmarks/results/ablations/<name>.json``, from which ``benchmarks/readme_tables.py`` writes the
README's tables.

    python benchmarks/record_ablation.py experiments/barrier_agg.yaml            # runs it into a fresh temp store
    python benchmarks/record_ablation.py experiments/barrier_agg.yaml --out runs/barrier_agg   # or a store you keep
    python benchmarks/record_ablation.py experiments/real/barrier_smollm2.yaml --from-store runs/x --wall-time-s 1326

The results file holds: the experiment (name, file, description, arms, seeds), the command and its wall time,
the load average before and after (measure on an otherwise idle machine and say so), the environment the runs
recorded (library versions, torch build, CPU, shl commit; every distinct one, and the runs that have none), the
report's comparison rows (``report/comparison.csv``), its frontier rows when the experiment declares a frontier
(``report/frontier.csv``) and the per-arm mean of each compared metric per round
(``report/tidy.csv``). With ``--from-store`` nothing runs: the store's report is read (``shl report`` writes it)
and the wall time, if given, is recorded as measured outside this script (``wall_time_source``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ablations"


def _number(text: str):
    if text in ("", "nan", "None"):
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_comparison(report: Path) -> list[dict]:
    with open(report / "comparison.csv", newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def read_frontier(report: Path) -> list[dict] | None:
    path = report / "frontier.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def read_trajectories(report: Path, metrics: list[str]) -> dict[str, dict[str, list[float]]]:
    """metric -> arm -> mean over the arm's runs of the metric at each round (round 0 = before any heal)."""
    import pandas as pd

    tidy = pd.read_csv(report / "tidy.csv")
    tidy = tidy[tidy["metric"].isin(metrics)]
    out: dict[str, dict[str, list[float]]] = {}
    for (metric, arm), part in tidy.groupby(["metric", "arm"], sort=False):
        means = part.groupby("round")["value"].mean().sort_index()
        out.setdefault(metric, {})[arm] = [round(float(v), 6) for v in means.to_list()]
    return out


def run_environments(store: Path) -> dict:
    """The distinct environments the store's runs recorded in meta.json, and the runs without one."""
    seen: list[dict] = []
    runs_of: list[list[str]] = []
    missing: list[str] = []
    for meta_path in sorted((store / "runs").glob("*/meta.json")):
        env = json.loads(meta_path.read_text()).get("environment")
        run = meta_path.parent.name
        if env is None:
            missing.append(run)
            continue
        env = {k: v for k, v in env.items() if k not in ("threads",)}
        if env in seen:
            runs_of[seen.index(env)].append(run)
        else:
            seen.append(env)
            runs_of.append([run])
    return {"distinct": [{"environment": e, "runs": len(r)} for e, r in zip(seen, runs_of)],
            "runs_without_environment": missing}


def record(experiment: Path, store: Path, wall_time_s: float | None, wall_source: str, load: dict,
           command: str | None) -> dict:
    import yaml

    spec = yaml.safe_load(experiment.read_text())
    report = store / "report"
    comparison = read_comparison(report)
    metrics = sorted({row["metric"] for row in comparison})
    return {
        "experiment": spec.get("name"),
        "file": str(experiment.resolve().relative_to(ROOT)) if experiment.resolve().is_relative_to(ROOT)
        else str(experiment),
        "description": spec.get("description"),
        "arms": list((spec.get("arms") or {}).keys()),
        "seeds": sorted({int(row["seed"]) for row in csv.DictReader(open(report / "runs.csv", newline=""))}),
        "command": command,
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 1),
        "wall_time_source": wall_source,
        "load_average": load,
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "environment": run_environments(store),
        "comparison": comparison,
        **({"frontier": frontier} if (frontier := read_frontier(report)) is not None else {}),
        "trajectories": read_trajectories(report, metrics),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="the store to run into (default: a temporary directory)")
    ap.add_argument("--from-store", type=Path, default=None, help="record an existing store; run nothing")
    ap.add_argument("--wall-time-s", type=float, default=None, help="with --from-store: its measured wall time")
    ap.add_argument("--results", type=Path, default=None, help="the results file (default: "
                    "benchmarks/results/ablations/<name>.json)")
    ap.add_argument("--note", default=None, help="recorded as is: what a reader should know about this measurement")
    ap.add_argument("ablate_args", nargs="*", help="more arguments for shl ablate (after --)")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.ablate_args = [*args.ablate_args, *extra]

    import yaml

    name = yaml.safe_load(args.experiment.read_text())["name"]
    results = args.results or RESULTS / f"{name}.json"
    if args.from_store is not None:
        data = record(args.experiment, args.from_store, args.wall_time_s,
                      "measured outside this script" if args.wall_time_s is not None else "not measured",
                      {"start": None, "end": None}, None)
    else:
        keep = args.out is not None
        store = args.out or Path(tempfile.mkdtemp(prefix=f"shl-{name}-"))
        cmd = ["shl", "ablate", str(args.experiment), "--out", str(store), *args.ablate_args]
        load_start = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"record_ablation: {' '.join(cmd)} exited {proc.returncode}; nothing recorded")
        shown = ["shl", "ablate", str(args.experiment), *args.ablate_args]
        data = record(args.experiment, store, wall, "this script, around the whole command",
                      {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
                      " ".join(shown))
        if not keep:
            print(f"record_ablation: the store is kept at {store}")
    if args.note:
        data["note"] = args.note
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")
    print(f"record_ablation: wrote {results}")


if __name__ == "__main__":
    main()
