"""A whole run on tiny random models: every arch, determinism, paired streams, starvation, coherence floor."""

from __future__ import annotations

import json
import math

import pytest

from shl.config.loading import resolve_run_config
from shl.config.models import RunConfig
from shl.engine.loop import Run
from shl.store import RunStore

ARCHS = ["llama", "qwen2", "qwen3", "gpt2", "gemma"]


def config(host, arch: str = "llama", **overrides) -> RunConfig:
    raw = {
        "seed": 3,
        "device": "cpu",
        "model": {"name": "tiny_random", "params": {"arch": arch}},
        "steer": {"n_contexts": 8, "layers": [0.5]},
        "dose": {"probe_prompts": 8, "steps": 2},
        "generate": {"n_prompts": 16, "max_new_tokens": 16, "batch_size": 16},
        "filters": [{"name": "length", "params": {"min_tokens": 1}}],
        "heal": {"epochs": 1, "batch_size": 8, "lora": {"r": 2, "alpha": 4.0}},
        "eval": {
            "evaluators": [
                {"name": "coherence", "params": {"n_prompts": 8}},
                {"name": "trait_margin", "params": {"n_prompts": 4}},
            ],
            "max_new_tokens": 16,
            "batch_size": 16,
        },
        "loop": {"rounds": 1, "min_kept": 4},
    }
    for key, value in overrides.items():
        node = raw
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return resolve_run_config(RunConfig.model_validate(raw), host.registry)


def run(host, cfg, path):
    store = RunStore(path)
    outcome = Run(cfg, host, store).execute()
    return outcome, store


def strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.mark.parametrize("arch", ARCHS)
def test_one_round_on_every_arch(host, tmp_path, arch):
    outcome, store = run(host, config(host, arch), tmp_path / arch)
    assert outcome.status == "complete", outcome.message
    assert store.status() == "complete"
    rows = store.metrics()
    assert [r["round"] for r in rows] == [0, 1]
    assert math.isfinite(rows[1]["heal_nll"]) and rows[1]["heal_nll"] > 0
    assert rows[1]["total"] == 8 + 16  # the probe batch at the kappa used + one alpha of generation
    assert rows[1]["kept"] > 0
    for key in ("coherence", "trait", "steered_coherence", "kappa", "vector_norm"):
        assert key in rows[1], key
    assert rows[0]["trait"] == pytest.approx(0.0, abs=1e-6)  # the base model's margin over itself
    assert (store.dir / "adapters" / "r0").is_dir()
    assert (store.dir / "vectors" / "round_0.safetensors").is_file()


def test_same_config_and_seed_give_identical_metrics(host, tmp_path):
    cfg = config(host)
    a, sa = run(host, cfg, tmp_path / "a")
    b, sb = run(host, cfg, tmp_path / "b")
    assert a.status == b.status == "complete"
    assert strip(sa.metrics()) == strip(sb.metrics())
    assert (sa.dir / "samples.jsonl").read_text() == (sb.dir / "samples.jsonl").read_text()


def test_arms_differing_in_heal_share_the_pre_heal_streams(host, tmp_path):
    a, sa = run(host, config(host, **{"heal.lam": 0.0}), tmp_path / "a")
    b, sb = run(host, config(host, **{"heal.lam": 5.0, "heal.lr": 3e-3}), tmp_path / "b")
    assert a.status == b.status == "complete"
    ra, rb = sa.metrics(), sb.metrics()
    assert strip(ra[:1]) == strip(rb[:1])  # the base model
    pre_heal = [k for k in ra[1] if k in ("kept", "total", "kappa", "coeff", "probe_survival", "vector_norm")
                or k.startswith("steered_") or k.startswith("drop_")]
    assert {"kept", "total", "kappa", "steered_coherence", "steered_trait"} <= set(pre_heal)
    assert {k: ra[1][k] for k in pre_heal} == {k: rb[1][k] for k in pre_heal}
    kept = [[json.loads(x) for x in s.dir.joinpath("samples.jsonl").read_text().splitlines()] for s in (sa, sb)]
    steered = [[x for x in rows if x["kind"].startswith("steered_") and "filters" in x] for rows in kept]
    assert steered[0] and steered[0] == steered[1]
    assert ra[1]["heal_loss"] != rb[1]["heal_loss"]  # the arms do differ after the heal


def test_a_chain_that_drops_everything_starves(host, tmp_path):
    cfg = config(host, filters=[{"name": "length", "params": {"min_tokens": 10**6}}])
    outcome, store = run(host, cfg, tmp_path / "starved")
    assert outcome.status == "starved"
    assert "survived the filters" in outcome.message and "min_kept" in outcome.message
    done = json.loads((store.dir / "DONE.json").read_text())
    assert done["status"] == "starved" and done["message"] == outcome.message
    rows = store.metrics()
    assert rows[-1]["round"] == 1 and rows[-1]["kept"] == 0 and "heal_nll" not in rows[-1]


