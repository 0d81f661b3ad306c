"""Comparison along the trade-off frontier (``ComparisonSpec.frontier``): families of arms, each swept over a
strength, compared at matched cost instead of at one strength per arm.

Per seed and family, the family's points are the (x, y) endpoints of its arms (and of the anchor arm, shared by
every family). Its frontier is the Pareto-optimal subset (no other point of the family is at least as good on
both metrics and better on one; each metric's ``direction`` says which way is better), joined by straight lines.
Two families are compared on the range of x that both frontiers span at that seed (never extrapolated): y is
read off each frontier at ``grid`` evenly spaced x values, and the seed's level is the mean over them (the area
under the frontier over that range, divided by its width). The same is done with the axes swapped (x at matched
y). The per-seed levels of a family and of the baseline family are then compared like two arms (paired t-test,
sign-flip test, the comparison's correction over the families), and a seed counts as dominated when one
frontier is better at every grid point. A seed where the two frontiers share no range of positive width is left
out of that row, and counted.

The interpolation assumes the trade-off between two neighbouring strengths is about linear; with few strengths
per family that is an approximation, so the report states the strengths used and how many points were dominated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .paired import corrected_pvalues, paired_comparison, verdict_for
from .power import POWER, min_detectable_effect, verdict_alpha
from .spec import ComparisonSpec

__all__ = ["FRONTIER_COLUMNS", "FrontierResult", "compare_frontiers", "family_points", "interpolate",
           "pareto_front"]

FRONTIER_COLUMNS = [
    "matched", "read", "family", "baseline", "n", "no_overlap", "range_low", "range_high", "mean_baseline",
    "mean_family", "delta", "ci_low", "ci_high", "p_t", "p_perm", "p_adj", "alpha_verdict", "mde", "wins",
    "family_dominates", "baseline_dominates", "verdict",
]
_WIDTH_EPS = 1e-12


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (higher is better on both coordinates), sorted by x ascending (so y descending);
    points with a non-finite coordinate and duplicates are dropped."""
    pts = sorted({(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)})
    front: list[tuple[float, float]] = []
    for x, y in sorted(pts, key=lambda p: (-p[0], -p[1])):  # best x first; keep a point only if y beats all so far
        if not front or y > front[-1][1]:
            front.append((x, y))
    return sorted(front)


def interpolate(front: list[tuple[float, float]], at: float, along: str = "x") -> float:
    """The frontier's other coordinate at ``at`` on axis ``along`` ("x" or "y"), by straight lines between its
    points; NaN outside the span of its points (never extrapolated)."""
    if along not in ("x", "y"):
        raise ValueError(f"along must be 'x' or 'y', got {along!r}")
    pts = front if along == "x" else sorted((y, x) for x, y in front)
    if not pts:
        return math.nan
    keys = [p[0] for p in pts]
    if at < keys[0] - _WIDTH_EPS or at > keys[-1] + _WIDTH_EPS:
        return math.nan
    if len(pts) == 1:
        return pts[0][1]
    at = min(max(at, keys[0]), keys[-1])
    return float(np.interp(at, keys, [p[1] for p in pts]))


def family_points(ep_x: dict, ep_y: dict, arms: list[str], seed: int, sign_x: float = 1.0,
                  sign_y: float = 1.0) -> list[tuple[float, float]]:
    """(x, y) endpoints of ``arms`` at ``seed``, each multiplied by its sign (-1 for a lower-is-better metric)."""
    out = []
    for arm in arms:
        x, y = ep_x.get((arm, seed), math.nan), ep_y.get((arm, seed), math.nan)
        out.append((sign_x * x, sign_y * y))
    return out


def _seed_levels(front_f: list, front_b: list, along: str,
                 grid: int) -> tuple[float, float, float, float, int, int] | None:
    """Levels of the two frontiers over their common range on axis ``along``: (level_f, level_b, lo, hi,
    points where f is better, points where b is better); None when the common range has no width."""
    axis = 0 if along == "x" else 1
    if not front_f or not front_b:
        return None
    lo = max(min(p[axis] for p in front_f), min(p[axis] for p in front_b))
    hi = min(max(p[axis] for p in front_f), max(p[axis] for p in front_b))
    if not hi - lo > _WIDTH_EPS:
        return None
    ts = np.linspace(lo, hi, grid)
    vf = np.array([interpolate(front_f, t, along) for t in ts])
    vb = np.array([interpolate(front_b, t, along) for t in ts])
    if not (np.isfinite(vf).all() and np.isfinite(vb).all()):
        return None
    return float(vf.mean()), float(vb.mean()), float(lo), float(hi), int((vf > vb).sum()), int((vb > vf).sum())


