"""Report figures (PNG + SVG under ``report/figures/``), drawn from precomputed numbers only.

- ``forest``: the headline figure. Per metric, each arm's mean paired difference (arm − baseline) with the
  t-interval of the comparison table, a zero line, and the verdict marked (colour and marker, and in words with
  p (adj) and n at the right).
- ``paired_<metric>`` for every declared metric: the per-seed paired differences of each arm, with the mean and
  its t-interval beside them.
- ``trajectories``: per metric, the mean over seeds per round with its 95% t-interval as a band; for a metric
  whose observed values all lie in [0, 1] (a share) the band is clipped to [0, 1], and the caption says so.
- ``tradeoff`` (only with metrics named ``trait`` and ``coherence``): endpoint means with t-intervals.

Every interval is a t-interval computed here or in the table (never a bootstrap; seaborn's estimators are not
used). matplotlib and seaborn are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy import stats

from shl.store import atomic_write, claim_dir

from .endpoints import RunLengths
from .spec import ComparisonSpec

#: verdict kind -> (colour, marker, filled); Okabe-Ito colours, distinguishable without colour by the marker.
VERDICT_STYLE = {
    "better": ("#009E73", "o", True),
    "worse": ("#D55E00", "s", True),
    "inconclusive": ("#555555", "o", False),
    "not tested": ("#999999", "x", True),
}
SHARE_BOUNDS = (0.0, 1.0)
_CORRECTION_NAME = {"holm": "Holm correction", "bonferroni": "Bonferroni correction",
                    "bh": "Benjamini-Hochberg correction", "none": "no correction"}
_RC = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "legend.title_fontsize": 8.5,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6, "svg.hashsalt": "shl",
}
DPI = 200


def _t_summary(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the two-sided t-interval, n) of the finite values; half-width 0 for n = 1."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    n = v.size
    if n == 0:
        return math.nan, math.nan, 0
    q = 0.5 + confidence / 2
    half = float(stats.t.ppf(q, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n >= 2 else 0.0
    return float(v.mean()), half, n


def metric_bounds(values: Iterable[float]) -> tuple[float, float] | None:
    """(0, 1) when every finite value lies in [0, 1] (the metric is taken to be a share), else None."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size and v.min() >= SHARE_BOUNDS[0] and v.max() <= SHARE_BOUNDS[1]:
        return SHARE_BOUNDS
    return None


def verdict_kind(verdict: str) -> str:
    """"better" / "worse" / "inconclusive" / "not tested" (no or one pair) from a table verdict."""
    v = str(verdict)
    if v in ("better", "worse"):
        return v
    return "inconclusive" if v.startswith("inconclusive") else "not tested"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width=max(20, width), break_long_words=False))