def test_coherence_floor_stops_the_run(host, tmp_path):
    cfg = config(host, **{"loop.rounds": 3, "loop.coherence_floor": 1.5})
    outcome, store = run(host, cfg, tmp_path / "stopped")
    assert outcome.status == "stopped"
    assert "fell below the floor" in outcome.message
    assert outcome.rounds == 1
    assert json.loads((store.dir / "DONE.json").read_text())["status"] == "stopped"
    assert [r["round"] for r in store.metrics()] == [0, 1]


@pytest.mark.parametrize(
    "overrides",
    [
        {"heal.barrier": {"tau_mode": "matched", "aggregator": "max"}, "heal.regulariser": "kl_fwd"},
        {"heal.regulariser": "nll", "heal.spectral": 0.1},
        {"heal.barrier": {"reference": "base", "level": "batch"}, "heal.spectral": 0.1},
    ],
    ids=["matched-max-fwd", "nll-control", "base-batch-spectral"],
)
def test_two_rounds_with_heal_variants(host, tmp_path, overrides):
    cfg = config(host, **{"loop.rounds": 2, **overrides})
    outcome, store = run(host, cfg, tmp_path / "r2")
    assert outcome.status == "complete", outcome.message
    rows = store.metrics()
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in rows[1:]:
        assert math.isfinite(r["heal_nll"]) and math.isfinite(r["heal_kl"]) and r["heal_kl"] >= 0
    assert rows[1]["cos_r0"] == pytest.approx(1.0)
    assert {"r0", "r1"} <= {p.name for p in (store.dir / "adapters").iterdir()}
    if cfg.heal.regulariser == "nll":
        assert rows[1]["lam"] == 0.0 and rows[1]["barrier_active"] == 0.0
    if cfg.heal.barrier.tau_mode == "matched":
        assert rows[1]["tau"] > 0 and rows[1]["tau"] == rows[2]["tau"]


def test_shared_stages_give_the_same_results_as_recomputing(host, tmp_path):
    """Arm B reusing arm A's cached base evaluation and round-1 pre-heal stages equals arm B computed alone."""
    shared = tmp_path / "shared"
    arm_a = config(host, **{"heal.lam": 1.0, "loop.rounds": 2})
    arm_b = config(host, **{"heal.lam": 0.25, "heal.barrier.aggregator": {"name": "max"}, "loop.rounds": 2})
    Run(arm_a, host, RunStore(tmp_path / "a"), shared_dir=shared).execute()
    assert len(list(shared.glob("*.pt"))) == 1
    reused = Run(arm_b, host, RunStore(tmp_path / "b_shared"), shared_dir=shared)
    outcome = reused.execute()
    assert outcome.status == "complete"
    assert "reused from the shared stage cache" in (tmp_path / "b_shared" / "log.txt").read_text()
    alone = Run(arm_b, host, RunStore(tmp_path / "b_alone")).execute()
    assert strip(outcome.metrics) == strip(alone.metrics)
    assert outcome.metrics[1]["lam"] == 0.25
    # a config that changes a pre-heal stage (the filters) gets its own cache entry
    arm_c = config(host, **{"filters": [], "loop.rounds": 1})
    Run(arm_c, host, RunStore(tmp_path / "c"), shared_dir=shared).execute()
    assert len(list(shared.glob("*.pt"))) == 2


def test_persona_logodds_is_zero_for_the_base_and_shares_the_answers_with_coherence(host, tmp_path):
    """persona_logodds reads the student's own answers: exactly 0 at round 0 (the base answers are the student's),
    a paired standard error afterwards, and the very completions coherence scores (sampled once, key "answers");
    a run resuming from the shared-stage cache (no round 0 evaluation of its own) gets the same numbers."""
    evaluators = [{"name": "coherence", "params": {"n_prompts": 6}},
                  {"name": "persona_logodds", "params": {"n_prompts": 6}}]
    cfg = config(host, **{"eval.evaluators": evaluators, "dose.controller": False, "dose.scale": 3.0})
    store = RunStore(tmp_path / "a")
    Run(cfg, host, store).execute()
    rows = store.metrics()
    assert rows[0]["trait_logodds"] == 0.0 and rows[0]["trait_logodds_se"] == 0.0
    assert rows[1]["steered_trait_logodds"] != 0.0 and rows[1]["steered_trait_logodds_se"] > 0
    samples = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    by = {(s["kind"], s["evaluator"], s["user"]): s["text"] for s in samples if s.get("evaluator")}
    shared = [(k, u) for (k, e, u) in by if e == "coherence" and (k, "persona_logodds", u) in by]
    assert shared and all(by[(k, "coherence", u)] == by[(k, "persona_logodds", u)] for k, u in shared)
    again = RunStore(tmp_path / "b")
    Run(cfg, host, again, shared_dir=tmp_path / "shared").execute()
    third = RunStore(tmp_path / "c")
    Run(cfg, host, third, shared_dir=tmp_path / "shared").execute()  # round 0 and round 1 up to the heal reused
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "c" / "metrics.jsonl").read_text()


