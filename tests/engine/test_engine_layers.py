"""Locating decoder layers on every tiny architecture, and resolving the config's layer choice."""

from __future__ import annotations

import pytest
import torch

from shl.config.models import LoraConfig
from shl.engine.adapters import AdapterStack
from shl.engine.layers import decoder_layers, resolve_layers
from shl.errors import ConfigError, ShlError

ARCHS = ["llama", "qwen2", "qwen3", "gpt2", "gemma"]


@pytest.mark.parametrize("arch", ARCHS)
def test_decoder_layers_on_every_arch(load, arch):
    lm = load(arch, layers=3)
    layers = decoder_layers(lm.model)
    assert len(layers) == 3
    out = []
    h = layers[1].register_forward_hook(lambda m, a, o: out.append(o))
    with torch.no_grad():
        lm.model(input_ids=torch.tensor([[1, 5, 204, 60]]))
    h.remove()
    assert len(out) == 1
    # and through a PEFT wrapper
    stack = AdapterStack(lm.model, LoraConfig(r=2, alpha=4.0))
    stack.new_round()
    assert [id(x) for x in decoder_layers(stack.model)] == [id(x) for x in layers]


def test_resolve_layers_ints_negatives_fractions():
    assert resolve_layers([0, -1, 0.5], 4) == [0, 3, 2]
    assert resolve_layers([0.25], 4) == [1]
    assert resolve_layers([0.0, 0.99], 4) == [0, 3]
    assert resolve_layers([-4, 0, 1, 1], 4) == [0, 1]  # duplicates dropped, order kept


@pytest.mark.parametrize("specs, index", [([0, 4], 1), ([-5], 0), ([1, 2, 7], 2)])
def test_resolve_layers_out_of_range(specs, index):
    with pytest.raises(ConfigError) as err:
        resolve_layers(specs, 4, "model 'tiny'")
    msg = str(err.value)
    assert f"steer.layers[{index}]" in msg
    assert "4 layers" in msg and "model 'tiny'" in msg


def test_model_without_layers_is_a_clear_error():
    with pytest.raises(ShlError, match="cannot locate the decoder layers of Linear"):
        decoder_layers(torch.nn.Linear(4, 4))
