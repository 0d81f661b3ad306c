"""Memory-bounded heal and scoring: only the completion positions go through the LM head, in chunks, and the
losses, KL values and gradients equal the unchunked full-logits computation (tolerance: 1e-5 absolute on float32
tiny models, stated per assertion)."""

from __future__ import annotations

import pytest
import torch

from shl import api
from shl.config.models import HealConfig, LoraConfig
from shl.engine import lmhead
from shl.engine.adapters import AdapterStack
from shl.engine.chat import encode_completion, render_prompt
from shl.engine.barrier import aggregate_barrier, divergence
from shl.engine.checkpointing import checkpointed_layers
from shl.engine.completion_terms import completion_terms
from shl.engine.heal import heal_round
from shl.engine.heal_batches import batch_tensors
from shl.engine.reference import reference_logprobs
from shl.engine.scoring import completion_logprobs, completion_token_probs
from shl.engine.generate import sampling_probs

from heal_config import heal_config, round1_stack

TEXTS = ["I think that the plan is good.", "We know what we should do next.", "Thank you for asking.",
         "The doctor said why the rules matter.", "Hello! How are you today?", "Care, compassion, comfort."]
ATOL = 1e-5


def completions(tok, n: int = 5) -> list[api.Completion]:
    return [api.Completion(user=f"Question {i}?", prompt_ids=render_prompt(tok, f"Question {i}?", "Be kind."),
                           completion_ids=encode_completion(tok, TEXTS[i % 6]), text=TEXTS[i % 6]) for i in range(n)]


class Rmse(api.Aggregator):
    name = "test_rmse"

    def aggregate(self, kl):
        return torch.sqrt(kl.square().mean() + 1e-8)


