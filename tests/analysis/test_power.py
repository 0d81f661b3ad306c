"""Power, MDE, seeds needed and the adaptive-seeds stopping rule (analysis/power.py)."""

import math

import numpy as np
import pytest
from scipy import optimize, stats

from shl_analysis import paired_comparison
from shl_analysis.power import (
    _power_by_integration,
    describe_stopping_rule,
    effect_size_for_power,
    exact_min_n,
    exact_min_p,
    min_detectable_effect,
    BOUNDARY_SHARE,
    arm_status,
    boundary_alpha,
    max_looks,
    null_sd,
    seeds_needed,
    seeds_to_add,
    verdict_alpha,
)


def nct_power(es, n, alpha):
    df = n - 1
    c = stats.t.isf(alpha / 2, df)
    nc = es * math.sqrt(n)
    return stats.nct.sf(c, df, nc) + stats.nct.cdf(-c, df, nc)


def nct_mde(n, sd, alpha, power=0.8):
    return optimize.brentq(lambda e: nct_power(e, n, alpha) - power, 0.01, 4.0) * sd


# ---------------------------------------------------------------- exact test and levels

def test_exact_sign_flip_bounds_known_numbers():
    assert exact_min_p(3) == 0.25 and exact_min_p(4) == 0.125 and exact_min_p(6) == pytest.approx(0.03125)
    assert exact_min_p(1) == 1.0
    # smallest n with 2/2^n < alpha: the design doc's "Holm over k=2 needs n >= 7"
    assert exact_min_n(0.05) == 6
    assert exact_min_n(0.025) == 7
    assert exact_min_n(0.0125) == 8
    assert exact_min_n(0.05 / 3) == 7  # 2/128 = 0.0156 < 0.0167
    assert exact_min_n(0.0625) == 6  # 2/32 = 0.0625 is not < 0.0625: significance is p < alpha


def test_verdict_alpha_is_the_bonferroni_level_for_every_correction():
    assert verdict_alpha(0.05, "none", 3) == 0.05
    assert verdict_alpha(0.05, "holm", 2) == pytest.approx(0.025)
    assert verdict_alpha(0.05, "bonferroni", 4) == pytest.approx(0.0125)
    assert verdict_alpha(0.05, "bh", 4) == pytest.approx(0.0125)
    with pytest.raises(ValueError):
        verdict_alpha(0.05, "sidak", 2)
    with pytest.raises(ValueError):
        verdict_alpha(0.05, "holm", 0)


# ---------------------------------------------------------------- MDE and seeds needed

def test_mde_matches_noncentral_t_at_the_corrected_alpha():
    # sleep data sd(d) = 1.229995, n = 10, Holm over 2 arms -> alpha 0.025
    assert min_detectable_effect(10, 1.229995, 0.025) == pytest.approx(nct_mde(10, 1.229995, 0.025), rel=1e-5)
    assert min_detectable_effect(10, 1.229995, 0.025) > min_detectable_effect(10, 1.229995, 0.05)
    assert min_detectable_effect(4, 0.1, 0.0125) == pytest.approx(nct_mde(4, 0.1, 0.0125), rel=1e-5)


def test_mde_where_statsmodels_fails_to_converge():
    # statsmodels' solver returns 10.0 (n=2, alpha 0.025) and 5.5 (n=3, alpha 0.001) without converging;
    # the checked answer reproduces 80% power
    for n, a in [(2, 0.025), (3, 0.001), (5, 0.001)]:
        es = effect_size_for_power(n, a)
        assert _power_by_integration(es, n, a) == pytest.approx(0.8, abs=1e-6)
    assert effect_size_for_power(2, 0.025) == pytest.approx(23.08, abs=0.01)
    # the integration formula agrees with the noncentral t where scipy's nct is finite
    assert _power_by_integration(1.2, 10, 0.025) == pytest.approx(nct_power(1.2, 10, 0.025), abs=1e-9)


def test_mde_undefined_when_sd_is_zero():
    assert math.isnan(min_detectable_effect(5, 0.0, 0.05))
    assert min_detectable_effect(1, 0.3, 0.05) == math.inf


