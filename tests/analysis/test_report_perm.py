"""The footnote names the sign-flip test actually used: exact (all 2^n flips) or Monte Carlo (n > 20)."""

import math

import numpy as np
import pytest

from shl_analysis import ComparisonSpec, MetricSpec, paired_comparison
from shl_analysis.paired import EXACT_MAX_N, MC_RESAMPLES, sign_flip_method
from shl_analysis.report import _compare, _display_table, _markdown

ARMS = ["base", "steer"]


def _md(n_by_metric):
    """Markdown of a report whose metric m pairs n_by_metric[m] seeds (the other seeds lack its endpoint)."""
    seeds = list(range(max(n_by_metric.values())))
    rng = np.random.default_rng(3)
    eps = {}
    for m, n in n_by_metric.items():
        gain = rng.normal(0.1, 0.05, len(seeds))
        eps[m] = {(a, s): (0.5 + (gain[s] if a == "steer" else 0.0)) if s < n else math.nan
                  for a in ARMS for s in seeds}
    spec = ComparisonSpec(baseline="base", metrics=[MetricSpec(name=m) for m in n_by_metric])
    table, _ = _compare(spec, ARMS, seeds, 0, eps)
    return table, _markdown(spec, ARMS, seeds, {}, _display_table(table, spec.alpha), table, [])


def test_sign_flip_method_switches_above_exact_max_n():
    assert EXACT_MAX_N == 20 and MC_RESAMPLES == 200_000
    assert sign_flip_method(20) == "exact" and sign_flip_method(21) == "monte_carlo"
    rng = np.random.default_rng(0)
    b = rng.normal(size=21)
    assert paired_comparison(b, b + 0.3 + rng.normal(size=21)).perm_method == "monte_carlo"
    assert paired_comparison(b[:5], b[:5] + [0.1, 0.2, 0.3, 0.4, 0.6]).perm_method == "exact"


def test_footnote_exact():
    table, md = _md({"trait": 8})
    assert list(table["perm_test"]) == ["exact"]
    assert "exact sign-flip permutation test (all 2^n sign flips enumerated, n <= 20; two-sided" in md
    assert "Monte Carlo" not in md


def test_footnote_monte_carlo_above_20():
    table, md = _md({"trait": 25})
    assert list(table["perm_test"]) == ["monte_carlo"]
    assert "sign-flip permutation test (Monte Carlo, 200,000 random sign flips with fixed seed 0, since n > 20 " \
           "makes all 2^n flips too many; two-sided, on the mean difference) as a robustness check" in md
    assert "all 2^n sign flips enumerated" not in md


def test_footnote_mixed():
    table, md = _md({"trait": 25, "coherence": 7})
    assert list(table["n"]) == [25, 7] and list(table["perm_test"]) == ["monte_carlo", "exact"]
    assert "exact (all 2^n sign flips) for the rows with n <= 20 (n = 7), Monte Carlo, 200,000 random sign " \
           "flips with fixed seed 0 for the rows with n > 20 (n = 25)" in md
