"""Generation: deterministic per seed, batch = alone (greedy-like), cut at the first stop token, clean config."""

from __future__ import annotations

import pytest

from shl.engine.chat import render_prompt
from shl.engine.generate import clean_generation_config, generate

USERS = ["Hi", "What should I do about my noisy neighbour tonight?", "Tell me a story."]


@pytest.fixture
def setup(load):
    def _setup(arch="llama"):
        lm = load(arch)
        clean_generation_config(lm.model, lm.tokenizer)
        prompts = [(u, render_prompt(lm.tokenizer, u, "Be kind.")) for u in USERS]
        return lm.model, lm.tokenizer, prompts

    return _setup


def test_clean_generation_config_has_no_penalty_and_no_top_k(llama):
    model, tok = llama.model, llama.tokenizer
    model.generation_config.repetition_penalty = 1.3
    model.generation_config.top_k = 50
    clean_generation_config(model, tok)
    gc = model.generation_config
    assert gc.repetition_penalty == 1.0
    assert gc.top_k == 0
    assert gc.top_p == 1.0 and gc.temperature == 1.0 and gc.do_sample is True
    assert tok.convert_tokens_to_ids("<|eot|>") in gc.eos_token_id


def test_generation_is_deterministic_for_a_seed(setup):
    model, tok, prompts = setup()
    a = generate(model, tok, prompts, max_new_tokens=12, seed=7, batch_size=2)
    b = generate(model, tok, prompts, max_new_tokens=12, seed=7, batch_size=2)
    c = generate(model, tok, prompts, max_new_tokens=12, seed=8, batch_size=2)
    assert [x.completion_ids for x in a] == [x.completion_ids for x in b]
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.completion_ids for x in a] != [x.completion_ids for x in c]
    assert [x.user for x in a] == USERS  # output order = input order
    assert all(x.prompt_ids == p[1] for x, p in zip(a, prompts))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_mixed_lengths_match_generating_alone(setup, arch):
    model, tok, prompts = setup(arch)
    assert len({len(p[1]) for p in prompts}) == 3
    batched = generate(model, tok, prompts, max_new_tokens=8, temperature=1e-4, seed=0, batch_size=8)
    for p, b in zip(prompts, batched):
        alone = generate(model, tok, [p], max_new_tokens=8, temperature=1e-4, seed=123, batch_size=1)[0]
        assert alone.completion_ids[:6] == b.completion_ids[:6]


def test_completions_are_cut_at_the_first_stop_token(setup):
    model, tok, prompts = setup()
    first = generate(model, tok, prompts, max_new_tokens=10, seed=3, batch_size=8)
    assert all(not c.finished and len(c.completion_ids) == 10 for c in first)
    # declare as a stop token a token that row 1 generates at step k but not before
    toks = first[1].completion_ids
    k = next(j for j in range(2, 10) if toks[j] not in toks[:j])
    stop = toks[k]
    model.generation_config.eos_token_id = list(model.generation_config.eos_token_id) + [stop]
    again = generate(model, tok, prompts, max_new_tokens=10, seed=3, batch_size=8)
    c = again[1]
    assert c.completion_ids == toks[: k + 1]
    assert c.finished is True
    assert c.text == tok.decode(toks[:k], skip_special_tokens=True).strip()
    for other in again:
        assert stop not in other.completion_ids[:-1]  # nothing after a stop token survives
        assert other.finished == (other.completion_ids[-1] == stop)
        assert tok.pad_token_id not in other.completion_ids
