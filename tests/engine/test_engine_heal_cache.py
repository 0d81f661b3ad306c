"""The heal's reference cache: the frozen reference's log-probs are computed once per completion per round and
reused by later epochs; losses and gradients equal the recomputing path up to float reassociation."""

from __future__ import annotations

import pytest
import torch

from shl import api
from shl.engine import reference as reference_mod
from shl.engine.chat import encode_completion, render_prompt
from shl.engine.heal import heal_round

from heal_config import heal_config, round1_stack

TEXTS = ["I think that the plan is good.", "We know what we should do next.", "Thank you for asking.",
         "The doctor said why the rules matter.", "Hello! How are you today?", "Care, compassion, comfort."]


def completions(tok, n: int = 6) -> list[api.Completion]:
    return [api.Completion(user=f"Question {i}?", prompt_ids=render_prompt(tok, f"Question {i}?", "Be kind."),
                           completion_ids=encode_completion(tok, TEXTS[i % 6]), text=TEXTS[i % 6]) for i in range(n)]


class RecordingMean(api.Aggregator):
    name = "recording_mean"

    def aggregate(self, kl):
        return kl.mean()


def settings(**kw):
    base = dict(regulariser="kl_rev", reference="prev", level="sequence", lam=1.0, tau=0.0, spectral=0.0,
                weight_decay=0.0, epochs=2, lr=0.0, batch_size=2, max_grad_norm=1e9)
    base.update(kw)
    return heal_config(**base)


def _run(load, monkeypatch, cache_mb: int, **kw):
    """heal_round with lr=0 (parameters fixed): per-step gradients, stats, and the number of reference forwards."""
    tok, stack, params = round1_stack(load)
    calls = [0]
    real = reference_mod.reference_logprobs

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(reference_mod, "reference_logprobs", counting)
    grads, owners = [], []

    def progress(epoch, step, steps):
        grads.append([p.grad.detach().clone() for p in params])
        owners.append({n for n, p in stack.model.named_parameters() if p.grad is not None})

    comps = completions(tok, 6)
    stats = heal_round(stack, tok, comps, settings(ref_cache_mb=cache_mb, **kw), RecordingMean(), params, 0, 1,
                       progress=progress)
    return stats, grads, owners, calls[0]


@pytest.mark.parametrize("kw", [{}, {"regulariser": "kl_fwd"}, {"reference": "base", "level": "batch"}])
def test_cached_reference_gives_the_same_losses_and_gradients(load, monkeypatch, kw):
    s0, g0, _, calls0 = _run(load, monkeypatch, 0, **kw)
    s1, g1, owners, calls1 = _run(load, monkeypatch, 1024, **kw)
    assert calls0 == 6 and calls1 == 3  # 2 epochs x 3 steps; with the cache only the first epoch's 3
    for k in ("heal_loss", "heal_nll", "heal_kl", "kl_agg"):
        assert s1[k] == pytest.approx(s0[k], abs=1e-6), k
    assert s0["heal_kl"] > 0  # the student differs from the reference: a real test of the KL term
    assert len(g0) == len(g1) == 6
    for a, b in zip(g0, g1):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
    # only the current round's adapter receives gradients (PEFT's adapter switches turn requires_grad back on), cached epochs included
    for names in owners:
        assert names and all(".r1." in n for n in names), names


def test_a_reference_over_the_budget_is_recomputed_every_epoch(load, monkeypatch):
    monkeypatch.setattr(reference_mod, "_vocab_size", lambda model: 10**9)
    _, _, _, calls = _run(load, monkeypatch, 1)
    assert calls == 6


def test_one_epoch_never_caches(load, monkeypatch):
    _, _, _, calls = _run(load, monkeypatch, 1024, epochs=1)
    assert calls == 3


def test_heal_with_the_cache_trains_like_without(load):
    """A real heal (lr > 0, 3 epochs): final adapters and stats agree with the recomputing path."""
    finals, stats = [], []
    for mb in (0, 1024):
        tok, stack, params = round1_stack(load)
        stats.append(heal_round(stack, tok, completions(tok, 6), settings(ref_cache_mb=mb, epochs=3, lr=1e-2,
                                                                             max_grad_norm=1.0),
                                RecordingMean(), params, 0, 1))
        finals.append([p.detach().clone() for p in params])
    for a, b in zip(*finals):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    for k in ("heal_loss", "heal_nll", "heal_kl"):
        assert stats[1][k] == pytest.approx(stats[0][k], abs=1e-5)
