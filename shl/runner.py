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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from .config.experiment import (ExperimentConfig, PlannedRun, identical_arms, load_experiment, parse_seeds,
                                plan_runs)
from .errors import ShlError, ShlFault
from .executors import RunResult, RunTask, make_executor
from .store import (DIR_MARKER, FAILED, FORMAT_VERSION, OUT_RECORD, TERMINAL, RunStore, atomic_write, claim_dir,
                    inspect_run, is_owned, remove_stale_tmp)

LOCK = ".shl.lock"


@contextmanager
def output_lock(out: Path, con=None) -> Iterator[None]:
    """One ``shl ablate`` per output directory. The lock file names its holder while held and is emptied on a
    clean exit, so a holder named at acquisition time was killed: that is said in one line."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = (out / LOCK).read_text().strip() or "another process"
            raise ShlError(f"{out}: another 'shl ablate' is running on this directory ({holder})") from None
        stale = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if stale and con is not None:
            con.print(f"note: took over a stale lock on {out} left by a killed 'shl ablate' ({stale})", markup=False)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
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
    if out_dir.exists() and not out_dir.is_dir():
        raise ShlError(f"--out {out_dir}: is a file, not a directory")
    runs_dir = out_dir / "runs"
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ShlError(f"{runs_dir}: is a file, but shl keeps the runs there; move it or choose another --out")
    return Plan(exp, Path(path), out_dir, runs, base, list(overrides))


def read_record(out: Path) -> dict[str, Any] | None:
    """The ablation record of an output directory (None when there is none); a malformed one is an error."""
    path = out / OUT_RECORD
    if not path.exists():
        return None
    try:
        record = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ShlError(f"{path}: unreadable shl record ({type(exc).__name__}); move it away or choose another --out") from None
    if not isinstance(record, dict) or record.get("format") != "shl-ablation":
        raise ShlError(f"{path}: not an shl ablation record; move it away or choose another --out")
    return record


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


def status_table(plan: Plan) -> list[dict[str, Any]]:
    """One row per planned run: its verified store status and what the runner does with it (``state``:
    done, pending, failed (redone), corrupt (redone only on request)). A run directory shl did not write is
    an error: nothing of the user's is touched."""
    rows = []
    for run in plan.runs:
        st = plan.store(run).state()
        if st.status == "foreign":
            raise ShlError(f"{plan.store(run).dir}: {st.reason}; refusing to touch it (move it or choose another --out)")
        state = {"failed": "failed", "nan": "failed", "corrupt": "corrupt"}.get(st.status, "pending")
        if st.status in TERMINAL:
            state = "done"
        rows.append({"arm": run.arm, "seed": run.seed, "state": state, "status": st.status, "reason": st.reason,
                     "dir": str(plan.store(run).dir)})
    return rows


def warn_corrupt(con, rows: list[dict[str, Any]], redo: bool) -> None:
    for row in rows:
        if row["state"] == "corrupt":
            then = "redoing it (--redo-corrupt)" if redo else "excluded; 'shl ablate --redo-corrupt' redoes it"
            con.print(f"warning: {row['dir']}: corrupt run ({row['reason']}); {then}", markup=False)


def prepare_out(plan: Plan, con) -> None:
    """Claim the output's subdirectories for shl and clear temporary files left by killed writes."""
    claim_dir(plan.out / "runs", "the runs")
    removed = remove_stale_tmp(plan.out)
    for d in (plan.out / "runs").iterdir():
        if d.is_dir() and is_owned(d):
            removed += remove_stale_tmp(d)
            for sub in ("vectors",):
                removed += remove_stale_tmp(d / sub)
    for d in (plan.out / "shared", plan.out / "report", plan.out / "report" / "figures"):
        if (d / DIR_MARKER).is_file():
            removed += remove_stale_tmp(d)
    if removed:
        con.print(f"removed {len(removed)} temporary file(s) left by an interrupted write", markup=False)


