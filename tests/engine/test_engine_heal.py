"""The heal step: KL math, the completion mask, barrier aggregation levels, round-0 no-op, NaN handling."""

from __future__ import annotations

import math

import pytest
import torch

from shl import api
from shl.config.models import LoraConfig
from shl.engine.adapters import AdapterStack
from shl.engine.chat import encode_completion, end_of_turn_ids, render_prompt
from shl.engine.barrier import aggregate_barrier, divergence
from shl.engine.heal import heal_round
from shl.engine.heal_batches import batch_tensors
from shl.errors import RunError

from heal_config import heal_config


def settings(**kw):
    base = dict(regulariser="kl_rev", reference="prev", level="sequence", lam=1.0, tau=0.0, spectral=0.0,
                weight_decay=0.0, epochs=1, lr=1e-2, batch_size=64, max_grad_norm=1.0)
    base.update(kw)
    return heal_config(**base)


def completions(tok, n: int = 6) -> list[api.Completion]:
    texts = ["I think that the plan is good.", "We know what we should do next.", "Thank you for asking.",
             "The doctor said why the rules matter.", "Hello! How are you today?", "Care, compassion, comfort."]
    out = []
    for i in range(n):
        user = f"Question {i}?"
        out.append(api.Completion(user=user, prompt_ids=render_prompt(tok, user, "Be kind."),
                                  completion_ids=encode_completion(tok, texts[i % len(texts)]), text=texts[i % len(texts)]))
    return out


# ------------------------------------------------------------------------------------------- KL math


def test_divergence_of_identical_distributions_is_zero():
    logits = torch.randn(5, 17, generator=torch.Generator().manual_seed(0))
    lp = torch.log_softmax(logits, -1)
    assert torch.equal(divergence(lp, lp), torch.zeros(5))


def test_divergence_on_a_hand_computed_example():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    q = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
    kl = divergence(p.log(), q.log())
    want0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.1438410...
    want1 = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # 0.3680642...
    torch.testing.assert_close(kl, torch.tensor([want0, want1]), rtol=0, atol=1e-6)
    assert want0 == pytest.approx(0.14384103622589045)
    # reverse vs forward are different numbers
    assert not torch.allclose(divergence(q.log(), p.log()), kl)


# ------------------------------------------------------------------------------------------- mask


def test_batch_tensors_selects_exactly_the_completion_predicting_positions(tok):
    a = api.Completion(user="a", prompt_ids=[10, 11, 12], completion_ids=[20, 21], text="")
    b = api.Completion(user="b", prompt_ids=[30, 31], completion_ids=[40, 41, 42, 43], text="")
    bt = batch_tensors([a, b], tok, "cpu")
    assert bt.ids.tolist()[0][:5] == [10, 11, 12, 20, 21]
    assert bt.mask.tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]
    assert bt.select[0].nonzero().flatten().tolist() == [2, 3]  # position 2 predicts 20, 3 predicts 21
    assert bt.select[1].nonzero().flatten().tolist() == [1, 2, 3, 4]
    assert bt.targets.tolist() == [20, 21, 40, 41, 42, 43]
    assert bt.seq_index.tolist() == [0, 0, 1, 1, 1, 1]


def test_end_of_turn_token_is_a_trained_target(tok):
    c = completions(tok, 1)[0]
    eot = end_of_turn_ids(tok)
    assert c.completion_ids[-len(eot):] == eot
    bt = batch_tensors([c], tok, "cpu")
    assert bt.targets[-1].item() == tok.convert_tokens_to_ids("<|eot|>")
    assert bt.targets.tolist() == c.completion_ids


def test_empty_mask_is_a_clear_error(tok):
    c = api.Completion(user="a", prompt_ids=[10, 11, 12], completion_ids=[], text="")
    with pytest.raises(RunError, match="empty mask"):
        batch_tensors([c], tok, "cpu")


# ------------------------------------------------------------------------------------------- barrier levels

KL = torch.tensor([0.0, 4.0, 1.0])
SEQ = torch.tensor([0, 0, 1])


@pytest.mark.parametrize(
    "name, seq_d, seq_pen, batch_d, batch_pen",
    [
        ("mean", [2.0, 1.0], (0.5 + 0.0) / 2, 5 / 3, 5 / 3 - 1.5),
        ("max", [4.0, 1.0], (2.5 + 0.0) / 2, 4.0, 2.5),
        ("rmse", [math.sqrt(8.0), 1.0], (math.sqrt(8.0) - 1.5) / 2, math.sqrt(17 / 3), math.sqrt(17 / 3) - 1.5),
    ],
)
def test_aggregate_barrier_sequence_vs_batch(host, name, seq_d, seq_pen, batch_d, batch_pen):
    agg = host.registry.build("aggregator", name, {})
    pen, d = aggregate_barrier(KL, SEQ, 2, agg, tau=1.5, level="sequence")
    torch.testing.assert_close(d, torch.tensor(seq_d), rtol=1e-5, atol=1e-5)
    assert pen.item() == pytest.approx(seq_pen, abs=1e-5)
    pen, d = aggregate_barrier(KL, SEQ, 2, agg, tau=1.5, level="batch")
    assert d.shape == (1,)
    assert d.item() == pytest.approx(batch_d, abs=1e-5)
    assert pen.item() == pytest.approx(batch_pen, abs=1e-5)


