"""Power, minimum detectable effect, seeds needed, and the variance-only rule for adding seeds.

Everything here is about the two-sided paired t-test (the primary test) and the exact two-sided
sign-flip test (the robustness check) at a given per-comparison level ``alpha``:

- ``min_detectable_effect``: smallest |mean(d)| the t-test detects with 80% power at n and sd(d);
- ``seeds_needed``: pairs needed to detect a stated effect with 80% power given sd(d);
- ``exact_min_p`` / ``exact_min_n``: the smallest p the exact sign-flip test can produce with n pairs
  (2/2^n), and the smallest n at which it can be significant (2/2^n < alpha);
- ``verdict_alpha``: the per-comparison level a correction implies (see its docstring);
- ``seeds_to_add`` / ``arm_status`` / ``describe_stopping_rule``: the adaptive-seeds rule: an arm is settled
  when its MDE from n and the magnitudes |d_i| of its paired differences (their spread about zero) is small
  enough, or when its p crosses an efficacy boundary (the verdict's alpha split over the looks). See
  ``seeds_to_add`` for why about zero and not about the mean, and why the boundary keeps the level.

Power and sample size come from ``statsmodels.stats.power.TTestPower`` (noncentral t). Its solver can
fail silently where scipy's noncentral t returns NaN (very small n or alpha, very large effects); every
statsmodels answer is therefore checked, and if it does not reproduce the requested power the root is
found again with a noncentral-t power computed by integrating over the chi-square distribution of the
sample variance (``_power``).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Collection, Mapping, Sequence

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.power import TTestPower

#: Power used for MDEs and seeds-needed throughout the report.
POWER = 0.8

_CORRECTIONS = ("holm", "bonferroni", "bh", "none")


# ---------------------------------------------------------------- exact sign-flip test

def exact_min_p(n: int) -> float:
    """Smallest two-sided p-value the exact sign-flip test can give with n pairs: 2/2^n (1 for n <= 1)."""
    if n <= 1:
        return 1.0
    return 2.0 / 2.0 ** n


def exact_min_n(alpha: float) -> int:
    """Smallest n at which the exact two-sided sign-flip test can be significant at `alpha`.

    Significance means p < alpha (as in the verdict), so this is the smallest n with 2/2^n < alpha:
    6 at 0.05, 7 at 0.025, 8 at 0.0125.
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    n = 2
    while exact_min_p(n) >= alpha:
        n += 1
    return n


# ---------------------------------------------------------------- corrections

def verdict_alpha(alpha: float, correction: str, k: int) -> float:
    """Per-comparison level at which the MDE and seeds-needed of one row are computed.

    `k` is the number of comparisons in the correction family (arms tested against the baseline on
    one metric). For ``"none"`` it is `alpha`. For ``"holm"``, ``"bonferroni"`` and ``"bh"`` it is
    alpha/k, the Bonferroni level:

    - Bonferroni tests every row at exactly alpha/k.
    - Holm tests the row of rank r (1 = smallest p) at alpha/(k - r + 1), i.e. somewhere between
      alpha/k (strictest) and alpha (most lenient); BH tests it at alpha*r/k, between alpha/k and alpha.
      For both, a row with p < alpha/k is significant whatever the other rows show, and alpha/k is
      the only level in that range that does not depend on the ranking of the observed p-values, i.e.
      on the observed effects. A rank-dependent level would make the MDE, the seeds needed and the
      adaptive stopping rule (which must never look at means or p-values) depend on the data's means.
      alpha/k is therefore the conservative bound: the MDE it gives is an upper bound and the seeds
      needed a sufficient number for every rank. For BH (an exploratory, FDR-controlling family) it is
      pessimistic, and the report says so.
    """
    if correction not in _CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {_CORRECTIONS}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if correction == "none":
        return float(alpha)
    if k < 1:
        raise ValueError(f"a correction family needs k >= 1 comparisons, got {k}")
    return float(alpha) / int(k)


# ---------------------------------------------------------------- t-test power

