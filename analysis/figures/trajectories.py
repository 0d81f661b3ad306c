"""``trajectories``: per metric, the mean over seeds per round with its 95% t-interval as a band; for a metric
whose observed values all lie in [0, 1] (a share) the band is clipped to [0, 1], and the caption says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..endpoints import RunLengths
from ..spec import ComparisonSpec
from .intervals import metric_bounds, t_summary
from .style import caption


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
            recs = [(rnd, *t_summary(g["value"])) for rnd, g in data[data["arm"] == arm].groupby("round")]
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
    caption(fig, text, int(18 * (0.6 + 3.5 * len(metrics))))
    return fig
