"""Paired arm-vs-baseline report: tables (md/csv/LaTeX), tidy dumps and figures."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.ticker import MaxNLocator
from scipy import stats
from statsmodels.stats.multitest import multipletests

from shl.store import atomic_write, claim_dir

from .endpoints import endpoint_value
from .paired import PairedResult, paired_comparison, verdict_for
from .power import POWER, exact_min_n, exact_min_p, min_detectable_effect, seeds_needed, verdict_alpha
from .results import USABLE_STATUSES, load_runs, run_table
from .spec import ComparisonSpec
from .timings import breakdown_markdown, run_dirs_of, stage_breakdown

_CORRECTION_METHOD = {"holm": "holm", "bonferroni": "bonferroni", "bh": "fdr_bh"}
_NUMERIC_COLUMNS = [
    "metric", "arm", "baseline", "n", "dropped", "mean_baseline", "sd_baseline",
    "mean_arm", "sd_arm", "delta", "sd_diff", "ci_low", "ci_high", "d_z", "wins", "p_t",
    "p_perm", "p_adj", "alpha_verdict", "mde", "target_effect", "n_needed", "verdict",
]


@dataclass(frozen=True)
class ReportResult:
    """What write_report produced.

    markdown: the comparison.md text. paths: every file written. table: the
    numeric comparison table (one row per metric x arm, columns as in
    comparison.csv). dropped: seed -> reason for seeds excluded from all
    comparisons. kept_seeds: seeds usable in every arm.
    """

    markdown: str
    paths: list[Path]
    table: pd.DataFrame
    dropped: dict[int, str] = field(default_factory=dict)
    kept_seeds: list[int] = field(default_factory=list)


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
    status = {(r.arm, int(r.seed)): (f"{r.status} ({r.message})" if r.status == "corrupt" else r.status)
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


def _endpoints(tidy: pd.DataFrame, chosen: pd.DataFrame, seeds: list[int], metric: str,
               spec: ComparisonSpec) -> dict[tuple[str, int], float]:
    sub = tidy[tidy["metric"] == metric]
    by_run = {rid: g for rid, g in sub.groupby("run_id")}
    out = {}
    for r in chosen[chosen["seed"].isin(seeds)].itertuples():
        g = by_run.get(r.run_id)
        rows = [] if g is None else [{"round": int(k), metric: float(v)} for k, v in zip(g["round"], g["value"])]
        out[(r.arm, int(r.seed))] = endpoint_value(rows, metric, spec.endpoint, spec.last_k)
    return out


# ---------------------------------------------------------------- table

def _compare(spec: ComparisonSpec, arms: list[str], kept: list[int], n_dropped_global: int,
             endpoints: dict[str, dict], ) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    rows, diffs = [], {}
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
            row = dict.fromkeys(_NUMERIC_COLUMNS, math.nan)
            row.update(metric=m.name, arm=arm, baseline=spec.baseline, n=len(pairs),
                       dropped=n_seeds - len(pairs), wins=0)
            if len(pairs) >= 2:
                res: PairedResult = paired_comparison([b for _, b, _ in pairs], [a for _, _, a in pairs],
                                                      alpha=spec.alpha, higher_is_better=higher)
                row.update(mean_baseline=res.mean_baseline, sd_baseline=res.sd_baseline,
                           mean_arm=res.mean_arm, sd_arm=res.sd_arm, delta=res.mean_diff,
                           sd_diff=res.sd_diff, ci_low=res.ci_low, ci_high=res.ci_high, d_z=res.d_z,
                           wins=res.wins, p_t=res.p_t, p_perm=res.p_perm)
            else:
                row["verdict"] = "no paired seeds" if not pairs else "too few paired seeds (n=1)"
                if pairs:
                    _, b, a = pairs[0]
                    row.update(mean_baseline=b, mean_arm=a, delta=a - b,
                               wins=int((a > b) if higher else (a < b)))
            diffs[(m.name, arm)] = pd.DataFrame(
                {"seed": [s for s, _, _ in pairs], "diff": [a - b for _, b, a in pairs]})
            metric_rows.append(row)
        pvals = np.array([r["p_t"] for r in metric_rows], dtype=float)
        ok = np.isfinite(pvals)
        adj = pvals.copy()
        if spec.correction != "none" and ok.any():
            adj[ok] = multipletests(pvals[ok], alpha=spec.alpha, method=_CORRECTION_METHOD[spec.correction])[1]
        # MDE and seeds needed at the per-comparison level the correction implies (see verdict_alpha)
        k = int(ok.sum())
        a_v = verdict_alpha(spec.alpha, spec.correction, k) if k else math.nan
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
                r["verdict"] = verdict_for(p, r["delta"], r["mde"], spec.alpha, higher,
                                           n=n, sd_diff=sd, alpha_verdict=a_v)
        rows.extend(metric_rows)
    table = pd.DataFrame(rows, columns=_NUMERIC_COLUMNS).astype(
        {"n": int, "dropped": int, "wins": int, "n_needed": "Int64"})
    return table, diffs


def _fmt(x: float, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def _display_table(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    ci = f"{100 * (1 - alpha):g}% CI"
    out = pd.DataFrame({
        "metric": table["metric"],
        "arm": table["arm"],
        "baseline": table["baseline"],
        "n": table["n"].astype(str),
        "dropped": table["dropped"].astype(str),
        "baseline mean±sd": [f"{_fmt(m, '.4g')} ± {_fmt(s, '.2g')}" for m, s in zip(table["mean_baseline"], table["sd_baseline"])],
        "arm mean±sd": [f"{_fmt(m, '.4g')} ± {_fmt(s, '.2g')}" for m, s in zip(table["mean_arm"], table["sd_arm"])],
        "delta": [_fmt(d, "+.3g") for d in table["delta"]],
        ci: [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "d_z": [_fmt(d, ".2f") for d in table["d_z"]],
        "wins": [f"{w}/{n}" for w, n in zip(table["wins"], table["n"])],
        "p (t)": [_fmt(p) for p in table["p_t"]],
        "p (perm)": [_fmt(p) for p in table["p_perm"]],
        "p (adj)": [_fmt(p) for p in table["p_adj"]],
        "alpha_verdict": [_fmt(a) for a in table["alpha_verdict"]],
        "MDE": [_fmt(m) for m in table["mde"]],
        "n_needed": ["n/a" if pd.isna(v) else str(int(v)) for v in table["n_needed"]],
        "verdict": table["verdict"],
    })
    return out


def _markdown_table(df: pd.DataFrame) -> str:
    cells = lambda vals: "| " + " | ".join(str(v).replace("|", "\\|") for v in vals) + " |"
    lines = [cells(df.columns), "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += [cells(r) for r in df.itertuples(index=False)]
    return "\n".join(lines)


_LATEX_ESC = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "|": r"\textbar{}", "±": r"$\pm$", "≥": r"$\geq$", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (underscores included) for text mode."""
    text = str(text).replace(">=", "≥")
    return "".join(_LATEX_ESC.get(c, c) for c in text)


