"""Report figures (PNG + SVG under ``report/figures/``), drawn from precomputed numbers only; one module per kind.

- ``forest``: the headline figure. Per metric, each arm's mean paired difference (arm − baseline) with the
  t-interval of the comparison table, a zero line, and the verdict marked (colour and marker, and in words with
  p (adj) and n at the right).
- ``paired_<metric>`` (``per_seed``) for every declared metric: the per-seed paired differences of each arm, with
  the mean and its t-interval beside them.
- ``trajectories``: per metric, the mean over seeds per round with its 95% t-interval as a band; for a metric
  whose observed values all lie in [0, 1] (a share) the band is clipped to [0, 1], and the caption says so.
- ``tradeoff`` (only with metrics named ``trait`` and ``coherence``): endpoint means with t-intervals.
- ``frontier`` (only with ``comparison.frontier``): each family's (x, y) points per seed as thin curves from the
  weakest setting to the strongest, and the mean per setting with t-intervals on both axes.

``style`` holds what they share (verdict colours and markers, rc settings, captions, saving); ``intervals`` the
t-intervals and share bounds; ``write`` draws them all. Every interval is a t-interval computed here or in the
table (never a bootstrap; seaborn's estimators are not used). matplotlib and seaborn are imported inside the
functions, so importing this package stays light.
"""

from __future__ import annotations

from .forest import forest_figure
from .frontier import frontier_figure
from .intervals import SHARE_BOUNDS, metric_bounds, t_summary
from .per_seed import paired_figure
from .style import DPI, VERDICT_STYLE, safe_name, spread, verdict_kind
from .tradeoff import tradeoff_figure
from .trajectories import trajectory_figure
from .write import write_figures

__all__ = [
    "DPI", "SHARE_BOUNDS", "VERDICT_STYLE", "forest_figure", "frontier_figure", "metric_bounds", "paired_figure", "safe_name", "spread",
    "t_summary", "tradeoff_figure", "trajectory_figure", "verdict_kind", "write_figures",
]