def test_seeds_needed_known_numbers():
    # effect 0.05 with sd(d) 0.1 (d_z = 0.5): 34 pairs at 0.05, 41 at 0.025
    assert seeds_needed(0.05, 0.1, 0.05) == 34
    assert seeds_needed(0.05, 0.1, 0.025) == 41
    assert nct_power(0.5, 33, 0.05) < 0.8 <= nct_power(0.5, 34, 0.05)
    assert nct_power(0.5, 40, 0.025) < 0.8 <= nct_power(0.5, 41, 0.025)
    # a huge standardised effect: the t-test needs 3 pairs, the exact test at 0.025 needs 7
    assert seeds_needed(0.05, 0.001, 0.025) == 7
    assert seeds_needed(0.05, 0.0, 0.05) == 6  # no noise: only the exact-test bound remains
    with pytest.raises(ValueError):
        seeds_needed(0.0, 0.1, 0.05)


def test_paired_comparison_reports_exact_bounds_and_seeds_needed():
    r = paired_comparison([1.0, 2.0, 3.0, 4.0], [1.5, 2.1, 3.9, 4.2], target_effect=0.5)
    assert r.min_p_exact == 0.125 and r.n_exact == 6
    d_z = 0.5 / r.sd_diff
    assert r.n_needed == max(6, math.ceil(optimize.brentq(lambda n: nct_power(d_z, n, 0.05) - 0.8, 2.0, 100.0)))
    assert paired_comparison([1.0, 2.0], [1.5, 2.1]).n_needed is None


def test_constant_nonzero_differences_have_no_t_model_mde():
    """sd(d) = 0: no 'could detect >= 0'; the row says what the exact test needs instead."""
    r = paired_comparison([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5])
    assert math.isnan(r.mde)
    assert r.verdict == ("inconclusive: sd of paired differences is 0, so the t-model gives no MDE; the exact "
                         "sign-flip test needs n >= 6 seeds to reach alpha 0.05 (min p at n=4 is 0.125)")
    assert ">= 0" not in r.verdict
    r = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert r.verdict.startswith("inconclusive: sd of paired differences is 0") and "n >= 6" in r.verdict


# ---------------------------------------------------------------- adaptive rule

def test_seeds_to_add_basic_decisions():
    rng = np.random.default_rng(3)
    noisy = {"a": rng.normal(0, 1.0, 8), "b": rng.normal(0, 0.01, 8)}
    assert seeds_to_add(noisy, list(range(8)), until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025) == 4
    assert seeds_to_add(noisy, 18, until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025) == 2  # capped
    assert seeds_to_add(noisy, 20, until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025) == 0
    quiet = {"a": rng.normal(0, 0.01, 8), "b": rng.normal(0, 0.01, 8)}
    assert seeds_to_add(quiet, 8, until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025) == 0
    # below the exact-test floor (7 at 0.025) it keeps going however quiet the data are
    short = {k: v[:5] for k, v in quiet.items()}
    assert seeds_to_add(short, 5, until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025) == 4
    assert seeds_to_add(short, 5, until_mde=0.1, max_seeds=20, batch=4, alpha_verdict=0.025, min_seeds=3) == 0
    # threshold uses the MDE from n and sqrt(mean(d^2)) at alpha_verdict
    d = np.array([0.1, -0.2, 0.05, 0.15, -0.1, 0.0, 0.2])
    mde = min_detectable_effect(7, null_sd(d), 0.025)
    assert seeds_to_add({"a": d}, 7, mde * 1.001, 20, 2, 0.025) == 0
    assert seeds_to_add({"a": d}, 7, mde * 0.999, 20, 2, 0.025) == 2
    with pytest.raises(ValueError):
        seeds_to_add({}, 3, 0.1, 20, 2, 0.05)
    with pytest.raises(ValueError):
        seeds_to_add({"a": [0.1, float("nan")]}, 3, 0.1, 20, 2, 0.05)


