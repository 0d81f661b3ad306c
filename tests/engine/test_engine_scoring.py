"""EngineScorer: "student" is the CURRENT state (steered while steering is active), "base" never is; token_probs
returns exactly the distribution the sampler drew from (same state, temperature and top-p)."""

from __future__ import annotations

import inspect

import pytest
import torch

from shl.api import Completion, Scorer
from shl.config.models import LoraConfig
from shl.engine import evaluate as evaluate_mod
from shl.engine.adapters import AdapterStack
from shl.engine.chat import render_prompt
from shl.engine.generate import clean_generation_config, generate, sampling_probs
from shl.engine.scoring import EngineScorer
from shl.engine.steering import Steerer

USERS = ["Hi", "What should I do about my noisy neighbour tonight?", "Tell me a story."]


@pytest.fixture
def rig(llama, host):
    model, tok = llama.model, llama.tokenizer
    clean_generation_config(model, tok)
    stack = AdapterStack(model, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    with torch.no_grad():  # a non-zero adapter, so student != base
        g = torch.Generator().manual_seed(5)
        for _, b, _ in stack.lora_pairs("r0"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.2)
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    method = host.registry.build("steering", "mean_diff", {})
    steerer = Steerer(method, {1: v / v.norm() * 8.0}, 1.0)  # a large steering vector
    prompts = [(u, render_prompt(tok, u, None)) for u in USERS]
    return stack, tok, steerer, prompts


def test_student_logprobs_are_steered_while_steering_is_active_and_base_never(rig):
    stack, tok, steerer, prompts = rig
    comps = generate(stack.model, tok, prompts, max_new_tokens=6, seed=0)
    scorer = EngineScorer(stack.model, tok, stack, steerer, batch_size=2)
    plain_student = scorer.logprobs(comps, model="student")
    plain_base = scorer.logprobs(comps, model="base")
    with steerer.installed(stack.model):
        steered_student = scorer.logprobs(comps, model="student")
        steered_base = EngineScorer(stack.model, tok, stack, steerer, batch_size=2).logprobs(comps, model="base")
        with steerer.paused():
            paused_student = scorer.logprobs(comps, model="student")
        assert steerer.active  # the scorer leaves the steering as it found it
    flat = lambda xs: torch.tensor([x for row in xs for x in row])  # noqa: E731
    assert (flat(steered_student) - flat(plain_student)).abs().max() > 1e-2
    torch.testing.assert_close(flat(steered_base), flat(plain_base), rtol=0, atol=1e-5)
    torch.testing.assert_close(flat(paused_student), flat(plain_student), rtol=0, atol=1e-5)
    assert (flat(plain_student) - flat(plain_base)).abs().max() > 1e-3  # the adapter is on for "student"


def test_base_scores_are_computed_once_per_scorer(rig, monkeypatch):
    """The base never changes: a completion scored again (a filter's, then the filter gate's judge) is not run
    again, and the new ones of a mixed call are the ones computed."""
    from shl.engine import scoring

    stack, tok, steerer, prompts = rig
    comps = generate(stack.model, tok, prompts, max_new_tokens=6, seed=0)
    more = generate(stack.model, tok, prompts[:2], max_new_tokens=4, seed=9)
    scorer = EngineScorer(stack.model, tok, stack, steerer, batch_size=8)
    ran = []
    real = scoring.completion_logprobs
    monkeypatch.setattr(scoring, "completion_logprobs", lambda m, t, cs, *a: ran.append(len(cs)) or real(m, t, cs, *a))
    first = scorer.logprobs(comps, model="base")
    again = scorer.logprobs(list(reversed(comps)) + more, model="base")
    student = scorer.logprobs(comps, model="student")
    assert ran == [len(comps), len(more), len(comps)]  # only the new ones ran; the student is never memoised
    assert again[: len(comps)] == list(reversed(first))
    assert again[len(comps):] == EngineScorer(stack.model, tok, stack, None, batch_size=8).logprobs(more, "base")
    assert student != first


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_token_probs_are_the_samplers_distribution(rig, temperature, top_p):
    """Sampling probabilities recorded by transformers during steered generation == scorer.token_probs."""
    stack, tok, steerer, prompts = rig
    model = stack.model
    scorer = EngineScorer(model, tok, stack, steerer, batch_size=2)
    vocab = list(range(model.config.vocab_size))
    with steerer.installed(model):
        for user, ids in prompts:  # one prompt at a time: no padding, the recorded scores are exact
            steerer.prefill_mask = torch.ones(1, len(ids), dtype=torch.long)
            torch.manual_seed(0)
            with torch.no_grad():
                out = model.generate(input_ids=torch.tensor([ids]), do_sample=True, temperature=temperature,
                                     top_p=top_p, top_k=0, max_new_tokens=5, output_scores=True,
                                     return_dict_in_generate=True, pad_token_id=tok.pad_token_id, eos_token_id=[])
            steerer.prefill_mask = None
            new = out.sequences[0, len(ids):].tolist()
            want = torch.stack([s[0].softmax(-1) for s in out.scores])  # processed scores -> sampler probs
            c = Completion(user=user, prompt_ids=list(ids), completion_ids=new, text="")
            got = torch.tensor(scorer.token_probs([c], [list(range(len(new)))], vocab, model="student",
                                                  temperature=temperature, top_p=top_p)[0])
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
            if top_p < 1.0:
                assert (got == 0).any()  # the nucleus cut is applied
            with steerer.paused():
                unsteered = torch.tensor(scorer.token_probs([c], [[0]], vocab, temperature=temperature,
                                                            top_p=top_p)[0])
            assert (unsteered - got[:1]).abs().max() > 1e-3


def test_token_probs_positions_and_batching(rig):
    stack, tok, steerer, prompts = rig
    comps = generate(stack.model, tok, prompts, max_new_tokens=6, seed=1)
    scorer = EngineScorer(stack.model, tok, stack, None, batch_size=2)
    ids = [5, 17, 60]
    positions = [list(range(len(c.completion_ids) + 1)) for c in comps]
    got = scorer.token_probs(comps, positions, ids, model="base")
    lps = scorer.logprobs(comps, model="base")
    for c, rows, lp in zip(comps, got, lps):
        assert len(rows) == len(c.completion_ids) + 1 and all(len(r) == 3 for r in rows)
        alone = scorer.token_probs([c], [[len(c.completion_ids)]], ids, model="base")[0][0]
        torch.testing.assert_close(torch.tensor(rows[-1]), torch.tensor(alone), rtol=0, atol=1e-6)
        # the probability of the sampled token agrees with logprobs (temperature 1, top-p 1)
        for j, t in enumerate(c.completion_ids):
            p = scorer.token_probs([c], [[j]], [t], model="base")[0][0][0]
            assert p == pytest.approx(float(torch.tensor(lp[j]).exp()), rel=1e-4)
    assert scorer.token_probs(comps, [[] for _ in comps], ids) == [[] for _ in comps]
    with pytest.raises(ValueError, match="position"):
        scorer.token_probs(comps[:1], [[len(comps[0].completion_ids) + 1]], ids)


def test_sampling_probs_matches_transformers_warpers():
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    want = TopPLogitsWarper(0.8)(None, TemperatureLogitsWarper(0.6)(None, logits)).softmax(-1)
    torch.testing.assert_close(sampling_probs(logits, 0.6, 0.8), want)
    torch.testing.assert_close(sampling_probs(logits), logits.softmax(-1))


def test_scorer_defaults_are_the_evaluation_samplers_settings():
    for fn in (Scorer.token_probs, EngineScorer.token_probs):
        sig = inspect.signature(fn)
        assert sig.parameters["temperature"].default == evaluate_mod.EVAL_TEMPERATURE
        assert sig.parameters["top_p"].default == evaluate_mod.EVAL_TOP_P
        assert sig.parameters["model"].default == "student"


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gpt2", "gemma"])
def test_prompt_cache_scores_equal_the_full_forward(load, arch):
    """Scoring after cached prompts (completion tokens only) gives the full forward's log-probs, on every
    architecture it serves; a second call reuses the cache; a budget too small falls back to the full forward."""
    from shl.engine.prompt_cache import PromptCache, supports_prefix
    from shl.engine.scoring import completion_logprobs

    loaded = load(arch)
    model, tok = loaded.model, loaded.tokenizer
    clean_generation_config(model, tok)
    assert supports_prefix(model)
    prompts = [(u, render_prompt(tok, u, s)) for u in USERS for s in (None, "Be kind.")]
    comps = generate(model, tok, prompts, max_new_tokens=9, batch_size=8, seed=1)
    comps.append(Completion(user="x", prompt_ids=comps[0].prompt_ids, completion_ids=[], text=""))  # nothing to score
    full = completion_logprobs(model, tok, comps, 4)
    cache = PromptCache()
    cached = completion_logprobs(model, tok, comps, 4, cache)
    assert [len(x) for x in cached] == [len(x) for x in full] and cached[-1] == []
    for a, b in zip(full, cached):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4), arch
    assert len(cache.entries) == len({tuple(p) for _, p in prompts})
    assert completion_logprobs(model, tok, comps, 4, cache) == cached  # warm: the same numbers
    assert completion_logprobs(model, tok, comps, 4, PromptCache(budget_mb=0)) == full  # nothing fits: full path


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gpt2", "gemma"])
def test_prompt_cache_entries_do_not_depend_on_their_companions(load, arch):
    """A prompt's cached keys, values and last state are bitwise the same filled alone, among all the prompts, or
    after another subset: what makes a resumed or shared run's numbers equal an uninterrupted run's."""
    from shl.engine.lmhead import _parts
    from shl.engine.prompt_cache import PromptCache

    loaded = load(arch)
    model, tok = loaded.model, loaded.tokenizer
    decoder = _parts(model)[0]
    prompts = [tuple(render_prompt(tok, u, s)) for u in USERS for s in (None, "Be kind.", "Answer briefly.")]
    assert len({len(p) for p in prompts}) > 2  # several lengths, some sharing a fill width
    alone, together, split = PromptCache(), PromptCache(), PromptCache()
    for p in prompts:
        alone._fill(decoder, [p], "cpu")
    together._fill(decoder, prompts, "cpu")
    split._fill(decoder, prompts[1::3], "cpu")
    split._fill(decoder, prompts[::-1], "cpu")
    for p in prompts:
        (kv_a, last_a, _), (kv_t, last_t, _), (kv_s, last_s, _) = (c.entries[p] for c in (alone, together, split))
        assert torch.equal(last_a, last_t) and torch.equal(last_a, last_s), arch
        for (ka, va), (kt, vt), (ks, vs) in zip(kv_a, kv_t, kv_s):
            assert ka.shape[1] == len(p)
            assert torch.equal(ka, kt) and torch.equal(va, vt) and torch.equal(ka, ks) and torch.equal(va, vs), arch


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_generation_records_the_models_own_logprobs_and_the_scorer_takes_them(rig, monkeypatch, temperature,
                                                                               top_p):
    """``generate(logprobs=True)``: the raw log-probability of each sampled token (before the warpers), equal to
    what the scorer computes; the tokens are the same as without it. ``remember_base`` makes them the base
    scores, so the base model does not run again."""
    from shl.engine import scoring

    stack, tok, _, prompts = rig
    with stack.disabled() as base:
        plain = generate(base, tok, prompts, max_new_tokens=6, seed=4, temperature=temperature, top_p=top_p)
        comps = generate(base, tok, prompts, max_new_tokens=6, seed=4, temperature=temperature, top_p=top_p,
                         logprobs=True)
    assert [c.completion_ids for c in comps] == [c.completion_ids for c in plain]
    recorded = [c.meta["logprobs"] for c in comps]
    scorer = EngineScorer(stack.model, tok, stack, None, batch_size=2)
    want = EngineScorer(stack.model, tok, stack, None, batch_size=2).logprobs(comps, model="base")
    for got, exp in zip(recorded, want):
        torch.testing.assert_close(torch.tensor(got), torch.tensor(exp), rtol=0, atol=1e-4)
    scorer.remember_base(comps)
    assert all("logprobs" not in c.meta for c in comps)
    ran = []
    real = scoring.completion_logprobs
    monkeypatch.setattr(scoring, "completion_logprobs", lambda m, t, cs, *a: ran.append(len(cs)) or real(m, t, cs, *a))
    assert scorer.logprobs(comps, model="base") == recorded and ran == []

