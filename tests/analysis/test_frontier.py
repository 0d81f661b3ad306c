"""The frontier comparison: families of arms swept over a strength, compared at matched x and matched y."""

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from shl_analysis import ComparisonSpec, FrontierSpec, MetricSpec, compare_frontiers, write_report
from shl_analysis.frontier import interpolate, pareto_front

from shl.store import RunStore
from fake_rounds import add_round_files

SEEDS = list(range(6))


def _spec(families, baseline, anchor=None, x_dir="higher", y_dir="higher", grid=25):
    return ComparisonSpec(
        baseline=(anchor or families[baseline][0]),
        metrics=[MetricSpec(name="coherence", direction=y_dir), MetricSpec(name="trait", direction=x_dir)],
        frontier=FrontierSpec(x="trait", y="coherence", families=families, baseline=baseline, anchor=anchor,
                              grid=grid))


def test_pareto_front_keeps_the_non_dominated_points_sorted_by_x():
    pts = [(0.2, 0.9), (0.5, 0.7), (0.4, 0.6), (0.8, 0.3), (0.8, 0.2), (math.nan, 1.0), (0.5, 0.7)]
    assert pareto_front(pts) == [(0.2, 0.9), (0.5, 0.7), (0.8, 0.3)]
    assert pareto_front([]) == []


def test_interpolate_is_linear_between_points_and_never_extrapolates():
    front = [(0.2, 0.9), (0.6, 0.5), (1.0, 0.1)]
    assert interpolate(front, 0.4) == pytest.approx(0.7)
    assert interpolate(front, 0.2) == pytest.approx(0.9) and interpolate(front, 1.0) == pytest.approx(0.1)
    assert math.isnan(interpolate(front, 0.1)) and math.isnan(interpolate(front, 1.1))
    assert interpolate(front, 0.7, along="y") == pytest.approx(0.4)  # x at matched y
    assert math.isnan(interpolate(front, 0.95, along="y"))


def _line_endpoints(families_x, offset):
    """Endpoints on y = 1 - x (+ the family's offset per seed) at the given x per arm."""
    ep_x, ep_y = {}, {}
    for fam, xs in families_x.items():
        for i, x in enumerate(xs):
            for s in SEEDS:
                ep_x[(f"{fam}{i}", s)] = x
                ep_y[(f"{fam}{i}", s)] = 1.0 - x + offset(fam, s)
    return ep_x, ep_y


def test_a_frontier_above_the_baselines_wins_at_matched_x_and_matched_y():
    xs = {"mean": [0.3, 0.5, 0.7], "max": [0.2, 0.45, 0.75]}
    lift = {s: 0.1 + 0.01 * s for s in SEEDS}  # max lies above mean by 0.10-0.15, differently per seed
    ep_x, ep_y = _line_endpoints(xs, lambda fam, s: lift[s] if fam == "max" else 0.0)
    spec = _spec({"mean": ["mean0", "mean1", "mean2"], "max": ["max0", "max1", "max2"]}, "mean")
    res = compare_frontiers(spec, ep_x, ep_y, SEEDS)
    at_x = res.table[res.table["matched"] == "trait"].iloc[0]
    assert at_x["read"] == "coherence" and at_x["n"] == len(SEEDS) and at_x["no_overlap"] == 0
    assert at_x["delta"] == pytest.approx(np.mean(list(lift.values())))  # parallel lines: exact lift
    assert (at_x["range_low"], at_x["range_high"]) == pytest.approx((0.3, 0.7))  # the span both reach
    assert at_x["family_dominates"] == len(SEEDS) and at_x["baseline_dominates"] == 0
    assert at_x["verdict"] == "better" and at_x["p_adj"] < 0.05
    at_y = res.table[res.table["matched"] == "coherence"].iloc[0]
    assert at_y["read"] == "trait" and at_y["delta"] == pytest.approx(np.mean(list(lift.values())))
    per = res.per_seed[("x", "max")]
    assert list(per["seed"]) == SEEDS
    assert list(per["level_family"] - per["level_baseline"]) == pytest.approx([lift[s] for s in SEEDS])


def test_arms_on_one_frontier_tie_however_hard_each_pushes():
    """The confound a single strength per arm hides: every point of both families lies on one curve, but at equal
    settings the 'max' arms sit further along it; along the frontier they tie exactly."""
    xs = {"mean": [0.7, 0.6, 0.5, 0.3], "max": [0.75, 0.45, 0.35, 0.25]}  # max pushes harder at each setting
    noise = {s: 0.002 * (s - 2.5) for s in SEEDS}
    ep_x, ep_y = _line_endpoints(xs, lambda fam, s: noise[s])
    fam = {"mean": ["mean0", "mean1", "mean2", "mean3"], "max": ["max0", "max1", "max2", "max3"]}
    res = compare_frontiers(_spec(fam, "mean"), ep_x, ep_y, SEEDS)
    for row in res.table.itertuples():
        assert row.delta == pytest.approx(0.0, abs=1e-12) and row.verdict.startswith("inconclusive")
    naive = np.mean([ep_y[("max1", s)] - ep_y[("mean1", s)] for s in SEEDS])
    assert naive == pytest.approx(0.15)  # the same comparison at one setting: a large 'effect'


