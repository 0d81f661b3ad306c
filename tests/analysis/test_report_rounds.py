"""Runs that ended early: the per-arm account in the report, and the `last_common` endpoint."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from shl_analysis import ComparisonSpec, MetricSpec, paired_differences, write_report
from shl_analysis.endpoints import RunLengths, common_round_of, endpoint_value, last_round

from shl.store import RunStore
from fake_rounds import add_round_files

SEEDS = [0, 1, 2, 3]
ROUNDS = 3
BASE = {0: 0.50, 1: 0.52, 2: 0.48, 3: 0.55}
SLOPE = {"base": {s: 0.0 for s in SEEDS}, "steer": {0: 0.03, 1: 0.10, 2: 0.05, 3: 0.04},
         "heal": {0: 0.01, 1: 0.02, 2: -0.01, 3: 0.00}}
STOP = {("steer", 1): 1}  # steer seed 1 stopped at the coherence floor after round 1


def trait(arm, seed, r):
    return BASE[seed] + SLOPE[arm][seed] * r


def _write_run(root, arm, seed, stop=STOP):
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "toy", "arm": arm, "seed": seed, "config_hash": "abcdef012345"})
    last = stop.get((arm, seed), ROUNDS)
    rows = [{"round": r, "trait": trait(arm, seed, r), "coherence": 0.9 - 0.05 * r} for r in range(last + 1)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    add_round_files(d, last)
    run.finish("stopped" if (arm, seed) in stop else "complete", "ok", last)


@pytest.fixture
def store(tmp_path):
    for arm in SLOPE:
        for seed in SEEDS:
            _write_run(tmp_path, arm, seed)
    return tmp_path


def spec(endpoint="final"):
    return ComparisonSpec(baseline="base", endpoint=endpoint, correction="none",
                          metrics=[MetricSpec(name="trait"), MetricSpec(name="coherence", direction="higher")])


def test_final_counts_the_runs_that_ended_early_per_arm(store):
    res = write_report(store, spec(), figures=False)
    t = res.table.set_index(["metric", "arm"])
    assert t.loc[("trait", "steer"), "early_arm"] == 1 and t.loc[("trait", "steer"), "early_baseline"] == 0
    assert t.loc[("trait", "heal"), "early_arm"] == 0
    # `final` keeps its meaning: steer seed 1 contributes its round-1 value against round 3 of the baseline
    d = [trait("steer", s, STOP.get(("steer", s), ROUNDS)) - trait("base", s, ROUNDS) for s in SEEDS]
    assert t.loc[("trait", "steer"), "delta"] == pytest.approx(np.mean(d))
    md = res.markdown
    assert "- runs that ended early (before round 3, the last round any compared run reached), per arm over " \
           "the 4 compared seeds:" in md
    assert "  - `steer`: 1 of 4 (seed 1 at round 1)" in md
    assert "  - `base`: 0 of 4" in md and "  - `heal`: 0 of 4" in md
    assert "endpoint `last_common` compares every arm of a seed at the last round all of them reached" in md
    assert "| ended early (arm, base) |" in md
    assert next(ln for ln in md.splitlines() if ln.startswith("| trait | steer |")).startswith(
        "| trait | steer | base | 4 | 0 | 1, 0 |")
    csv = (store / "report" / "comparison.csv").read_text().splitlines()[0].split(",")
    assert csv[5:7] == ["early_arm", "early_baseline"]


def test_no_early_runs_says_so(tmp_path):
    for arm in SLOPE:
        for seed in SEEDS:
            _write_run(tmp_path, arm, seed, stop={})
    res = write_report(tmp_path, spec(), figures=False)
    assert "- runs that ended early: none (every compared run reached round 3)" in res.markdown
    assert set(res.table["early_arm"]) == {0} and set(res.table["early_baseline"]) == {0}


def test_last_common_reads_every_arm_of_a_seed_at_the_same_round(store):
    res = write_report(store, spec("last_common"), figures=False)
    t = res.table.set_index(["metric", "arm"])
    common = {s: 1 if s == 1 else ROUNDS for s in SEEDS}
    for arm in ("steer", "heal"):
        d = np.array([trait(arm, s, common[s]) - trait("base", s, common[s]) for s in SEEDS])
        assert t.loc[("trait", arm), "delta"] == pytest.approx(d.mean())
        assert t.loc[("trait", arm), "p_t"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    # coherence does not depend on the arm: at a common round every pair differs by exactly 0
    assert t.loc[("coherence", "steer"), "delta"] == pytest.approx(0.0, abs=1e-12)
    md = res.markdown
    assert "`last_common` (value at the last round every compared run of the seed reached" in md
    assert "endpoint `last_common` reads every arm of a seed at the same round: seed 1 at round 1; the other " \
           "seeds at round 3." in md
    diffs = paired_differences(store, spec("last_common"), "trait")
    assert diffs["heal"] == pytest.approx([trait("heal", s, common[s]) - trait("base", s, common[s]) for s in SEEDS])


def test_final_and_last_common_differ_only_through_the_early_seed(store):
    final = paired_differences(store, spec("final"), "trait")["steer"]
    common = paired_differences(store, spec("last_common"), "trait")["steer"]
    assert final[0] == pytest.approx(common[0]) and final[2:] == pytest.approx(common[2:])
    assert final[1] == pytest.approx(trait("steer", 1, 1) - trait("base", 1, 3))
    assert common[1] == pytest.approx(trait("steer", 1, 1) - trait("base", 1, 1))


def test_endpoint_value_last_common():
    rows = [{"round": 0, "acc": 0.2}, {"round": 1, "acc": 0.4}, {"round": 3, "acc": 0.9}, {"round": 4, "x": 1.0}]
    assert endpoint_value(rows, "acc", "last_common", common_round=1) == pytest.approx(0.4)
    assert endpoint_value(rows, "acc", "last_common", common_round=2) == pytest.approx(0.4)  # not logged at 2
    assert endpoint_value(rows, "acc", "last_common", common_round=3) == pytest.approx(0.9)
    assert math.isnan(endpoint_value(rows[2:], "acc", "last_common", common_round=1))
    with pytest.raises(ValueError, match="common_round"):
        endpoint_value(rows, "acc", "last_common")
    assert last_round(rows) == 4 and last_round([]) is None
    assert common_round_of([rows, rows[:2]]) == 1
    assert common_round_of([rows, []]) is None


def test_run_lengths():
    lengths = RunLengths({("a", 0): 3, ("a", 1): 1, ("b", 0): 2, ("b", 1): 3})
    assert lengths.full == 3
    assert lengths.ended_early("a") == [(1, 1)] and lengths.ended_early("b") == [(0, 2)]
    assert lengths.ended_early("a", seeds=[0]) == []
    assert lengths.common(0) == 2 and lengths.common(1) == 1 and lengths.common(9) is None
    assert RunLengths().full is None


def test_spec_documents_last_common():
    assert ComparisonSpec(baseline="b", metrics=[MetricSpec(name="x")], endpoint="last_common").endpoint == \
        "last_common"
    text = ComparisonSpec.model_fields["endpoint"].description
    assert "'last_common'" in text and "every paired run of that seed reached" in text
    assert "ended early" in text or "coherence floor" in text


def _null_out(store, arm, seed, metric, rnd, value=None):
    """Rewrite one stored value as null (or NaN) through the store, as a run that logged it so would have."""
    d = store / "runs" / f"{arm}__seed{seed}__abcdef012345"
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if row["round"] == rnd:
            row[metric] = value
    status = json.loads((d / "DONE.json").read_text())["status"]
    run = RunStore(d)
    (d / "DONE.json").unlink()
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run.finish(status, "ok", max(r["round"] for r in rows))


@pytest.mark.parametrize("value", [None, float("nan")])
def test_a_null_final_value_drops_the_seed_from_that_metric_and_names_the_run(tmp_path, value):
    for arm in SLOPE:
        for seed in SEEDS:
            _write_run(tmp_path, arm, seed, stop={})
    _null_out(tmp_path, "base", 2, "coherence", ROUNDS, value)
    res = write_report(tmp_path, spec(), figures=False)
    t = res.table.set_index(["metric", "arm"])
    # coherence: seed 2 leaves both comparisons (its baseline has no final value); round 2's 0.8 never stands in
    assert t.loc[("coherence", "steer"), "n"] == 3 and t.loc[("coherence", "steer"), "dropped"] == 1
    assert t.loc[("coherence", "heal"), "n"] == 3
    assert t.loc[("coherence", "steer"), "mean_baseline"] == pytest.approx(0.9 - 0.05 * ROUNDS)
    # trait is untouched: every seed pairs
    assert t.loc[("trait", "steer"), "n"] == 4
    d = [trait("steer", s, ROUNDS) - trait("base", s, ROUNDS) for s in SEEDS]
    assert t.loc[("trait", "steer"), "delta"] == pytest.approx(np.mean(d))
    note = ("run `base__seed2__abcdef012345` (arm `base`, seed 2): `coherence` is null or NaN at round 3, which its "
            "`final` endpoint reads; seed 2 is left out of the `coherence` comparisons (no earlier round stands in "
            "for it).")
    assert note in res.markdown
    assert "runs that ended early: none" in res.markdown  # the run did reach round 3
    diffs = paired_differences(tmp_path, spec(), "coherence")
    assert {arm: len(v) for arm, v in diffs.items()} == {"steer": 3, "heal": 3}


def test_which_null_values_an_endpoint_reads(tmp_path):
    for arm in SLOPE:
        for seed in SEEDS:
            _write_run(tmp_path, arm, seed, stop={})
    _null_out(tmp_path, "steer", 1, "trait", 2)  # a hole before the last round
    n = {ep: write_report(tmp_path, ComparisonSpec(baseline="base", endpoint=ep, last_k=2, correction="none",
                                                   metrics=[MetricSpec(name="trait")]), figures=False,
                          formats=("md",)).table.set_index("arm").loc["steer", "n"]
         for ep in ("final", "last_common", "last_k", "auc")}
    # final and last_common read round 3 only; last_k (k = 2) reads rounds 2-3 and auc every round
    assert n == {"final": 4, "last_common": 4, "last_k": 3, "auc": 3}
