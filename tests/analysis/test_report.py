import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from shl_analysis import ComparisonSpec, MetricSpec, load_runs, write_report
from shl_analysis.results import run_table

from shl.store import RunStore
from fake_rounds import add_round_files

SEEDS = range(5)
BASE_LEVEL = {0: 0.50, 1: 0.52, 2: 0.48, 3: 0.55, 4: 0.51}
EFFECT = {  # trait gain at the final round (3), linear ramp from round 0
    "base": {s: 0.0 for s in SEEDS},
    "steer": {0: 0.1, 1: 0.2, 2: 0.9, 3: 0.3, 4: 0.4},
    "heal": {0: -0.1, 1: 0.0, 2: 0.5, 3: 0.1, 4: -0.05},
}
ROUNDS = 3


def _write_run(root, arm, seed, status="complete", extra_rows=()):
    """A run directory written through the store's own API (marker, manifest), as a real run writes it."""
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "toy", "arm": arm, "seed": seed, "config_hash": "abcdef012345", "extra": 1})
    lines = []
    for r in range(ROUNDS + 1):
        e = EFFECT[arm].get(seed, 0.0) * r / ROUNDS
        lines.append(json.dumps({"round": r, "trait": BASE_LEVEL.get(seed, 0.5) + e, "coherence": 0.9 - 0.1 * e,
                                 "sample": "some text", "flags": [1, 2], "ok": True, "maybe": None}))
    lines += list(extra_rows)
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if status == "failed":
        run.fail("failed", "CUDA OOM", "...")
    elif status != "incomplete":
        add_round_files(d, ROUNDS)
        run.finish(status, "ok", ROUNDS)
    return d


@pytest.fixture
def store(tmp_path):
    for arm in EFFECT:
        for seed in SEEDS:
            _write_run(tmp_path, arm, seed, status="failed" if (arm, seed) == ("heal", 2) else "complete")
    (tmp_path / "experiment.yaml").write_text("name: toy\n")
    (tmp_path / "runs" / "README.txt").write_text("unknown file")
    return tmp_path


SPEC = ComparisonSpec(baseline="base", metrics=[MetricSpec(name="trait"), MetricSpec(name="coherence")])


def test_spec_defaults_and_validation():
    assert SPEC.primary == "trait" and SPEC.endpoint == "final" and SPEC.correction == "holm"
    with pytest.raises(ValidationError):
        ComparisonSpec(baseline="b", metrics=[])
    with pytest.raises(ValidationError):
        ComparisonSpec(baseline="b", metrics=[MetricSpec(name="x")], primary="y")
    with pytest.raises(ValidationError):
        ComparisonSpec(baseline="b", metrics=[MetricSpec(name="x")], alpha=1.0)
    with pytest.raises(ValidationError):
        ComparisonSpec(baseline="b", metrics=[MetricSpec(name="x")], last_k=0)
    with pytest.raises(ValidationError):
        MetricSpec(name="x", direction="up")
    with pytest.raises(ValidationError):
        MetricSpec(name="x", bogus=1)
    assert all(f.description for f in ComparisonSpec.model_fields.values())
    assert all(f.description for f in MetricSpec.model_fields.values())


def test_load_runs_tidy_and_run_table(store):
    _write_run(store, "base", 7, status="incomplete", extra_rows=['{"round": 4, "trait": 0.7', ""])
    tidy = load_runs(store)
    assert list(tidy.columns) == ["experiment", "arm", "seed", "run_id", "status", "round", "metric", "value"]
    assert set(tidy["metric"]) == {"trait", "coherence"}  # strings, lists, bools, nulls dropped
    assert len(tidy) == 16 * 4 * 2
    assert set(tidy.loc[tidy["seed"] == 7, "status"]) == {"incomplete"}
    row = tidy[(tidy.arm == "steer") & (tidy.seed == 1) & (tidy["round"] == 3) & (tidy.metric == "trait")]
    assert row["value"].item() == pytest.approx(0.72)
    runs = run_table(store)
    assert len(runs) == 16
    st = runs.set_index(["arm", "seed"])["status"]
    assert st[("heal", 2)] == "failed" and st[("base", 7)] == "incomplete" and st[("base", 0)] == "complete"
    assert runs.set_index(["arm", "seed"]).loc[("heal", 2), "message"] == "CUDA OOM"


