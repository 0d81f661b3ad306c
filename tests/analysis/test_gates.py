"""The method's gates in the report, on stores with known numbers."""

import json

import pytest

from shl_analysis import ComparisonSpec, MetricSpec, write_report
from shl_analysis.gates import compute_gates, gates_markdown
from shl_analysis.results import load_runs, run_table

from shl.store import RunStore
from fake_rounds import add_round_files

SEEDS = [0, 1, 2, 3]
NOISE = {0: 0.00, 1: 0.01, 2: -0.01, 3: 0.02}
# per arm: (steered trait, steered coherence, healed trait, healed coherence) in round 1, before noise;
# round 0 (the base model): trait 0.5, coherence 0.9
ARMS = {
    "heal": (0.80, 0.60, 0.70, 0.85),   # keeps 2/3 of the shift and restores coherence: every gate passes
    "undo": (0.80, 0.60, 0.50, 0.90),   # restores coherence, keeps no trait: gate 3 fails, "undid the steering"
    "broken": (0.80, 0.60, 0.75, 0.55),  # keeps the trait, coherence falls further: gate 4 fails
}


def _write(root, arm, seed, values):
    st, sc, ht, hc = (v + NOISE[seed] for v in values)
    d = root / "runs" / f"{arm}__seed{seed}__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "g", "arm": arm, "seed": seed, "config_hash": "abcdef012345"})
    rows = [{"round": 0, "trait": 0.5, "coherence": 0.9},
            {"round": 1, "steered_trait": st, "steered_coherence": sc, "trait": ht, "coherence": hc}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    add_round_files(d, 1)
    run.finish("complete", "ok", 1)


@pytest.fixture
def store(tmp_path):
    for arm, values in ARMS.items():
        for seed in SEEDS:
            _write(tmp_path, arm, seed, values)
    return tmp_path


def test_gates_per_arm_with_known_numbers(store):
    runs = run_table(store)
    gates = compute_gates(load_runs(store), runs, SEEDS, list(ARMS))
    rows = {r.arm: r for r in gates.rows}
    heal, undo, broken = rows["heal"], rows["undo"], rows["broken"]
    mean_noise = sum(NOISE.values()) / 4
    assert heal.steer_shift == pytest.approx(0.30 + mean_noise) and heal.coherence_cost == pytest.approx(0.30 - mean_noise)
    assert heal.learned == pytest.approx(0.20 + mean_noise)
    assert heal.kept_share == pytest.approx((0.20 + mean_noise) / (0.30 + mean_noise))
    assert heal.healed == pytest.approx(0.25) and heal.vs_base == pytest.approx(-0.05 + mean_noise)
    assert heal.trait_per_coherence == pytest.approx((0.20 + mean_noise) / 0.25)
    assert heal.passed == {1: True, 2: None, 3: True, 4: True} and heal.verdict() == "pass"
    assert undo.failed == [3]
    assert undo.verdict() == ("fails gate 3 (the heal learned): the heal undid the steering (coherence restored, "
                              "trait not kept)")
    assert broken.failed == [4] and broken.verdict() == "fails gate 4 (the heal healed)"
    # each run is named with its own numbers: undo seed 0 keeps exactly nothing
    assert gates.failing_runs[3][0] == ("`undo__seed0__abcdef012345` (arm `undo`, seed 0, round 1): healed trait - "
                                        "trait before the round = +0 (steering moved it +0.3)")
    assert len(gates.failing_runs[4]) == 4 and 1 not in gates.failing_runs


def test_the_report_and_its_page_carry_the_gates(store):
    spec = ComparisonSpec(baseline="heal", correction="none", metrics=[MetricSpec(name="trait"),
                                                                       MetricSpec(name="coherence")])
    res = write_report(store, spec, figures=False)
    assert "## Gates" in res.markdown
    assert "| `undo` | 1 | 4 | +0.305 (+0.295) | not measured | +0.005 (2%) | +0.300 (+0.005) | 0.02 |" in res.markdown
    assert "- gate 3 (the heal learned): `undo__seed0__abcdef012345`" in res.markdown
    page = (store / "report" / "report.html").read_text()
    assert '<section id="gates"><h2>Gates</h2>' in page and "the heal undid the steering" in page


def test_no_gates_without_a_steered_trait(tmp_path):
    d = tmp_path / "runs" / "a__seed0__abcdef012345"
    run = RunStore(d)
    run.start({}, {"experiment": "g", "arm": "a", "seed": 0, "config_hash": "abcdef012345"})
    (d / "metrics.jsonl").write_text(json.dumps({"round": 0, "trait": 0.5, "coherence": 0.9}) + "\n")
    add_round_files(d, 0)
    run.finish("complete", "ok", 0)
    gates = compute_gates(load_runs(tmp_path), run_table(tmp_path), [0], ["a"])
    assert gates.rows == [] and "gates not computed" in gates_markdown(gates)


def test_the_filter_gate_when_the_runs_record_it(tmp_path):
    for seed in SEEDS:
        _write(tmp_path, "heal", seed, ARMS["heal"])
        d = tmp_path / "runs" / f"heal__seed{seed}__abcdef012345"
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        rows[1].update(filter_kept_coherent=0.8 + NOISE[seed], filter_dropped_coherent=0.3)
        (d / "DONE.json").unlink()
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        RunStore(d).finish("complete", "ok", 1)
    gates = compute_gates(load_runs(tmp_path), run_table(tmp_path), SEEDS, ["heal"])
    [row] = gates.rows
    assert row.filters == pytest.approx((0.805, 0.3)) and row.passed[2] is True
    assert "| 0.81 / 0.30 |" in gates_markdown(gates)
