"""The layer-aware steering API: ``fit_layer`` (default: ``fit``), ``check_plan`` (run by config validation with
what the model source knows without loading: ``num_layers``, ``hidden_size``), ``static_addition``, and the model
sources' ``hidden_size`` / ``model_type``."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from pydantic import Field

from shl import api
from shl.config.loading import validate_run_config
from shl.errors import ConfigError
from shl.hookspecs import hookimpl
from shl_plugins.steering import CosineGated, FromFile, MeanDiff, SVD

SEEN: list[api.SteeringPlan] = []


class Picky(api.SteeringMethod):
    """Records the plan it is shown; refuses models narrower than ``min_hidden``."""

    name = "picky"

    class Params(api.Params):
        min_hidden: int = Field(0, description="smallest hidden size accepted")

    def fit(self, pos, neg):
        return pos.mean(0) - neg.mean(0)

    def check_plan(self, plan: api.SteeringPlan) -> None:
        SEEN.append(plan)
        if plan.hidden_size is not None and plan.hidden_size < self.params.min_hidden:
            raise ValueError(f"needs hidden >= {self.params.min_hidden}, the model has {plan.hidden_size}")


@pytest.fixture
def registry(shl_host_factory):
    module = types.ModuleType("picky_plugin")

    @hookimpl
    def shl_register_steering_methods(register):
        register(Picky)

    module.shl_register_steering_methods = shl_register_steering_methods
    sys.modules["picky_plugin"] = module
    try:
        yield shl_host_factory(extra_plugins=[("picky", module)]).registry
    finally:
        sys.modules.pop("picky_plugin", None)


def raw(**steer) -> dict:
    return {"model": {"name": "tiny_random", "params": {"hidden": 48, "layers": 4}}, "loop": {"rounds": 3},
            "steer": {"method": {"name": "picky", "params": {"min_hidden": 32}}, **steer}}


def test_check_plan_sees_the_resolved_layers_and_the_model_size(registry):
    SEEN.clear()
    validate_run_config(raw(layers=[1, -1, 0.5]), registry, "run.yaml")
    assert SEEN == [api.SteeringPlan(layers=(1, 3, 2), num_layers=4, hidden_size=48, rounds=3)]


def test_a_refusing_check_plan_is_one_config_error_naming_the_plugin(registry):
    bad = raw(layers=[1])
    bad["steer"]["method"]["params"]["min_hidden"] = 64
    with pytest.raises(ConfigError) as info:
        validate_run_config(bad, registry, "run.yaml")
    assert str(info.value) == ("run.yaml: steer.method: needs hidden >= 64, the model has 48 (plugin 'picky' from "
                               "'picky')")


def test_fit_layer_defaults_to_fit():
    """(The engine's call with the layer and round is exercised by the from_file runs of tests/cli.)"""
    pos, neg = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2)
    assert torch.equal(MeanDiff().fit_layer(pos, neg, layer=3, round_index=1), MeanDiff().fit(pos, neg))


def test_static_addition_is_plain_apply():
    assert MeanDiff.static_addition() and SVD.static_addition() and FromFile.static_addition()
    assert not CosineGated.static_addition()


def test_model_sources_know_hidden_size_and_model_type_without_loading(tmp_path: Path, shl_host):
    reg = shl_host.registry
    tiny = reg.get("model", "tiny_random")
    t = tiny(tiny.Params(arch="qwen3", hidden=96, heads=4))
    assert (t.hidden_size(), t.model_type()) == (96, "qwen3")
    toy = reg.get("model", "toyworld")
    assert toy(toy.Params(variant="small")).hidden_size() == 64 and toy(toy.Params()).hidden_size() == 256
    assert toy(toy.Params()).model_type() == "llama"
    hf = reg.get("model", "hf")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 3,
                                                             "hidden_size": 40}))
    local = hf(hf.Params(name_or_path=str(tmp_path / "m")))
    assert (local.num_layers(), local.hidden_size(), local.model_type()) == (3, 40, "qwen2")
    remote = hf(hf.Params(name_or_path="no-such-org/no-such-model-xyz"))
    assert remote.hidden_size() is None and remote.model_type() is None
    assert api.ModelSource().hidden_size() is None and api.ModelSource().model_type() is None
    for arch in ("llama", "qwen2", "qwen3", "gpt2", "gemma"):  # the arch names are transformers model_types
        from shl_plugins.models.tiny_random import make_config

        assert make_config(arch, 100, 16, 1, 2, {}).model_type == arch
