"""Paired arm-vs-baseline report: the numeric comparison (this module), its rendering as tables (``tables``)
and its figures (``figures``), written under ``<out_dir>/report/``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

import numpy as np
import pandas as pd

from shl.store import CORRUPT, RUNS_DIR, atomic_write, claim_dir

from .endpoints import RunLengths, endpoint_value
from .figures import write_figures
from .frontier import FrontierResult, compare_frontiers
from .frontier_tables import frontier_markdown
from .html_page import PAGE_NAME, PageInputs, render_page
from .paired import PairedResult, corrected_pvalues, paired_comparison, verdict_for
from .power import BOUNDARY_SHARE, POWER, min_detectable_effect, seeds_needed, verdict_alpha
from .gates import compute_gates, gates_markdown
from .results import USABLE_STATUSES, load_runs, missing_values, run_table
from .spec import ComparisonSpec
from .tables import _check_adaptive, _display_table, _latex_table, _markdown, latex_escape  # noqa: F401
from .software import software_lines
from .timings import breakdown_markdown, run_dirs_of, stage_breakdown

__all__ = ["ReportResult", "paired_differences", "write_report"]

_NUMERIC_COLUMNS = [
    "metric", "arm", "baseline", "n", "dropped", "early_arm", "early_baseline", "mean_baseline", "sd_baseline",
    "mean_arm", "sd_arm", "delta", "sd_diff", "ci_low", "ci_high", "d_z", "wins", "p_t",
    "p_perm", "perm_test", "p_adj", "alpha_verdict", "mde", "target_effect", "n_needed", "verdict",
]


@dataclass(frozen=True)
class ReportResult:
    """What write_report produced.

    markdown: the comparison.md text. paths: every file written. table: the
    numeric comparison table (one row per metric x arm, columns as in
    comparison.csv). dropped: seed -> reason for seeds excluded from all
    comparisons. kept_seeds: seeds usable in every arm. frontier: the frontier
    comparison (``comparison.frontier``; its table also in frontier.csv), else None.
    """

    markdown: str
    paths: list[Path]
    table: pd.DataFrame
    dropped: dict[int, str] = field(default_factory=dict)
    kept_seeds: list[int] = field(default_factory=list)
    frontier: FrontierResult | None = None


# ---------------------------------------------------------------- selection

def _select_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One run per (arm, seed): prefer a usable one, then the last run_id."""
    notes = []
    runs = runs.assign(_usable=runs["status"].isin(USABLE_STATUSES))
    runs = runs.sort_values(["arm", "seed", "_usable", "run_id"])
    dup = runs.duplicated(["arm", "seed"], keep=False)
    for (arm, seed), grp in runs[dup].groupby(["arm", "seed"]):
        notes.append(f"arm `{arm}` seed {seed} has {len(grp)} run dirs; using `{grp['run_id'].iloc[-1]}`.")
    chosen = runs.drop_duplicates(["arm", "seed"], keep="last").drop(columns="_usable")
    return chosen.reset_index(drop=True), notes


def _seed_usability(chosen: pd.DataFrame, arms: list[str],
                    planned_seeds: Collection[int] = ()) -> tuple[list[int], dict[int, str]]:
    status = {(r.arm, int(r.seed)): (f"{r.status} ({r.message})" if r.status == CORRUPT else r.status)
              for r in chosen.itertuples()}
    seeds = sorted({int(s) for s in chosen["seed"].dropna()} | {int(s) for s in planned_seeds})
    kept, dropped = [], {}
    for seed in seeds:
        problems = []
        for arm in arms:
            st = status.get((arm, seed), "missing")
            if st.split(" ")[0] not in USABLE_STATUSES:
                problems.append(f"{st} in `{arm}`")
        if problems:
            dropped[seed] = "; ".join(problems)
        else:
            kept.append(seed)
    return kept, dropped