def _spread(values: np.ndarray, step: float = 0.07) -> np.ndarray:
    """Deterministic horizontal offsets: points closer than 3% of the range are set side by side."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    span = float(np.ptp(values)) or 1.0
    tol = 0.03 * span
    out = np.zeros(values.size)
    placed: list[float] = []
    for i in np.argsort(values, kind="stable"):
        k = sum(abs(values[i] - p) < tol for p in placed)
        out[i] = ((k + 1) // 2) * step * (1 if k % 2 else -1)
        placed.append(values[i])
    return out


def _save(fig, path_stem: Path, written: list[Path]) -> None:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    for ext in ("png", "svg"):
        p = path_stem.with_suffix(f".{ext}")
        buf = io.BytesIO()
        with rc_context({"svg.hashsalt": "shl"}):  # SVG ids stay the same from one run to the next
            fig.savefig(buf, format=ext, dpi=DPI, bbox_inches="tight", pad_inches=0.06,
                        metadata={"Date": None} if ext == "svg" else None)
        atomic_write(p, buf.getvalue())
        written.append(p)
    fig.clf()


def _caption(fig, text: str, width: int) -> None:
    """A caption under the figure (savefig's tight bounding box takes it in)."""
    fig.text(0.01, 0.0, _wrap(text, width), ha="left", va="top", fontsize=7.5, color="#333333")


# ---------------------------------------------------------------- forest plot

def forest_figure(table: pd.DataFrame, spec: ComparisonSpec):
    """Headline figure: one panel per metric; per arm the mean paired difference with the table's t-interval,
    a zero line, and the verdict (marker/colour; in words with p (adj) and n at the right)."""
    from matplotlib.figure import Figure

    arms = list(dict.fromkeys(table["arm"]))
    metrics = [m for m in spec.metrics if (table["metric"] == m.name).any()]
    ci = f"{100 * (1 - spec.alpha):g}%"
    heights = [0.45 * max(1, len(arms)) + 0.85 for _ in metrics]
    fig = Figure(figsize=(6.4, sum(heights) + 0.7), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, m in zip(axes, metrics):
        rows = table[table["metric"] == m.name].set_index("arm")
        xs = [0.0]
        for i, arm in enumerate(arms):
            if arm not in rows.index:
                continue
            r = rows.loc[arm]
            kind = verdict_kind(r["verdict"])
            color, marker, filled = VERDICT_STYLE[kind]
            delta, lo, hi = (float(r[c]) for c in ("delta", "ci_low", "ci_high"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.errorbar([delta], [-i], xerr=[[delta - lo], [hi - delta]], fmt="none", ecolor=color,
                            elinewidth=1.6, capsize=4, zorder=3)
                xs += [lo, hi]
            if np.isfinite(delta):
                ax.plot([delta], [-i], marker=marker, ms=7, color=color, mec=color,
                        mfc=color if filled else "white", mew=1.5, linestyle="none", zorder=4)
                xs.append(delta)
            p = float(r["p_adj"])
            words = kind + (f", p(adj) = {p:.2g}" if np.isfinite(p) else "") + f", n = {int(r['n'])}"
            ax.annotate(words, xy=(1.0, -i), xycoords=ax.get_yaxis_transform(), xytext=(8, 0),
                        textcoords="offset points", ha="left", va="center", fontsize=8, color=color)
        ax.axvline(0.0, color="black", linewidth=0.9, linestyle="--", zorder=1)
        lo_x, hi_x = min(xs), max(xs)
        pad = 0.08 * (hi_x - lo_x or 1.0)
        ax.set_xlim(lo_x - pad, hi_x + pad)
        ax.set_yticks([-i for i in range(len(arms))], arms)
        ax.set_ylim(-len(arms) + 0.5, 0.5)
        ax.grid(axis="y", visible=False)
        ax.set_title(f"{m.name} ({m.direction} is better)", loc="left")
        ax.set_xlabel(f"Δ {m.name} = arm − {spec.baseline}   (mean of paired differences, {ci} t-CI)")
    corr = _CORRECTION_NAME[spec.correction]
    fig.suptitle(f"Paired differences against {spec.baseline} ({spec.endpoint} endpoint)", fontsize=10)
    # the verdict is written in words beside each row, so no legend box is needed (none can cover the data)
    _caption(fig, f"Per arm: mean over seeds of the per-seed difference arm − {spec.baseline} of the endpoint, "
                  f"with its {ci} t-interval (not corrected for multiplicity). Verdict (words at the right; "
                  f"● better, ■ worse, ○ inconclusive): paired t-test, p(adj) < {spec.alpha:g} after {corr}. "
                  f"Dashed line: no difference.", 110)
    return fig


# ---------------------------------------------------------------- per-seed differences

def paired_figure(metric: str, direction: str, arms: list[str], diffs: dict, table: pd.DataFrame,
                  spec: ComparisonSpec, palette: dict):
    """Per-seed paired differences of `metric` per arm, with the mean and the table's t-interval beside them."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ci = f"{100 * (1 - spec.alpha):g}%"
    others = [a for a in arms if a != spec.baseline]
    fig = Figure(figsize=(2.2 + 1.25 * max(1, len(others)), 3.4), layout="constrained")
    ax = fig.subplots()
    rows = table[table["metric"] == metric].set_index("arm")
    labels = []
    for i, arm in enumerate(others):
        d = diffs.get((metric, arm))
        vals = np.asarray([] if d is None else d["diff"], dtype=float)
        ax.scatter(i - 0.08 + _spread(vals), vals, s=30, color=palette[arm], edgecolor="white", linewidth=0.5,
                   alpha=0.9, zorder=3)
        n = vals.size
        labels.append(f"{arm}\n(n = {n})")
        if arm in rows.index:
            r = rows.loc[arm]
            delta, lo, hi = (float(r[c]) for c in ("delta", "ci_low", "ci_high"))
            if np.isfinite(lo) and np.isfinite(hi):
                ax.errorbar([i + 0.25], [delta], yerr=[[delta - lo], [hi - delta]], fmt="D", ms=5,
                            color="black", capsize=4, elinewidth=1.3, zorder=4)
    ax.axhline(0.0, color="black", linewidth=0.9, linestyle="--", zorder=1)
    ax.set_xticks(range(len(others)), labels)
    ax.set_xlim(-0.6, len(others) - 0.4)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel(f"Δ {metric} = arm − {spec.baseline}")
    ax.set_title(_wrap(f"{metric} ({direction} is better): per-seed paired differences, {spec.endpoint} "
                       f"endpoint", 40), loc="left")
    handles = [Line2D([], [], marker="o", color="0.5", linestyle="none", label="one seed"),
               Line2D([], [], marker="D", color="black", linestyle="-", label=f"mean ± {ci} t-CI")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


# ---------------------------------------------------------------- trajectories

def trajectory_figure(sub: pd.DataFrame, spec: ComparisonSpec, arms: list[str], palette: dict, n_seeds: int,
                      lengths: RunLengths | None = None):
    """Per metric: mean over seeds per round, with the 95% t-interval of the mean as a band (clipped to [0, 1]
    for a metric whose values all lie there). Rounds averaged over fewer than `n_seeds` seeds (after a run
    ended early) have hollow markers."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metrics = spec.metrics
    fig = Figure(figsize=(0.6 + 3.5 * len(metrics), 3.3), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    clipped, partial = [], False
    for ax, m in zip(axes, metrics):
        data = sub[sub["metric"] == m.name]
        bounds = metric_bounds(data["value"])
        if bounds is not None:
            clipped.append(m.name)
        for arm in arms:
            recs = [(rnd, *_t_summary(g["value"])) for rnd, g in data[data["arm"] == arm].groupby("round")]
            if not recs:
                continue
            rnd, mean, half, n = (np.asarray(x, dtype=float) for x in zip(*recs))
            lo, hi = mean - half, mean + half
            if bounds is not None:
                lo, hi = np.clip(lo, *bounds), np.clip(hi, *bounds)
            color = palette[arm]
            ax.fill_between(rnd, lo, hi, color=color, alpha=0.18, linewidth=0)
            ax.plot(rnd, mean, color=color, marker="o", ms=4, linewidth=1.5)
            few = n < n_seeds
            if few.any():
                partial = True
                ax.plot(rnd[few], mean[few], color=color, marker="o", ms=4, mfc="white", linestyle="none")
        ax.set_title(f"{m.name} ({m.direction} is better)", loc="left")
        ax.set_xlabel("round")
        ax.set_ylabel(f"{m.name}: mean ± 95% t-CI" + (" (clipped to [0, 1])" if bounds else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if bounds is not None:
            ymin, ymax = ax.get_ylim()
            ax.set_ylim(max(ymin, -0.02), min(ymax, 1.02))
    handles = [Line2D([], [], color=palette[a], marker="o", ms=4, label=a) for a in arms]
    fig.legend(handles=handles, title="arm", loc="outside right upper", frameon=False)
    seeds = f"{n_seeds} compared seed{'s' if n_seeds != 1 else ''}"
    text = (f"Line: mean over the {seeds} per round. Band: two-sided 95% t-interval of that mean "
            f"(mean ± t(0.975, n−1)·sd/√n over seeds).")
    if clipped:
        text += f" Shares ({', '.join(clipped)}) lie in [0, 1]; their band is clipped to [0, 1]."
    if partial:
        text += " Hollow markers: rounds some runs did not reach (they ended early), so fewer seeds are averaged."
    if n_seeds < 3:
        text += f" With n = {n_seeds} seeds the t-interval is very wide (t(0.975, 1) = 12.7)."
    _caption(fig, text, int(18 * (0.6 + 3.5 * len(metrics))))
    return fig


# ---------------------------------------------------------------- trait vs coherence

def tradeoff_figure(ep_t: dict, ep_c: dict, arms: list[str], kept: list[int], spec: ComparisonSpec, palette: dict):
    """Endpoint means of trait (x) and coherence (y) per arm, with 95% t-intervals (clipped to [0, 1] for shares)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.8), layout="constrained")
    ax = fig.subplots()
    vt = [ep_t.get((a, s), math.nan) for a in arms for s in kept]
    vc = [ep_c.get((a, s), math.nan) for a in arms for s in kept]
    bt, bc = metric_bounds(vt), metric_bounds(vc)

    def err(mean: float, half: float, bounds) -> list[list[float]]:
        lo, hi = mean - half, mean + half
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        return [[mean - lo], [hi - mean]]

    n_used = 0
    for arm in arms:
        xt, xh, nt = _t_summary([ep_t.get((arm, s), math.nan) for s in kept])
        yc, yh, nc = _t_summary([ep_c.get((arm, s), math.nan) for s in kept])
        if np.isfinite(xt) and np.isfinite(yc):
            n_used = max(n_used, nt, nc)
            ax.errorbar(xt, yc, xerr=err(xt, xh, bt), yerr=err(yc, yh, bc), fmt="o", ms=6, capsize=3,
                        color=palette[arm], label=arm)
    ax.set_xlabel(f"trait ({spec.endpoint} endpoint)")
    ax.set_ylabel(f"coherence ({spec.endpoint} endpoint)")
    ax.set_title(f"trait vs coherence ({spec.endpoint} endpoint)\nmean ± 95% t-CI over {n_used} seeds", loc="left")
    fig.legend(title="arm", loc="outside right upper", frameon=False)
    if bt or bc:
        _caption(fig, "Error bars of shares are clipped to [0, 1].", 60)
    return fig


# ---------------------------------------------------------------- all figures

def write_figures(fig_dir: Path, spec: ComparisonSpec, arms: list[str], tidy: pd.DataFrame, chosen: pd.DataFrame,
                  kept: list[int], diffs: dict, endpoints_of: Callable[[str], dict], table: pd.DataFrame,
                  lengths: RunLengths | None = None) -> tuple[list[Path], list[str]]:
    """Write every report figure under `fig_dir`; returns (paths written, notes for the markdown)."""
    import seaborn as sns
    from matplotlib import rc_context

    written, notes = [], []
    if not kept:
        return written, ["figures skipped: no seed is usable in every arm."]
    claim_dir(fig_dir, "report figures")
    palette = dict(zip(arms, sns.color_palette("colorblind", n_colors=max(len(arms), 3))))
    run_ids = set(chosen[chosen["seed"].isin(kept)]["run_id"])
    sub = tidy[tidy["run_id"].isin(run_ids)]
    with rc_context(_RC):
        if table.empty:
            notes.append("forest and paired-difference figures skipped: no arm besides the baseline.")
        else:
            _save(forest_figure(table, spec), fig_dir / "forest", written)
            for m in spec.metrics:
                fig = paired_figure(m.name, m.direction, arms, diffs, table, spec, palette)
                _save(fig, fig_dir / f"paired_{_safe(m.name)}", written)
        _save(trajectory_figure(sub, spec, arms, palette, len(kept), lengths), fig_dir / "trajectories", written)
        present = set(tidy["metric"].unique())
        if {"trait", "coherence"} <= present:
            fig = tradeoff_figure(endpoints_of("trait"), endpoints_of("coherence"), arms, kept, spec, palette)
            _save(fig, fig_dir / "tradeoff", written)
        else:
            notes.append("tradeoff figure skipped: needs metrics named `trait` and `coherence`.")
    return written, notes
