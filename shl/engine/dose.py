"""The dose controller: bisect kappa in log space until the probe's survival share reaches the target.

Every probe samples the same prompts with the same random numbers, so survival varies with kappa only.
The largest kappa found feasible is used (kappa_max if it already meets the target; kappa_min if nothing
does, recorded as such), and the probe's survivors at that kappa are kept for healing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from . import progress


@dataclass
class DoseResult:
    kappa: float
    survival: float
    reached: bool
    trace: list[tuple[float, float]] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    total: int = 0


def control_dose(
    probe: Callable[[float], tuple[float, list[Any], int]],
    kappa_min: float,
    kappa_max: float,
    target: float,
    steps: int,
    enabled: bool = True,
) -> DoseResult:
    """``probe(kappa) -> (survival share, survivors, n probed)``."""
    trace: list[tuple[float, float]] = []
    results: dict[float, tuple[float, list[Any], int]] = {}

    def run(kappa: float) -> float:
        progress.tick(f"dose probe {len(trace) + 1} at kappa {kappa:.3g}")
        results[kappa] = probe(kappa)
        trace.append((kappa, results[kappa][0]))
        progress.tick(f"dose probe {len(trace)} at kappa {kappa:.3g}: survival {results[kappa][0]:.2f} "
                      f"(target {target:g})")
        return results[kappa][0]

    def done(kappa: float, reached: bool) -> DoseResult:
        s, kept, n = results[kappa]
        return DoseResult(kappa, s, reached, trace, kept, n)

    if run(kappa_max) >= target or not enabled:
        return done(kappa_max, results[kappa_max][0] >= target)
    if kappa_min == kappa_max or run(kappa_min) < target:
        return done(kappa_min, False)
    lo, hi = kappa_min, kappa_max
    for _ in range(steps):
        mid = math.exp((math.log(lo) + math.log(hi)) / 2)
        if run(mid) >= target:
            lo = mid
        else:
            hi = mid
    return done(lo, True)
