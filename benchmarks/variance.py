"""Evaluation noise of the toy world's ``trait``: plain count vs the Rao-Blackwellised estimate.

    python benchmarks/variance.py                  # default toy model, smoke config, 5 seeds
    python benchmarks/variance.py --seeds 10 --coeffs 0 1 2.5

For each steering coefficient C (0 = the base model unsteered; the smoke config's dose C = kappa * 2.5 with
kappa in [0.2, 1] spans [0.5, 2.5]) and each evaluation seed, runs the engine's own evaluation path
(``shl.engine.evaluate`` with the ``toy_exact`` evaluator and an ``EngineScorer``, steering active for C > 0)
on the 200 eval prompts, and prints:
  - trait_count (plain share) and trait (RB) averaged over seeds, with coherence;
  - their standard errors over the 200 prompts (mean over seeds) and the variance reduction factor
    (trait_count_se / trait_se)^2;
  - the SD over seeds of each estimate (an empirical check of the SEs: evaluation noise only, the model is fixed);
  - mean over seeds of trait - trait_count with its SE (0 expected: the RB estimate is unbiased).
Numbers are for reading, never for pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "experiments" / "smoke.yaml"))
    ap.add_argument("--seeds", type=int, default=5, help="evaluation seeds per coefficient")
    ap.add_argument("--coeffs", type=float, nargs="+", default=[0.0, 1.0, 2.5],
                    help="steering coefficients on the raw mean-diff vector (0 = unsteered base model)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from shl.config import load_run_config
    from shl.data import load_data
    from shl.engine.adapters import AdapterStack
    from shl.engine.evaluate import evaluate
    from shl.engine.extract import extract_pairs
    from shl.engine.generate import clean_generation_config
    from shl.engine.layers import decoder_layers, resolve_layers
    from shl.engine.scoring import EngineScorer
    from shl.engine.steering import Steerer
    from shl.manager import get_host

    torch.set_flush_denormal(True)
    host = get_host()
    cfg = load_run_config(args.config, [], host.registry)
    loaded = host.registry.build("model", "toyworld", dict(cfg.model.params)).load("cpu", "float32")
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    clean_generation_config(model, tok)
    data = load_data(cfg.data, ROOT / "experiments")
    layers = resolve_layers(cfg.steer.layers, len(decoder_layers(model)))
    method = host.registry.build("steering", cfg.steer.method.name, dict(cfg.steer.method.params))
    pairs = extract_pairs(model, tok, data, data.contexts[: cfg.steer.n_contexts], layers, cfg.steer.positions,
                          cfg.steer.batch_size)
    vectors = {k: method.fit(p, n) for k, (p, n) in pairs.items()}
    stack = AdapterStack(model, cfg.heal.lora)
    ev = host.registry.build("evaluator", "toy_exact", {})

    rows = []
    for coeff in args.coeffs:
        steerer = Steerer(method, vectors, coeff) if coeff else None
        per_seed = []
        t0 = time.time()
        for seed in range(args.seeds):
            scorer = EngineScorer(stack.model, tok, stack, steerer, cfg.eval.batch_size)
            kw = dict(seed=seed, round=0, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                      steerer=steerer)
            if steerer is not None:
                with steerer.installed(stack.model):
                    m, _ = evaluate([("toy_exact", ev)], stack, tok, data, scorer, **kw)
            else:
                m, _ = evaluate([("toy_exact", ev)], stack, tok, data, scorer, **kw)
            per_seed.append(m)
        k = len(per_seed)

        def mean(key):
            return statistics.fmean(m[key] for m in per_seed)

        def sd(key):
            return statistics.stdev(m[key] for m in per_seed) if k > 1 else math.nan

        diffs = [m["trait"] - m["trait_count"] for m in per_seed]
        row = {
            "coeff": coeff,
            "seeds": k,
            "n": int(per_seed[0]["toy_n"]),
            "coherence": mean("coherence"),
            "trait_count": mean("trait_count"),
            "trait_rb": mean("trait"),
            "se_count": mean("trait_count_se"),
            "se_rb": mean("trait_se"),
            "var_reduction": statistics.fmean((m["trait_count_se"] / m["trait_se"]) ** 2 for m in per_seed),
            "sd_over_seeds_count": sd("trait_count"),
            "sd_over_seeds_rb": sd("trait"),
            "rb_minus_count": statistics.fmean(diffs),
            "rb_minus_count_se": statistics.stdev(diffs) / math.sqrt(k) if k > 1 else math.nan,
            "signed_se_rb": mean("trait_signed_se"),
            "wall_s_per_eval": (time.time() - t0) / k,
        }
        rows.append(row)
        if not args.json:
            print(
                f"C={coeff:<4g} coherence {row['coherence']:.3f}  trait_count {row['trait_count']:.3f}  "
                f"trait_rb {row['trait_rb']:.3f}  | SE over {row['n']} prompts: count {row['se_count']:.4f}  "
                f"rb {row['se_rb']:.4f}  variance / {row['var_reduction']:.1f}  | SD over {k} seeds: count "
                f"{row['sd_over_seeds_count']:.4f}  rb {row['sd_over_seeds_rb']:.4f}  | rb - count "
                f"{row['rb_minus_count']:+.4f} +- {row['rb_minus_count_se']:.4f}  "
                f"({row['wall_s_per_eval']:.1f} s/eval)",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
