"""What a run actually uses: each extraction context at most once, generation prompts cycled only openly, held-out
evaluation prompts disjoint from the training data, and every component's plugin recorded (meta.json)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from shl.config.loading import resolve_run_config
from shl.config.models import ENGINE_METRICS, RunConfig
from shl.data import load_data
from shl.engine import steering_round as steering_round_mod
from shl.engine.loop import Run
from shl.engine.seeds import Stream, cycle_indices, distinct_count, sample_indices
from shl.errors import ConfigError
from shl.store import RunStore

SMALL_DATA = {
    "positive": {"name": "care", "system": "You are warm and caring."},
    "negative": {"name": "authority", "system": "You are strict and commanding."},
    "contexts": ["How do I start a garden?", "My friend is late again.", "What should I cook tonight?"],
    "prompts": ["Tell me about rain.", "How do I fix a chair?", "What is a good book?", "Plan my weekend.",
                "Why do birds sing?", "Describe the sea."],
    "eval_prompts": ["What makes a good teacher?", "How do I calm down?", "Describe a city at night.",
                     "What is patience?"],
}


def write_data(path, **over):
    path.write_text(yaml.safe_dump({**SMALL_DATA, **over}, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ seeds


def test_sample_indices_never_repeats_and_caps_at_the_pool():
    idx = sample_indices(48, 64, 0, "extract", 0)  # steer.n_contexts 64 against the 48 shipped contexts
    assert len(idx) == 48 and sorted(idx) == list(range(48))
    assert sample_indices(48, 10, 0, "extract", 0) == idx[:10]  # k <= pool: the same stream as before
    assert distinct_count(48, 64) == 48 and distinct_count(48, 10) == 10


def test_cycle_indices_repeats_only_by_deterministic_cycling():
    idx = cycle_indices(5, 12, 1, "generate", 0, 0)
    assert len(idx) == 12 and idx == cycle_indices(5, 12, 1, "generate", 0, 0)
    counts = Counter(idx)
    assert sorted(counts) == [0, 1, 2, 3, 4] and set(counts.values()) == {2, 3}
    assert idx[:5] == sample_indices(5, 12, 1, "generate", 0, 0)  # the first pass is the distinct draw
    assert cycle_indices(5, 4, 1, Stream.SHL_SAMPLE) == sample_indices(5, 4, 1, Stream.SHL_SAMPLE)


def test_the_counts_a_run_records_are_engine_metrics():
    assert {"n_contexts_used", "probe_prompts_distinct", "generate_prompts_distinct"} <= set(ENGINE_METRICS)


# ------------------------------------------------------------------------------------------------ data


def test_eval_prompts_overlapping_the_training_data_is_a_one_line_error(tmp_path):
    path = write_data(
        tmp_path / "leaky.yaml",
        eval_prompts=["tell me about  RAIN.", "Describe the sea.", "My friend is late again.", "What is patience?"],
    )
    with pytest.raises(ConfigError) as info:
        load_data(str(path))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: eval_prompts:")
    assert "2 in prompts (e.g. 'Tell me about rain.')" in msg  # compared up to case and whitespace
    assert "1 in contexts (e.g. 'My friend is late again.')" in msg


def test_disjoint_data_loads_including_the_shipped_files(tmp_path):
    data = load_data(str(write_data(tmp_path / "ok.yaml")))
    assert len(data.eval_prompts) == 4
    for name in ("builtin:care_authority.yaml", "builtin:toyworld.yaml"):
        assert load_data(name).eval_prompts


# ------------------------------------------------------------------------------------------------ a run


@pytest.fixture(scope="module")
def small_pool_run(host, tmp_path_factory):
    """Two rounds on data with 3 contexts and 6 prompts, asking for 8 contexts, 8 probe and 16 generation prompts."""
    tmp = tmp_path_factory.mktemp("pools")
    data = write_data(tmp / "small.yaml")
    raw = {
        "seed": 1,
        "device": "cpu",
        "data": str(data),
        "model": {"name": "tiny_random", "params": {"arch": "llama"}},
        "steer": {"n_contexts": 8, "layers": [0.5]},
        "dose": {"probe_prompts": 8, "steps": 1},
        "generate": {"n_prompts": 16, "max_new_tokens": 12, "batch_size": 16},
        "filters": [{"name": "length", "params": {"min_tokens": 1}}],
        "heal": {"epochs": 1, "batch_size": 8, "lora": {"r": 2, "alpha": 4.0}},
        "eval": {"evaluators": [{"name": "coherence", "params": {"n_prompts": 4}}], "max_new_tokens": 12,
                 "batch_size": 16},
        "loop": {"rounds": 2, "min_kept": 4},
    }
    cfg = resolve_run_config(RunConfig.model_validate(raw), host.registry)
    seen: list[list[str]] = []
    original = steering_round_mod.extract_pairs

    def spy(model, tok, data, contexts, *args, **kwargs):
        seen.append(list(contexts))
        return original(model, tok, data, contexts, *args, **kwargs)

    steering_round_mod.extract_pairs = spy
    try:
        store = RunStore(tmp / "run")
        outcome = Run(cfg, host, store).execute()
    finally:
        steering_round_mod.extract_pairs = original
    return cfg, outcome, store, seen


def test_each_context_is_used_once_and_the_count_is_recorded(small_pool_run):
    _, outcome, store, seen = small_pool_run
    assert outcome.status == "complete", outcome.message
    assert len(seen) == 2
    for contexts in seen:
        assert sorted(contexts) == sorted(SMALL_DATA["contexts"])  # all 3, none twice
    rows = store.metrics()
    assert [r.get("n_contexts_used") for r in rows] == [None, 3, 3]
    log = (store.dir / "log.txt").read_text()
    assert log.count("note: steer.n_contexts=8 but") == 1  # said once, not every round
    assert "has 3 contexts: each is used once" in log


def test_generation_prompts_beyond_the_pool_are_cycled_and_recorded(small_pool_run):
    _, _, store, _ = small_pool_run
    rows = store.metrics()
    for r in rows[1:]:
        assert r["probe_prompts_distinct"] == 6 and r["generate_prompts_distinct"] == 6
        assert r["total"] == 8 + 16  # every requested completion was generated
    log = (store.dir / "log.txt").read_text()
    assert log.count("note: generate.n_prompts=16 exceeds the 6 prompts") == 1
    assert log.count("note: dose.probe_prompts=8 exceeds the 6 prompts") == 1
    assert "cycling through them deterministically (6 distinct prompts, each used 2-3 times)" in log


def test_meta_records_the_plugin_of_every_component_and_the_lora_targets(small_pool_run, host):
    cfg, _, store, _ = small_pool_run
    meta = json.loads((store.dir / "meta.json").read_text())
    comps = meta["components"]
    assert set(comps) == {"model", "steer.method", "filters[0]", "heal.barrier.aggregator", "heal.schedule",
                          "eval.evaluators[0]"}
    origin = host.registry.entry("steering", "mean_diff").origin
    assert comps["steer.method"] == {"name": "mean_diff", "plugin": origin.plugin,
                                     "distribution": origin.distribution, "version": origin.version}
    assert comps["model"]["name"] == "tiny_random" and comps["filters[0]"]["name"] == "length"
    assert comps["heal.barrier.aggregator"]["name"] == cfg.heal.barrier.aggregator.name
    assert meta["model_identity"].startswith("tiny_random:") and '"arch":"llama"' in meta["model_identity"]
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["lora_targets"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert meta["lora_modules"] == 2 * 7  # 2 decoder layers
    assert "plugins" in meta  # the installed list is still there