def _latex_table(df: pd.DataFrame) -> str:
    lines = [r"\begin{tabular}{" + "l" * 3 + "r" * (len(df.columns) - 4) + "l}", r"\hline",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\hline"]
    lines += [" & ".join(latex_escape(v) for v in r) + r" \\" for r in df.itertuples(index=False)]
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


_ADAPTIVE_KEYS = {"until_mde", "max_seeds", "batch", "rule", "alpha_verdict", "min_seeds", "batches"}


def _check_adaptive(adaptive: dict | None) -> None:
    if adaptive is None:
        return
    unknown = set(adaptive) - _ADAPTIVE_KEYS
    if unknown:
        raise ValueError(f"unknown adaptive keys {sorted(unknown)}; expected some of {sorted(_ADAPTIVE_KEYS)}")
    missing = {"until_mde", "max_seeds"} - set(adaptive)
    if "rule" not in adaptive and "batch" not in adaptive:
        missing.add("batch")
    if missing:
        raise ValueError(f"adaptive needs {sorted(missing)}")


def _seed_ranges(seeds: Iterable[int]) -> str:
    seeds = sorted({int(x) for x in seeds})
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ", ".join(parts)


def _adaptive_line(adaptive: dict, spec: ComparisonSpec, k: int) -> str:
    from .power import describe_stopping_rule

    x, cap = float(adaptive["until_mde"]), int(adaptive["max_seeds"])
    a_v = float(adaptive.get("alpha_verdict", verdict_alpha(spec.alpha, spec.correction, max(1, k))))
    rule = adaptive.get("rule") or describe_stopping_rule(x, cap, int(adaptive["batch"]), a_v,
                                                         min_seeds=adaptive.get("min_seeds"))
    facts = [f"target MDE {x:g} on `{spec.primary}`", f"at most {cap} seeds"]
    if "batch" in adaptive:
        facts.append(f"batches of {int(adaptive['batch'])}")
    if adaptive.get("batches"):
        facts.append("seeds per batch: " + " | ".join(_seed_ranges(b) for b in adaptive["batches"]))
    return f"- seeds were added adaptively ({'; '.join(facts)}). Rule: {rule.rstrip('.')}."


_ALPHA_WHY = {
    "holm": "the Bonferroni level: a row with p < alpha/k is significant under Holm whatever the other rows "
            "show, while Holm tests lower-ranked rows at up to alpha/(k - rank + 1), so MDE and n_needed are "
            "conservative for them",
    "bonferroni": "the level Bonferroni tests every row at",
    "bh": "a row with p < alpha/k is significant under Benjamini-Hochberg whatever the other rows show; BH's "
          "own levels alpha*rank/k depend on the ranking of the observed p-values, so the data-independent "
          "alpha/k is used as a conservative bound",
}


def _power_footnote(spec: ComparisonSpec, table: pd.DataFrame) -> str:
    tested = table[table["n"] >= 2]
    per_metric = {m: (int(len(g)), float(g["alpha_verdict"].iloc[0])) for m, g in tested.groupby("metric", sort=False)}
    if spec.correction == "none":
        level = f"alpha = {spec.alpha:g} (no correction)"
    else:
        ks = sorted(set(per_metric.values()))
        where = (f"k = {ks[0][0]}: {ks[0][1]:.3g}" if len(ks) == 1 else
                 "; ".join(f"`{m}`: k = {kk}, {a:.3g}" for m, (kk, a) in per_metric.items()))
        level = f"alpha/k with k the number of tested arms in the metric's family ({where}), {_ALPHA_WHY[spec.correction]}"
    targets = {m.name: spec.target_effect_for(m.name) for m in spec.metrics}
    if all(t is None for t in targets.values()):
        needed = "n_needed: n/a (no target_effect set in the comparison spec)."
    else:
        vals = set(targets.values())
        what = (f"|delta| = {next(iter(vals)):g}" if len(vals) == 1 else
                "|delta| = " + ", ".join(f"{t:g} for `{m}`" for m, t in targets.items() if t is not None))
        needed = (f"n_needed: seeds needed for {POWER:.0%} power to detect {what} (target_effect, metric units) "
                  f"at alpha_verdict given the observed sd(d), and at least the n at which the exact sign-flip "
                  f"test can reach alpha_verdict (2/2^n < alpha_verdict).")
    return (f"alpha_verdict: the per-comparison level at which MDE and n_needed are computed, {level}. "
            f"MDE: smallest |delta| detectable with {POWER:.0%} power by the two-sided paired t-test "
            f"(noncentral t) at this n, sd(d) and alpha_verdict; n/a where sd(d) = 0, for which the t-model "
            f"gives no MDE. " + needed)


def _markdown(spec: ComparisonSpec, arms: list[str], kept: list[int], dropped: dict[int, str],
              display: pd.DataFrame, table: pd.DataFrame, notes: list[str],
              adaptive: dict | None = None) -> str:
    k = len(arms) - 1
    corr = {"holm": "Holm", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg (FDR)", "none": "no"}[spec.correction]
    endpoint = {"final": "value at the final round", "last_k": f"mean of the last {spec.last_k} rounds",
                "auc": "area under the metric-vs-round curve divided by the round span"}[spec.endpoint]
    out = [f"# Paired comparison against `{spec.baseline}`", "",
           f"- endpoint: `{spec.endpoint}` ({endpoint}); alpha = {spec.alpha:g} (two-sided); primary metric: `{spec.primary}`",
           f"- arms: {', '.join(f'`{a}`' for a in arms)}",
           f"- seeds usable in every arm: {len(kept)} ({', '.join(map(str, kept)) or 'none'})"]
    if adaptive is not None:
        out.append(_adaptive_line(adaptive, spec, k))
    out.append(f"- seeds dropped from all comparisons: {len(dropped)}")
    out += [f"  - seed {s}: {why}" for s, why in dropped.items()]
    out += ["", _markdown_table(display), ""]
    # rows whose n is too small for the exact sign-flip test to reach the alpha their verdict uses
    levels = {spec.alpha} | {float(a) for a in table["alpha_verdict"] if np.isfinite(a)}
    level_of = [a if np.isfinite(a) else spec.alpha for a in table["alpha_verdict"]]
    small = sorted({int(n) for n, a in zip(table["n"], level_of) if 1 <= n < exact_min_n(a)})
    if small:
        smallest = ", ".join(f"n={n}: {exact_min_p(n):.3g}" for n in small)
        reach = ", nor ".join(
            f"p < {a:.3g}{' (alpha_verdict)' if a != spec.alpha else ''} with n < {exact_min_n(a)} pairs"
            for a in sorted(levels, reverse=True))
        out.append(f"**Note:** no two-sided sign-flip test can reach {reach}; the smallest possible exact p is "
                   f"2/2^n ({smallest}). Below that n only the t-test can give a significant verdict.")
        out.append("")
    out.append(f"Test: two-sided paired t-test on per-seed endpoint differences (arm − baseline); "
               f"exact sign-flip permutation test (all 2^n sign flips, two-sided, on the mean difference) "
               f"as a robustness check. p (adj): {corr} correction across the family of {k} "
               f"arms-vs-baseline comparison(s) within each metric; the verdict uses p (adj) < {spec.alpha:g}. "
               f"CI: t-interval of the mean difference. d_z = mean(d)/sd(d). wins: pairs where the arm is "
               f"strictly better. " + _power_footnote(spec, table))
    out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- figures

def _t_summary(values: Iterable[float]) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = v.size
    if n == 0:
        return math.nan, math.nan, 0
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n >= 2 else 0.0
    return float(v.mean()), half, n


def _save(fig, path_stem: Path, written: list[Path]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    for ext in ("png", "svg"):
        p = path_stem.with_suffix(f".{ext}")
        buf = io.BytesIO()
        with rc_context({"svg.hashsalt": "shl"}):  # SVG ids stay the same from one run to the next
            fig.savefig(buf, format=ext, dpi=150, metadata={"Date": None} if ext == "svg" else None)
        atomic_write(p, buf.getvalue())
        written.append(p)
    fig.clf()


def _figures(fig_dir: Path, spec: ComparisonSpec, arms: list[str], tidy: pd.DataFrame,
             chosen: pd.DataFrame, kept: list[int], diffs: dict, endpoints_of) -> tuple[list[Path], list[str]]:
    import seaborn as sns
    from matplotlib.figure import Figure

    written, notes = [], []
    if not kept:
        return written, ["figures skipped: no seed is usable in every arm."]
    claim_dir(fig_dir, "report figures")
    palette = dict(zip(arms, sns.color_palette(n_colors=len(arms))))
    run_ids = set(chosen[chosen["seed"].isin(kept)]["run_id"])
    sub = tidy[tidy["run_id"].isin(run_ids)]

    fig = Figure(figsize=(4.5 * len(spec.metrics), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(spec.metrics), squeeze=False)[0])
    for ax, m in zip(axes, spec.metrics):
        recs = []
        for (arm, rnd), g in sub[sub["metric"] == m.name].groupby(["arm", "round"]):
            mean, half, n = _t_summary(g["value"])
            recs.append({"arm": arm, "round": rnd, "mean": mean, "lo": mean - half, "hi": mean + half})
        summ = pd.DataFrame(recs, columns=["arm", "round", "mean", "lo", "hi"])
        if len(summ):
            sns.lineplot(data=summ, x="round", y="mean", hue="arm", palette=palette, marker="o",
                         errorbar=None, ax=ax)
            for arm, g in summ.groupby("arm"):
                ax.fill_between(g["round"], g["lo"], g["hi"], color=palette[arm], alpha=0.2, linewidth=0)
        ax.set_title(f"{m.name} ({m.direction} is better)")
        ax.set_ylabel(f"mean {m.name} ± t 95% CI")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, fig_dir / "trajectories", written)

    primary = spec.primary
    d = pd.concat([g.assign(arm=arm) for (mn, arm), g in diffs.items() if mn == primary and len(g)] or
                  [pd.DataFrame(columns=["seed", "diff", "arm"])], ignore_index=True)
    fig = Figure(figsize=(1.6 + 1.4 * max(1, len(arms) - 1), 3.6))
    ax = fig.subplots()
    if len(d):
        sns.stripplot(data=d, x="arm", y="diff", hue="arm", palette=palette, legend=False, size=7, ax=ax)
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--")
    ax.set_ylabel(f"{primary}: arm − {spec.baseline} (per seed)")
    ax.set_title(f"paired differences, {spec.endpoint} endpoint")
    _save(fig, fig_dir / f"paired_{re.sub(r'[^A-Za-z0-9_.-]', '_', primary)}", written)

    present = set(tidy["metric"].unique())
    if {"trait", "coherence"} <= present:
        ep_t, ep_c = endpoints_of("trait"), endpoints_of("coherence")
        fig = Figure(figsize=(4.8, 4.0))
        ax = fig.subplots()
        for arm in arms:
            xt, xh, _ = _t_summary([ep_t.get((arm, s), math.nan) for s in kept])
            yc, yh, _ = _t_summary([ep_c.get((arm, s), math.nan) for s in kept])
            if np.isfinite(xt) and np.isfinite(yc):
                ax.errorbar(xt, yc, xerr=xh, yerr=yh, fmt="o", capsize=3, color=palette[arm], label=arm)
        ax.set_xlabel(f"trait ({spec.endpoint})")
        ax.set_ylabel(f"coherence ({spec.endpoint})")
        ax.set_title("trait vs coherence (mean ± t 95% CI)")
        ax.legend(fontsize="small")
        _save(fig, fig_dir / "tradeoff", written)
    else:
        notes.append("tradeoff figure skipped: needs metrics named `trait` and `coherence`.")
    return written, notes


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
    ep = _endpoints(load_runs(out_dir, run_ids), chosen, kept, metric, spec)
    usable = [s for s in kept if all(np.isfinite(ep.get((a, s), math.nan)) for a in arms)]
    return {a: [ep[(a, s)] - ep[(spec.baseline, s)] for s in usable] for a in arms if a != spec.baseline}


def write_report(
    out_dir: str | Path,
    spec: ComparisonSpec,
    formats: Iterable[str] = ("md", "csv", "latex"),
    figures: bool = True,
    run_ids: Collection[str] | None = None,
    planned_seeds: Collection[int] = (),
    planned_arms: Collection[str] = (),
    adaptive: dict | None = None,
) -> ReportResult:
    """Write the paired comparison report under `<out_dir>/report/` and return it.

    Seeds not usable (status complete/stopped) in every arm are dropped from all
    comparisons. Writes comparison.{md,csv,tex} per `formats`, plus tidy.csv and
    runs.csv always, and figures/ (PNG+SVG) if `figures`. Raises ValueError if
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
    unknown = formats - {"md", "csv", "latex"}
    if unknown:
        raise ValueError(f"unknown report formats {sorted(unknown)}; choose from md, csv, latex")
    runs = run_table(out_dir, run_ids)
    if runs.empty:
        raise ValueError(f"no run directories found under {out_dir / 'runs'}")
    runs = runs.dropna(subset=["arm", "seed"])
    arms_present = sorted(runs["arm"].unique())
    if spec.baseline not in arms_present:
        raise ValueError(f"baseline arm {spec.baseline!r} not found; arms present: {arms_present}")
    others = list(dict.fromkeys([*arms_present, *planned_arms]))
    arms = [spec.baseline] + [a for a in others if a != spec.baseline]
    tidy = load_runs(out_dir, run_ids)
    chosen, notes = _select_runs(runs)
    kept, dropped = _seed_usability(chosen, arms, planned_seeds)

    cache: dict[str, dict] = {}

    def endpoints_of(metric: str) -> dict:
        if metric not in cache:
            cache[metric] = _endpoints(tidy, chosen, kept, metric, spec)
        return cache[metric]

    table, diffs = _compare(spec, arms, kept, len(dropped), {m.name: endpoints_of(m.name) for m in spec.metrics})
    display = _display_table(table, spec.alpha)

    report_dir = out_dir / "report"
    claim_dir(report_dir, "the report")
    written: list[Path] = []
    if figures:
        fig_paths, fig_notes = _figures(report_dir / "figures", spec, arms, tidy, chosen, kept, diffs, endpoints_of)
        written += fig_paths
        notes += fig_notes
    md = _markdown(spec, arms, kept, dropped, display, table, notes, adaptive)
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
    if "latex" in formats:
        _write("comparison.tex", _latex_table(display))
    _write("tidy.csv", tidy.to_csv(index=False))
    _write("runs.csv", runs.to_csv(index=False))
    if not timing.empty:
        _write("timings.csv", timing.to_csv(index=False))
    return ReportResult(markdown=md, paths=written, table=table, dropped=dropped, kept_seeds=kept)
