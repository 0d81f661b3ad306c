"""``paired_<metric>`` for every declared metric: the per-seed paired differences of each arm, with the mean and
its t-interval (from the comparison table) beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..spec import ComparisonSpec
from .style import spread, wrap


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
        ax.scatter(i - 0.08 + spread(vals), vals, s=30, color=palette[arm], edgecolor="white", linewidth=0.5,
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
    ax.set_title(wrap(f"{metric} ({direction} is better): per-seed paired differences, {spec.endpoint} "
                      f"endpoint", 40), loc="left")
    handles = [Line2D([], [], marker="o", color="0.5", linestyle="none", label="one seed"),
               Line2D([], [], marker="D", color="black", linestyle="-", label=f"mean ± {ci} t-CI")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig
