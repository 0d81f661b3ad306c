"""``tradeoff`` (only with metrics named ``trait`` and ``coherence``): endpoint means with t-intervals."""

from __future__ import annotations

import math

import numpy as np

from ..spec import ComparisonSpec
from .intervals import metric_bounds, t_summary
from .style import caption


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
        xt, xh, nt = t_summary([ep_t.get((arm, s), math.nan) for s in kept])
        yc, yh, nc = t_summary([ep_c.get((arm, s), math.nan) for s in kept])
        if np.isfinite(xt) and np.isfinite(yc):
            n_used = max(n_used, nt, nc)
            ax.errorbar(xt, yc, xerr=err(xt, xh, bt), yerr=err(yc, yh, bc), fmt="o", ms=6, capsize=3,
                        color=palette[arm], label=arm)
    ax.set_xlabel(f"trait ({spec.endpoint} endpoint)")
    ax.set_ylabel(f"coherence ({spec.endpoint} endpoint)")
    ax.set_title(f"trait vs coherence ({spec.endpoint} endpoint)\nmean ± 95% t-CI over {n_used} seeds", loc="left")
    fig.legend(title="arm", loc="outside right upper", frameon=False)
    if bt or bc:
        caption(fig, "Error bars of shares are clipped to [0, 1].", 60)
    return fig