def _run_lengths(tidy: pd.DataFrame, chosen: pd.DataFrame, seeds: Collection[int]) -> RunLengths:
    """How far each chosen run of `seeds` got: its largest round with any numeric metric value."""
    ids = chosen[chosen["seed"].isin(list(seeds))]
    last = tidy[tidy["run_id"].isin(set(ids["run_id"]))].groupby("run_id")["round"].max()
    return RunLengths({(r.arm, int(r.seed)): int(last[r.run_id]) for r in ids.itertuples() if r.run_id in last.index})


def _endpoints(tidy: pd.DataFrame, chosen: pd.DataFrame, seeds: list[int], metric: str,
               spec: ComparisonSpec, lengths: RunLengths | None = None,
               holes: Collection[tuple[str, int, str]] = (), flagged: list | None = None,
               ) -> dict[tuple[str, int], float]:
    """(arm, seed) -> endpoint of `metric`. For ``last_common`` the round of a seed is the smallest last round of
    its chosen runs across all arms (``lengths``, computed from `tidy` when not given).

    ``holes``: (run_id, round, metric) stored as null or NaN (``results.missing_values``). A run whose `metric` is
    such a hole at a round its endpoint reads (``final``: its last round; ``last_k``: its last k rounds; ``auc``:
    any; ``last_common``: the common round) gets NaN, so its seed leaves this metric's comparisons, instead of
    an earlier round standing in unnoticed; ``(run_id, arm, seed, metric, rounds)`` is appended to ``flagged``."""
    if lengths is None:
        lengths = _run_lengths(tidy, chosen, seeds)
    sub = tidy[tidy["metric"] == metric]
    by_run = {rid: g for rid, g in sub.groupby("run_id")}
    hole_rounds: dict[str, list[int]] = {}
    for rid, rnd, m in holes:
        if m == metric:
            hole_rounds.setdefault(rid, []).append(int(rnd))
    out = {}
    for r in chosen[chosen["seed"].isin(seeds)].itertuples():
        g = by_run.get(r.run_id)
        rows = [] if g is None else [{"round": int(k), metric: float(v)} for k, v in zip(g["round"], g["value"])]
        common = lengths.common(int(r.seed)) if spec.endpoint == "last_common" else None
        if spec.endpoint == "last_common" and common is None:
            out[(r.arm, int(r.seed))] = math.nan
            continue
        bad = _holes_read(spec, [row["round"] for row in rows], hole_rounds.get(r.run_id, []),
                          lengths.last.get((r.arm, int(r.seed))), common)
        if bad:
            out[(r.arm, int(r.seed))] = math.nan
            if flagged is not None:
                flagged.append((r.run_id, r.arm, int(r.seed), metric, bad))
            continue
        out[(r.arm, int(r.seed))] = endpoint_value(rows, metric, spec.endpoint, spec.last_k, common_round=common)
    return out


def _holes_read(spec: ComparisonSpec, rounds: list[int], holes: list[int], last: int | None,
                common: int | None) -> list[int]:
    """The rounds among `holes` (null/NaN values of one run's metric) that the endpoint would read."""
    if not holes:
        return []
    if spec.endpoint == "last_common":
        return sorted(h for h in holes if h == common)
    if spec.endpoint == "auc":
        return sorted(holes)
    present = sorted(set(rounds) | set(holes) | ({last} if last is not None else set()))
    k = spec.last_k if spec.endpoint == "last_k" else 1
    first_read = present[-k] if len(present) >= k else present[0]
    return sorted(h for h in holes if h >= first_read)


def hole_notes(flagged: list, endpoint: str) -> list[str]:
    """One note per run whose endpoint met a null or NaN value (see ``_endpoints``)."""
    notes = []
    for run_id, arm, seed, metric, rounds in sorted(flagged, key=lambda f: (f[3], f[1], f[2])):
        at = ", ".join(str(x) for x in rounds)
        notes.append(f"run `{run_id}` (arm `{arm}`, seed {seed}): `{metric}` is null or NaN at round {at}, which "
                     f"its `{endpoint}` endpoint reads; seed {seed} is left out of the `{metric}` comparisons "
                     f"(no earlier round stands in for it).")
    return notes


# ---------------------------------------------------------------- table

