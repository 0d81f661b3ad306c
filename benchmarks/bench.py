"""shl performance benchmark: ratios measured in one process, on the same model, inputs and thread count.

    python benchmarks/bench.py                      # toy world default model, CPU
    python benchmarks/bench.py --model tiny_random  # no training needed
    python benchmarks/bench.py --device cuda        # on a GPU

Prints, for each pair, the median wall time of each side over --repeats runs and their ratio:
  1. steered vs plain batched generation (cost of the steering hook);
  2. batched generation vs a naive batch-size-1 loop (what batching buys);
  3. batched scoring (filters' base-model log-probs) vs batch size 1;
  4. a heal step with the KL barrier (reference logits from the same model, adapters switched off) vs a plain
     SFT step (NLL only) on the same batch;
  5. a 3-epoch heal with the reference log-probs recomputed every epoch vs cached once per completion
     (heal.ref_cache_mb);
  6. generation with transformers' ``generate`` vs shl's decode loop (preallocated KV cache, finished rows
     dropped; same token streams);
  7. generation from a 3-adapter student with unmerged adapters vs merged into temporary weights (evaluation);
  8. (--pool) 4 tiny toy-world runs one after another in this process with 2 threads vs a 2-process pool
     (LocalPoolExecutor) with 1 thread each, model loading and process start included;
  9. (--run) one smoke run (2 rounds) with every optimisation off (hf generate, unmerged eval, no reference
     cache) vs on, interleaved.
Pairs 1-7 are interleaved A/B repetitions (median of --repeats); the ratio is A / B. Then, on whatever device
it runs on, the throughput of plain batched generation (generated tokens/s) and of the heal (steps/s).
Timings are for reading, never for pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def paired(a, b, repeats: int) -> tuple[float, float]:
    """Median wall time of a and b, run alternately (a, b, a, b, ...) after one warm-up each: load from other
    processes hits both sides alike."""
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
    ap.add_argument("--pool", action="store_true", help="also time 4 tiny runs: 2 workers x 1 thread vs sequential")
    ap.add_argument("--run", action="store_true", help="also time one smoke run: optimisations off vs on")
    ap.add_argument("--only-new", action="store_true", help="skip pairs 1-4")
    args = ap.parse_args()

    import torch

    from shl.config import load_run_config
    from shl.engine.adapters import AdapterStack
    from shl.engine.chat import render_prompt
    from shl.engine.extract import extract_pairs
    from shl.engine.generate import clean_generation_config, generate
    from shl.config.models import HealConfig
    from shl.config.slots import model_source
    from shl.engine.heal import heal_round
    from shl.engine.heal_batches import batch_tensors
    from shl.engine.layers import decoder_layers, resolve_layers
    from shl.engine.scoring import completion_logprobs
    from shl.engine.steering import Steerer
    from shl.data import load_data
    from shl.manager import get_host

    if args.device == "cpu":
        torch.set_flush_denormal(True)
    host = get_host()
    cfg = load_run_config(None, [f"model.name={args.model}", f"device={args.device}"], host.registry)
    src = model_source(host.registry, cfg.model)
    loaded = host.registry.build("model", src.name, src.params).load(args.device, cfg.dtype)
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

    if not args.only_new:
        results["generation: steered / plain"] = (timed(steered, args.repeats), timed(plain, args.repeats))
        results["generation: naive bs=1 / batched"] = (timed(naive_few, args.repeats), timed(batched_few, args.repeats))
    comps = plain()
    if not args.only_new:
        results["scoring: bs=1 / batched"] = (
            timed(lambda: completion_logprobs(model, tok, comps[:16], 1), args.repeats),
            timed(lambda: completion_logprobs(model, tok, comps[:16], 16), args.repeats),
        )
    stack = AdapterStack(model, cfg.heal.lora)
    stack.new_round()
    stack.fold()
    params = stack.new_round()
    agg = host.registry.build("aggregator", "rmse")
    base = dict(barrier={"reference": "prev", "level": "sequence", "tau": 0.0}, lam=1.0, spectral=0.0,
                weight_decay=0.0, epochs=1, lr=1e-4, batch_size=len(comps[:16]), max_grad_norm=1.0)
    barrier = HealConfig(regulariser="kl_rev", **base)
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

    if not args.only_new:
        results["heal step: KL barrier / plain SFT"] = (
            timed(lambda: heal_round(stack, tok, batch, barrier, agg, params, 0, 1), args.repeats),
            timed(plain_sft, args.repeats),
        )

    # 5. reference cache: a real 3-epoch heal over all completions, recomputed vs cached reference
    many = comps[:48]
    three = dict(base, epochs=3, batch_size=16)
    results["heal (3 epochs): ref recomputed / ref cached"] = paired(
        lambda: heal_round(stack, tok, many, HealConfig(regulariser="kl_rev", ref_cache_mb=0, **three), agg,
                           params, 0, 1),
        lambda: heal_round(stack, tok, many, HealConfig(regulariser="kl_rev", ref_cache_mb=1024, **three), agg,
                           params, 0, 1),
        args.repeats,
    )

    # 6. generation: transformers' generate vs shl's decode loop (same token streams: checked here)
    a = generate(model, tok, prompts, batch_size=len(prompts), impl="hf", **gen)
    b = generate(model, tok, prompts, batch_size=len(prompts), impl="fast", **gen)
    same = sum(x.completion_ids == y.completion_ids for x, y in zip(a, b))
    results[f"generation: hf generate / shl loop ({same}/{len(a)} identical)"] = paired(
        lambda: generate(model, tok, prompts, batch_size=len(prompts), impl="hf", **gen),
        lambda: generate(model, tok, prompts, batch_size=len(prompts), impl="fast", **gen),
        args.repeats,
    )

    # 7. evaluation of a healed student (3 adapters with small non-zero B): unmerged vs merged
    estack = stack
    while len(estack.names) < 3:
        estack.new_round()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name in estack.names:
            for _, b_, _ in estack.lora_pairs(name):
                b_.copy_(torch.randn(b_.shape, generator=g) * 0.01)
    estack.fold()

    def unmerged():
        return generate(estack.model, tok, prompts, batch_size=len(prompts), **gen)

    def merged():
        with estack.merged() as m:
            return generate(m, tok, prompts, batch_size=len(prompts), **gen)

    same = sum(x.completion_ids == y.completion_ids for x, y in zip(unmerged(), merged()))
    results[f"eval generation (3 adapters): unmerged / merged ({same}/{len(prompts)} identical)"] = paired(
        unmerged, merged, args.repeats
    )
    if args.pool:
        results["4 tiny toy runs: sequential 2 threads / 2 workers x 1 thread"] = pool_ratio(args)
    if args.run:
        results["smoke run (2 rounds): optimisations off / on"] = run_ratio(args, host)

    out = {k: {"numerator_s": a, "denominator_s": b, "ratio": a / b} for k, (a, b) in results.items()}
    throughput = {}
    if "generation: steered / plain" in results:
        tokens = sum(len(c.completion_ids) for c in plain())
        throughput["generation (plain, batched): generated tokens/s"] = tokens / results["generation: steered / plain"][1]
    if "heal step: KL barrier / plain SFT" in results:
        throughput["heal (KL barrier): steps/s"] = 1.0 / results["heal step: KL barrier / plain SFT"][0]
    meta = {"model": loaded.name, "device": args.device, "threads": torch.get_num_threads(),
            "prompts": args.prompts, "new_tokens": args.new_tokens, "repeats": args.repeats}
    if args.json:
        print(json.dumps({"meta": meta, "results": out, "throughput": throughput}, indent=2))
        return
    print(f"model {loaded.name} on {args.device}, {meta['threads']} threads, {args.prompts} prompts x "
          f"{args.new_tokens} new tokens, median of {args.repeats}")
    for k, v in out.items():
        print(f"{k:<72} {v['numerator_s']:8.3f}s / {v['denominator_s']:8.3f}s = {v['ratio']:6.2f}x")
    for k, v in throughput.items():
        print(f"{k:<72} {v:10.1f}")


TINY_TOY = [
    "model.name=toyworld", "device=cpu", "steer.n_contexts=32", "dose.steps=2", "dose.probe_prompts=16",
    "generate.n_prompts=32", "generate.max_new_tokens=48", "heal.epochs=2", "loop.rounds=2", "eval.max_new_tokens=48",
    'eval.evaluators=[{"name": "toy_exact", "params": {"n_prompts": 64}}]',
]


def _tiny_tasks(root, host, n: int = 4):
    from pathlib import Path

    from shl.config import load_run_config
    from shl.executors import RunTask

    tasks = []
    for i in range(n):
        cfg = load_run_config(None, TINY_TOY + [f"seed={i}"], host.registry)
        d = Path(root) / f"run{i}"
        tasks.append(RunTask(str(d), cfg.model_dump(mode="json"), {"seed": i}, None, f"tiny {i}", None))
    return tasks


def pool_ratio(args) -> tuple[float, float]:
    """4 tiny toy-world runs (distinct seeds, no sharing): in-process with 2 threads vs 2 workers x 1 thread."""
    import tempfile

    import torch

    from shl.executors import InProcessExecutor
    from shl.executors.local_pool import LocalPoolExecutor
    from shl.manager import get_host

    host = get_host()
    threads = torch.get_num_threads()
    seq, par = [], []

    def sequential(root):
        torch.set_num_threads(2)
        try:
            t0 = time.perf_counter()
            InProcessExecutor(host).run(_tiny_tasks(f"{root}/a", host), lambda t, r: None)
            seq.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)

    def pool(root):
        t0 = time.perf_counter()
        ex = LocalPoolExecutor(workers=2, threads=1)
        ex.run(_tiny_tasks(f"{root}/b", host), lambda t, r: None)
        ex.close()
        par.append(time.perf_counter() - t0)

    for rep in range(max(1, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as root:
            for side in ((sequential, pool) if rep % 2 == 0 else (pool, sequential)):  # alternate the order
                side(root)
    return statistics.median(seq), statistics.median(par)


def run_ratio(args, host) -> tuple[float, float]:
    """One smoke run (2 rounds), in process: hf generate + unmerged eval + reference recomputed vs shl's paths."""
    from shl.config import load_run_config
    from shl.engine import adapters, heal_step, loop
    from shl.engine import generate as gen_mod

    cfg = load_run_config("experiments/smoke.yaml", ["device=" + args.device, "loop.rounds=2"], host.registry)
    orig_heal = heal_step.heal_round

    def configure(on: bool):
        gen_mod.GENERATE_IMPL = "fast" if on else "hf"
        adapters.MERGE_FOR_EVAL = on
        heal_step.heal_round = lambda stack, tok, kept, heal, *a, **k: orig_heal(
            stack, tok, kept, heal.model_copy(update={"ref_cache_mb": 1024 if on else 0}), *a, **k)

    def one(on: bool):
        configure(on)
        try:
            loop.Run(cfg, host).execute()
        finally:
            configure(True)
            heal_step.heal_round = orig_heal

    off_t, on_t = [], []
    for _ in range(max(1, args.repeats // 2)):
        for on, acc in ((False, off_t), (True, on_t)):
            t0 = time.perf_counter()
            one(on)
            acc.append(time.perf_counter() - t0)
    return statistics.median(off_t), statistics.median(on_t)


if __name__ == "__main__":
    main()