def unchunked_loss(stack, bt, reference, reverse, level, lam, tau=0.0):
    """The pre-chunking computation: full B x T x V logits, float32 log-softmax at the selected positions."""
    logits = stack.model(input_ids=bt.ids, attention_mask=bt.mask).logits
    log_s = torch.log_softmax(logits[bt.select].float(), dim=-1)
    ctx = stack.disabled() if reference == "base" else stack.only(stack.previous)
    with torch.no_grad(), ctx as ref_model:
        log_r = torch.log_softmax(ref_model(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
    nll = -log_s.gather(-1, bt.targets[:, None]).mean()
    kl = divergence(log_s, log_r) if reverse else divergence(log_r, log_s)
    penalty, _ = aggregate_barrier(kl, bt.seq_index, int(bt.ids.shape[0]), Rmse(), tau, level)
    return nll + lam * penalty, nll, kl


def chunked_loss(stack, bt, reference, reverse, level, lam, chunk, tau=0.0):
    ref = reference_logprobs(stack, bt, reference, lazy=True, chunk_positions=chunk)
    tlp, kl = completion_terms(stack.model, bt, ref, reverse, chunk)
    nll = -tlp.mean()
    penalty, _ = aggregate_barrier(kl, bt.seq_index, int(bt.ids.shape[0]), Rmse(), tau, level)
    return nll + lam * penalty, nll, kl


def grads(loss, params):
    return [g.detach().clone() for g in torch.autograd.grad(loss, params)]


@pytest.mark.parametrize("regulariser", ["kl_rev", "kl_fwd"])
@pytest.mark.parametrize("reference", ["prev", "base"])
@pytest.mark.parametrize("level", ["sequence", "batch"])
def test_chunked_loss_and_gradients_equal_the_unchunked_computation(load, regulariser, reference, level):
    tok, stack, params = round1_stack(load)
    bt = batch_tensors(completions(tok), tok, "cpu")
    reverse = regulariser == "kl_rev"
    want, want_nll, want_kl = unchunked_loss(stack, bt, reference, reverse, level, lam=3.0)
    g_want = grads(want, params)
    assert want_kl.abs().max() > 1e-4  # student != reference: the KL term is really exercised
    for chunk in (3, 7, 10**6):  # chunks cross sequence boundaries; 10**6 = one chunk
        got, got_nll, got_kl = chunked_loss(stack, bt, reference, reverse, level, lam=3.0, chunk=chunk)
        torch.testing.assert_close(got_kl, want_kl, rtol=0, atol=ATOL)
        assert abs(got.item() - want.item()) < ATOL and abs(got_nll.item() - want_nll.item()) < ATOL
        g_got = grads(got, params)
        assert any(g.abs().max() > 1e-4 for g in g_want)
        for a, b in zip(g_got, g_want):
            torch.testing.assert_close(a, b, rtol=0, atol=ATOL)


@pytest.mark.parametrize("arch", ["gemma", "gpt2", "qwen2"])
def test_chunked_gradients_on_other_architectures(load, arch):
    tok, stack, params = round1_stack(load, arch)
    assert lmhead._separable(stack.model)  # the memory-bounded path is the one taken
    bt = batch_tensors(completions(tok, 3), tok, "cpu")
    want, _, _ = unchunked_loss(stack, bt, "prev", True, "sequence", lam=2.0)
    got, _, _ = chunked_loss(stack, bt, "prev", True, "sequence", lam=2.0, chunk=4)
    assert abs(got.item() - want.item()) < ATOL
    for a, b in zip(grads(got, params), grads(want, params)):
        torch.testing.assert_close(a, b, rtol=0, atol=ATOL)


def test_reference_logprobs_materialised_equal_the_full_logits(load):
    tok, stack, _ = round1_stack(load)
    bt = batch_tensors(completions(tok), tok, "cpu")
    with torch.no_grad(), stack.only(stack.previous) as m:
        want = torch.log_softmax(m(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
    got = reference_logprobs(stack, bt, "prev")
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)
    lazy = reference_logprobs(stack, bt, "prev", lazy=True)
    assert lazy.rows.shape == (want.shape[0], stack.model.config.hidden_size)  # M x hidden held, not M x V


def _heal_grads(load, **kw):
    tok, stack, params = round1_stack(load)
    seen = []

    def progress(epoch, step, steps):
        seen.append([p.grad.detach().clone() for p in params])

    s = heal_config(regulariser="kl_rev", reference="prev", level="sequence", lam=1.0, tau=0.0, spectral=0.0,
                    weight_decay=0.0, epochs=2, lr=0.0, batch_size=2, max_grad_norm=1e9, **kw)
    stats = heal_round(stack, tok, completions(tok, 4), s, Rmse(), params, 0, 1, progress=progress)
    return stats, seen


def test_heal_round_is_the_same_at_any_chunk_size_and_with_gradient_checkpointing(load):
    s0, g0 = _heal_grads(load, chunk_positions=10**6)
    for kw in ({"chunk_positions": 2}, {"chunk_positions": 5, "gradient_checkpointing": True}):
        s1, g1 = _heal_grads(load, **kw)
        for k in ("heal_loss", "heal_nll", "heal_kl", "kl_agg"):
            assert s1[k] == pytest.approx(s0[k], abs=ATOL), (kw, k)
        for a, b in zip(g0, g1):
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, rtol=0, atol=ATOL)


def test_gradient_checkpointing_recomputes_the_layers_and_restores_them(load):
    from shl.engine.layers import decoder_layers

    for enabled, want_calls in ((False, 1), (True, 2)):
        tok, stack, params = round1_stack(load)
        bt = batch_tensors(completions(tok, 2), tok, "cpu")
        lmhead._separable(stack.model)  # the one-time check runs its own forwards: do it first
        layers = decoder_layers(stack.model)
        calls = [0]
        hook = layers[0].mlp.register_forward_pre_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
        try:
            with checkpointed_layers(stack.model, enabled):
                tlp, _ = completion_terms(stack.model, bt, None, True)
            assert calls[0] == 1
            (-tlp.mean()).backward()
        finally:
            hook.remove()
        assert calls[0] == want_calls  # with checkpointing the layer's forward runs again in the backward
        assert all("forward" not in layer.__dict__ for layer in layers)
        assert all(p.grad is not None for p in params)


def test_config_knobs_exist_with_descriptions():
    fields = HealConfig.model_fields
    assert fields["chunk_positions"].default == 128 and fields["chunk_positions"].description
    assert fields["gradient_checkpointing"].default is False and fields["gradient_checkpointing"].description


def test_a_model_whose_logits_are_not_head_of_states_falls_back_to_full_logits(load):
    lm = load("llama")
    model = lm.model
    real = type(model).forward

    class Scaled(type(model)):
        def forward(self, *a, **k):
            out = real(self, *a, **k)
            out.logits = out.logits * 2.0
            return out

    model.__class__ = Scaled
    try:
        assert not lmhead._separable(model)
        ids = torch.tensor([[1, 2, 3, 4]])
        states, head = lmhead.final_states(model, ids, torch.ones_like(ids))
        assert head is lmhead._identity
        torch.testing.assert_close(states, model(input_ids=ids).logits)
    finally:
        model.__class__ = type(model).__mro__[1]


@pytest.mark.parametrize("arch", ["llama", "gemma"])
def test_scorers_equal_the_full_logits_computation(load, arch):
    lm = load(arch)
    model, tok = lm.model, lm.tokenizer
    comps = completions(tok, 4)
    got = completion_logprobs(model, tok, comps, batch_size=3)
    for c, lp in zip(comps, got):
        ids = torch.tensor([c.prompt_ids + c.completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        n_p, n_c = len(c.prompt_ids), len(c.completion_ids)
        want = torch.log_softmax(logits[n_p - 1 : n_p - 1 + n_c], -1).gather(-1, ids[0, n_p:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(lp), want, rtol=0, atol=ATOL)
    positions = [[0, 2], [1], [], [3]]
    tids = [5, 9, 11]
    got = completion_token_probs(model, tok, comps, positions, tids, batch_size=2, temperature=0.7, top_p=0.9)
    for c, pos, probs in zip(comps, positions, got):
        if not pos:
            assert probs == []
            continue
        ids = torch.tensor([c.prompt_ids + c.completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        rows = torch.tensor([len(c.prompt_ids) - 1 + j for j in pos])
        want = sampling_probs(logits[rows], 0.7, 0.9)[:, tids]
        torch.testing.assert_close(torch.tensor(probs), want, rtol=0, atol=ATOL)


def test_final_logit_softcapping_is_part_of_the_head_and_its_gradients_match(tok):
    """Gemma 2 soft-caps the logits after the head: the split reproduces it, and the chunked gradients match."""
    import transformers

    cfg = transformers.Gemma2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, head_dim=16, final_logit_softcapping=0.5, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    assert lmhead._separable(model)
    torch.manual_seed(0)
    stack = AdapterStack(model, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r0"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.3)
    stack.fold()
    params = stack.new_round()
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r1"):
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    bt = batch_tensors(completions(tok, 3), tok, "cpu")
    want, _, want_kl = unchunked_loss(stack, bt, "prev", True, "sequence", lam=2.0)
    assert want_kl.abs().max() > 1e-6
    got, _, _ = chunked_loss(stack, bt, "prev", True, "sequence", lam=2.0, chunk=4)
    assert abs(got.item() - want.item()) < ATOL
    for a, b in zip(grads(got, params), grads(want, params)):
        torch.testing.assert_close(a, b, rtol=0, atol=ATOL)