@dataclass
class AblateOptions:
    """How ``ablate`` runs an experiment (the CLI flags of ``shl ablate``, as Python values).

    seeds: "0-4", "0,2,5", a list, or None for the experiment's; arms: names (or "a,b"), None for all;
    out: output directory (default ``runs/<experiment name>``); overrides: ``--set`` strings;
    executor: "auto", "inprocess", "local" or "ray" (None: the experiment's; auto = local when workers > 1);
    workers: local worker processes (None: $SHL_WORKERS, the experiment's, else one per core up to 4 for CPU runs
    and 1 on a GPU); share: reuse stages whose inputs
    are identical across arms; report: write the comparison at the end; redo_corrupt: redo runs that fail their
    integrity check; until_mde / max_seeds / seed_batch: add seeds adaptively; dry_run: plan only.
    """

    seeds: Any = None
    arms: Any = None
    out: str | Path | None = None
    overrides: Sequence[str] = ()
    executor: str | None = None
    workers: int | None = None
    ray_address: str | None = None
    share: bool = True
    report: bool = True
    redo_corrupt: bool = False
    until_mde: float | None = None
    max_seeds: int = 40
    seed_batch: int = 2
    dry_run: bool = False

    def seeds_text(self) -> str | None:
        if self.seeds is None or isinstance(self.seeds, str):
            return self.seeds
        if isinstance(self.seeds, int) and not isinstance(self.seeds, bool):
            return str(self.seeds)
        return ",".join(str(int(s)) for s in self.seeds)

    def arms_text(self) -> str | None:
        if self.arms is None or isinstance(self.arms, str):
            return self.arms
        return ",".join(self.arms)

    def check(self) -> None:
        if self.until_mde is not None and not (0 < self.until_mde < float("inf")):
            raise ShlError(f"--until-mde: must be a positive number, got {self.until_mde}")
        if not 1 <= self.max_seeds <= 1000 or self.seed_batch < 1:
            raise ShlError("--max-seeds must be in 1..1000 and --seed-batch >= 1")
        if self.workers is not None and not 1 <= self.workers <= 256:
            raise ShlError(f"--workers: must be in 1..256, got {self.workers}")


@dataclass
class AblationResult:
    """What ``ablate`` did: the plan's status rows (before running), the runs it executed, how many failed or
    were left corrupt, and the report (None when not written)."""

    out: Path
    status: list[dict[str, Any]]
    executed: list[tuple[RunTask, RunResult]] = field(default_factory=list)
    failed: int = 0
    corrupt: int = 0
    report: Any = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.corrupt == 0


def ablate(experiment: str | Path, options: AblateOptions | None = None, console=None, **kwargs: Any) -> AblationResult:
    """Run every arm x seed of an experiment that is not already complete, then compare the arms.

    The library form of ``shl ablate`` (``shl.ablate("experiments/barrier_agg.yaml", seeds="0-9",
    out="runs/x")``): keyword arguments are the fields of ``AblateOptions``. Progress and the report go to
    ``console`` (a rich Console; default stdout). Input problems raise ``ShlError``.
    """
    from rich.console import Console

    from .manager import get_host

    opts = options or AblateOptions(**kwargs)
    opts.check()
    con = console or Console(highlight=False)
    host = get_host()
    host.registry.check()
    plan = make_plan(str(experiment), list(opts.overrides), opts.seeds_text(), opts.arms_text(),
                     None if opts.out is None else str(opts.out), host.registry)
    rows = status_table(plan)
    result = AblationResult(plan.out, rows)
    if opts.dry_run:
        _print_status(con, plan, rows)
        return result
    for a, b in identical_arms(plan.runs):
        con.print(f"warning: arms '{a}' and '{b}' have identical configs; their comparison can only show noise",
                  markup=False)
    with output_lock(plan.out, con):
        prepare_out(plan, con)
        write_experiment_record(plan, host.registry)
        warn_corrupt(con, rows, opts.redo_corrupt)
        redo = {"pending", "failed"} | ({"corrupt"} if opts.redo_corrupt else set())
        pending = [r for r, row in zip(plan.runs, rows) if row["state"] in redo]
        n_done = sum(row["state"] == "done" for row in rows)
        result.corrupt = 0 if opts.redo_corrupt else sum(row["state"] == "corrupt" for row in rows)
        con.print(
            f"{plan.exp.name}: {len(plan.runs)} runs ({len({r.arm for r in plan.runs})} arms x "
            f"{len({r.seed for r in plan.runs})} seeds): {n_done} done, {len(pending)} to run"
            + (f", {result.corrupt} corrupt (excluded)" if result.corrupt else "") + f" -> {plan.out}"
        , markup=False)
        result.executed = execute(plan, pending, opts, host, con)
        if opts.until_mde is not None:
            result.executed += add_seeds_adaptively(plan, opts, host, con)
        failed = [(t, r) for t, r in result.executed if r.status not in TERMINAL]
        result.failed = len(failed)
        print_stage_summary(con, [Path(t.run_dir) for t, _ in result.executed])
        for task, res in failed:
            con.print(f"run failed {task.label}: {res.message} (see {task.run_dir}/FAILED.json)", style="red",
                      markup=False)
        if opts.report:
            try:
                result.report = report(plan.out, con, formats=["md"], figures=True)
            except ShlError as exc:  # the runs are stored; only the comparison could not be made
                con.print(f"report skipped: {exc}", markup=False)
    return result


