import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from shl_analysis import PairedResult, paired_comparison

# Student (1908) / R `sleep`: extra hours of sleep, same 10 patients under two drugs.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def brute_force_sign_flip_p(d):
    d = np.asarray(d, float)
    obs = abs(d.mean())
    hits = sum(abs(np.mean(d * np.array(s))) >= obs - 1e-12 for s in itertools.product((1, -1), repeat=d.size))
    return hits / 2 ** d.size


def nct_mde(n, sd, alpha=0.05, power=0.8):
    df = n - 1
    tcrit = stats.t.ppf(1 - alpha / 2, df)

    def pw(es):
        nc = es * math.sqrt(n)
        return stats.nct.sf(tcrit, df, nc) + stats.nct.cdf(-tcrit, df, nc) - power

    return optimize.brentq(pw, 0.01, 3.0) * sd


def test_sleep_data_known_values():
    r = paired_comparison(DRUG1, DRUG2)
    assert isinstance(r, PairedResult)
    assert r.n == 10 and r.df == 9
    assert r.mean_diff == pytest.approx(1.58)
    assert r.t == pytest.approx(4.062, abs=5e-4)
    assert r.p_t == pytest.approx(0.002833, abs=5e-7)
    assert r.ci_low == pytest.approx(0.7001, abs=5e-5)
    assert r.ci_high == pytest.approx(2.4599, abs=5e-5)
    assert r.mean_baseline == pytest.approx(0.75)
    assert r.mean_arm == pytest.approx(2.33)
    assert r.sd_diff == pytest.approx(1.229995, abs=1e-6)
    assert r.d_z == pytest.approx(1.58 / 1.229995, rel=1e-6)
    assert r.wins == 9  # one pair has d = 0
    assert r.verdict == "better"


def test_sign_flip_p_matches_brute_force():
    d = np.subtract(DRUG2, DRUG1)
    r = paired_comparison(DRUG1, DRUG2)
    assert r.p_perm == pytest.approx(brute_force_sign_flip_p(d), abs=1e-12)
    assert r.p_perm == pytest.approx(4 / 1024)
    rng = np.random.default_rng(1)
    for n in (2, 5, 7):
        b = rng.normal(size=n)
        a = b + rng.normal(0.3, 1.0, size=n)
        assert paired_comparison(b, a).p_perm == pytest.approx(brute_force_sign_flip_p(a - b), abs=1e-12)


def test_mde_matches_noncentral_t_power():
    r = paired_comparison(DRUG1, DRUG2)
    assert r.mde == pytest.approx(nct_mde(10, r.sd_diff), rel=1e-4)
    r4 = paired_comparison([1.0, 2.0, 3.0, 4.0], [1.5, 2.1, 3.9, 4.2], alpha=0.1)
    assert r4.mde == pytest.approx(nct_mde(4, r4.sd_diff, alpha=0.1), rel=1e-4)


def test_alpha_changes_ci_width():
    r = paired_comparison(DRUG1, DRUG2, alpha=0.01)
    half = stats.t.ppf(0.995, 9) * r.sd_diff / math.sqrt(10)
    assert r.ci_low == pytest.approx(1.58 - half)
    assert r.ci_high == pytest.approx(1.58 + half)


def test_lower_is_better_flips_wins_and_verdict():
    r = paired_comparison(DRUG1, DRUG2, higher_is_better=False)
    assert r.wins == 0
    assert r.verdict == "worse"
    r = paired_comparison(DRUG2, DRUG1, higher_is_better=False)
    assert r.wins == 9 and r.verdict == "better" and r.mean_diff == pytest.approx(-1.58)


def test_inconclusive_verdict_mentions_mde():
    r = paired_comparison([1.0, 2.0, 3.0], [1.1, 1.9, 3.2])
    assert r.p_t > 0.05
    # n=3: the exact sign-flip test cannot reach 0.05 (min p 2/2^3), and the row now says so
    assert r.verdict == (f"inconclusive: could detect |delta| >= {r.mde:.3g}; the exact sign-flip test needs "
                         f"n >= 6 seeds to reach alpha 0.05 (min p at n=3 is 0.25)")


def test_all_differences_zero():
    r = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert r.p_t == 1.0 and r.d_z == 0.0 and r.t == 0.0 and r.p_perm == 1.0
    assert r.mde == 0.0 and r.ci_low == r.ci_high == 0.0
    assert r.verdict.startswith("inconclusive")
    assert not any(isinstance(v, float) and math.isnan(v) for v in r.to_dict().values())


def test_all_differences_equal_nonzero():
    """Zero variance: the t-test is undefined, p falls back to the exact sign-flip p = 2 / 2^n."""
    r = paired_comparison([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5])
    assert r.d_z == math.inf and r.t == math.inf
    assert r.ci_low == r.ci_high == pytest.approx(0.5)
    assert r.p_perm == pytest.approx(2 / 16) and r.p_t == r.p_perm
    assert r.verdict.startswith("inconclusive")  # 4 identical gains are not proof at alpha 0.05
    r = paired_comparison([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert r.d_z == -math.inf and r.p_t == pytest.approx(0.25) and r.verdict.startswith("inconclusive")
    r = paired_comparison([float(i) for i in range(6)], [i - 1.0 for i in range(6)])
    assert r.p_t == pytest.approx(2 / 64) and r.verdict == "worse"


@pytest.mark.parametrize("b,a,msg", [
    ([1.0], [2.0], "at least 2"),
    ([], [], "at least 2"),
    ([1.0, 2.0], [1.0, 2.0, 3.0], "equal length"),
    ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], "baseline.*index 1"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, float("nan")], "arm.*index 2"),
])
def test_invalid_inputs_raise(b, a, msg):
    with pytest.raises(ValueError, match=msg):
        paired_comparison(b, a)


def test_to_dict_and_frozen():
    r = paired_comparison(DRUG1, DRUG2)
    d = r.to_dict()
    assert d["n"] == 10 and d["verdict"] == "better"
    with pytest.raises(Exception):
        r.n = 3  # type: ignore[misc]


def test_import_does_not_pull_torch():
    analysis_dir = str(Path(__file__).resolve().parents[2] / "analysis")
    shim = (
        "import importlib.util, sys\n"
        "if importlib.util.find_spec('shl_analysis') is None:\n"
        f"    s = importlib.util.spec_from_file_location('shl_analysis', {analysis_dir + '/__init__.py'!r},"
        f" submodule_search_locations=[{analysis_dir!r}])\n"
        "    m = importlib.util.module_from_spec(s); sys.modules['shl_analysis'] = m; s.loader.exec_module(m)\n"
    )
    code = shim + (
        "import shl_analysis, shl_analysis.report, seaborn, statsmodels.stats.power\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
