"""Extraction: common suffix, prompt_mean over the shared suffix, last token, left padding invariance."""

from __future__ import annotations

import pytest
import torch

from shl import api
from shl.engine.chat import render_prompt
from shl.engine.extract import common_suffix_len, extract_pairs, reduced_states

ARCHS = ["llama", "qwen2", "qwen3", "gpt2", "gemma"]


def test_common_suffix_len():
    assert common_suffix_len([1, 2, 3, 4], [9, 3, 4]) == 2
    assert common_suffix_len([1, 2, 3], [1, 2, 3]) == 3
    assert common_suffix_len([1, 2, 3], [1, 2, 4]) == 0
    assert common_suffix_len([], [1]) == 0
    assert common_suffix_len([5, 6], [4, 5, 6]) == 2


def _alone(model, ids: list[int], layer: int) -> torch.Tensor:
    """Hidden states after decoder layer ``layer`` for one unpadded prompt, via output_hidden_states."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0].float()


DATA = api.SteeringData(
    positive=api.Persona("care", "You are caring and gentle."),
    negative=api.Persona("authority", "You value order."),
    neutral_system=None,
    contexts=["Hi", "What should I do about my noisy neighbour?", "Tell me a story."],
    prompts=["p"],
    eval_prompts=["e"],
)


def test_prompt_mean_averages_exactly_the_shared_suffix(llama):
    model, tok = llama.model, llama.tokenizer
    pairs = extract_pairs(model, tok, DATA, DATA.contexts, [0], "prompt_mean", batch_size=8)
    pos, neg = pairs[0]
    assert pos.shape == (3, model.config.hidden_size) and pos.dtype == torch.float32
    for i, ctx in enumerate(DATA.contexts):
        p = render_prompt(tok, ctx, DATA.positive.system)
        n = render_prompt(tok, ctx, DATA.negative.system)
        k = common_suffix_len(p, n)
        # the longest common suffix: the user turn and the assistant header (plus the system turn's shared
        # ending, here its final "." and end-of-turn token)
        assert p[-k:] == n[-k:] and p[-k - 1] != n[-k - 1]
        assert tok.convert_ids_to_tokens(p[-k:-k + 3]) == [".", "<|eot|>", "<|user|>"]
        torch.testing.assert_close(pos[i], _alone(model, p, 0)[-k:].mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(neg[i], _alone(model, n, 0)[-k:].mean(0), rtol=1e-4, atol=1e-5)


def test_last_takes_the_last_prompt_token(llama):
    model, tok = llama.model, llama.tokenizer
    pos, neg = extract_pairs(model, tok, DATA, DATA.contexts, [0], "last", batch_size=8)[0]
    for i, ctx in enumerate(DATA.contexts):
        p = render_prompt(tok, ctx, DATA.positive.system)
        n = render_prompt(tok, ctx, DATA.negative.system)
        torch.testing.assert_close(pos[i], _alone(model, p, 0)[-1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(neg[i], _alone(model, n, 0)[-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padding_does_not_change_reduced_states(load, arch):
    lm = load(arch)
    model, tok = lm.model, lm.tokenizer
    prompts = [render_prompt(tok, c, DATA.positive.system) for c in DATA.contexts]
    assert len({len(p) for p in prompts}) == 3  # different lengths: the batch is left padded
    spans = [4, 7, 2]
    batched = reduced_states(model, tok, prompts, spans, [0], batch_size=8)[0]
    for i, p in enumerate(prompts):
        alone = reduced_states(model, tok, [p], [spans[i]], [0], batch_size=1)[0][0]
        torch.testing.assert_close(batched[i], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(alone, _alone(model, p, 0)[-spans[i]:].mean(0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_extraction_stops_after_the_deepest_layer_it_reads(load, arch, monkeypatch):
    """The forward ends after the deepest layer read: the states equal a full forward's bit for bit, and the
    layers after it (and the LM head) never run."""
    from shl.engine import extract, steering
    from shl.engine.layers import decoder_layers

    loaded = load(arch, layers=4)
    model, tok = loaded.model, loaded.tokenizer
    calls = {i: 0 for i in range(4)}
    blocks = decoder_layers(model)
    handles = [blocks[i].register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
               for i in range(4)]
    try:
        got = extract_pairs(model, tok, DATA, DATA.contexts, [0, 1], "prompt_mean", 8)
        assert calls[1] == 2 and calls[2] == 0 and calls[3] == 0  # two batches (pos, neg); nothing past layer 1
        monkeypatch.setattr(extract, "capture_layers",
                            lambda m, layers, stop=False: steering.capture_layers(m, layers, stop=False))
        full = extract_pairs(model, tok, DATA, DATA.contexts, [0, 1], "prompt_mean", 8)
        assert calls[3] == 2  # the reference ran every layer
    finally:
        for h in handles:
            h.remove()
    for layer in (0, 1):
        assert torch.equal(got[layer][0], full[layer][0]) and torch.equal(got[layer][1], full[layer][1])