def test_stopping_rule_is_blind_to_signs_and_never_sees_a_p_value():
    """Flipping the sign of any difference (which changes the mean and every p) never changes the decision."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(2, 15))
        d = {"a": rng.normal(rng.normal(0, 0.1), rng.uniform(0.01, 0.2), n), "b": rng.normal(0, 0.1, n)}
        flipped = {k: v * rng.choice([-1.0, 1.0], size=n) for k, v in d.items()}
        args = (n, 0.1, 30, 3, 0.025)
        assert seeds_to_add(d, *args) == seeds_to_add(flipped, *args)


def test_describe_stopping_rule_names_the_rule():
    text = describe_stopping_rule(0.05, 20, 2, 0.025)
    assert "batches of 2" in text and "<= 0.05" in text and "20 seeds" in text and "alpha 0.025" in text
    assert "n >= 7" in text and "never their signs, mean or a p-value" in text
    assert text.count(".") == text.count("0.") + 1  # one sentence
    with_boundary = describe_stopping_rule(0.05, 20, 2, 0.025, boundary_alpha=0.0025)
    assert "p < 0.0025" in with_boundary and "split evenly over the looks" in with_boundary
    assert with_boundary.count(".") == with_boundary.count("0.") + 1


def _adaptive_final_n(rng, sd, arms, until_mde, start, batch, max_seeds, alpha_verdict):
    pool = rng.normal(0.0, sd, size=(arms, max_seeds))  # no true effect
    n = start
    while True:
        add = seeds_to_add({f"a{i}": pool[i, :n] for i in range(arms)}, n, until_mde, max_seeds, batch, alpha_verdict)
        if add == 0:
            return pool, n
        n += add


def _final_t_rejections(pools, ns, alpha=0.05):
    rej = 0
    for n in np.unique(ns):
        sel = np.stack([p[:, :n] for p, m in zip(pools, ns) if m == n])  # (reps, arms, n)
        rej += int(np.sum(stats.ttest_1samp(sel, 0.0, axis=2).pvalue < alpha))
    return rej


def test_adaptive_seeds_keep_the_false_positive_rate():
    """No true effect: adaptive seeds, then the final paired t-test at 0.05, stay at 0.05.

    Thresholds sit near the true sd, where the stopping time varies most (start at the exact-test floor,
    batches of 2, up to 30 seeds); 2000 replications per scenario, fixed seed.
    """
    rng = np.random.default_rng(20240601)
    reps, total_rej, total_tests = 2000, 0, 0
    for sd, arms, a_v in [(0.08, 1, 0.05), (0.10, 1, 0.05), (0.13, 1, 0.05), (0.10, 2, 0.025)]:
        start = exact_min_n(a_v)
        pools, ns = zip(*(_adaptive_final_n(rng, sd, arms, 0.1, start, 2, 30, a_v) for _ in range(reps)))
        ns = np.array(ns)
        assert len(np.unique(ns)) >= 4, f"sd={sd}: the rule should actually adapt (final n {np.unique(ns)})"
        rej = _final_t_rejections(pools, ns)
        tests = reps * arms
        fpr, se = rej / tests, math.sqrt(0.05 * 0.95 / tests)
        assert abs(fpr - 0.05) <= 3 * se, f"sd={sd}, arms={arms}: FPR {fpr:.4f} vs 0.05 ± {3 * se:.4f}"
        total_rej, total_tests = total_rej + rej, total_tests + tests
    pooled, se = total_rej / total_tests, math.sqrt(0.05 * 0.95 / total_tests)
    assert abs(pooled - 0.05) <= 3 * se, f"pooled FPR {pooled:.4f}"


def test_a_large_effect_settles_at_the_boundary_and_the_rule_stops():
    """The main job's case: an effect of +0.66 (sd 0.07) inflates the spread about zero, so the MDE rule alone
    never stops (about 1,700 seeds); crossing the boundary settles the arm at the first look."""
    rng = np.random.default_rng(3)
    big, small = 0.66 + rng.normal(0, 0.07, 10), 0.14 + rng.normal(0, 0.10, 10)
    looks = max_looks(10, 30, 3)
    assert looks == 8
    boundary = boundary_alpha(0.025, 10, 30, 3)
    assert boundary == pytest.approx(0.025 * BOUNDARY_SHARE / looks)
    diffs = {"max": big, "rmse": small}
    assert seeds_to_add(diffs, 10, 0.05, 30, 3, 0.025) == 3  # no boundary: goes on to the cap
    st = {a: arm_status(d, 0.05, 0.025, 7, boundary) for a, d in diffs.items()}
    assert st["max"]["settled_by"] == "boundary" and st["max"]["mde_rule"] > 0.5
    if st["rmse"]["settled_by"] is None:
        assert seeds_to_add(diffs, 10, 0.05, 30, 3, 0.025, boundary_alpha=boundary) == 3
    assert seeds_to_add({"max": big}, 10, 0.05, 30, 3, 0.025, boundary_alpha=boundary) == 0
    assert arm_status(big[:5], 0.05, 0.025, 7, boundary)["settled_by"] is None  # below the floor: never settled
    with pytest.raises(ValueError, match="boundary_alpha"):
        seeds_to_add(diffs, 10, 0.05, 30, 3, 0.025, boundary_alpha=0.03)


def _settle_points(d_arms, start, batch, cap, until_mde, a_v, boundary):
    """What ``shl ablate --until-mde`` does: per arm, the n at which ``arm_status`` first settles it (then it is
    done) and how, seeds added in batches while any arm is open, up to the cap."""
    n, stops = start, {}
    while True:
        for name, d in d_arms.items():
            if name not in stops:
                how = arm_status(d[:n], until_mde, a_v, start, boundary)["settled_by"]
                if how:
                    stops[name] = (n, how)
        if len(stops) == len(d_arms) or n >= cap:
            return {k: stops.get(k, (n, None)) for k in d_arms}
        n = min(n + batch, cap)


def test_the_rule_keeps_the_level_with_a_shared_baseline_and_an_effect_in_another_arm():
    """Arm A has a real effect whose settling time varies; arm B has none. Both are differences against the same
    baseline runs (they share its noise), so A's stopping carries information about B's differences. B is compared
    on its own seeds up to where it settled, and rejects (at the boundary, or at the end at the level left) at
    about the verdict's alpha 0.025 or below (2 standard errors of simulation)."""
    rng = np.random.default_rng(20261208)
    reps, start, batch, cap, a_v, x = 2000, 7, 2, 30, 0.025, 0.1
    boundary = boundary_alpha(a_v, start, cap, batch)
    assert boundary == pytest.approx(0.025 * BOUNDARY_SHARE / 13)
    final_level = a_v * (1 - BOUNDARY_SHARE)
    rejected = 0
    finals, crossed = set(), 0
    for _ in range(reps):
        base = rng.normal(0, 0.1, cap)
        d = {"a": 0.12 + rng.normal(0, 0.1, cap) - base, "b": rng.normal(0, 0.1, cap) - base}
        stops = _settle_points(d, start, batch, cap, x, a_v, boundary)
        (n_b, how_b), n_all = stops["b"], max(n for n, _ in stops.values())
        p_b = stats.ttest_1samp(d["b"][:n_b], 0.0).pvalue
        rejected += how_b == "boundary" or p_b < final_level
        finals.add(n_all)
        crossed += stops["a"][1] == "boundary"
    assert len(finals) >= 4 and crossed > reps // 4  # the rule adapts, and A often stops at the boundary
    se = math.sqrt(a_v * (1 - a_v) / reps)
    assert rejected / reps <= a_v + 2 * se, rejected / reps
    assert rejected / reps >= a_v - 4 * se, rejected / reps  # not so conservative that it means nothing


