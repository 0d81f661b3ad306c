"""Report columns alpha_verdict / mde / n_needed, the sd = 0 and small-n texts, and the adaptive line."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from shl_analysis import ComparisonSpec, MetricSpec, write_report
from shl_analysis import report as report_mod
from shl_analysis.report import _compare, _display_table, _latex_table, _markdown

SEEDS = [0, 1, 2, 3]
GAIN = {"base": [0.0] * 4, "steer": [0.1, 0.2, 0.3, 0.4], "const": [0.2] * 4}
BASE = [0.50, 0.52, 0.55, 0.51]
ARMS = ["base", "steer", "const"]


def nct_power(es, n, alpha):
    df = n - 1
    c = stats.t.isf(alpha / 2, df)
    nc = es * math.sqrt(n)
    return stats.nct.sf(c, df, nc) + stats.nct.cdf(-c, df, nc)


def nct_mde(n, sd, alpha):
    return optimize.brentq(lambda e: nct_power(e, n, alpha) - 0.8, 0.01, 3.0) * sd


def smallest_n(es, alpha):
    n = 2
    while nct_power(es, n, alpha) < 0.8:
        n += 1
    return n


def endpoints(scale=1.0):
    return {(arm, s): BASE[i] + scale * GAIN[arm][i] for arm in ARMS for i, s in enumerate(SEEDS)}


def compare(spec):
    eps = {m.name: endpoints() for m in spec.metrics}
    table, _ = _compare(spec, ARMS, SEEDS, 0, eps)
    return table


SPEC = ComparisonSpec(baseline="base", metrics=[MetricSpec(name="trait")])


def test_mde_and_seeds_needed_use_the_holm_level():
    t = compare(SPEC).set_index("arm")
    steer = t.loc["steer"]
    sd = np.std(GAIN["steer"], ddof=1)
    assert steer["alpha_verdict"] == pytest.approx(0.025)  # Holm over k = 2 arms -> alpha/k
    assert steer["sd_diff"] == pytest.approx(sd)
    assert steer["mde"] == pytest.approx(nct_mde(4, sd, 0.025), rel=1e-5)
    assert steer["mde"] > nct_mde(4, sd, 0.05) * 1.2  # not the unadjusted level any more
    assert steer["target_effect"] == 0.05
    assert steer["n_needed"] == max(7, smallest_n(0.05 / sd, 0.025))
    assert steer["p_t"] < 0.05 < steer["p_adj"]
    assert steer["verdict"] == (f"inconclusive: could detect |delta| >= {steer['mde']:.3g}; the exact sign-flip "
                                f"test needs n >= 7 seeds to reach alpha 0.025 (min p at n=4 is 0.125)")


def test_constant_differences_row():
    const = compare(SPEC).set_index("arm").loc["const"]
    assert const["sd_diff"] == 0.0 and const["p_t"] == pytest.approx(0.125)
    assert math.isnan(const["mde"])
    assert const["n_needed"] == 7  # no noise: the exact test at 0.025 needs 2/2^n < 0.025
    assert const["verdict"] == ("inconclusive: sd of paired differences is 0, so the t-model gives no MDE; the "
                                "exact sign-flip test needs n >= 7 seeds to reach alpha 0.025 (min p at n=4 is 0.125)")


@pytest.mark.parametrize("correction,expected", [("none", 0.05), ("bonferroni", 0.025), ("bh", 0.025)])
def test_alpha_verdict_per_correction(correction, expected):
    t = compare(SPEC.model_copy(update={"correction": correction}))
    assert list(t["alpha_verdict"]) == pytest.approx([expected, expected])


def test_target_effect_per_metric_override_and_none():
    spec = ComparisonSpec(baseline="base", target_effect=0.1,
                          metrics=[MetricSpec(name="trait"), MetricSpec(name="coherence", target_effect=0.02)])
    assert spec.target_effect_for("trait") == 0.1 and spec.target_effect_for("coherence") == 0.02
    t = compare(spec).set_index(["metric", "arm"])
    sd = np.std(GAIN["steer"], ddof=1)
    assert t.loc[("trait", "steer"), "n_needed"] == max(7, smallest_n(0.1 / sd, 0.025))
    assert t.loc[("coherence", "steer"), "n_needed"] == max(7, smallest_n(0.02 / sd, 0.025))
    t = compare(ComparisonSpec(baseline="base", target_effect=None, metrics=[MetricSpec(name="trait")]))
    assert t["n_needed"].isna().all() and t["mde"].notna().sum() == 1
    with pytest.raises(Exception):
        MetricSpec(name="x", target_effect=0.0)


def test_table_footnote_and_latex_name_the_alpha():
    table = compare(SPEC)
    display = _display_table(table, SPEC.alpha)
    assert {"alpha_verdict", "MDE", "n_needed"} <= set(display.columns)
    assert {"alpha_verdict", "mde", "n_needed", "target_effect"} <= set(table.columns)
    md = _markdown(SPEC, ARMS, SEEDS, {}, display, table, [])
    assert "| alpha_verdict | MDE | n_needed | verdict |" in md
    steer_line = next(line for line in md.splitlines() if line.startswith("| trait | steer |"))
    assert "| 0.025 |" in steer_line and f"| {table.loc[0, 'n_needed']} |" in steer_line
    const_line = next(line for line in md.splitlines() if line.startswith("| trait | const |"))
    assert "| 0.025 | n/a | 7 |" in const_line
    assert "alpha/k with k the number of tested arms in the metric's family (k = 2: 0.025)" in md
    assert "Bonferroni level" in md and "alpha/(k - rank + 1)" in md
    assert "|delta| = 0.05 (target_effect, metric units)" in md
    assert "no two-sided sign-flip test can reach p < 0.05 with n < 6 pairs, nor p < 0.025 (alpha_verdict) " \
           "with n < 7 pairs" in md
    tex = _latex_table(display)
    assert r"alpha\_verdict" in tex and r"n\_needed" in tex
    csv_header = table.to_csv(index=False).splitlines()[0].split(",")
    assert csv_header[-5:] == ["alpha_verdict", "mde", "target_effect", "n_needed", "verdict"]


def test_bh_footnote_says_why_alpha_over_k():
    spec = SPEC.model_copy(update={"correction": "bh"})
    table = compare(spec)
    md = _markdown(spec, ARMS, SEEDS, {}, _display_table(table, spec.alpha), table, [])
    assert "Benjamini-Hochberg" in md and "alpha*rank/k" in md


def _fake_store(monkeypatch):
    runs = pd.DataFrame([{"experiment": "toy", "arm": a, "seed": s, "run_id": f"{a}__seed{s}__x",
                          "status": "complete", "message": ""} for a in ARMS for s in SEEDS])
    ep = endpoints()
    tidy = pd.DataFrame([{"experiment": "toy", "arm": a, "seed": s, "run_id": f"{a}__seed{s}__x",
                          "status": "complete", "round": 0, "metric": "trait", "value": ep[(a, s)]}
                         for a in ARMS for s in SEEDS])
    monkeypatch.setattr(report_mod, "run_table", lambda out_dir, run_ids=None: runs.copy())
    monkeypatch.setattr(report_mod, "load_runs", lambda out_dir, run_ids=None: tidy.copy())


def test_write_report_adaptive_line(tmp_path, monkeypatch):
    _fake_store(monkeypatch)
    plain = write_report(tmp_path, SPEC, formats=("md",), figures=False)
    assert "adaptively" not in plain.markdown
    res = write_report(tmp_path, SPEC, formats=("md", "csv"), figures=False,
                       adaptive={"until_mde": 0.05, "max_seeds": 20, "batch": 2, "batches": [[0, 1], [2, 3]]})
    line = next(ln for ln in res.markdown.splitlines() if "adaptively" in ln)
    assert line.startswith("- seeds were added adaptively (target MDE 0.05 on `trait`; at most 20 seeds; "
                           "batches of 2; seeds per batch: 0-1 | 2-3). Rule: Seeds were added in batches of 2 until")
    assert "alpha 0.025" in line and "never their signs, mean or a p-value" in line
    custom = write_report(tmp_path, SPEC, formats=("md",), figures=False,
                          adaptive={"until_mde": 0.05, "max_seeds": 20, "rule": "my rule."})
    assert "at most 20 seeds). Rule: my rule." in custom.markdown
    assert (tmp_path / "report" / "comparison.csv").read_text().splitlines()[0].endswith(
        "alpha_verdict,mde,target_effect,n_needed,verdict")


def test_write_report_rejects_bad_adaptive(tmp_path):
    with pytest.raises(ValueError, match="unknown adaptive keys"):
        write_report(tmp_path, SPEC, adaptive={"until_mde": 0.05, "max_seeds": 20, "batch": 2, "typo": 1})
    with pytest.raises(ValueError, match="adaptive needs"):
        write_report(tmp_path, SPEC, adaptive={"until_mde": 0.05, "batch": 2})


def test_an_arm_settled_early_is_compared_on_its_own_seeds_at_the_alpha_left(tmp_path, monkeypatch):
    """With a boundary recorded, the primary metric's row of an arm that settled at n = 3 pairs its first 3 seeds,
    and its verdict uses 90% of alpha; the other rows and metrics use every seed at the full alpha."""
    _fake_store(monkeypatch)
    full = write_report(tmp_path, SPEC, formats=("md",), figures=False).table
    adaptive = {"until_mde": 0.05, "max_seeds": 20, "batch": 2, "boundary_alpha": 0.001, "batches": [[0, 1, 2], [3]],
                "arms": {"steer": {"n": 3, "mde_rule": 0.4, "p": 0.0004, "settled_by": "boundary"},
                         "const": {"n": 4, "mde_rule": 0.3, "p": None, "settled_by": None}}}
    res = write_report(tmp_path, SPEC, formats=("md",), figures=False, adaptive=adaptive)
    row = lambda t, m, a: t[(t["metric"] == m) & (t["arm"] == a)].iloc[0]
    primary = SPEC.primary
    assert row(res.table, primary, "steer")["n"] == 3 and row(full, primary, "steer")["n"] == 4
    assert row(res.table, primary, "steer")["delta"] == pytest.approx(np.mean(GAIN["steer"][:3]))
    assert row(res.table, primary, "const")["n"] == 4
    assert row(res.table, primary, "steer")["alpha_verdict"] == pytest.approx(row(full, primary, "steer")
                                                                               ["alpha_verdict"] * 0.9)
    for m in [m.name for m in SPEC.metrics if m.name != primary]:
        assert row(res.table, m, "steer")["n"] == 4
        assert row(res.table, m, "steer")["alpha_verdict"] == row(full, m, "steer")["alpha_verdict"]
    assert "Its verdicts use alpha 0.045: the boundary spent the other 0.005." in res.markdown
    assert "  - `steer` on `trait`: n 3, the rule's MDE 0.4, p 0.0004; settled: p below the boundary" in res.markdown
    assert "  - `const` on `trait`: n 4, the rule's MDE 0.3; not settled (seed cap)" in res.markdown