@pytest.mark.system
@pytest.mark.parametrize("reference", ["prev", "base"])
def test_a_base_reference_reuses_the_filters_base_states_and_sharing_still_matches(host, tmp_path, reference):
    """With a base-scoring filter (tail_ppl), the heal's base reference comes from the states the filter kept
    (no second base forward); the results are those of recomputing it (1e-5), and an arm that reuses the shared
    stages (the states travel in the cache entry) equals the arm computed alone, byte for byte."""
    from shl.engine import reference as reference_mod

    filters = [{"name": "tail_ppl", "params": {"max_ppl": 1e9}}, {"name": "length", "params": {"min_tokens": 1}}]
    over = {"filters": filters, "heal.barrier.reference": reference, "heal.epochs": 2, "loop.rounds": 2}
    cfg = config(host, **over)
    forwards = []
    original = reference_mod.reference_logprobs

    def counting(*args, **kwargs):
        forwards.append(1)
        return original(*args, **kwargs)

    reference_mod.reference_logprobs = counting
    try:
        reused = Run(cfg, host, RunStore(tmp_path / "reused")).execute()
    finally:
        reference_mod.reference_logprobs = original
    round2_batches = reused.metrics[2]["heal_steps"] / 2  # per epoch (the second epoch reuses the first's rows)
    # no base forward for the reference: none at all for "base"; for "prev", only round 2's (prev is r0 then)
    assert len(forwards) == (0 if reference == "base" else round2_batches)
    plain = config(host, **over)
    fresh = Run(plain, host, RunStore(tmp_path / "fresh"), shared_dir=None)
    fresh.base_states.budget = 0  # nothing kept: every reference recomputed
    recomputed = fresh.execute()
    for a, b in zip(reused.metrics, recomputed.metrics):
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, abs=1e-5, rel=1e-5), k
    arm_b = config(host, **{**over, "heal.lam": 0.5})
    Run(cfg, host, RunStore(tmp_path / "a"), shared_dir=tmp_path / "shared").execute()
    shared = Run(arm_b, host, RunStore(tmp_path / "b_shared"), shared_dir=tmp_path / "shared").execute()
    alone = Run(arm_b, host, RunStore(tmp_path / "b_alone")).execute()
    assert (tmp_path / "b_shared" / "metrics.jsonl").read_text() == (tmp_path / "b_alone" / "metrics.jsonl").read_text()
    assert shared.status == alone.status == "complete"


def test_the_coherence_calibration_lasts_across_runs_and_seeds(host, tmp_path, monkeypatch):
    """The calibration is a property of the model, the data and the evaluator: the first run computes it and keeps
    it under $SHL_CACHE_DIR/evaluators; a run of another seed reads it (no calibration answers sampled) and
    gets the same thresholds; other params are another entry."""
    from shl.engine import evaluate as evaluate_mod

    monkeypatch.setenv("SHL_CACHE_DIR", str(tmp_path / "cache"))
    sampled = []
    real = evaluate_mod.generate
    monkeypatch.setattr(evaluate_mod, "generate", lambda m, t, prompts, **kw: sampled.append(len(prompts)) or
                        real(m, t, prompts, **kw))
    evaluators = [{"name": "coherence", "params": {"n_prompts": 8, "n_calibration": 24}}]
    first, _ = run(host, config(host, **{"eval.evaluators": evaluators, "loop.rounds": 1}), tmp_path / "a")
    calibrations = sampled.count(24)
    entries = list((tmp_path / "cache" / "evaluators").glob("*.json"))
    sampled.clear()
    second, _ = run(host, config(host, seed=4, **{"eval.evaluators": evaluators, "loop.rounds": 1}), tmp_path / "b")
    assert first.status == second.status == "complete"
    assert calibrations == 1 and sampled.count(24) == 0
    assert len(entries) == 1 and json.loads(entries[0].read_text())["calibrated"] == [
        first.metrics[0]["coherence_max_head_ppl"], first.metrics[0]["coherence_max_span_ppl"]]
    for key in ("coherence_max_head_ppl", "coherence_max_span_ppl"):
        assert first.metrics[0][key] == second.metrics[0][key] == second.metrics[-1][key]
    other = [{"name": "coherence", "params": {"n_prompts": 8, "n_calibration": 24, "calibration_quantile": 0.5}}]
    run(host, config(host, **{"eval.evaluators": other, "loop.rounds": 1}), tmp_path / "c")
    assert len(list((tmp_path / "cache" / "evaluators").glob("*.json"))) == 2
