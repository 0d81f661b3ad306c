"""The ablation runner: expand arms x seeds, skip complete runs, execute the rest, then compare.

Exactly-once bookkeeping lives here: a run's directory is named by the hash of its resolved config; a run
counts only when its DONE.json marker exists (written last, atomically); anything else (killed, failed) is
wiped and redone on the next invocation. One ``shl ablate`` per output directory at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .config.experiment import ExperimentConfig, PlannedRun, load_experiment, parse_seeds, plan_runs
from .errors import ShlError
from .executors import RunResult, RunTask, make_executor
from .store import FAILED, TERMINAL_OK, RunStore, atomic_write

LOCK = ".shl.lock"


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (out / LOCK).read_text().strip() or "another process"
            raise ShlError(f"{out}: another 'shl ablate' is running on this directory ({holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)


@dataclass
class Plan:
    exp: ExperimentConfig
    path: Path
    out: Path
    runs: list[PlannedRun]
    base: dict[str, Any]
    overrides: list[str]

    def store(self, run: PlannedRun) -> RunStore:
        return RunStore(self.out / "runs" / run.dirname)


def make_plan(path: str, overrides: list[str], seeds: str | None, arms: str | None, out: str | None, registry) -> Plan:
    exp, base = load_experiment(path)
    seed_list = None
    if seeds is not None:
        try:
            seed_list = parse_seeds(seeds)
        except ValueError as exc:
            raise ShlError(f"--seeds: {exc}") from None
    arm_list = [a.strip() for a in arms.split(",") if a.strip()] if arms else None
    runs = plan_runs(path, exp, base, registry, list(overrides), seed_list, arm_list)
    from .data import load_data

    for data in sorted({r.config.data for r in runs if r.config.data}):
        load_data(data, Path(path).parent)  # a bad data file fails before anything runs
    out_dir = Path(out) if out else Path("runs") / exp.name
    return Plan(exp, Path(path), out_dir, runs, base, list(overrides))


def write_experiment_record(plan: Plan, registry) -> list[str]:
    """Record the resolved experiment (comparison spec included) and the run directories ``shl report``
    compares: every (arm, seed) planned by this or an earlier invocation on this directory (``--seeds 5-9``
    after ``--seeds 0-4`` compares all ten), each under the CURRENT config. Runs of an older config stay on disk
    but are not compared; an (arm, seed) that was never run under the current config counts as missing."""
    path = plan.out / "experiment.yaml"
    previous = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    if previous.get("name") != plan.exp.name:
        previous = {}
    seeds = sorted(set(previous.get("plan_seeds") or []) | {r.seed for r in plan.runs})
    arms = [a for a in plan.exp.arms if a in set(previous.get("plan_arms") or []) | {r.arm for r in plan.runs}]
    if seeds == sorted({r.seed for r in plan.runs}) and set(arms) == {r.arm for r in plan.runs}:
        recorded = plan.runs
    else:
        recorded = plan_runs(plan.path, plan.exp, plan.base, registry, plan.overrides, seeds, arms)
    record = plan.exp.model_dump(mode="json")
    record.update(overrides=plan.overrides, source=str(plan.path), plan_seeds=seeds, plan_arms=arms,
                  runs=[r.dirname for r in recorded])
    atomic_write(path, yaml.safe_dump(record, sort_keys=False))
    return record["runs"]


def status_table(plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for run in plan.runs:
        st = plan.store(run).status()
        state = "done" if st in TERMINAL_OK else ("failed" if st in ("failed", "nan") else "pending")
        rows.append({"arm": run.arm, "seed": run.seed, "state": state, "status": st, "dir": str(plan.store(run).dir)})
    return rows


def ablate_command(args) -> int:
    from rich.console import Console

    from .manager import get_host

    con = Console(highlight=False)
    host = get_host()
    host.registry.check()
    plan = make_plan(args.experiment, args.overrides, args.seeds, args.arms, args.out, host.registry)
    rows = status_table(plan)
    if args.dry_run:
        _print_status(con, plan, rows)
        return 0
    with output_lock(plan.out):
        write_experiment_record(plan, host.registry)
        pending = [r for r, row in zip(plan.runs, rows) if row["state"] != "done"]
        n_done = len(plan.runs) - len(pending)
        con.print(
            f"{plan.exp.name}: {len(plan.runs)} runs ({len(plan.exp.arms) if not args.arms else len(args.arms.split(','))}"
            f" arms x {len({r.seed for r in plan.runs})} seeds): {n_done} done, {len(pending)} to run -> {plan.out}"
        )
        results = execute(plan, pending, args, host, con)
        failed = [(t, r) for t, r in results if r.status not in TERMINAL_OK]
        for task, res in failed:
            con.print(f"[red]run failed[/red] {task.label}: {res.message} (see {task.run_dir}/FAILED.json)")
        if not args.no_report:
            try:
                report(plan.out, con, formats=["md"], figures=True)
            except ShlError as exc:  # the runs are stored; only the comparison could not be made
                con.print(f"report skipped: {exc}")
    return 1 if failed else 0


def execute(plan: Plan, pending: list[PlannedRun], args, host, con) -> list[tuple[RunTask, RunResult]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not pending:
        return []
    name = args.executor or plan.exp.executor.name
    if name == "ray":
        executor = make_executor(
            "ray", address=args.ray_address or plan.exp.executor.address,
            num_cpus=plan.exp.executor.num_cpus, num_gpus=plan.exp.executor.num_gpus,
        )
    else:
        executor = make_executor("inprocess", host=host)
    tasks = []
    for run in pending:
        store = plan.store(run)
        store.reset()
        meta = {"experiment": plan.exp.name, "arm": run.arm, "seed": run.seed, "config_hash": run.hash,
                "experiment_file": str(plan.path)}
        tasks.append(RunTask(str(store.dir), run.config.model_dump(mode="json"), meta,
                             str(plan.path.parent.resolve()), f"{run.arm} seed {run.seed}",
                             None if args.no_share else str((plan.out / "shared").resolve())))
    results: list[tuple[RunTask, RunResult]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stage]}"))
    with Progress(*columns, console=con, transient=False) as bar:
        tid = bar.add_task("runs", total=len(tasks), stage="")

        def on_result(task: RunTask, res: RunResult) -> None:
            store = RunStore(task.run_dir)
            if res.status not in TERMINAL_OK and not (store.dir / FAILED).exists():
                store.dir.mkdir(parents=True, exist_ok=True)
                store.fail(res.status, res.message, "")
            results.append((task, res))
            last = res.metrics[-1] if res.metrics else {}
            summary = ", ".join(f"{k}={last[k]:.3f}" for k in ("trait", "coherence") if isinstance(last.get(k), float))
            bar.console.print(f"{task.label}: {res.status} ({summary or res.message})")
            bar.advance(tid)

        def progress(label: str, stage: str) -> None:
            bar.update(tid, stage=f"{label}: {stage}")

        t0 = time.time()
        try:
            executor.run(tasks, on_result, progress)
        finally:
            executor.close()
        bar.update(tid, stage=f"done in {time.time() - t0:.0f}s")
    return results


def _print_status(con, plan: Plan, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{plan.exp.name} -> {plan.out}")
    for col in ("arm", "seed", "state", "status", "dir"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["arm"], str(row["seed"]), row["state"], row["status"], row["dir"])
    con.print(table)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "pending", "failed")}
    con.print(", ".join(f"{v} {k}" for k, v in counts.items()))


def report(out: Path, con, formats: list[str], figures: bool) -> None:
    from shl_analysis import ComparisonSpec, write_report

    path = out / "experiment.yaml"
    if not path.is_file():
        raise ShlError(f"{out}: no experiment.yaml here (is this an 'shl ablate' output directory?)")
    record = yaml.safe_load(path.read_text()) or {}
    try:
        spec = ComparisonSpec.model_validate(record.get("comparison"))
    except Exception as exc:
        raise ShlError(f"{path}: comparison: {exc}".splitlines()[0]) from None
    try:
        result = write_report(out, spec, formats=("md", "csv", "latex"), figures=figures, run_ids=record.get("runs"),
                              planned_seeds=record.get("plan_seeds") or (), planned_arms=record.get("plan_arms") or ())
    except ValueError as exc:  # no runs yet, or no run of the baseline arm: a user-facing problem
        raise ShlError(f"{out}: cannot write the report: {exc}") from None
    for fmt in formats:
        if fmt == "md":
            print(result.markdown)
        elif fmt == "csv":
            print((out / "report" / "comparison.csv").read_text())
        elif fmt == "latex":
            print((out / "report" / "comparison.tex").read_text())
    con.print(f"report written to {out / 'report'}")


def report_command(args) -> int:
    from rich.console import Console

    out = Path(args.directory)
    if not out.is_dir():
        raise ShlError(f"{out}: no such directory")
    con = Console(highlight=False, width=200)
    report(out, con, formats=args.formats or ["md"], figures=not args.no_figures)
    return 0
