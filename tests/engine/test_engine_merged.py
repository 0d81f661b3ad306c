"""AdapterStack.merged(): the student with its adapters merged into temporary weights, for evaluation.

Merged logits equal the unmerged stack up to float reassociation; base and previous-student logits inside the
context stay exact; the base weights are never written; requires_grad flags survive."""

from __future__ import annotations

import copy

import torch

from shl.config.models import LoraConfig
from shl.engine.adapters import AdapterStack
from shl.engine.chat import render_prompt
from shl.engine.generate import clean_generation_config, generate

IDS = torch.tensor([[1, 3, 204, 60, 487, 84, 2, 5, 204, 358, 474, 84]])


def _stack(llama, rounds: int = 2):
    fresh = copy.deepcopy(llama.model)
    torch.manual_seed(0)
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    g = torch.Generator().manual_seed(1)
    for _ in range(rounds):
        stack.new_round()
        with torch.no_grad():
            for _, b, _ in stack.lora_pairs(stack.current):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
        stack.fold()
    return stack, fresh


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits.clone()


def test_merged_student_matches_the_unmerged_stack(llama):
    stack, fresh = _stack(llama)
    want = _logits(stack.model)
    with stack.merged() as m:
        got = _logits(m)
        # really merged: the LoRA layers no longer run their adapter branches
        lora_layers = [mod for mod in stack.model.modules() if hasattr(mod, "lora_A") and len(mod.lora_A)]
        assert lora_layers and all("forward" in mod.__dict__ for mod in lora_layers)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert not torch.allclose(want, _logits(fresh))  # the adapters matter
    # after the context: the exact unmerged stack again
    assert torch.equal(_logits(stack.model), want)


def test_base_and_previous_inside_merged_are_exact_and_weights_untouched(llama):
    stack, fresh = _stack(llama)
    base_weights = {k: v.clone() for k, v in fresh.state_dict().items()}
    with stack.only(stack.previous) as m:
        prev_want = _logits(m)
    flags = {n: p.requires_grad for n, p in stack.model.named_parameters()}
    with stack.merged():
        with stack.disabled() as m:
            assert (_logits(m) - _logits(fresh)).abs().max().item() == 0.0
        with stack.only(stack.previous) as m:
            assert (_logits(m) - prev_want).abs().max().item() == 0.0
        merged_again = _logits(stack.model)  # the merged layers are back after the switches
        with stack.merged():  # nested: a no-op
            assert torch.equal(_logits(stack.model), merged_again)
    assert {n: p.requires_grad for n, p in stack.model.named_parameters()} == flags
    for name, module in stack.model.named_modules():
        base = getattr(module, "base_layer", None)
        if base is not None and hasattr(base, "weight"):
            key = name.replace("base_model.model.", "", 1) + ".weight"
            assert torch.equal(base.weight, base_weights[key]), key
    assert not any("forward" in mod.__dict__ for mod in stack.model.modules())


def test_merged_before_any_round_is_the_base_model(llama):
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    with stack.merged() as m:
        assert m is llama.model


def test_merged_generation_equals_unmerged_on_cpu(llama):
    tok = llama.tokenizer
    stack, _ = _stack(llama, rounds=3)
    clean_generation_config(stack.model, tok)
    prompts = [(u, render_prompt(tok, u, "Be kind.")) for u in ["Hi", "Tell me a story.", "What now?"]]
    a = generate(stack.model, tok, prompts, max_new_tokens=10, seed=4, batch_size=4)
    with stack.merged() as m:
        b = generate(m, tok, prompts, max_new_tokens=10, seed=4, batch_size=4)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]
