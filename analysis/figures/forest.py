"""``forest``: the headline figure. Per metric, each arm's mean paired difference (arm − baseline) with the
t-interval of the comparison table, a zero line, and the verdict marked (colour and marker, and in words with
p (adj) and n at the right)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..spec import ComparisonSpec
from .style import CORRECTION_NAME, VERDICT_STYLE, caption, verdict_kind


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
    corr = CORRECTION_NAME[spec.correction]
    fig.suptitle(f"Paired differences against {spec.baseline} ({spec.endpoint} endpoint)", fontsize=10)
    # the verdict is written in words beside each row, so no legend box is needed (none can cover the data)
    caption(fig, f"Per arm: mean over seeds of the per-seed difference arm − {spec.baseline} of the endpoint, "
                 f"with its {ci} t-interval (not corrected for multiplicity). Verdict (words at the right; "
                 f"● better, ■ worse, ○ inconclusive): paired t-test, p(adj) < {spec.alpha:g} after {corr}. "
                 f"Dashed line: no difference.", 110)
    return fig
