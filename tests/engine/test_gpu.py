"""GPU checks (marked ``gpu``; skipped without CUDA; run with ``pytest -m gpu``): the smoke config on CUDA, bfloat16
weights with float32 KL, the chunked heal's gradients against the unchunked ones in bfloat16, and the heal step's
peak CUDA memory against a plain SFT step at a real vocabulary size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_config_runs_on_cuda(tmp_path):
    env = dict(os.environ, SHL_WORKERS="1", TOKENIZERS_PARALLELISM="false")
    out = tmp_path / "smoke"
    res = subprocess.run([sys.executable, "-m", "shl", "run", str(ROOT / "experiments" / "smoke.yaml"),
                          "--set", "device=cuda", "--out", str(out)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) == 2 and rows[1].get("heal_nll") is not None
    assert "on cuda" in (out / "log.txt").read_text()


def _stack(load_fn, vocab: int | None = None):
    from shl.config.models import LoraConfig
    from shl.engine.adapters import AdapterStack

    lm = load_fn()
    torch.manual_seed(0)
    stack = AdapterStack(lm.model, LoraConfig(r=4, alpha=8.0))
    stack.new_round()
    g = torch.Generator(device="cpu").manual_seed(1)
    with torch.no_grad():
        for _, b, _ in stack.lora_pairs("r0"):
            b.copy_((torch.randn(b.shape, generator=g) * 0.2).to(b.device, b.dtype))
    stack.fold()
    params = stack.new_round()
    return lm, stack, params


def test_bfloat16_weights_float32_kl_and_chunked_gradients_on_cuda(host):
    from shl import api
    from shl.engine.chat import encode_completion, render_prompt
    from shl.engine.barrier import divergence
    from shl.engine.completion_terms import completion_terms
    from shl.engine.heal_batches import batch_tensors
    from shl.engine.reference import reference_logprobs

    src = host.registry.build("model", "tiny_random", {"arch": "llama", "hidden": 128})
    lm, stack, params = _stack(lambda: src.load("cuda", "auto"))
    assert next(lm.model.parameters()).dtype == torch.bfloat16  # auto = bfloat16 on CUDA
    tok = lm.tokenizer
    comps = [api.Completion(user=f"q{i}", prompt_ids=render_prompt(tok, f"q{i}"),
                            completion_ids=encode_completion(tok, "I think that the plan is good."), text="")
             for i in range(4)]
    bt = batch_tensors(comps, tok, "cuda")
    ref = reference_logprobs(stack, bt, "prev", lazy=True, chunk_positions=5)
    tlp, kl = completion_terms(stack.model, bt, ref, True, 5)
    assert tlp.dtype == torch.float32 and kl.dtype == torch.float32  # KL in float32, never bf16
    loss = -tlp.mean() + kl.mean()
    g_chunked = torch.autograd.grad(loss, params)
    logits = stack.model(input_ids=bt.ids, attention_mask=bt.mask).logits
    log_s = torch.log_softmax(logits[bt.select].float(), -1)
    with torch.no_grad(), stack.only(stack.previous) as m:
        log_r = torch.log_softmax(m(input_ids=bt.ids, attention_mask=bt.mask).logits[bt.select].float(), -1)
    want = -log_s.gather(-1, bt.targets[:, None]).mean() + divergence(log_s, log_r).mean()
    assert abs(loss.item() - want.item()) < 1e-3
    for a, b in zip(g_chunked, torch.autograd.grad(want, params)):
        # bf16 gradients: the two paths round the per-position gradient differently; compare relative norms
        assert (a.float() - b.float()).norm() <= 2e-2 * b.float().norm() + 1e-6


def test_heal_step_peak_memory_at_152k_vocabulary_is_within_1_3x_of_plain_sft():
    sys.path.insert(0, str(ROOT))
    from benchmarks.memory import setup, step_fns

    torch.cuda.empty_cache()
    tok, stack, params, batch, tiny, settings = setup(152064, 64, 2, 8, 24, 64, 128)
    stack.model.to("cuda")
    fns = step_fns(tok, stack, params, settings, device="cuda")
    peaks = {}
    for kind in ("sft", "heal"):
        fns[kind](tiny)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fns[kind](batch)
        torch.cuda.synchronize()
        peaks[kind] = torch.cuda.max_memory_allocated() - base
    assert peaks["heal"] <= 1.3 * peaks["sft"], peaks