def test_write_report_values_and_files(store):
    res = write_report(store, SPEC)
    t = res.table.set_index(["metric", "arm"])
    assert res.kept_seeds == [0, 1, 3, 4]
    assert res.dropped == {2: "failed in `heal`"}
    steer, heal = t.loc[("trait", "steer")], t.loc[("trait", "heal")]
    assert steer["n"] == 4 and steer["dropped"] == 1 and heal["n"] == 4
    assert steer["delta"] == pytest.approx(0.25)
    assert heal["delta"] == pytest.approx(-0.0125)
    d_steer = np.array([0.1, 0.2, 0.3, 0.4])
    assert steer["p_t"] == pytest.approx(stats.ttest_1samp(d_steer, 0).pvalue)
    assert steer["p_perm"] == pytest.approx(2 / 16)
    assert steer["wins"] == 4 and heal["wins"] == 1
    assert steer["mean_baseline"] == pytest.approx(np.mean([0.50, 0.52, 0.55, 0.51]))
    # Holm over the two arms for this metric
    p1, p2 = sorted([steer["p_t"], heal["p_t"]])
    assert steer["p_adj"] == pytest.approx(min(1, 2 * p1))
    assert heal["p_adj"] == pytest.approx(max(min(1, 2 * p1), p2))
    assert steer["p_t"] < 0.05 < steer["p_adj"]  # verdict follows the adjusted p
    assert steer["verdict"].startswith("inconclusive")
    assert heal["verdict"].startswith("inconclusive: could detect |delta| >= ")
    assert t.loc[("coherence", "steer"), "delta"] == pytest.approx(-0.025)
    assert t.loc[("coherence", "steer"), "p_t"] == pytest.approx(steer["p_t"])

    report = store / "report"
    for name in ["comparison.md", "comparison.csv", "comparison.tex", "tidy.csv", "runs.csv",
                 "figures/trajectories.png", "figures/trajectories.svg", "figures/paired_trait.png",
                 "figures/paired_trait.svg", "figures/tradeoff.png", "figures/tradeoff.svg"]:
        p = report / name
        assert p.is_file() and p.stat().st_size > 0, name
        assert p in res.paths
    md = res.markdown
    assert md == (report / "comparison.md").read_text()
    assert "no two-sided sign-flip test can reach p < 0.05 with n < 6 pairs" in md
    assert "2/2^n" in md and "0.125" in md
    assert "seed 2: failed in `heal`" in md
    assert "two-sided paired t-test" in md and "Holm" in md and "sign-flip" in md
    assert "| trait | steer | base | 4 | 1 |" in md
    assert "4/4" in md
    tex = (report / "comparison.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\end{tabular}" in tex
    assert "p (adj)" in tex and r"$\pm$" in tex
    csv = pd.read_csv(report / "comparison.csv")
    assert len(csv) == 4 and csv.loc[1, "arm"] == "steer" and csv.loc[1, "delta"] == pytest.approx(0.25)


def test_auc_endpoint_and_no_figures(store):
    spec = ComparisonSpec(baseline="base", metrics=[MetricSpec(name="trait")], endpoint="auc",
                          correction="none")
    res = write_report(store, spec, formats=("md",), figures=False)
    row = res.table.set_index("arm").loc["steer"]
    assert row["delta"] == pytest.approx(0.125)  # mean level of a linear ramp: half the final gain
    assert row["p_adj"] == row["p_t"] < 0.05
    assert row["verdict"] == "better"
    assert not (store / "report" / "figures").exists()
    assert not (store / "report" / "comparison.csv").exists()


def test_zero_pairs_and_missing_seed(tmp_path):
    for seed in (0, 1):
        _write_run(tmp_path, "base", seed, status="failed")
        _write_run(tmp_path, "steer", seed)
    _write_run(tmp_path, "steer", 3)
    _write_run(tmp_path, "heal", 0, status="starved")
    res = write_report(tmp_path, ComparisonSpec(baseline="base", metrics=[MetricSpec(name="trait")]))
    assert list(res.table["n"]) == [0, 0]
    assert list(res.table["verdict"]) == ["no paired seeds"] * 2
    assert res.kept_seeds == []
    assert res.dropped[0] == "failed in `base`; starved in `heal`"
    assert res.dropped[3] == "missing in `base`; missing in `heal`"
    assert "no paired seeds" in res.markdown
    assert math.isnan(res.table["p_adj"].iloc[0])


def test_missing_baseline_raises(store):
    with pytest.raises(ValueError, match="baseline arm 'nope' not found"):
        write_report(store, ComparisonSpec(baseline="nope", metrics=[MetricSpec(name="trait")]))


def test_trajectory_band_is_t_based():
    from shl_analysis.figures import t_summary

    mean, half, n = t_summary([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert t_summary([5.0])[1] == 0.0


def test_run_ids_restrict_the_report_to_the_current_plan(store):
    """Runs of an older config in the same directory (another hash) are kept on disk but not compared."""
    stale = store / "runs" / "heal__seed0__0123456789ab"
    old = RunStore(stale)
    old.start({}, {"experiment": "toy", "arm": "heal", "seed": 0, "config_hash": "0123456789ab"})
    old.append_metrics({"round": 0, "trait": 99.0, "coherence": 99.0})
    old.finish("complete", "", 0)
    planned = [p.name for p in (store / "runs").iterdir() if p.is_dir() and p != stale]
    assert "heal__seed0__0123456789ab" in set(run_table(store)["run_id"])
    assert "heal__seed0__0123456789ab" not in set(run_table(store, planned)["run_id"])
    restricted = write_report(store, SPEC, figures=False, run_ids=planned)
    assert 99.0 in set(load_runs(store)["value"]) and 99.0 not in set(load_runs(store, planned)["value"])
    assert "heal__seed0__0123456789ab" not in restricted.markdown


def test_a_missing_endpoint_drops_the_seed_from_every_arm(store):
    """heal seed 4 has no coherence values: seed 4 leaves the coherence comparisons of EVERY arm."""
    run = store / "runs" / "heal__seed4__abcdef012345"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row["coherence"] = None
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    RunStore(run).finish("complete", "ok", ROUNDS)  # re-sealed: the run is intact, its endpoint missing
    t = write_report(store, SPEC, figures=False).table.set_index(["metric", "arm"])
    assert t.loc[("coherence", "steer"), "n"] == 3 and t.loc[("coherence", "heal"), "n"] == 3
    assert t.loc[("trait", "steer"), "n"] == 4  # other metrics keep the seed
