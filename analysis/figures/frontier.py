"""``frontier`` (with ``comparison.frontier``): each family's points per seed (thin lines, weakest to strongest
setting) and the mean over seeds at each setting with 95% t-intervals on both axes (thick)."""

from __future__ import annotations

import math

from ..spec import ComparisonSpec
from .intervals import metric_bounds, t_summary
from .style import caption


def frontier_figure(ep_x: dict, ep_y: dict, kept: list[int], spec: ComparisonSpec, palette: dict):
    """The families' (x, y) endpoints: per-seed curves and the mean curve with t-intervals."""
    from matplotlib.figure import Figure

    fr = spec.frontier
    assert fr is not None
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    anchor = [fr.anchor] if fr.anchor else []
    every = [v for arms in fr.families.values() for a in anchor + arms for s in kept
             for v in ((ep_x.get((a, s), math.nan)), ep_y.get((a, s), math.nan))]
    bounds = metric_bounds(every)
    for fam, arms in fr.families.items():
        colour = palette[fam]
        order = anchor + arms
        for s in kept:
            xs = [ep_x.get((a, s), math.nan) for a in order]
            ys = [ep_y.get((a, s), math.nan) for a in order]
            ax.plot(xs, ys, "-", color=colour, alpha=0.18, lw=0.8)
        mx, hx, my, hy = [], [], [], []
        for a in order:
            m1, h1, _ = t_summary([ep_x.get((a, s), math.nan) for s in kept])
            m2, h2, _ = t_summary([ep_y.get((a, s), math.nan) for s in kept])
            mx.append(m1), hx.append(h1), my.append(m2), hy.append(h2)
        ax.errorbar(mx, my, xerr=_clipped(mx, hx, bounds), yerr=_clipped(my, hy, bounds), fmt="-o", ms=4, lw=2,
                    capsize=2, color=colour,
                    label=f"{fam}{' (baseline)' if fam == fr.baseline else ''}")
    if fr.anchor:
        m1, _, _ = t_summary([ep_x.get((fr.anchor, s), math.nan) for s in kept])
        m2, _, _ = t_summary([ep_y.get((fr.anchor, s), math.nan) for s in kept])
        ax.plot([m1], [m2], "k*", ms=11, label=f"{fr.anchor} (anchor)", zorder=5)
    ax.set_xlabel(f"{fr.x} ({spec.endpoint} endpoint)")
    ax.set_ylabel(f"{fr.y} ({spec.endpoint} endpoint)")
    ax.set_title(f"{fr.y} against {fr.x} per family, {len(kept)} seeds\nthin: one seed; thick: mean ± 95% t-CI "
                 "per setting", loc="left")
    fig.legend(title="family", loc="outside right upper", frameon=False)
    note = "Each curve runs from the weakest setting (the anchor, if any) to the strongest."
    if bounds:
        note += " Values are shares; their intervals are clipped to [0, 1]."
    caption(fig, note, 70)
    return fig


def _clipped(means: list[float], halves: list[float], bounds) -> list[list[float]]:
    """Asymmetric error bars of mean +- half, clipped to ``bounds`` when the metric is a share."""
    lo = [m - h if bounds is None else max(m - h, bounds[0]) for m, h in zip(means, halves)]
    hi = [m + h if bounds is None else min(m + h, bounds[1]) for m, h in zip(means, halves)]
    return [[m - a for m, a in zip(means, lo)], [b - m for m, b in zip(means, hi)]]
