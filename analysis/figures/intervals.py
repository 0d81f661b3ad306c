"""The numbers the figures draw that are not in the comparison table: t-intervals of means, and whether a metric
is a share (its bands and error bars are then clipped to [0, 1])."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats

SHARE_BOUNDS = (0.0, 1.0)


def t_summary(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
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
