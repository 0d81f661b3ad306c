"""``ablate``: the library form of ``shl ablate`` (``shl.ablate`` is the same function), its options and result."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config.experiment import identical_arms
from ..errors import ShlError
from ..engine.result import BUSY
from ..executors import RunResult, RunTask
from ..store import TERMINAL
from ..tracking import checked_trackers, merge_trackers, option_trackers, resolve_trackers, track_ablation
from .adaptive import add_seeds_adaptively
from .execution import execute, print_stage_summary
from .lock import output_lock
from .plan import make_plan, print_status, status_table, warn_corrupt
from .record import prepare_out, read_record, write_experiment_record
from .reporting import report


@dataclass
class AblateOptions:
    """How ``ablate`` runs an experiment (the CLI flags of ``shl ablate``, as Python values).

    seeds: "0-4", "0,2,5", a list, or None for the experiment's; arms: names (or "a,b"), None for all;
    out: output directory (default ``runs/<experiment name>``); overrides: ``--set`` strings;
    executor: "auto", "inprocess", "local" or "ray" (None: the experiment's; auto = local when workers > 1);
    workers: local worker processes (None: $SHL_WORKERS, the experiment's, else one per core up to 4 for CPU runs
    and 1 on a GPU); share: reuse stages whose inputs
    are identical across arms; report: write the comparison at the end; redo_corrupt: redo runs that fail their
    integrity check; until_mde / max_seeds / seed_batch: add seeds adaptively; dry_run: plan only;
    trackers: trackers added to the experiment's ``trackers:`` (names, ``"NAME:key=value,..."`` strings as for
    ``--tracker``, or ``{name, params}`` mappings; one named like an experiment's tracker replaces it).
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
    trackers: Sequence[Any] = ()

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
    """What ``ablate`` did: the plan's status rows (before running), the runs it executed, how many failed, were
    left corrupt, or were left alone because another live process was writing them, and the report (None when
    not written)."""

    out: Path
    status: list[dict[str, Any]]
    executed: list[tuple[RunTask, RunResult]] = field(default_factory=list)
    failed: int = 0
    corrupt: int = 0
    running: int = 0
    report: Any = None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.corrupt == 0 and self.running == 0


def ablate(experiment: str | Path, options: AblateOptions | None = None, console=None, **kwargs: Any) -> AblationResult:
    """Run every arm x seed of an experiment that is not already complete, then compare the arms.

    The library form of ``shl ablate`` (``shl.ablate("experiments/barrier_agg.yaml", seeds="0-9",
    out="runs/x")``): keyword arguments are the fields of ``AblateOptions``. Progress and the report go to
    ``console`` (a rich Console; default stdout). Input problems raise ``ShlError``.
    """
    from rich.console import Console

    from ..manager import get_host

    from .execution import env_workers

    opts = options or AblateOptions(**kwargs)
    opts.check()
    env_workers()  # a bad SHL_WORKERS fails before anything is written
    con = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)  # a log: no wrapped lines

    def warn(line: str) -> None:
        con.print(line, markup=False, soft_wrap=True)
    host = get_host()
    host.registry.check()
    plan = make_plan(str(experiment), list(opts.overrides), opts.seeds_text(), opts.arms_text(),
                     None if opts.out is None else str(opts.out), host.registry)
    trackers = merge_trackers(resolve_trackers(plan.exp.trackers, host.registry, str(plan.path)),
                              option_trackers(opts.trackers, host.registry))
    if opts.until_mde is not None:
        previous = read_record(plan.out) or {}
        planned = set(previous.get("plan_seeds") or []) if previous.get("name") == plan.exp.name else set()
        planned |= {r.seed for r in plan.runs}
        if opts.max_seeds < len(planned):
            raise ShlError(f"--max-seeds {opts.max_seeds}: {len(planned)} seeds are already planned on {plan.out}; "
                           f"with --until-mde, --max-seeds must be at least {len(planned)}")
        from ..config.models import MAX_SEED

        if max(planned) + opts.max_seeds - len(planned) > MAX_SEED:
            raise ShlError(f"--until-mde: adding up to {opts.max_seeds - len(planned)} seeds after seed "
                           f"{max(planned)} would pass the largest seed ({MAX_SEED}); start from lower seeds")
    rows = status_table(plan)
    result = AblationResult(plan.out, rows)
    if opts.dry_run:
        print_status(con, plan, rows)
        return result
    for a, b in identical_arms(plan.runs):
        con.print(f"warning: arms '{a}' and '{b}' have identical configs; their comparison can only show noise",
                  markup=False)
    from ..store import check_claimable

    for sub, what in (("runs", "the runs"), ("shared", "the shared-stage cache"), ("report", "the report")):
        if sub != "report" or opts.report:  # a folder of the user's where shl's belongs: refused before any run
            if sub != "shared" or opts.share:
                check_claimable(plan.out / sub, what)
    with output_lock(plan.out, con) as lock:
        plan.lock = lock
        prepare_out(plan, con)
        write_experiment_record(plan, host.registry)
        plan.trackers = checked_trackers(trackers, host.registry, warn)
        warn_corrupt(con, rows, opts.redo_corrupt)
        redo = {"pending", "failed"} | ({"corrupt"} if opts.redo_corrupt else set())
        pending = [r for r, row in zip(plan.runs, rows) if row["state"] in redo]
        n_done = sum(row["state"] == "done" for row in rows)
        result.corrupt = 0 if opts.redo_corrupt else sum(row["state"] == "corrupt" for row in rows)
        result.running = sum(row["state"] == "running" for row in rows)
        con.print(
            f"{plan.exp.name}: {len(plan.runs)} runs ({len({r.arm for r in plan.runs})} arms x "
            f"{len({r.seed for r in plan.runs})} seeds): {n_done} done, {len(pending)} to run"
            + (f", {result.corrupt} corrupt (excluded)" if result.corrupt else "")
            + (f", {result.running} still running elsewhere (left alone)" if result.running else "") + f" -> {plan.out}"
        , markup=False)
        result.executed = execute(plan, pending, opts, host, con)
        if opts.until_mde is not None:
            result.executed += add_seeds_adaptively(plan, opts, host, con)
        failed = [(t, r) for t, r in result.executed if r.status not in TERMINAL]
        result.failed = len(failed)
        print_stage_summary(con, [Path(t.run_dir) for t, _ in result.executed])
        for task, res in failed:
            where = "" if res.status == BUSY else f" (see {task.run_dir}/FAILED.json)"
            con.print(f"run failed {task.label}: {res.message}{where}", style="red", markup=False)
        if opts.report:
            try:
                result.report = report(plan.out, con, formats=["md"], figures=True)
            except ShlError as exc:  # the runs are stored; only the comparison could not be made
                con.print(f"report skipped: {exc}", markup=False)
        if plan.trackers:  # finished runs a tracker has not logged yet (it was added later), then the report
            runs = (read_record(plan.out) or {}).get("runs") or []
            executed = [Path(t.run_dir).name for t, _ in result.executed]
            n = track_ablation(plan.out, plan.exp.name, plan.trackers, host.registry, runs, result.report, warn,
                               executed)
            if n:
                con.print(f"trackers: logged {n} finished run(s) they had not logged before", markup=False)
    return result