def add_seeds_adaptively(plan: Plan, opts: AblateOptions, host, con) -> list[tuple[RunTask, RunResult]]:
    """``--until-mde X --max-seeds N``: add seeds in batches until the primary metric's MDE (at the verdict's
    alpha, from the spread of the paired differences about zero; never their mean or a p-value) is <= X in
    every arm, or N seeds ran. The rule and the batches are recorded, and the report states them."""
    from shl_analysis import describe_stopping_rule, paired_differences, seeds_to_add, verdict_alpha

    spec = plan.exp.comparison
    arms = sorted({r.arm for r in plan.runs}, key=list(plan.exp.arms).index)
    alpha_v = verdict_alpha(spec.alpha, spec.correction, max(len(arms) - 1, 1))
    results: list[tuple[RunTask, RunResult]] = []
    record = read_record(plan.out) or {}
    seeds = sorted(record.get("plan_seeds") or {r.seed for r in plan.runs})
    batches = [list(seeds)]
    while True:
        diffs = paired_differences(plan.out, spec, spec.primary, record.get("runs"), seeds, arms)
        diffs = {a: d for a, d in diffs.items() if a in arms}
        n_add = seeds_to_add(diffs, seeds, opts.until_mde, opts.max_seeds, opts.seed_batch, alpha_v) if diffs else 0
        if n_add == 0:
            break
        new = [max(seeds) + 1 + i for i in range(n_add)]
        con.print(f"adding seeds {new[0]}-{new[-1]}: the MDE of '{spec.primary}' is above {opts.until_mde:g} "
                  f"at alpha {alpha_v:.3g} (seeds so far: {len(seeds)})", markup=False)
        more = make_plan(str(plan.path), plan.overrides, ",".join(map(str, new)), opts.arms_text(), str(plan.out),
                         host.registry)
        rows = status_table(more)
        write_experiment_record(more, host.registry)
        results += execute(more, [r for r, row in zip(more.runs, rows) if row["state"] != "done"], opts, host, con)
        seeds += new
        batches.append(new)
        record = read_record(plan.out) or {}
    rule = describe_stopping_rule(opts.until_mde, opts.max_seeds, opts.seed_batch, alpha_v)
    record["adaptive"] = {"until_mde": opts.until_mde, "max_seeds": opts.max_seeds, "batch": opts.seed_batch,
                          "alpha_verdict": alpha_v, "batches": batches, "rule": rule}
    atomic_write(plan.out / OUT_RECORD, yaml.safe_dump(record, sort_keys=False))
    con.print(f"stopped adding seeds at {len(seeds)}: {rule}", markup=False)
    return results


def print_stage_summary(con, run_dirs: list[Path]) -> None:
    """One line: where the wall time of the runs executed now went, by stage, largest first."""
    if not run_dirs:
        return
    from shl_analysis.timings import stage_breakdown

    df = stage_breakdown(run_dirs)
    if not df.empty:
        parts = ", ".join(f"{r.stage} {r.seconds:.1f}s ({100 * r.share:.0f}%)" for r in df.itertuples())
        con.print(f"time by stage over {len(run_dirs)} run(s): {parts}", markup=False)


