"""The main job's wall time by stage, and where the variance of its paired differences comes from.

    python benchmarks/main_job.py                        # the shipped barrier_agg.yaml as `shl ablate` runs it
    python benchmarks/main_job.py --before               # the same with this release's speed-ups switched off
    python benchmarks/main_job.py --seeds 0-1 --rounds 1 # one round of it, two seeds

"after" is the default path: local worker processes (one per core, at most 4), shl's decode loop, evaluation on
merged adapter weights, the heal's reference log-probs cached per round, length-grouped heal batches, shared
stages across arms.
"before" switches off what this release added for speed: one process (in-process executor, all threads),
transformers' ``generate``, unmerged evaluation, the reference recomputed every epoch, random (not
length-grouped) heal batches. The Rao-Blackwellised
trait estimate stays on in both (it changes the variance, not the work much).

Prints the total wall time, the run time per stage (summed over runs: with several workers it exceeds the wall
time) and its share, then, per declared metric and arm, the between-seed sd of the paired differences at the
final round and the part of their variance that is the evaluator's own sampling noise (from the per-run
standard errors the evaluator records, ``<metric>_se``: with common random numbers across arms the true noise
of a difference is lower still, so this share is an upper bound). Timings are for reading, never for tests.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def switch_off_speedups() -> None:
    from shl.engine import adapters, generate

    generate.GENERATE_IMPL = "hf"
    adapters.MERGE_FOR_EVAL = False


def variance_components(out: Path) -> list[str]:
    import numpy as np
    import yaml

    from shl_analysis import load_runs

    record = yaml.safe_load((out / "shl-ablation.yaml").read_text())
    spec = record["comparison"]
    tidy = load_runs(out, record["runs"])
    tidy = tidy[tidy["status"].isin(["complete", "stopped"])]
    last = tidy.loc[tidy.groupby(["run_id", "metric"])["round"].idxmax()]
    value = last.pivot_table(index=["arm", "seed"], columns="metric", values="value")
    lines = ["| metric | arm | n | sd of paired differences | eval-noise sd of a difference | eval-noise share of variance |",
             "|---|---|---|---|---|---|"]
    base = spec["baseline"]
    for m in [x["name"] for x in spec["metrics"]]:
        for arm in [a for a in record["plan_arms"] if a != base]:
            d, noise = [], []
            for seed in sorted({s for a, s in value.index if a == arm}):
                if (base, seed) not in value.index or m not in value:
                    continue
                a_row, b_row = value.loc[(arm, seed)], value.loc[(base, seed)]
                if math.isnan(a_row[m]) or math.isnan(b_row[m]):
                    continue
                d.append(a_row[m] - b_row[m])
                se = f"{m}_se"
                if se in value:
                    noise.append(a_row[se] ** 2 + b_row[se] ** 2)
            if len(d) < 2:
                continue
            var_d = float(np.var(d, ddof=1))
            noise_var = float(np.mean(noise)) if noise else float("nan")
            share = noise_var / var_d if var_d > 0 else float("nan")
            lines.append(f"| {m} | {arm} | {len(d)} | {math.sqrt(var_d):.4f} | {math.sqrt(noise_var):.4f} | "
                         f"{100 * share:.0f}% |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default=str(ROOT / "experiments" / "barrier_agg.yaml"))
    ap.add_argument("--before", action="store_true", help="switch this release's speed-ups off")
    ap.add_argument("--seeds", default=None, help="seeds (default: the experiment's)")
    ap.add_argument("--rounds", type=int, default=None, help="heal rounds (default: the experiment's)")
    ap.add_argument("--workers", type=int, default=None, help="local workers (default: shl's choice; before: 1)")
    ap.add_argument("--out", default=None, help="output directory (default: a new temporary one)")
    args = ap.parse_args()

    from rich.console import Console

    import shl
    from shl_analysis.timings import run_dirs_of, stage_breakdown

    overrides = [] if args.rounds is None else [f"loop.rounds={args.rounds}"]
    workers = args.workers
    if args.before:
        switch_off_speedups()
        overrides += ["heal.ref_cache_mb=0", "heal.group_by_length=false"]
        workers = workers or 1
    out = Path(args.out or tempfile.mkdtemp(prefix="shl-main-job-")) / ("before" if args.before else "after")
    t0 = time.perf_counter()
    result = shl.ablate(args.experiment, seeds=args.seeds, out=out, overrides=overrides, workers=workers,
                        executor="inprocess" if workers == 1 else None, console=Console(quiet=True))
    wall = time.perf_counter() - t0
    df = stage_breakdown(run_dirs_of(out, None))
    print(f"{'before' if args.before else 'after'}: {len(result.executed)} runs in {wall:.0f} s wall "
          f"({wall / 60:.1f} min), {os.cpu_count()} cores, {'failed: ' + str(result.failed) if result.failed else 'all finished'}")
    print(f"run time by stage (summed over runs: {df['seconds'].sum():.0f} s)")
    print("| stage | seconds | share |\n|---|---|---|")
    for r in df.itertuples():
        print(f"| {r.stage} | {r.seconds:.0f} | {100 * r.share:.1f}% |")
    print()
    print("\n".join(variance_components(out)))
    print(f"\nresults: {out}")
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
