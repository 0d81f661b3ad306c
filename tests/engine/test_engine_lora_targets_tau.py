"""LoRA adapts every linear layer of the decoder blocks by default (on every architecture), and matched tau is
calibrated on the barrier's own D values, so the barrier starts active on the promised share."""

from __future__ import annotations

import math

import pytest

from shl.config.loading import resolve_run_config
from shl.config.models import LoraConfig, RunConfig
from shl.engine.adapters import AdapterStack
from shl.engine.loop import Run
from shl.store import RunStore

ATTN_MLP = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
EXPECTED = {"llama": ATTN_MLP, "qwen2": ATTN_MLP, "qwen3": ATTN_MLP, "gemma": ATTN_MLP,
            "gpt2": {"c_attn", "c_proj", "c_fc"}}
PER_LAYER = {"llama": 7, "qwen2": 7, "qwen3": 7, "gemma": 7, "gpt2": 4}  # gpt2: attn.c_proj and mlp.c_proj


def _adapted(stack, name):
    return sorted(n for n, m in stack.peft.base_model.model.named_modules()
                  if hasattr(getattr(m, "lora_A", None), "keys") and name in m.lora_A)


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_default_targets_are_every_linear_layer_of_the_blocks_and_train(load, arch):
    import torch

    lm = load(arch)
    stack = AdapterStack(lm.model, LoraConfig(r=2, alpha=4.0))
    stack.new_round()
    assert set(stack.target_names) == EXPECTED[arch]
    assert len(stack.resolved_targets) == 2 * PER_LAYER[arch]  # the tiny models have 2 decoder layers
    assert not any(n.endswith(("lm_head", "wte", "embed_tokens")) for n in stack.resolved_targets)
    stack.fold()
    params = stack.new_round()
    assert _adapted(stack, "r1") == _adapted(stack, "r0") == stack.resolved_targets  # every round: same modules
    # it trains: one backward pass reaches the B matrix of every adapted module of the new round only
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    stack.model(input_ids=ids, labels=ids).loss.backward()
    b_grads = {n: p.grad for n, p in stack.peft.named_parameters() if "lora_B.r1" in n}
    assert len(b_grads) == len(stack.resolved_targets)
    assert all(g is not None and float(g.abs().sum()) > 0 for g in b_grads.values())
    assert all(p.grad is None for n, p in stack.peft.named_parameters() if ".r0." in n)
    assert len(params) == 2 * len(stack.resolved_targets)


def test_an_explicit_target_list_is_kept(load):
    stack = AdapterStack(load("llama").model, LoraConfig(r=2, alpha=4.0, target_modules=["q_proj", "v_proj"]))
    stack.new_round()
    assert stack.target_names == ["q_proj", "v_proj"] and len(stack.resolved_targets) == 4


def matched_config(host, level: str, quantile: float = 0.5, aggregator: str = "rmse") -> RunConfig:
    raw = {
        "seed": 2,
        "device": "cpu",
        "model": {"name": "tiny_random", "params": {"arch": "llama"}},
        "steer": {"n_contexts": 8, "layers": [0.5]},
        "dose": {"probe_prompts": 8, "steps": 1},
        "generate": {"n_prompts": 40, "max_new_tokens": 12, "batch_size": 48, "alphas": [1.0, 1.3]},
        "filters": [{"name": "length", "params": {"min_tokens": 1}}],
        "heal": {"epochs": 1, "batch_size": 8, "lr": 0.01, "lora": {"r": 2, "alpha": 4.0},
                 "barrier": {"tau_mode": "matched", "aggregator": aggregator, "level": level,
                             "tau_quantile": quantile}},
        "eval": {"evaluators": [{"name": "coherence", "params": {"n_prompts": 2}}], "max_new_tokens": 8,
                 "steered": False},
        "loop": {"rounds": 1, "min_kept": 4},
    }
    return resolve_run_config(RunConfig.model_validate(raw), host.registry)


@pytest.mark.parametrize(
    "level, quantile, aggregator",
    # max at lr 0.01 bites hard: a barrier-off calibration alone would leave it active on ~0.27 instead of 0.5
    [("sequence", 0.5, "rmse"), ("sequence", 0.25, "rmse"), ("batch", 0.5, "rmse"), ("sequence", 0.5, "max")],
)
def test_matched_tau_makes_the_first_epoch_barrier_active_on_the_target_share(
    host, tmp_path, level, quantile, aggregator
):
    cfg = matched_config(host, level, quantile, aggregator)
    store = RunStore(tmp_path / "run")
    outcome = Run(cfg, host, store).execute()
    assert outcome.status == "complete", outcome.message
    row = store.metrics()[1]
    kept = row["kept"]
    assert kept >= 40  # the kept completions of both alphas are the heal data
    n = kept if level == "sequence" else math.ceil(kept / cfg.heal.batch_size)
    log = (store.dir / "log.txt").read_text()
    assert f"of the {n} {level}-level D values of the first heal epoch (target 1 - q{quantile:g}" in log
    assert row["tau"] > 0
    # the real heal's first epoch repeats the calibration trial at the chosen tau (same state, batches, RNG)
    assert row["barrier_active"] == pytest.approx(row["tau_active_share"], abs=1e-12)
    # heal.epochs = 1: the row's barrier_active is round 1's first epoch; D > tau on about 1 - quantile of it
    target = 1 - quantile
    sampling_error = math.sqrt(target * (1 - target) / n)
    assert abs(row["barrier_active"] - target) <= 2 * sampling_error + 1 / n, (row["barrier_active"], target, n)
