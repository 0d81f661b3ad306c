"""The config's component slots come from shl.api.FAMILY_TABLE; a model name that is no registered model source
is an HF id or path for the 'hf' source."""

from __future__ import annotations

from shl.api import FAMILY_TABLE
from shl.config.identity import component_refs
from shl.config.loading import resolve_run_config
from shl.config.models import ComponentRef, RunConfig
from shl.config.slots import SLOT_FAMILIES, component_slots, model_source, set_component


def test_slots_are_the_family_table_in_config_field_order():
    assert [(f.slot, f.name, f.many) for f in SLOT_FAMILIES] == [
        ("model", "model", False),
        ("steer.method", "steering", False),
        ("filters", "filter", True),
        ("heal.schedule", "schedule", False),
        ("heal.barrier.aggregator", "aggregator", False),
        ("eval.evaluators", "evaluator", True),
    ]
    assert {f.name for f in SLOT_FAMILIES} == {f.name for f in FAMILY_TABLE} - {"tracker"}


def test_component_slots_of_a_resolved_config_and_of_its_mapping(registry):
    cfg = resolve_run_config(RunConfig(), registry)
    expected = [
        ("model", "model", "toyworld"),
        ("steer.method", "steering", "mean_diff"),
        ("filters[0]", "filter", "repetition"),
        ("filters[1]", "filter", "length"),
        ("heal.schedule", "schedule", "constant"),
        ("heal.barrier.aggregator", "aggregator", "rmse"),
        ("eval.evaluators[0]", "evaluator", "toy_exact"),
    ]
    assert [(p, f, r.name) for p, f, r in component_slots(cfg, registry)] == expected
    assert component_refs(cfg.model_dump(mode="json"), registry) == expected
    model = next(r for p, f, r in component_slots(cfg, registry) if f == "model")
    assert model.params == cfg.model.params == {"variant": "default", "seed": 0}


def test_unset_list_slots_yield_nothing_before_resolution():
    paths = [p for p, _, _ in component_slots(RunConfig())]
    assert paths == ["model", "steer.method", "heal.schedule", "heal.barrier.aggregator"]


def test_a_model_name_that_is_no_source_is_an_hf_id(registry):
    ref = model_source(registry, ComponentRef(name="Qwen/Qwen3-0.6B", params={"revision": "main"}))
    assert (ref.name, ref.params) == ("hf", {"name_or_path": "Qwen/Qwen3-0.6B", "revision": "main"})
    ref = model_source(registry, ComponentRef(name="tiny_random", params={"seed": 3}))
    assert (ref.name, ref.params) == ("tiny_random", {"seed": 3})
    cfg = RunConfig.model_validate({"model": "some/model", "filters": [], "eval": {"evaluators": []}})
    assert [(p, r.name, r.params) for p, f, r in component_slots(cfg, registry) if f == "model"] == [
        ("model", "hf", {"name_or_path": "some/model"})
    ]
    assert [(p, r.name) for p, f, r in component_slots(cfg) if f == "model"] == [("model", "some/model")]


def test_set_component_puts_a_ref_at_a_yaml_path():
    cfg = RunConfig.model_validate({"filters": ["length", "repetition"]})
    set_component(cfg, "filters[1]", ComponentRef(name="grammar"))
    set_component(cfg, "heal.barrier.aggregator", ComponentRef(name="max"))
    assert [f.name for f in cfg.filters] == ["length", "grammar"]
    assert cfg.heal.barrier.aggregator.name == "max"
