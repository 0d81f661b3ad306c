"""shl performance benchmark: ratios measured in one process, on the same model, inputs and thread count.

    python benchmarks/bench.py                      # toy world default model, CPU
    python benchmarks/bench.py --model tiny_random  # no training needed
    python benchmarks/bench.py --device cuda        # on a GPU

Prints, for each pair, the median wall time of each side over --repeats runs and their ratio:
  1. steered vs plain batched generation (cost of the steering hook);
  2. batched generation vs a naive batch-size-1 loop (what batching buys);
  3. batched scoring (filters' base-model log-probs) vs batch size 1;
  4. a heal step with the KL barrier (reference logits from the same model, adapters switched off) vs a plain
     SFT step (NLL only) on the same batch.
Timings are for reading, never for pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="toyworld", help="model source name or HF id (default: toyworld)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompts", type=int, default=64, help="prompts per generation batch")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from shl.config import load_run_config
    from shl.engine.adapters import AdapterStack
    from shl.engine.chat import render_prompt
    from shl.engine.extract import extract_pairs
    from shl.engine.generate import clean_generation_config, generate
    from shl.engine.heal import HealSettings, batch_tensors, heal_round
    from shl.engine.layers import decoder_layers, resolve_layers
    from shl.engine.scoring import completion_logprobs
    from shl.engine.steering import Steerer
    from shl.data import load_data
    from shl.manager import get_host

    if args.device == "cpu":
        torch.set_flush_denormal(True)
    host = get_host()
    cfg = load_run_config(None, [f"model.name={args.model}", f"device={args.device}"], host.registry)
    from shl.config.loading import model_source_name

    src = model_source_name(host.registry, cfg.model.name)
    params = dict(cfg.model.params)
    if src == "hf":
        params["name_or_path"] = cfg.model.name
    loaded = host.registry.build("model", src, params).load(args.device, cfg.dtype)
    model, tok = loaded.model, loaded.tokenizer
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    clean_generation_config(model, tok)
    data = load_data(cfg.data)
    layers = resolve_layers(cfg.steer.layers, len(decoder_layers(model)))
    method = host.registry.build("steering", "mean_diff")
    pairs = extract_pairs(model, tok, data, data.contexts[:32], layers, "prompt_mean", 32)
    vectors = {k: method.fit(p, n).to(args.device) for k, (p, n) in pairs.items()}
    prompts = [(u, render_prompt(tok, u, data.neutral_system)) for u in (data.prompts * 4)[: args.prompts]]
    gen = dict(max_new_tokens=args.new_tokens, seed=0)
    results = {}

    def plain():
        return generate(model, tok, prompts, batch_size=len(prompts), **gen)

    steerer = Steerer(method, vectors, cfg.dose.scale)

    def steered():
        with steerer.installed(model):
            return generate(model, tok, prompts, batch_size=len(prompts), steerer=steerer, **gen)

    few = prompts[: max(8, args.prompts // 8)]

    def batched_few():
        return generate(model, tok, few, batch_size=len(few), **gen)

    def naive_few():
        return generate(model, tok, few, batch_size=1, **gen)

    results["generation: steered / plain"] = (timed(steered, args.repeats), timed(plain, args.repeats))
    results["generation: naive bs=1 / batched"] = (timed(naive_few, args.repeats), timed(batched_few, args.repeats))
    comps = plain()
    results["scoring: bs=1 / batched"] = (
        timed(lambda: completion_logprobs(model, tok, comps[:16], 1), args.repeats),
        timed(lambda: completion_logprobs(model, tok, comps[:16], 16), args.repeats),
    )
    stack = AdapterStack(model, cfg.heal.lora)
    stack.new_round()
    stack.fold()
    params = stack.new_round()
    agg = host.registry.build("aggregator", "rmse")
    base = dict(reference="prev", level="sequence", lam=1.0, tau=0.0, spectral=0.0, weight_decay=0.0, epochs=1,
                lr=1e-4, batch_size=len(comps[:16]), max_grad_norm=1.0)
    barrier = HealSettings(regulariser="kl_rev", **base)
    batch = comps[:16]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def plain_sft():
        bt = batch_tensors(batch, tok, args.device)
        logits = stack.model(input_ids=bt.ids, attention_mask=bt.mask).logits
        log_s = torch.log_softmax(logits[bt.select].float(), dim=-1)
        loss = -log_s.gather(-1, bt.targets[:, None]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    results["heal step: KL barrier / plain SFT"] = (
        timed(lambda: heal_round(stack, tok, batch, barrier, agg, params, 0, 1), args.repeats),
        timed(plain_sft, args.repeats),
    )
    out = {k: {"numerator_s": a, "denominator_s": b, "ratio": a / b} for k, (a, b) in results.items()}
    meta = {"model": loaded.name, "device": args.device, "threads": torch.get_num_threads(),
            "prompts": args.prompts, "new_tokens": args.new_tokens, "repeats": args.repeats}
    if args.json:
        print(json.dumps({"meta": meta, "results": out}, indent=2))
        return
    print(f"model {loaded.name} on {args.device}, {meta['threads']} threads, {args.prompts} prompts x "
          f"{args.new_tokens} new tokens, median of {args.repeats}")
    for k, v in out.items():
        print(f"{k:<40} {v['numerator_s']:8.3f}s / {v['denominator_s']:8.3f}s = {v['ratio']:6.2f}x")


if __name__ == "__main__":
    main()