def _power_by_integration(effect_size: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test, integrating over V ~ chi2(n-1).

    P(|T'| > c) with T' = (Z + es*sqrt(n)) / sqrt(V/df): conditional on V it is a normal tail, so
    power = E_V[Phi(nc - c*s) + Phi(-nc - c*s)] with s = sqrt(V/df). Used only where scipy's
    noncentral t (and with it statsmodels) returns NaN.
    """
    df = n - 1
    c = float(stats.t.isf(alpha / 2, df))
    nc = effect_size * math.sqrt(n)

    def cond(v: float) -> float:
        s = math.sqrt(v / df)
        return float(stats.norm.sf(c * s - nc) + stats.norm.cdf(-nc - c * s))

    return float(stats.chi2.expect(cond, args=(df,)))


def _power(effect_size: float, n: int, alpha: float) -> float:
    with warnings.catch_warnings(record=True):  # statsmodels warns on non-convergence; checked below
        warnings.simplefilter("ignore")
        p = TTestPower().power(effect_size, n, alpha, alternative="two-sided")
    p = float(np.asarray(p))
    if not math.isfinite(p):
        p = _power_by_integration(effect_size, n, alpha)
    return p


@lru_cache(maxsize=4096)
def effect_size_for_power(n: int, alpha: float, power: float = POWER) -> float:
    """Standardised effect d_z = mean(d)/sd(d) the two-sided paired t-test with n pairs detects with
    `power` at `alpha` (statsmodels TTestPower.solve_power, checked; inf for n < 2)."""
    if n < 2:
        return math.inf
    with warnings.catch_warnings(record=True):  # statsmodels warns on non-convergence; checked below
        warnings.simplefilter("ignore")
        try:
            es = float(np.asarray(TTestPower().solve_power(
                effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")))
        except Exception:  # noqa: BLE001 - statsmodels' root finder; fall back below
            es = math.nan
    if math.isfinite(es) and es > 0 and abs(_power(es, n, alpha) - power) < 1e-6:
        return es
    # statsmodels did not converge (e.g. n = 2): bracket and solve on the checked power function
    hi = 1.0
    while _power(hi, n, alpha) < power:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    return float(optimize.brentq(lambda e: _power(e, n, alpha) - power, 1e-9, hi, xtol=1e-12))


def min_detectable_effect(n: int, sd_diff: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest |mean(d)| the two-sided paired t-test with n pairs detects with `power` at `alpha`,
    in metric units: effect_size_for_power(n, alpha, power) * sd(d).

    NaN when sd(d) = 0 (the t-model is degenerate: it gives no MDE; see ``exact_min_n`` for what the
    exact test can do then), inf when n < 2.
    """
    if n < 2:
        return math.inf
    if not math.isfinite(sd_diff) or sd_diff < 0:
        raise ValueError(f"sd_diff must be finite and >= 0, got {sd_diff}")
    if sd_diff == 0:
        return math.nan
    return effect_size_for_power(int(n), float(alpha), float(power)) * float(sd_diff)


@lru_cache(maxsize=4096)
def _nobs_for_effect_size(effect_size: float, alpha: float, power: float) -> int:
    with warnings.catch_warnings(record=True):  # statsmodels warns on non-convergence; checked below
        warnings.simplefilter("ignore")
        try:
            nobs = float(np.asarray(TTestPower().solve_power(
                effect_size=effect_size, nobs=None, alpha=alpha, power=power, alternative="two-sided")))
        except Exception:  # noqa: BLE001
            nobs = math.nan
    if math.isfinite(nobs) and nobs > 0:
        n = max(2, math.ceil(nobs - 1e-9))
        # statsmodels solves on a continuous n; check the integer answer and the one below it
        if _power(effect_size, n, alpha) >= power - 1e-9 and (n == 2 or _power(effect_size, n - 1, alpha) < power):
            return n
    # fall back to an integer search (huge effects, where statsmodels returns NaN)
    n = 2
    while _power(effect_size, n, alpha) < power - 1e-9:
        n = n * 2 if n < 64 else n + 64
        if n > 10_000_000:
            raise ValueError(f"effect size {effect_size} too small to solve for the number of pairs")
    lo = max(2, n // 2)
    while lo < n:  # smallest n with enough power, power being increasing in n
        mid = (lo + n) // 2
        if _power(effect_size, mid, alpha) >= power - 1e-9:
            n = mid
        else:
            lo = mid + 1
    return n


def seeds_needed(effect: float, sd_diff: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Pairs (seeds) needed to detect |mean(d)| = `effect` (metric units) with `power` at `alpha`.

    The t-test answer (statsmodels TTestPower.solve_power for nobs at d_z = effect/sd(d), rounded up),
    and at least ``exact_min_n(alpha)`` so the exact sign-flip test can reach alpha too. With sd(d) = 0
    every non-zero shift gives identical differences and only the exact-test bound remains.
    """
    if not (math.isfinite(effect) and effect > 0):
        raise ValueError(f"effect must be a positive number, got {effect}")
    if not math.isfinite(sd_diff) or sd_diff < 0:
        raise ValueError(f"sd_diff must be finite and >= 0, got {sd_diff}")
    n_exact = exact_min_n(alpha)
    if sd_diff == 0:
        return n_exact
    return max(n_exact, _nobs_for_effect_size(float(effect) / float(sd_diff), float(alpha), float(power)))


# ---------------------------------------------------------------- adaptive seeds

def _n_current(current_seeds: int | Collection[int]) -> int:
    if isinstance(current_seeds, (int, np.integer)):
        return int(current_seeds)
    return len(current_seeds)


def null_sd(d: Sequence[float]) -> float:
    """Standard deviation of paired differences about zero: sqrt(mean(d_i^2)).

    This is the sd of the differences if there is no effect, estimated without using their mean. It
    is a function of |d_1|, ..., |d_n| only, i.e. it does not change when any difference changes sign.
    """
    x = np.asarray(list(d), dtype=float)
    if x.size == 0:
        return math.nan
    return float(np.sqrt(np.mean(x ** 2)))


BOUNDARY_SHARE = 0.1
"""The share of the verdict's alpha the adaptive rule's efficacy boundary spends over all its looks; the primary
metric's verdicts of an adaptive run use the rest, alpha * (1 - BOUNDARY_SHARE)."""


def max_looks(n_start: int, max_seeds: int, batch: int) -> int:
    """How many times the adaptive rule can look at the data: at the planned seeds, then after each batch."""
    return 1 + max(0, math.ceil((int(max_seeds) - int(n_start)) / int(batch)))


def boundary_alpha(alpha_verdict: float, n_start: int, max_seeds: int, batch: int) -> float:
    """The efficacy boundary per look: BOUNDARY_SHARE of alpha_verdict, split evenly over ``max_looks``."""
    return alpha_verdict * BOUNDARY_SHARE / max_looks(n_start, max_seeds, batch)


def arm_status(d: Sequence[float], until_mde: float, alpha_verdict: float, floor: int,
               boundary_alpha: float | None = None, power: float = POWER) -> dict:
    """Where one arm stands under the adaptive rule: ``n``; ``mde_rule`` (the MDE at alpha_verdict and `power`
    from n and ``null_sd``, the spread about zero); ``p`` (two-sided paired t-test, only when a boundary is
    given); ``settled_by``: "mde" (mde_rule <= until_mde, all-zero differences included), "boundary"
    (p < boundary_alpha), or None (not settled, or fewer than `floor` pairs)."""
    x = np.asarray(list(d), dtype=float)
    n = int(x.size)
    sd0 = null_sd(x) if n else math.nan
    mde = 0.0 if n and sd0 == 0 else (min_detectable_effect(n, sd0, alpha_verdict, power) if n >= 2 else math.nan)
    p = math.nan
    if boundary_alpha is not None and n >= 2:
        sd = float(x.std(ddof=1))
        if sd > 0:
            p = float(2 * stats.t.sf(abs(x.mean()) / (sd / math.sqrt(n)), n - 1))
        elif x.mean() != 0:
            p = 0.0
    settled = None
    if n >= floor:
        if math.isfinite(mde) and mde <= until_mde:
            settled = "mde"
        elif boundary_alpha is not None and math.isfinite(p) and p < boundary_alpha:
            settled = "boundary"
    return {"n": n, "mde_rule": mde, "p": p, "settled_by": settled}


def seeds_to_add(
    diffs: Mapping[str, Sequence[float]],
    current_seeds: int | Collection[int],
    until_mde: float,
    max_seeds: int,
    batch: int,
    alpha_verdict: float,
    power: float = POWER,
    min_seeds: int | None = None,
    boundary_alpha: float | None = None,
) -> int:
    """How many seeds to add next (0 = stop).

    diffs: arm -> per-seed paired differences (arm - baseline) of the PRIMARY metric over the seeds
    paired so far. current_seeds: the seeds run so far (or their number). until_mde: target MDE X in
    metric units. max_seeds: cap N on the number of seeds. batch: seeds added per step.
    alpha_verdict: the per-comparison level the verdict uses (``verdict_alpha``).
    min_seeds: no arm stops with fewer paired seeds; default ``exact_min_n(alpha_verdict)``, so that the
    exact sign-flip check can reach alpha_verdict too. boundary_alpha: the efficacy boundary (None: none);
    ``shl ablate`` passes ``boundary_alpha(...)``, BOUNDARY_SHARE of alpha_verdict over ``max_looks``.

    Rule: stop (return 0) when the number of seeds has reached `max_seeds`, or when every arm has at
    least `min_seeds` pairs and is settled (``arm_status``): its MDE at alpha_verdict and `power`, computed
    from n and the variance of its differences about zero (``null_sd``), is <= until_mde, or its paired
    t-test gives p < boundary_alpha; otherwise return min(batch, max_seeds - seeds so far).

    Why about zero, not about the mean: the usual sample variance s^2 is shift-invariant, yet a rule
    on it inflates the false-positive rate of the final t-test. Stopping when s happens to be small
    stops exactly when t = mean/(s/sqrt(n)) is inflated (for normal data at n = 7..40 and a threshold
    near the true sd, about 0.055-0.07 instead of 0.05; see tests/analysis/test_power.py). A rule on
    mean(d_i^2) depends on |d_i| only: under no effect the stopping time carries no information about the
    signs. But a real effect inflates mean(d^2), so on its own this rule never stops for an arm whose
    effect is large (at the main job's +0.66 it would need about 1,700 seeds).

    The boundary settles such an arm (``shl ablate`` passes ``boundary_alpha(...)``): the boundary spends
    BOUNDARY_SHARE of alpha_verdict, split evenly over the K looks the plan allows, and the verdict at the
    stop is taken at the rest, alpha_verdict * (1 - BOUNDARY_SHARE), so a false positive, at a look or at
    the end, stays below alpha_verdict in all (a group-sequential design: Bonferroni over the looks for the
    interim part). A settled arm is done: its comparison uses the seeds up to that look, so no other arm's
    stopping (they share the baseline's runs) can bias it. tests/analysis/test_power.py checks the level
    by simulation, with a shared baseline and a real effect in another arm.
    """
    if not diffs:
        raise ValueError("seeds_to_add needs the paired differences of at least one arm")
    if not (math.isfinite(until_mde) and until_mde > 0):
        raise ValueError(f"until_mde must be a positive number, got {until_mde}")
    if max_seeds < 1 or batch < 1:
        raise ValueError(f"max_seeds and batch must be >= 1, got {max_seeds} and {batch}")
    if not 0 < alpha_verdict < 1:
        raise ValueError(f"alpha_verdict must be in (0, 1), got {alpha_verdict}")
    if boundary_alpha is not None and not 0 < boundary_alpha <= alpha_verdict:
        raise ValueError(f"boundary_alpha must be in (0, alpha_verdict], got {boundary_alpha}")
    n_now = _n_current(current_seeds)
    if n_now >= max_seeds:
        return 0
    step = min(int(batch), int(max_seeds) - n_now)
    floor = max(2, exact_min_n(alpha_verdict) if min_seeds is None else int(min_seeds))
    for arm, values in diffs.items():
        d = np.asarray(list(values), dtype=float)
        if d.ndim != 1 or not np.all(np.isfinite(d)):
            raise ValueError(f"differences of arm {arm!r} must be a 1-D sequence of finite floats")
        if arm_status(d, until_mde, alpha_verdict, floor, boundary_alpha, power)["settled_by"] is None:
            return step
    return 0


def describe_stopping_rule(
    until_mde: float,
    max_seeds: int,
    batch: int,
    alpha_verdict: float,
    power: float = POWER,
    min_seeds: int | None = None,
    boundary_alpha: float | None = None,
) -> str:
    """One sentence describing the rule ``seeds_to_add`` applies with these arguments."""
    floor = max(2, exact_min_n(alpha_verdict) if min_seeds is None else int(min_seeds))
    text = (f"Seeds were added in batches of {batch} until every arm was settled, with n >= {floor} paired seeds: "
            f"its minimum detectable effect on the primary metric (two-sided paired t-test, {power:.0%} power, "
            f"alpha {alpha_verdict:.3g}), computed from n and the spread of the paired differences about zero, "
            f"sqrt(mean(d^2)), was <= {until_mde:g}")
    if boundary_alpha is not None:
        text += (f", or its paired t-test gave p < {boundary_alpha:.3g} ({BOUNDARY_SHARE:g} of alpha "
                 f"{alpha_verdict:.3g} split evenly over the looks the plan allows; the verdict uses the rest, "
                 f"so the level holds)")
        return text + f"; or until {max_seeds} seeds were run."
    return text + (f"; or until {max_seeds} seeds were run; the rule sees only the magnitudes of the differences, "
                   f"never their signs, mean or a p-value, so the sign-flip test stays exact and the t-test keeps "
                   f"its level.")