def test_rmse_barrier_at_zero_kl_has_a_finite_gradient(host):
    agg = host.registry.build("aggregator", "rmse", {})
    kl = torch.zeros(4, requires_grad=True)
    pen, _ = aggregate_barrier(kl, torch.tensor([0, 0, 1, 1]), 2, agg, tau=0.0, level="sequence")
    pen.backward()
    assert torch.isfinite(kl.grad).all()


# ------------------------------------------------------------------------------------------- heal_round


class RecordingMean(api.Aggregator):
    """The mean aggregator, recording the dtype and values it was given."""

    name = "recording_mean"

    def __init__(self):
        super().__init__()
        self.dtypes = []
        self.values = []

    def aggregate(self, kl):
        self.dtypes.append(kl.dtype)
        self.values.append(kl.detach().clone())
        return kl.mean()


def _nll(model, tok, comps) -> float:
    bt = batch_tensors(comps, tok, "cpu")
    with torch.no_grad():
        logits = model(input_ids=bt.ids, attention_mask=bt.mask).logits
    return torch.nn.functional.cross_entropy(logits[bt.select].float(), bt.targets).item()


def test_heal_round0_prev_reference_starts_at_zero_kl(llama):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    comps = completions(tok)
    agg = RecordingMean()
    stats = heal_round(stack, tok, comps, settings(epochs=1, batch_size=64), agg, params, seed=0, round_index=0)
    assert stats["heal_kl"] == 0.0  # one step, B = 0: the student is the reference exactly
    assert stats["kl_agg"] == 0.0
    assert all(torch.equal(v, torch.zeros_like(v)) for v in agg.values)
    assert stats["heal_steps"] == 1.0


def test_heal_reduces_nll_over_epochs(llama):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    comps = completions(tok)
    before = _nll(stack.model, tok, comps)
    agg = RecordingMean()
    stats = heal_round(stack, tok, comps, settings(epochs=6, batch_size=3, lr=1e-2, lam=0.1), agg, params, 0, 0)
    after = _nll(stack.model, tok, comps)
    assert after < before - 0.1, (before, after)
    assert math.isfinite(stats["heal_nll"]) and stats["heal_kl"] > 0.0
    assert stats["heal_steps"] == 12.0
    # only the current adapter moved: base logits are untouched
    stack.fold()
    assert not any(p.requires_grad for p in stack.model.parameters())


def test_heal_nan_ends_with_status_nan(llama):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    with torch.no_grad():
        params[0].view(-1)[0] = float("nan")
    with pytest.raises(RunError) as err:
        heal_round(stack, tok, completions(tok), settings(), RecordingMean(), params, 0, 0)
    assert err.value.status == "nan"
    assert "non-finite loss" in str(err.value)


def test_heal_infinite_lr_ends_with_status_nan(llama):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    with pytest.raises(RunError) as err:
        heal_round(stack, tok, completions(tok), settings(lr=float("inf"), batch_size=2), RecordingMean(), params, 0, 0)
    assert err.value.status == "nan"


def test_kl_is_float32_with_a_bfloat16_model(load):
    lm = load("llama", "bfloat16")
    assert next(lm.model.parameters()).dtype == torch.bfloat16
    tok = lm.tokenizer
    stack = AdapterStack(lm.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    agg = RecordingMean()
    stats = heal_round(stack, tok, completions(tok, 4), settings(epochs=2, batch_size=2, reference="base"), agg, params, 0, 0)
    assert agg.dtypes and all(d == torch.float32 for d in agg.dtypes)
    assert math.isfinite(stats["heal_nll"]) and math.isfinite(stats["heal_kl"])


# ------------------------------------------------------------------------------------------- spectral penalty


def test_spectral_penalty_is_the_squared_spectral_norm():
    from shl.engine.barrier import spectral_penalty

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 10, generator=g), torch.randn(7, 3, generator=g)
    a2, b2 = torch.randn(2, 6, generator=g), torch.randn(5, 2, generator=g)
    got = spectral_penalty([(a, b, 0.5), (a2, b2, 2.0)])
    want = torch.linalg.matrix_norm(0.5 * b @ a, ord=2) ** 2 + torch.linalg.matrix_norm(2.0 * b2 @ a2, ord=2) ** 2
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # the gradient is that of sigma_max^2
    a.requires_grad_(True)
    b.requires_grad_(True)
    spectral_penalty([(a, b, 0.5)]).backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    (torch.linalg.matrix_norm(0.5 * b @ a, ord=2) ** 2).backward()
    torch.testing.assert_close(ga, a.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gb, b.grad, rtol=1e-4, atol=1e-5)


def test_spectral_penalty_at_b_zero_has_a_finite_zero_gradient():
    """Every round starts at B = 0: the penalty must not turn the first step's gradient into NaN."""
    from shl.engine.barrier import spectral_penalty

    a = torch.randn(4, 9, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    b = torch.zeros(6, 4, requires_grad=True)
    pen = spectral_penalty([(a, b, 2.0)])
    pen.backward()
    assert pen.item() == 0.0
    assert torch.equal(a.grad, torch.zeros_like(a)) and torch.equal(b.grad, torch.zeros_like(b))


def test_heal_with_spectral_penalty_stays_finite(llama):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=4, alpha=8.0))
    params = stack.new_round()
    stats = heal_round(stack, tok, completions(tok), settings(epochs=2, batch_size=3, spectral=0.5), RecordingMean(),
                       params, 0, 0)
    assert math.isfinite(stats["spectral_norm2"]) and stats["spectral_norm2"] > 0
    assert all(torch.isfinite(p).all() for p in params)