def _compare(spec: ComparisonSpec, arms: list[str], kept: list[int], n_dropped_global: int,
             endpoints: dict[str, dict], lengths: RunLengths | None = None,
             limits: dict[tuple[str, str], int] | None = None, primary_share: float = 1.0,
             ) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """The numeric comparison table (columns ``_NUMERIC_COLUMNS``) and the per-seed differences per
    (metric, arm). early_arm / early_baseline: paired seeds whose arm / baseline run ended before the last
    round any compared run reached (NA without ``lengths``). ``limits``: (metric, arm) -> compare only its first
    n paired seeds (an arm the adaptive rule settled earlier than the others). ``primary_share``: the share of
    alpha the primary metric's verdicts use (an adaptive run's efficacy boundary spent the rest)."""
    rows, diffs = [], {}
    full = None if lengths is None else lengths.full
    n_seeds = len(kept) + n_dropped_global
    for m in spec.metrics:
        higher = m.direction == "higher"
        ep = endpoints[m.name]
        # a seed whose endpoint is missing in any arm is dropped from every comparison of this metric
        usable = [s for s in kept if all(np.isfinite(ep.get((a, s), math.nan)) for a in arms)]
        metric_rows = []
        for arm in arms:
            if arm == spec.baseline:
                continue
            pairs = [(s, ep[(spec.baseline, s)], ep[(arm, s)]) for s in usable]
            if limits and (m.name, arm) in limits:
                pairs = pairs[: limits[(m.name, arm)]]
            row = dict.fromkeys(_NUMERIC_COLUMNS, math.nan)
            row.update(metric=m.name, arm=arm, baseline=spec.baseline, n=len(pairs),
                       dropped=n_seeds - len(pairs), wins=0, perm_test="", early_arm=pd.NA, early_baseline=pd.NA)
            if full is not None:
                paired = [s for s, _, _ in pairs]
                row.update(early_arm=len(lengths.ended_early(arm, paired)),
                           early_baseline=len(lengths.ended_early(spec.baseline, paired)))
            if len(pairs) >= 2:
                res: PairedResult = paired_comparison([b for _, b, _ in pairs], [a for _, _, a in pairs],
                                                      alpha=spec.alpha, higher_is_better=higher)
                row.update(mean_baseline=res.mean_baseline, sd_baseline=res.sd_baseline,
                           mean_arm=res.mean_arm, sd_arm=res.sd_arm, delta=res.mean_diff,
                           sd_diff=res.sd_diff, ci_low=res.ci_low, ci_high=res.ci_high, d_z=res.d_z,
                           wins=res.wins, p_t=res.p_t, p_perm=res.p_perm, perm_test=res.perm_method)
            else:
                row["verdict"] = "no paired seeds" if not pairs else "too few paired seeds (n=1)"
                if pairs:
                    _, b, a = pairs[0]
                    row.update(mean_baseline=b, mean_arm=a, delta=a - b,
                               wins=int((a > b) if higher else (a < b)))
            diffs[(m.name, arm)] = pd.DataFrame(
                {"seed": [s for s, _, _ in pairs], "diff": [a - b for _, b, a in pairs]})
            metric_rows.append(row)
        adj, k = corrected_pvalues([r["p_t"] for r in metric_rows], spec.alpha, spec.correction)
        # MDE and seeds needed at the per-comparison level the correction implies (see verdict_alpha)
        alpha_m = spec.alpha * (primary_share if m.name == spec.primary else 1.0)
        a_v = verdict_alpha(alpha_m, spec.correction, k) if k else math.nan
        target = spec.target_effect_for(m.name)
        for r, p in zip(metric_rows, adj):
            r["p_adj"] = float(p)
            r["target_effect"] = math.nan if target is None else float(target)
            r["n_needed"] = pd.NA
            if r["n"] >= 2:
                n, sd = int(r["n"]), float(r["sd_diff"])
                r["alpha_verdict"] = a_v
                r["mde"] = min_detectable_effect(n, sd, a_v, POWER)  # NaN when sd(d) = 0
                if target is not None:
                    r["n_needed"] = seeds_needed(target, sd, a_v, POWER)
                r["verdict"] = verdict_for(p, r["delta"], r["mde"], alpha_m, higher,
                                           n=n, sd_diff=sd, alpha_verdict=a_v)
        rows.extend(metric_rows)
    table = pd.DataFrame(rows, columns=_NUMERIC_COLUMNS).astype(
        {"n": int, "dropped": int, "wins": int, "n_needed": "Int64", "early_arm": "Int64", "early_baseline": "Int64"})
    return table, diffs