@dataclass(frozen=True)
class FrontierResult:
    """``table``: one row per (matched axis, family) with the columns ``FRONTIER_COLUMNS`` (levels and deltas in
    the metric's own units and direction); ``per_seed``: (matched, family) -> DataFrame of seed, level_family,
    level_baseline, range_low, range_high; ``dominated_points``: (family, seed) -> points off the frontier."""

    table: pd.DataFrame
    per_seed: dict
    dominated_points: dict


def compare_frontiers(spec: ComparisonSpec, ep_x: dict, ep_y: dict, seeds: list[int]) -> FrontierResult:
    """The frontier comparison of ``spec.frontier`` over ``seeds`` from the endpoints ``(arm, seed) -> value`` of
    its x and y metrics."""
    fr = spec.frontier
    if fr is None:
        raise ValueError("the comparison declares no frontier")
    sx = 1.0 if spec.metric(fr.x).direction == "higher" else -1.0
    sy = 1.0 if spec.metric(fr.y).direction == "higher" else -1.0
    anchor = [fr.anchor] if fr.anchor else []
    fronts: dict[tuple[str, int], list] = {}
    dominated: dict[tuple[str, int], int] = {}
    for fam, arms in fr.families.items():
        for s in seeds:
            pts = [p for p in family_points(ep_x, ep_y, anchor + arms, s, sx, sy)
                   if math.isfinite(p[0]) and math.isfinite(p[1])]
            fronts[(fam, s)] = pareto_front(pts)
            dominated[(fam, s)] = len(set(pts)) - len(fronts[(fam, s)])
    rows, per_seed = [], {}
    for along, read, sign_read, sign_along in (("x", fr.y, sy, sx), ("y", fr.x, sx, sy)):
        mode_rows = []
        for fam in fr.families:
            if fam == fr.baseline:
                continue
            recs = []
            for s in seeds:
                got = _seed_levels(fronts[(fam, s)], fronts[(fr.baseline, s)], along, fr.grid)
                if got is not None:
                    recs.append((s, *got))
            df = pd.DataFrame(recs, columns=["seed", "level_family", "level_baseline", "range_low", "range_high",
                                             "family_better_points", "baseline_better_points"])
            for col in ("level_family", "level_baseline"):
                df[col] = sign_read * df[col]
            lo, hi = sign_along * df["range_low"], sign_along * df["range_high"]
            df["range_low"], df["range_high"] = np.minimum(lo, hi), np.maximum(lo, hi)
            per_seed[(along, fam)] = df
            row = dict.fromkeys(FRONTIER_COLUMNS, math.nan)
            row.update(matched=(fr.x if along == "x" else fr.y), read=read, family=fam, baseline=fr.baseline,
                       n=len(df), no_overlap=len(seeds) - len(df), wins=0, family_dominates=0,
                       baseline_dominates=0, verdict="")
            if len(df):
                row.update(range_low=float(df["range_low"].mean()), range_high=float(df["range_high"].mean()),
                           family_dominates=int(((df["baseline_better_points"] == 0)
                                                 & (df["family_better_points"] > 0)).sum()),
                           baseline_dominates=int(((df["family_better_points"] == 0)
                                                   & (df["baseline_better_points"] > 0)).sum()))
            if len(df) >= 2:
                res = paired_comparison(df["level_baseline"], df["level_family"], alpha=spec.alpha,
                                        higher_is_better=(sign_read > 0))
                row.update(mean_baseline=res.mean_baseline, mean_family=res.mean_arm, delta=res.mean_diff,
                           ci_low=res.ci_low, ci_high=res.ci_high, p_t=res.p_t, p_perm=res.p_perm, wins=res.wins,
                           _sd=res.sd_diff)
            else:
                row["verdict"] = "no seed with an overlapping range" if not len(df) else "too few seeds (n=1)"
            mode_rows.append(row)
        adj, k = corrected_pvalues([r["p_t"] for r in mode_rows], spec.alpha, spec.correction)
        a_v = verdict_alpha(spec.alpha, spec.correction, k) if k else math.nan
        for r, p in zip(mode_rows, adj):
            r["p_adj"] = float(p)
            sd = r.pop("_sd", math.nan)
            if r["n"] >= 2:
                r["alpha_verdict"] = a_v
                r["mde"] = min_detectable_effect(int(r["n"]), float(sd), a_v, POWER)
                r["verdict"] = verdict_for(p, r["delta"], r["mde"], spec.alpha, sign_read > 0, n=int(r["n"]),
                                           sd_diff=float(sd), alpha_verdict=a_v)
        rows += mode_rows
    table = pd.DataFrame(rows, columns=FRONTIER_COLUMNS).astype(
        {"n": int, "no_overlap": int, "wins": int, "family_dominates": int, "baseline_dominates": int})
    return FrontierResult(table=table, per_seed=per_seed, dominated_points=dominated)