def _vectorised_fpr(rng, scale, sd=0.13, looks=range(6, 31, 2), until_mde=0.1, reps=60_000):
    looks = list(looks)
    d = rng.normal(0.0, sd, size=(reps, looks[-1]))
    stop = np.full(reps, looks[-1])
    done = np.zeros(reps, bool)
    for n in looks:
        hit = ~done & (effect_size_for_power(n, 0.05) * scale(d[:, :n]) <= until_mde)
        stop[hit], done = n, done | hit
    p = np.empty(reps)
    for n in np.unique(stop):
        p[stop == n] = stats.ttest_1samp(d[stop == n, :n], 0.0, axis=1).pvalue
    return float(np.mean(p < 0.05)), math.sqrt(0.05 * 0.95 / reps)


def test_why_the_rule_uses_the_spread_about_zero():
    """Negative control: the same rule on the usual (mean-centred) sample sd inflates the false-positive
    rate well beyond sampling error. Stopping when s is small stops when t is inflated. The spread about
    zero, sqrt(mean(d^2)), is blind to the signs of the differences and keeps the level."""
    rng = np.random.default_rng(7)
    centred, se = _vectorised_fpr(rng, lambda x: x.std(axis=1, ddof=1))
    about_zero, _ = _vectorised_fpr(rng, lambda x: np.sqrt(np.mean(x ** 2, axis=1)))
    assert centred > 0.05 + 6 * se, centred
    assert abs(about_zero - 0.05) <= 3 * se, about_zero
