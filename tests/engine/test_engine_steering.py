"""The steering hook: Tensor and tuple layer outputs, left padding during the prefill, pausing, exact c*v."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shl.engine.chat import render_prompt
from shl.engine.batching import left_pad
from shl.engine.steering import Steerer, capture_layers

D = 8


class Block(nn.Module):
    def __init__(self, tuple_out: bool):
        super().__init__()
        self.lin = nn.Linear(D, D)
        self.tuple_out = tuple_out

    def forward(self, h):
        y = torch.tanh(self.lin(h))
        return (y, "extra") if self.tuple_out else y


class Toy(nn.Module):
    """A stack of blocks at ``model.layers``; blocks return a Tensor or a tuple (hidden states first)."""

    def __init__(self, tuple_out: bool):
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([Block(tuple_out) for _ in range(3)])

    def forward(self, h):
        for layer in self.model.layers:
            out = layer(h)
            if self.model.layers[0].tuple_out:
                assert isinstance(out, tuple) and out[1] == "extra"
                out = out[0]
            h = out
        return h


@pytest.fixture
def mean_diff(host):
    return host.registry.build("steering", "mean_diff", {})


@pytest.mark.parametrize("tuple_out", [False, True])
def test_hook_adds_c_times_v_for_tensor_and_tuple_outputs(mean_diff, tuple_out):
    toy = Toy(tuple_out)
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1))
    v = torch.randn(D, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = toy(x)
        with capture_layers(toy, [1]) as ref:
            toy(x)
        steerer = Steerer(mean_diff, {1: v}, 2.5)
        with steerer.installed(toy), capture_layers(toy, [1]) as got:
            steered = toy(x)
            got = dict(got)  # the capture store is overwritten by the next forward
            with steerer.paused():
                paused = toy(x)
        after = toy(x)
    torch.testing.assert_close(got[1] - ref[1], (2.5 * v).expand_as(ref[1]), rtol=0, atol=1e-6)
    assert not torch.allclose(steered, plain)
    assert torch.equal(paused, plain)
    assert torch.equal(after, plain)  # hooks removed


def test_left_padding_is_not_steered_during_prefill(llama, mean_diff):
    model, tok = llama.model, llama.tokenizer
    short = render_prompt(tok, "Hi", None)
    long = render_prompt(tok, "Hello there, how are you today?", "Be kind.")
    ids, mask = left_pad([short, long], tok.pad_token_id)
    n_pad = len(long) - len(short)
    assert n_pad > 0
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    steerer = Steerer(mean_diff, {0: v}, 3.0)
    with torch.no_grad():
        with capture_layers(model, [0]) as ref:
            model(input_ids=ids, attention_mask=mask)
        with steerer.installed(model), capture_layers(model, [0]) as got:
            steerer.prefill_mask = mask
            model(input_ids=ids, attention_mask=mask)
            steerer.prefill_mask = None
    diff = got[0] - ref[0]
    assert torch.equal(diff[0, :n_pad], torch.zeros_like(diff[0, :n_pad]))  # pad positions untouched
    torch.testing.assert_close(diff[0, n_pad:], (3.0 * v).expand(len(short), -1), rtol=0, atol=1e-5)
    torch.testing.assert_close(diff[1], (3.0 * v).expand(len(long), -1), rtol=0, atol=1e-5)


def test_paused_and_zero_coeff_change_nothing_on_a_real_model(llama, mean_diff):
    model = llama.model
    ids = torch.tensor([[1, 5, 204, 60, 487, 84]])
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        steerer = Steerer(mean_diff, {0: v, 1: v}, 4.0)
        with steerer.installed(model):
            steered = model(input_ids=ids).logits
            with steerer.paused():
                paused = model(input_ids=ids).logits
            steerer.coeff = 0.0
            zero = model(input_ids=ids).logits
    assert not torch.allclose(steered, plain)
    assert torch.equal(paused, plain)
    assert torch.equal(zero, plain)
