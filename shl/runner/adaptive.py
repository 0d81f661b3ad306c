"""``--until-mde``: adding seeds in batches until the primary metric's minimum detectable effect is small."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

from ..executors import RunResult, RunTask
from ..store import OUT_RECORD, atomic_write
from .execution import execute
from .plan import Plan, make_plan, status_table
from .record import read_record, write_experiment_record

if TYPE_CHECKING:  # pragma: no cover
    from .ablation import AblateOptions


def add_seeds_adaptively(plan: Plan, opts: AblateOptions, host, con) -> list[tuple[RunTask, RunResult]]:
    """``--until-mde X --max-seeds N``: add seeds in batches until every arm is settled on the primary metric
    (its MDE at the verdict's alpha, from the spread of the paired differences about zero, is <= X, or its p
    crossed the efficacy boundary: the verdict's alpha split over the looks the plan allows), or N seeds ran.
    An arm that settles is done: its comparison on the primary metric uses the seeds up to that point, so no
    other arm's stopping (they share the baseline's runs) can bias it. The rule, the batches and each arm's
    standing are recorded, and the report states them and compares each arm on its own seeds."""
    from shl_analysis import describe_stopping_rule, paired_differences, seeds_to_add, verdict_alpha
    from shl_analysis.power import arm_status, boundary_alpha, exact_min_n

    spec = plan.exp.comparison
    arms = sorted({r.arm for r in plan.runs}, key=list(plan.exp.arms).index)
    alpha_v = verdict_alpha(spec.alpha, spec.correction, max(len(arms) - 1, 1))
    results: list[tuple[RunTask, RunResult]] = []
    record = read_record(plan.out) or {}
    seeds = sorted(record.get("plan_seeds") or {r.seed for r in plan.runs})
    batches = [list(seeds)]
    boundary = boundary_alpha(alpha_v, len(seeds), opts.max_seeds, opts.seed_batch)
    floor = max(2, exact_min_n(alpha_v))
    standing: dict[str, dict] = {}  # arm -> its status when it settled; its primary comparison stops there
    while True:
        diffs = paired_differences(plan.out, spec, spec.primary, record.get("runs"), seeds, arms)
        diffs = {a: d for a, d in diffs.items() if a in arms and a not in standing}
        for arm, d in diffs.items():
            st = arm_status(d, opts.until_mde, alpha_v, floor, boundary)
            if st["settled_by"] is not None:
                standing[arm] = st
        open_arms = {a: d for a, d in diffs.items() if a not in standing}
        n_add = seeds_to_add(open_arms, seeds, opts.until_mde, opts.max_seeds, opts.seed_batch, alpha_v,
                             boundary_alpha=boundary) if open_arms else 0
        if n_add == 0:
            break
        new = [max(seeds) + 1 + i for i in range(n_add)]
        con.print(f"adding seeds {new[0]}-{new[-1]}: not settled on '{spec.primary}' (MDE above "
                  f"{opts.until_mde:g} at alpha {alpha_v:.3g}, p not below {boundary:.3g}): "
                  f"{', '.join(open_arms)} (seeds so far: {len(seeds)})", markup=False)
        more = make_plan(str(plan.path), plan.overrides, ",".join(map(str, new)), opts.arms_text(), str(plan.out),
                         host.registry)
        more.trackers = plan.trackers
        more.lock = plan.lock
        rows = status_table(more)
        write_experiment_record(more, host.registry)
        results += execute(more, [r for r, row in zip(more.runs, rows) if row["state"] != "done"], opts, host, con)
        seeds += new
        batches.append(new)
        record = read_record(plan.out) or {}
    for arm, d in open_arms.items():
        standing[arm] = arm_status(d, opts.until_mde, alpha_v, floor, boundary)
    rule = describe_stopping_rule(opts.until_mde, opts.max_seeds, opts.seed_batch, alpha_v,
                                  boundary_alpha=boundary)
    record["adaptive"] = {"until_mde": opts.until_mde, "max_seeds": opts.max_seeds, "batch": opts.seed_batch,
                          "alpha_verdict": alpha_v, "boundary_alpha": boundary, "batches": batches, "rule": rule,
                          "arms": {a: {k: (None if isinstance(v, float) and v != v else v) for k, v in st.items()}
                                   for a, st in standing.items()}}
    atomic_write(plan.out / OUT_RECORD, yaml.safe_dump(record, sort_keys=False))
    con.print(f"stopped adding seeds at {len(seeds)}: {rule}", markup=False)
    from shl_analysis.tables import standing_text

    for line in standing_text(record["adaptive"]["arms"], spec.primary):
        con.print(line, markup=False)
    return results