def env_workers() -> int | None:
    """``SHL_WORKERS``: the default number of local workers (e.g. 1 to keep every run in one process)."""
    value = os.environ.get("SHL_WORKERS", "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise ShlError(f"SHL_WORKERS: expected a number of workers in 1..256, got {value!r}")
    return int(value)


def auto_workers(plan: Plan, pending: list[PlannedRun]) -> int:
    """Local worker processes when the user did not say: one per core (at most 4) for CPU runs of small
    models, where runs side by side beat one run with all threads; 1 for GPU runs."""
    from .executors.local_pool import available_cores

    if any(r.config.device.startswith("cuda") for r in pending):
        return 1
    if any(r.config.device == "auto" for r in pending):
        try:
            import torch

            if torch.cuda.is_available():
                return 1
        except ImportError:
            pass
    return max(1, min(available_cores(), 4, len(pending)))


def execute(plan: Plan, pending: list[PlannedRun], opts: AblateOptions, host, con) -> list[tuple[RunTask, RunResult]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not pending:
        return []
    name = opts.executor or plan.exp.executor.name
    workers = opts.workers or env_workers() or plan.exp.executor.workers or auto_workers(plan, pending)
    if name == "ray":
        executor = make_executor(
            "ray", address=opts.ray_address or plan.exp.executor.address,
            num_cpus=plan.exp.executor.num_cpus, num_gpus=plan.exp.executor.num_gpus,
        )
    elif name == "local" or (name == "auto" and workers > 1):
        executor = make_executor("local", workers=workers)
    else:
        executor = make_executor("inprocess", host=host)
    if opts.share:
        claim_dir(plan.out / "shared", "the shared-stage cache")
    tasks = []
    for run in pending:
        store = plan.store(run)
        store.reset()
        meta = {"experiment": plan.exp.name, "arm": run.arm, "seed": run.seed, "config_hash": run.hash,
                "experiment_file": str(plan.path)}
        tasks.append(RunTask(str(store.dir), run.config.model_dump(mode="json"), meta,
                             str(plan.path.parent.resolve()), f"{run.arm} seed {run.seed}",
                             str((plan.out / "shared").resolve()) if opts.share else None))
    results: list[tuple[RunTask, RunResult]] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[stage]}"))
    with Progress(*columns, console=con, transient=False) as bar:
        tid = bar.add_task("runs", total=len(tasks), stage="")

        def on_result(task: RunTask, res: RunResult) -> None:
            if res.status not in TERMINAL:
                record_failure(RunStore(task.run_dir), res)
            results.append((task, res))
            if res.status in TERMINAL:  # a finished run: its last round's numbers
                last = res.metrics[-1] if res.metrics else {}
                summary = ", ".join(f"{k}={last[k]:.3f}" for k in ("trait", "coherence")
                                    if isinstance(last.get(k), float))
            else:  # a failed run: why (its metrics rows stop before the failure, so they would mislead)
                summary = " ".join(res.message.split()) or "no reason given"
            bar.console.print(f"{task.label}: {res.status} ({summary or res.message})", markup=False)
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


def record_failure(store: RunStore, res: RunResult) -> None:
    """Make the FAILED.json of a run that did not finish hold its reason and traceback: written from the result
    when the worker wrote none (a worker process that died, a remote worker), or given the result's traceback when
    the worker's has none. Only in a directory shl owns."""
    if not is_owned(store.dir):
        return
    path = store.dir / FAILED
    record = None
    if path.exists():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None
    if not isinstance(record, dict):
        store.fail(res.status, res.message, res.traceback)
    elif not record.get("traceback") and res.traceback:
        store.fail(str(record.get("status") or res.status), str(record.get("error") or res.message), res.traceback)


def _print_status(con, plan: Plan, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{plan.exp.name} -> {plan.out}")
    for col in ("arm", "seed", "state", "status", "dir"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["arm"], str(row["seed"]), row["state"], row["status"], row["dir"])
    con.print(table, markup=False)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "pending", "failed", "corrupt")}
    con.print(", ".join(f"{v} {k}" for k, v in counts.items() if v or k != "corrupt"), markup=False)
    warn_corrupt(con, rows, redo=False)


def report(out: Path, con, formats: list[str], figures: bool):
    """Write the comparison report of an ablation output directory (warning about corrupt runs) and print the
    requested formats; returns the ``ReportResult``."""
    from shl_analysis import ComparisonSpec, write_report

    path = out / OUT_RECORD
    record = read_record(out)
    if record is None:
        raise ShlError(f"{out}: no {OUT_RECORD} here (is this an 'shl ablate' output directory?)")
    for run_id in record.get("runs") or []:
        st = inspect_run(out / "runs" / run_id)
        if st.status == "corrupt":
            con.print(f"warning: {out / 'runs' / run_id}: corrupt run ({st.reason}); excluded from the comparison",
                      markup=False)
    try:
        spec = ComparisonSpec.model_validate(record.get("comparison"))
    except Exception as exc:
        raise ShlError(f"{path}: comparison: {exc}".splitlines()[0]) from None
    try:
        result = write_report(out, spec, formats=("md", "csv", "latex"), figures=figures, run_ids=record.get("runs"),
                              planned_seeds=record.get("plan_seeds") or (), planned_arms=record.get("plan_arms") or (),
                              adaptive=record.get("adaptive"))
    except ValueError as exc:  # no runs yet, or no run of the baseline arm: a user-facing problem
        raise ShlError(f"{out}: cannot write the report: {exc}") from None
    except OSError as exc:
        raise ShlFault(f"cannot write the report: {exc.filename or out / 'report'}: {exc.strerror or exc}") from None
    for fmt in formats:
        if fmt == "md":
            con.out(result.markdown, highlight=False)
        elif fmt == "csv":
            con.out((out / "report" / "comparison.csv").read_text(), highlight=False)
        elif fmt == "latex":
            con.out((out / "report" / "comparison.tex").read_text(), highlight=False)
    con.print(f"report written to {out / 'report'}", markup=False)
    return result
