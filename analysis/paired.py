"""Paired (seed-matched) comparison of one arm against a baseline."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats
from .power import POWER, exact_min_n, exact_min_p, min_detectable_effect, seeds_needed

__all__ = ["EXACT_MAX_N", "MC_RESAMPLES", "POWER", "PairedResult", "corrected_pvalues", "min_detectable_effect",
           "paired_comparison", "sign_flip_method", "verdict_for"]

_CORRECTION_METHOD = {"holm": "holm", "bonferroni": "bonferroni", "bh": "fdr_bh"}


def corrected_pvalues(pvals: Sequence[float], alpha: float, correction: str) -> tuple[np.ndarray, int]:
    """p-values adjusted by ``correction`` ("holm", "bonferroni", "bh" or "none") over the finite ones (the others
    stay as they are), and how many were finite (the size of the correction's family)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(pvals), dtype=float)
    ok = np.isfinite(p)
    adj = p.copy()
    if correction != "none" and ok.any():
        adj[ok] = multipletests(p[ok], alpha=alpha, method=_CORRECTION_METHOD[correction])[1]
    return adj, int(ok.sum())

#: Largest n for which the sign-flip test enumerates all 2^n flips; above it a
#: seeded Monte-Carlo approximation with MC_RESAMPLES flips is used instead.
EXACT_MAX_N = 20
MC_RESAMPLES = 200_000
#: Seed of the Monte-Carlo sign flips (the same p on every run of the report).
MC_SEED = 0


def sign_flip_method(n: int) -> str:
    """How the sign-flip p of n pairs is computed: "exact" (all 2^n flips, n <= EXACT_MAX_N) or
    "monte_carlo" (MC_RESAMPLES random flips drawn with seed MC_SEED)."""
    return "exact" if n <= EXACT_MAX_N else "monte_carlo"


@dataclass(frozen=True)
class PairedResult:
    """Summary of a paired comparison; d_i = arm_i - baseline_i.

    ci_low/ci_high: two-sided (1-alpha) t-interval for mean(d).
    p_t: two-sided paired t-test. p_perm: two-sided sign-flip permutation
    test on mean(d), exact (all 2^n flips) for n <= EXACT_MAX_N, else Monte Carlo
    with MC_RESAMPLES seeded flips; perm_method says which ("exact" /
    "monte_carlo"). d_z: mean(d)/sd(d). wins: pairs where the arm is strictly
    better. mde: smallest |mean(d)| detectable with 80% power at `alpha`
    (two-sided paired t, noncentral t), in metric units; NaN when sd(d) = 0 with
    non-zero differences (the t-model gives no MDE then). When every difference
    is exactly 0 it stays 0.0, a placeholder that keeps that result free of NaN;
    the verdict never quotes it. min_p_exact: smallest p the exact sign-flip
    test can give at this n (2/2^n). n_exact: smallest n at which that test can
    reach `alpha` (2/2^n < alpha). n_needed: pairs needed to detect
    |delta| = target_effect with 80% power at `alpha` given sd(d), and at least
    n_exact (None without a target_effect).
    """

    n: int
    mean_baseline: float
    sd_baseline: float
    mean_arm: float
    sd_arm: float
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    t: float
    df: int
    p_t: float
    p_perm: float
    d_z: float
    wins: int
    mde: float
    alpha: float
    higher_is_better: bool
    verdict: str
    min_p_exact: float = 1.0
    n_exact: int = 0
    target_effect: float | None = None
    n_needed: int | None = None
    perm_method: str = "exact"

    def to_dict(self) -> dict:
        """Plain-dict view (JSON-friendly apart from inf/nan floats)."""
        return asdict(self)


def _exact_clause(n: int, alpha: float) -> str:
    need = exact_min_n(alpha)
    if n >= need:
        return ""
    return (f"the exact sign-flip test needs n >= {need} seeds to reach alpha {alpha:.3g} "
            f"(min p at n={n} is {exact_min_p(n):.3g})")


def verdict_for(p: float, mean_diff: float, mde: float, alpha: float, higher_is_better: bool,
                n: int | None = None, sd_diff: float | None = None,
                alpha_verdict: float | None = None) -> str:
    """'better'/'worse' when p < alpha (direction from mean_diff), else 'inconclusive: ...'.

    p is compared with `alpha` (pass the corrected p). The inconclusive text quotes `mde`, which
    should be computed at `alpha_verdict` (the per-comparison level of the correction; defaults to
    alpha). With `n` given it adds, when 2/2^n >= alpha_verdict, that the exact sign-flip test cannot
    reach alpha_verdict at this n and how many seeds it needs. With `sd_diff` = 0 it says the t-model
    MDE is undefined instead of quoting one.
    """
    if p is not None and not math.isnan(p) and p < alpha and mean_diff != 0:
        improved = (mean_diff > 0) == higher_is_better
        return "better" if improved else "worse"
    a_v = alpha if alpha_verdict is None or math.isnan(alpha_verdict) else alpha_verdict
    exact = _exact_clause(int(n), a_v) if n is not None else ""
    if sd_diff is not None and sd_diff == 0:
        head = "inconclusive: sd of paired differences is 0, so the t-model gives no MDE"
        if not exact and n is not None:
            exact = f"the exact sign-flip test can reach alpha {a_v:.3g} at n={n}"
        return f"{head}; {exact}" if exact else head
    head = f"inconclusive: could detect |delta| >= {mde:.3g}"
    return f"{head}; {exact}" if exact else head


def _as_array(x: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(list(x), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of floats")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has a non-finite value (NaN/inf) at index {int(bad[0])}")
    return arr


def _sign_flip_p(d: np.ndarray) -> float:
    n = d.size
    exact = sign_flip_method(n) == "exact"
    res = stats.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf if exact else MC_RESAMPLES,
        alternative="two-sided",
        vectorized=True,
        random_state=None if exact else np.random.default_rng(MC_SEED),
    )
    return float(min(1.0, res.pvalue))


def paired_comparison(
    baseline: Sequence[float],
    arm: Sequence[float],
    alpha: float = 0.05,
    higher_is_better: bool = True,
    target_effect: float | None = None,
) -> PairedResult:
    """Compare `arm` with `baseline`, paired by index (seed).

    Raises ValueError for unequal lengths, fewer than 2 pairs, NaN/inf values or
    alpha outside (0, 1). When all differences are equal (sd(d) = 0): all zero
    gives t = 0, p_t = 1, d_z = 0; all equal and non-zero gives t = d_z = ±inf,
    p_t = the exact sign-flip p (2/2^n) and a zero-width CI. `target_effect` (metric units, optional) sets
    n_needed: the pairs needed to detect it with 80% power at `alpha`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    b = _as_array(baseline, "baseline")
    a = _as_array(arm, "arm")
    if a.size != b.size:
        raise ValueError(f"baseline and arm must have equal length, got {b.size} and {a.size}")
    n = int(a.size)
    if n < 2:
        raise ValueError(f"paired comparison needs at least 2 pairs, got {n}")

    d = a - b
    mean_d = float(d.mean())
    sd_d = float(d.std(ddof=1))
    df = n - 1
    p_perm = None
    if np.all(np.isclose(d, d[0], rtol=1e-12, atol=1e-12)):
        sd_d = 0.0
        if np.all(np.isclose(d, 0.0, rtol=0, atol=1e-12)):
            mean_d = 0.0
            t, p_t, d_z, p_perm = 0.0, 1.0, 0.0, 1.0
        else:
            # zero variance: the t-test is undefined, so p_t falls back to the exact sign-flip p (2 / 2^n)
            t = d_z = math.copysign(math.inf, mean_d)
            p_perm = _sign_flip_p(d)
            p_t = p_perm
        ci_low = ci_high = mean_d
    else:
        res = stats.ttest_rel(a, b, alternative="two-sided")
        ci = res.confidence_interval(confidence_level=1 - alpha)
        t, p_t = float(res.statistic), float(res.pvalue)
        ci_low, ci_high = float(ci.low), float(ci.high)
        d_z = mean_d / sd_d

    wins = int(np.sum(d > 0) if higher_is_better else np.sum(d < 0))
    if sd_d == 0:
        mde = 0.0 if mean_d == 0.0 else math.nan  # see PairedResult: undefined from the t-model
    else:
        mde = min_detectable_effect(n, sd_d, alpha)
    n_needed = None if target_effect is None else seeds_needed(target_effect, sd_d, alpha)
    return PairedResult(
        n=n,
        mean_baseline=float(b.mean()),
        sd_baseline=float(b.std(ddof=1)),
        mean_arm=float(a.mean()),
        sd_arm=float(a.std(ddof=1)),
        mean_diff=mean_d,
        sd_diff=sd_d,
        ci_low=ci_low,
        ci_high=ci_high,
        t=t,
        df=df,
        p_t=p_t,
        p_perm=_sign_flip_p(d) if p_perm is None else p_perm,
        d_z=d_z,
        wins=wins,
        mde=mde,
        alpha=alpha,
        higher_is_better=higher_is_better,
        verdict=verdict_for(p_t, mean_d, mde, alpha, higher_is_better, n=n, sd_diff=sd_d),
        min_p_exact=exact_min_p(n),
        n_exact=exact_min_n(alpha),
        target_effect=target_effect,
        n_needed=n_needed,
        perm_method=sign_flip_method(n),
    )
