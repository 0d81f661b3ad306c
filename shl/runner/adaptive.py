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
        more.trackers = plan.trackers
        more.lock = plan.lock
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