def test_dominated_points_leave_the_frontier_and_are_counted():
    ep_x, ep_y = {}, {}
    for s in SEEDS:
        for arm, (x, y) in {"a0": (0.2, 0.9), "a1": (0.4, 0.5), "a2": (0.6, 0.6), "b0": (0.2, 0.8),
                            "b1": (0.6, 0.4)}.items():
            ep_x[(arm, s)], ep_y[(arm, s)] = x, y + 0.001 * s * (arm[0] == "a")
    res = compare_frontiers(_spec({"a": ["a0", "a1", "a2"], "b": ["b0", "b1"]}, "b"), ep_x, ep_y, SEEDS)
    assert all(res.dominated_points[("a", s)] == 1 for s in SEEDS)  # (0.4, 0.5) is below (0.6, 0.6)
    row = res.table[res.table["matched"] == "trait"].iloc[0]
    # a's frontier: (0.2, 0.9)-(0.6, 0.6); b's: (0.2, 0.8)-(0.6, 0.4); the mean gap over [0.2, 0.6] is 0.15
    assert row["delta"] == pytest.approx(0.15 + 0.001 * np.mean(SEEDS))


def test_seeds_without_a_common_range_are_left_out_and_counted():
    xs = {"mean": [0.3, 0.5], "max": [0.6, 0.8]}
    ep_x, ep_y = _line_endpoints(xs, lambda fam, s: 0.0)
    for s in SEEDS[:2]:  # two seeds where max reaches back into mean's range
        ep_x[("max0", s)] = 0.4
    res = compare_frontiers(_spec({"mean": ["mean0", "mean1"], "max": ["max0", "max1"]}, "mean"), ep_x, ep_y, SEEDS)
    row = res.table[res.table["matched"] == "trait"].iloc[0]
    assert row["n"] == 2 and row["no_overlap"] == len(SEEDS) - 2


def test_a_lower_is_better_metric_is_read_in_its_own_direction():
    xs = {"mean": [0.3, 0.5, 0.7], "max": [0.3, 0.5, 0.7]}
    ep_x, ep_y = _line_endpoints(xs, lambda fam, s: (0.05 + 0.01 * s) if fam == "max" else 0.0)
    ep_y = {k: -v for k, v in ep_y.items()}  # now "lower is better": max is lower, so better
    spec = _spec({"mean": ["mean0", "mean1", "mean2"], "max": ["max0", "max1", "max2"]}, "mean", y_dir="lower")
    row = compare_frontiers(spec, ep_x, ep_y, SEEDS).table.iloc[0]
    assert row["delta"] < 0 and row["verdict"] == "better"


def test_frontier_spec_validation():
    with pytest.raises(ValidationError, match="not one of the families"):
        FrontierSpec(x="t", y="c", families={"a": ["a0"], "b": ["b0"]}, baseline="z")
    with pytest.raises(ValidationError, match="already in family"):
        FrontierSpec(x="t", y="c", families={"a": ["a0"], "b": ["a0"]}, baseline="a")
    with pytest.raises(ValidationError, match="already in the anchor"):
        FrontierSpec(x="t", y="c", families={"a": ["a0"], "b": ["n"]}, baseline="a", anchor="n")
    with pytest.raises(ValidationError, match="frontier x 'x' is not one of the metrics"):
        ComparisonSpec(baseline="a0", metrics=[MetricSpec(name="c")],
                       frontier=FrontierSpec(x="x", y="c", families={"a": ["a0"], "b": ["b0"]}, baseline="a"))
    assert all(f.description for f in FrontierSpec.model_fields.values())


def _write_run(root, arm, seed, trait, coherence):
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "toy", "arm": arm, "seed": seed, "config_hash": "abcdef012345"})
    rows = [{"round": 0, "trait": 0.5, "coherence": 0.9}, {"round": 1, "trait": trait, "coherence": coherence}]
    (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    add_round_files(d, 1)
    run.finish("complete", "ok", 1)


def test_the_report_leads_with_the_frontier_and_writes_its_table_and_figure(tmp_path):
    for s in SEEDS:
        _write_run(tmp_path, "nll", s, 0.8, 0.2)
        for i, lam in enumerate((1, 4, 16)):
            x = 0.7 - 0.15 * i
            _write_run(tmp_path, f"mean{lam}", s, x, 1.0 - x)
            _write_run(tmp_path, f"max{lam}", s, x - 0.05, 1.0 - x + 0.08 + 0.005 * s)
    spec = _spec({"mean": ["mean1", "mean4", "mean16"], "max": ["max1", "max4", "max16"]}, "mean", anchor="nll")
    res = write_report(tmp_path, spec, formats=("md", "csv"))
    assert res.markdown.startswith("# Along the frontier: families against `mean`")
    assert "the anchor `nll` starts every family" in res.markdown
    assert (tmp_path / "report" / "frontier.csv").is_file()
    assert (tmp_path / "report" / "figures" / "frontier.png").is_file()
    row = res.frontier.table[res.frontier.table["matched"] == "trait"].iloc[0]
    assert row["verdict"] == "better" and row["n"] == len(SEEDS)
    assert "# Paired comparison against `nll`" in res.markdown  # the per-arm table stays below
