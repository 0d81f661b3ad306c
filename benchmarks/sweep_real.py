"""A hand sweep of steering layers x coefficients on a real chat model (default SmolLM2-135M-Instruct), with a random
vector of the same norm as the control: how the shipped real-model config's layer and dose were chosen.

    python benchmarks/sweep_real.py --layers 6,10,14,18 --coeffs 0,2,4,8 --prompts 16 > benchmarks/results/sweep_smollm2.jsonl

For each layer, the mean-difference vector of the care/authority persona prompts (48 contexts, prompt_mean) and a
random vector of its norm; for each coefficient, the model's own answers to the first N held-out prompts (neutral
system prompt, 40 new tokens, one batch) steered at that layer. Per cell (one JSON line): ``trait``, the mean per-token
log-odds under the base model of each answer as a reply of the positive vs the negative persona (what
``persona_logodds`` reports, without subtracting the unsteered answers' value); ``nll``, the mean per-token NLL of
the answers under the base model with the neutral prompt (lower = more fluent); ``rep``, the mean n-gram repetition
score; the first answer. ``shl sweep`` (with standard errors and a figure) is the command this will become."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layers", default="6,10,14,18")
    ap.add_argument("--coeffs", default="0,2,4,8")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--positions", default="prompt_mean", choices=["prompt_mean", "last"])
    args = ap.parse_args()

    import torch

    torch.set_flush_denormal(True)
    from shl.config import load_run_config
    from shl.config.slots import model_source
    from shl.data import load_data
    from shl.engine.chat import render_prompt
    from shl.engine.extract import extract_pairs
    from shl.engine.generate import clean_generation_config, generate
    from shl.engine.scoring import completion_logprobs
    from shl.engine.steering import Steerer
    from shl.manager import get_host
    from shl_plugins.filters.repetition import repetition_score

    reg = get_host().registry
    cfg = load_run_config(None, [f"model.name={args.model}", "device=cpu"], reg)
    src = model_source(reg, cfg.model)
    loaded = reg.build("model", src.name, src.params).load("cpu", "float32")
    model, tok = loaded.model, loaded.tokenizer
    tok.padding_side = "left"
    clean_generation_config(model, tok)
    data = load_data(cfg.data)
    method = reg.build("steering", "mean_diff", {})
    layers = [int(x) for x in args.layers.split(",")]
    pairs = extract_pairs(model, tok, data, data.contexts[:48], layers, args.positions, 32)
    users = data.eval_prompts[: args.prompts]
    prompts = [(u, render_prompt(tok, u, data.neutral_system)) for u in users]
    persona = {pole: {u: render_prompt(tok, u, system) for u in users}
               for pole, system in (("pos", data.positive.system), ("neg", data.negative.system))}

    def mean(xs):
        return sum(xs) / len(xs) if xs else float("nan")

    def score(comps):
        cs = [c for c in comps if c.completion_ids]
        lp = {pole: completion_logprobs(model, tok, [dataclasses.replace(c, prompt_ids=persona[pole][c.user])
                                                     for c in cs], 64) for pole in persona}
        neutral = completion_logprobs(model, tok, cs, 64)
        return (mean([mean(a) - mean(b) for a, b in zip(lp["pos"], lp["neg"])]), mean([-mean(a) for a in neutral]),
                mean([repetition_score(c.text) for c in comps]))

    g = torch.Generator().manual_seed(1234)
    for layer in layers:
        v = method.fit(*pairs[layer])
        r = torch.randn(v.shape, generator=g)
        r = r / r.norm() * v.norm()
        for c in (float(x) for x in args.coeffs.split(",")):
            for kind, vec in (("md", v), ("rand", r)):
                if c == 0 and kind == "rand":
                    continue
                steerer = Steerer(method, {layer: vec}, c)
                t0 = time.time()
                with steerer.installed(model):
                    comps = generate(model, tok, prompts, max_new_tokens=40, batch_size=64, seed=7, steerer=steerer)
                trait, nll, rep = score(comps)
                print(json.dumps({"layer": layer, "norm": float(v.norm()), "coeff": c, "kind": kind, "trait": trait,
                                  "nll": nll, "rep": rep, "s": time.time() - t0, "sample": comps[0].text[:160]}),
                      flush=True)


if __name__ == "__main__":
    main()