# ---------------------------------------------------------------- entry point

def paired_differences(out_dir: str | Path, spec: ComparisonSpec, metric: str, run_ids: Collection[str] | None = None,
                       planned_seeds: Collection[int] = (), planned_arms: Collection[str] = ()) -> dict[str, list[float]]:
    """arm -> per-seed endpoint differences (arm - baseline) of ``metric`` over the seeds the report would pair
    (usable in every arm, endpoint present in every arm); the input of the adaptive stopping rule."""
    runs = run_table(out_dir, run_ids)
    if runs.empty:
        return {}
    runs = runs.dropna(subset=["arm", "seed"])
    arms = [spec.baseline] + [a for a in dict.fromkeys([*runs["arm"], *planned_arms]) if a != spec.baseline]
    chosen, _ = _select_runs(runs)
    kept, _ = _seed_usability(chosen, arms, planned_seeds)
    ep = _endpoints(load_runs(out_dir, run_ids), chosen, kept, metric, spec,  # last_common: rounds of `kept`
                    holes=missing_values(out_dir, run_ids))
    usable = [s for s in kept if all(np.isfinite(ep.get((a, s), math.nan)) for a in arms)]
    return {a: [ep[(a, s)] - ep[(spec.baseline, s)] for s in usable] for a in arms if a != spec.baseline}


