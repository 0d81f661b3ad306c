"""The plan of an ablation: every (arm, seed) run of an experiment, and the verified state of each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.experiment import ExperimentConfig, PlannedRun, load_experiment, parse_seeds, plan_runs
from ..errors import ShlError
from ..store import TERMINAL, RunStore, check_out_dir


@dataclass
class Plan:
    """An experiment expanded into runs, with the output directory they are stored under."""

    exp: ExperimentConfig
    path: Path
    out: Path
    runs: list[PlannedRun]
    base: dict[str, Any]
    overrides: list[str]
    trackers: list[dict[str, Any]] = field(default_factory=list)  # resolved and checked: each run mirrored to
    lock: Any = None  # the held OutputLock while the ablation runs (shared with local workers)

    def store(self, run: PlannedRun) -> RunStore:
        return RunStore(self.out / "runs" / run.dirname)


def make_plan(path: str, overrides: list[str], seeds: str | None, arms: str | None, out: str | None, registry) -> Plan:
    """Load and expand an experiment (``--seeds`` / ``--arms`` text as given on the command line); every input
    problem (the experiment, its data files, the output path) is a ``ShlError`` before anything runs."""
    exp, base = load_experiment(path)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = parse_seeds(seeds)
        except ValueError as exc:
            raise ShlError(f"--seeds: {exc}") from None
    arm_list = parse_arms(arms)
    runs = plan_runs(path, exp, base, registry, list(overrides), seed_list, arm_list)
    from ..data import check_data

    for data in sorted({r.config.data for r in runs if r.config.data}):
        check_data(data, Path(path).parent, str(path), overrides)  # a bad data file fails before anything runs
    out_dir = Path(out) if out else Path("runs") / exp.name
    if out_dir.exists() and not out_dir.is_dir():
        raise ShlError(f"--out {out_dir}: is a file, not a directory")
    check_out_dir(out_dir, "ablation")
    runs_dir = out_dir / "runs"
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ShlError(f"{runs_dir}: is a file, but shl keeps the runs there; move it or choose another --out")
    return Plan(exp, Path(path), out_dir, runs, base, list(overrides))


def parse_arms(text: str | None) -> list[str] | None:
    """``--arms a,b`` -> ["a", "b"]; None = every arm. An empty list (``--arms ,,``) or an arm named twice is a
    one-line ShlError (the same run planned twice would have two writers)."""
    if text is None:
        return None
    names = [a.strip() for a in text.split(",")]
    if not any(names):
        raise ShlError(f"--arms {text!r}: no arm names (leave --arms out to run every arm)")
    if "" in names:
        raise ShlError(f"--arms {text!r}: an empty arm name (write names separated by single commas)")
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise ShlError(f"--arms {text!r}: arm '{twice[0]}' is named twice")
    return names


def status_table(plan: Plan) -> list[dict[str, Any]]:
    """One row per planned run: its verified store status and what the runner does with it (``state``:
    done, pending, failed (redone), corrupt (redone only on request), running (another live process writes it:
    left alone)). A run directory shl did not write is
    an error: nothing of the user's is touched."""
    rows = []
    for run in plan.runs:
        st = plan.store(run).state()
        if st.status == "foreign":
            raise ShlError(f"{plan.store(run).dir}: {st.reason}; refusing to touch it (move it or choose another --out)")
        state = {"failed": "failed", "nan": "failed", "corrupt": "corrupt", "running": "running"}.get(st.status,
                                                                                                 "pending")
        if st.status in TERMINAL:
            state = "done"
        rows.append({"arm": run.arm, "seed": run.seed, "state": state, "status": st.status, "reason": st.reason,
                     "dir": str(plan.store(run).dir)})
    return rows


def warn_corrupt(con, rows: list[dict[str, Any]], redo: bool) -> None:
    """A line for each corrupt run (and each run another live process is writing, which is left alone)."""
    for row in rows:
        if row["state"] == "running":
            con.print(f"warning: {row['dir']}: {row['reason']}; left alone (run 'shl ablate' again once it ends)",
                      markup=False)
        if row["state"] == "corrupt":
            then = "redoing it (--redo-corrupt)" if redo else "excluded; 'shl ablate --redo-corrupt' redoes it"
            con.print(f"warning: {row['dir']}: corrupt run ({row['reason']}); {then}", markup=False)


def print_status(con, plan: Plan, rows: list[dict[str, Any]]) -> None:
    """``shl ablate --dry-run``: the status rows as a table, then the counts."""
    from rich.table import Table

    table = Table(title=f"{plan.exp.name} -> {plan.out}")
    for col in ("arm", "seed", "state", "status", "dir"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["arm"], str(row["seed"]), row["state"], row["status"], row["dir"])
    con.print(table, markup=False)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "pending", "failed", "corrupt", "running")}
    con.print(", ".join(f"{v} {k}" for k, v in counts.items() if v or k not in ("corrupt", "running")), markup=False)
    warn_corrupt(con, rows, redo=False)
