"""Power, minimum detectable effect, seeds needed, and the variance-only rule for adding seeds.

Everything here is about the two-sided paired t-test (the primary test) and the exact two-sided
sign-flip test (the robustness check) at a given per-comparison level ``alpha``:

- ``min_detectable_effect``: smallest |mean(d)| the t-test detects with 80% power at n and sd(d);
- ``seeds_needed``: pairs needed to detect a stated effect with 80% power given sd(d);
- ``exact_min_p`` / ``exact_min_n``: the smallest p the exact sign-flip test can produce with n pairs
  (2/2^n), and the smallest n at which it can be significant (2/2^n < alpha);
- ``verdict_alpha``: the per-comparison level a correction implies (see its docstring);
- ``seeds_to_add`` / ``describe_stopping_rule``: the adaptive-seeds rule, which looks only at n and the
  magnitudes |d_i| of the paired differences (through their spread about zero), never at their signs,
  their mean difference or a p-value. See ``seeds_to_add`` for why about zero and not about the mean.

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


def seeds_to_add(
    diffs: Mapping[str, Sequence[float]],
    current_seeds: int | Collection[int],
    until_mde: float,
    max_seeds: int,
    batch: int,
    alpha_verdict: float,
    power: float = POWER,
    min_seeds: int | None = None,
) -> int:
    """How many seeds to add next (0 = stop) under a sign-blind, variance-only stopping rule.

    diffs: arm -> per-seed paired differences (arm - baseline) of the PRIMARY metric over the seeds
    paired so far. current_seeds: the seeds run so far (or their number). until_mde: target MDE X in
    metric units. max_seeds: cap N on the number of seeds. batch: seeds added per step.
    alpha_verdict: the per-comparison level the verdict uses (``verdict_alpha``).
    min_seeds: no arm stops with fewer paired seeds; default ``exact_min_n(alpha_verdict)``, so that the
    exact sign-flip check can reach alpha_verdict too.

    Rule: stop (return 0) when the number of seeds has reached `max_seeds`, or when every arm has at
    least `min_seeds` pairs and its MDE at alpha_verdict and `power`, computed from n and the
    variance of its differences about zero (``null_sd``), is <= until_mde (all differences exactly 0
    counts as met); otherwise return min(batch, max_seeds - seeds so far).

    Why about zero, not about the mean: the usual sample variance s^2 is shift-invariant, yet a rule
    on it inflates the false-positive rate of the final t-test. Stopping when s happens to be small
    stops exactly when t = mean/(s/sqrt(n)) is inflated (for normal data at n = 7..40 and a threshold
    near the true sd, about 0.055-0.07 instead of 0.05; see tests/analysis/test_power.py). A rule on
    mean(d_i^2) depends on |d_i| only. Under no effect the signs of the differences are independent
    fair coin flips given their magnitudes, so the stopping time carries no information about them.
    The exact sign-flip test is then exactly valid at the stopping time, and the t-test stays at its
    level within simulation error. A real effect inflates mean(d^2). That only makes the rule add
    seeds sooner than needed, which costs seeds and never produces a false positive. The decision never
    uses a p-value or the sign of the mean difference.
    """
    if not diffs:
        raise ValueError("seeds_to_add needs the paired differences of at least one arm")
    if not (math.isfinite(until_mde) and until_mde > 0):
        raise ValueError(f"until_mde must be a positive number, got {until_mde}")
    if max_seeds < 1 or batch < 1:
        raise ValueError(f"max_seeds and batch must be >= 1, got {max_seeds} and {batch}")
    if not 0 < alpha_verdict < 1:
        raise ValueError(f"alpha_verdict must be in (0, 1), got {alpha_verdict}")
    n_now = _n_current(current_seeds)
    if n_now >= max_seeds:
        return 0
    step = min(int(batch), int(max_seeds) - n_now)
    floor = max(2, exact_min_n(alpha_verdict) if min_seeds is None else int(min_seeds))
    for arm, values in diffs.items():
        d = np.asarray(list(values), dtype=float)
        if d.ndim != 1 or not np.all(np.isfinite(d)):
            raise ValueError(f"differences of arm {arm!r} must be a 1-D sequence of finite floats")
        if d.size < floor:
            return step
        sd0 = null_sd(d)
        if sd0 > 0 and min_detectable_effect(int(d.size), sd0, alpha_verdict, power) > until_mde:
            return step
    return 0


def describe_stopping_rule(
    until_mde: float,
    max_seeds: int,
    batch: int,
    alpha_verdict: float,
    power: float = POWER,
    min_seeds: int | None = None,
) -> str:
    """One sentence describing the rule ``seeds_to_add`` applies with these arguments."""
    floor = max(2, exact_min_n(alpha_verdict) if min_seeds is None else int(min_seeds))
    return (f"Seeds were added in batches of {batch} until, for every arm, the minimum detectable effect on "
            f"the primary metric (two-sided paired t-test, {power:.0%} power, alpha {alpha_verdict:.3g}), "
            f"computed from n and the spread of the paired differences about zero, sqrt(mean(d^2)), was "
            f"<= {until_mde:g} with n >= {floor} paired seeds, or until {max_seeds} seeds were run; the rule "
            f"sees only the magnitudes of the differences, never their signs, mean or a p-value, so the "
            f"sign-flip test stays exact and the t-test keeps its level.")