def write_report(
    out_dir: str | Path,
    spec: ComparisonSpec,
    formats: Iterable[str] = ("md", "csv", "latex", "html"),
    figures: bool = True,
    run_ids: Collection[str] | None = None,
    planned_seeds: Collection[int] = (),
    planned_arms: Collection[str] = (),
    adaptive: dict | None = None,
) -> ReportResult:
    """Write the paired comparison report under `<out_dir>/report/` and return it.

    Seeds not usable (status complete/stopped) in every arm are dropped from all
    comparisons. Writes comparison.{md,csv,tex} and the self-contained page report.html (``html_page``) per
    `formats`, plus tidy.csv and runs.csv always, and figures/ (PNG+SVG; see ``figures.write_figures``) if `figures`.
    The markdown says per arm how many compared seeds ended early (before the last
    round any compared run reached) and at which round; with the ``final`` endpoint
    their pairs compare different rounds, ``last_common`` compares the same round. Raises ValueError if
    the store has no runs or the baseline arm is absent. ``run_ids`` restricts the report to those run
    directories (the runner passes the runs of the current plan); ``planned_seeds`` and ``planned_arms`` name
    seeds and arms that were planned, so one with no run at all is reported as missing, not silently absent.

    ``adaptive``, when the seeds were added adaptively (``shl ablate --until-mde``), adds a line to the
    markdown report naming the rule. Keys: ``until_mde`` (target MDE X, metric units of the primary
    metric) and ``max_seeds`` (required); ``batch`` (seeds per step; required unless ``rule`` is given);
    optional ``rule`` (one sentence; default ``power.describe_stopping_rule`` with these arguments),
    ``alpha_verdict`` (default: the correction's per-comparison level over the non-baseline arms),
    ``min_seeds`` and ``batches`` (the seeds added in each batch, e.g. ``[[0, 1, 2], [3, 4]]``).
    Unknown keys raise ValueError.
    """
    out_dir = Path(out_dir)
    formats = set(formats)
    _check_adaptive(adaptive)
    unknown = formats - {"md", "csv", "latex", "html"}
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; choose from md, csv, latex, html")
    runs = run_table(out_dir, run_ids)
    if runs.empty:
        raise ValueError(f"no run directories found under {out_dir / RUNS_DIR}")
    runs = runs.dropna(subset=["arm", "seed"])
    arms_present = sorted(runs["arm"].unique())
    if spec.baseline not in arms_present:
        raise ValueError(f"baseline arm {spec.baseline!r} not found; arms present: {arms_present}")
    others = list(dict.fromkeys([*arms_present, *planned_arms]))
    arms = [spec.baseline] + [a for a in others if a != spec.baseline]
    tidy = load_runs(out_dir, run_ids)
    chosen, notes = _select_runs(runs)
    kept, dropped = _seed_usability(chosen, arms, planned_seeds)
    lengths = _run_lengths(tidy, chosen, kept)

    cache: dict[str, dict] = {}
    holes = missing_values(out_dir, run_ids)
    flagged: list = []

    def endpoints_of(metric: str) -> dict:
        if metric not in cache:
            cache[metric] = _endpoints(tidy, chosen, kept, metric, spec, lengths, holes, flagged)
        return cache[metric]

    limits = {(spec.primary, a): int(st["n"]) for a, st in ((adaptive or {}).get("arms") or {}).items()
              if isinstance(st, dict) and st.get("n")}
    share = 1.0 - BOUNDARY_SHARE if (adaptive or {}).get("boundary_alpha") else 1.0
    table, diffs = _compare(spec, arms, kept, len(dropped), {m.name: endpoints_of(m.name) for m in spec.metrics},
                            lengths, limits, share)
    frontier = None
    if spec.frontier is not None:
        fx, fy = endpoints_of(spec.frontier.x), endpoints_of(spec.frontier.y)
        frontier = compare_frontiers(spec, fx, fy, kept)
    display = _display_table(table, spec.alpha)

    report_dir = out_dir / "report"
    claim_dir(report_dir, "the report")
    written: list[Path] = []
    fig_paths: list[Path] = []
    if figures:
        fig_paths, fig_notes = write_figures(report_dir / "figures", spec, arms, tidy, chosen, kept, diffs,
                                             endpoints_of, table, lengths)
        written += fig_paths
        notes += fig_notes
    notes += hole_notes([f for f in flagged if f[3] in {m.name for m in spec.metrics}], spec.endpoint)
    compared = sorted(chosen.loc[chosen["seed"].isin(kept) & chosen["arm"].isin(arms), "run_id"]) if len(chosen) else []
    software = software_lines(out_dir, compared)
    gates_md = gates_markdown(compute_gates(tidy, chosen, kept, arms, spec.alpha))
    page_md = _markdown(spec, arms, kept, dropped, display, table, notes, adaptive, lengths) + "\n" + \
        "\n".join(f"- {line}" for line in software) + "\n"
    if frontier is not None:
        page_md = frontier_markdown(spec, frontier, kept) + "\n" + page_md
    md = page_md + "\n" + gates_md
    timing = stage_breakdown(run_dirs_of(out_dir, run_ids))
    md += "\n" + "\n".join(breakdown_markdown(timing)) if not timing.empty else ""

    def _write(name: str, text: str) -> None:
        p = report_dir / name
        atomic_write(p, text)
        written.append(p)

    if "md" in formats:
        _write("comparison.md", md)
    if "csv" in formats:
        _write("comparison.csv", table.to_csv(index=False))
        if frontier is not None:
            _write("frontier.csv", frontier.table.to_csv(index=False))
    if "latex" in formats:
        _write("comparison.tex", _latex_table(display))
    if "html" in formats:
        _write(PAGE_NAME, render_page(PageInputs(out_dir, spec, arms, kept, dropped, display, page_md, timing, runs,
                                                 chosen, tidy, lengths, fig_paths, gates_md)))
    _write("tidy.csv", tidy.to_csv(index=False))
    _write("runs.csv", runs.to_csv(index=False))
    if not timing.empty:
        _write("timings.csv", timing.to_csv(index=False))
    return ReportResult(markdown=md, paths=written, table=table, dropped=dropped, kept_seeds=kept,
                        frontier=frontier)
