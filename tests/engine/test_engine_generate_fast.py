"""shl's decode loop (preallocated KV cache, finished rows leave the forward) samples the same token streams as
``model.generate`` for the same seed, on every tiny architecture, steered or not, with rows finishing early."""

from __future__ import annotations

import pytest
import torch

from shl.engine.chat import render_prompt
from shl.engine.generate import clean_generation_config, generate
from shl.engine.steering import Steerer

USERS = ["Hi", "What should I do about my noisy neighbour tonight?", "Tell me a story.", "ok",
         "Why is the sky blue and not green?"] * 3


class _Add:
    name = "add"

    def apply(self, h, v, coeff):
        return h + coeff * v


def _setup(load, arch):
    lm = load(arch)
    tok = lm.tokenizer
    tok.padding_side = "left"
    clean_generation_config(lm.model, tok)
    prompts = [(u, render_prompt(tok, u, "Be kind.")) for u in USERS]
    first = generate(lm.model, tok, prompts, max_new_tokens=16, seed=1, batch_size=8, impl="hf")
    counts: dict[int, int] = {}
    for c in first:
        for t in c.completion_ids[2:]:
            counts[t] = counts.get(t, 0) + 1
    # frequent tokens become stop tokens: rows finish at different steps (exercises the compaction)
    frequent = sorted(counts, key=lambda t: (-counts[t], t))[:8]
    lm.model.generation_config.eos_token_id = list(lm.model.generation_config.eos_token_id) + frequent
    return lm.model, tok, prompts


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gpt2", "gemma"])
@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_fast_decode_equals_transformers_generate(load, arch, temperature, top_p):
    model, tok, prompts = _setup(load, arch)
    kw = dict(max_new_tokens=16, seed=3, batch_size=8, temperature=temperature, top_p=top_p)
    want = generate(model, tok, prompts, impl="hf", **kw)
    got = generate(model, tok, prompts, **kw)
    assert sum(c.finished for c in want) > 0
    assert [c.completion_ids for c in got] == [c.completion_ids for c in want]
    assert [c.finished for c in got] == [c.finished for c in want]


def test_fast_decode_equals_transformers_generate_steered(load):
    model, tok, prompts = _setup(load, "llama")
    d = model.config.hidden_size
    steerer = Steerer(_Add(), {1: torch.randn(d, generator=torch.Generator().manual_seed(0))}, 2.0)
    with steerer.installed(model):
        want = generate(model, tok, prompts, max_new_tokens=16, seed=5, batch_size=8, steerer=steerer, impl="hf")
        got = generate(model, tok, prompts, max_new_tokens=16, seed=5, batch_size=8, steerer=steerer)
    plain = generate(model, tok, prompts, max_new_tokens=16, seed=5, batch_size=8)
    assert [c.completion_ids for c in got] == [c.completion_ids for c in want]
    assert [c.completion_ids for c in got] != [c.completion_ids for c in plain]  # the steering acted
    assert steerer.prefill_mask is None


def test_unknown_impl_is_an_error(load):
    model, tok, prompts = _setup(load, "llama")
    with pytest.raises(ValueError, match="impl"):
        generate(model, tok, prompts[:1], max_new_tokens=2, impl="nope")
