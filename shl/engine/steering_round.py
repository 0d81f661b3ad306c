"""One round of the loop up to the heal: extract the steering vectors, set the dose, generate steered
completions, filter them, and evaluate the steered, unhealed student. It reads the loaded state of a ``Run``
(model, tokenizer, data, components, clock) and returns what the heal and the metrics row need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api import Completion, FilterContext
from ..errors import RunError
from .chat import render_prompt
from .dose import control_dose
from .extract import extract_pairs
from .filtering import run_filters
from .generate import generate
from .scoring import EngineScorer
from .seeds import Stream, cycle_indices, derive_seed, distinct_count, sample_indices
from .steering import Steerer

if TYPE_CHECKING:
    from .loop import Run


@dataclass
class SteeredRound:
    """Round i up to the heal: the metrics row so far (``round`` = i + 1), the steering vectors (layer -> [d], on
    the run's device), the completions that survived the filters, and the samples to store."""

    row: dict[str, Any]
    vectors: dict[int, Any]
    kept: list[Completion]
    samples: list[dict[str, Any]]


def steer_round(run: Run, i: int) -> SteeredRound:
    """Round i up to the heal: extract, dose, generate, filter, and the steered-unhealed evaluation."""
    cfg = run.cfg
    r = i + 1
    row: dict[str, Any] = {"round": r}
    run.clock.start("extract", f"round {r}: extract")
    n_pool = len(run.data.contexts)
    ctx_idx = sample_indices(n_pool, cfg.steer.n_contexts, cfg.seed, Stream.EXTRACT, i)
    contexts = [run.data.contexts[j] for j in ctx_idx]
    row["n_contexts_used"] = len(contexts)
    if cfg.steer.n_contexts > n_pool:
        run.say_once("steer.n_contexts", (
            f"note: steer.n_contexts={cfg.steer.n_contexts} but {run.data.source} has {n_pool} contexts: "
            f"each is used once, so extraction uses {n_pool} per round (n_contexts_used)"
        ))
    pairs = extract_pairs(
        run.stack.model, run.tok, run.data, contexts, run.layers, cfg.steer.positions, cfg.steer.batch_size
    )
    try:
        vectors = {layer: run.method.fit_layer(p, n, layer=layer, round_index=i).detach()
                   for layer, (p, n) in pairs.items()}
    except Exception as exc:
        raise RunError(
            f"steering method '{cfg.steer.method.name}' raised {type(exc).__name__}: {exc}"
            f"{run.origin('steer.method')}"
        ) from exc
    for layer, v in vectors.items():
        d = pairs[layer][0].shape[1]
        if tuple(v.shape) != (d,) or not bool(v.isfinite().all()):
            raise RunError(
                f"steering method '{cfg.steer.method.name}' returned a vector of shape {tuple(v.shape)} "
                f"(finite: {bool(v.isfinite().all())}) for layer {layer}; expected ({d},){run.origin('steer.method')}"
            )
    if all(float(v.norm()) == 0.0 for v in vectors.values()):
        raise RunError(
            f"round {r}: the steering vector is zero at every layer ({', '.join(map(str, vectors))}): the positive "
            f"and negative persona prompts gave identical activations (are the personas of {run.data.source} the "
            f"same, or do they differ only where steer.positions does not read?)"
        )
    vectors = {k: v.to(run.device) for k, v in vectors.items()}
    row["vector_norm"] = float(sum(float(v.norm()) ** 2 for v in vectors.values()) ** 0.5)

    steerer = Steerer(run.method, vectors, 0.0)
    run.base_states.clear()  # this round's completions only
    # no prompt cache: the round's prompts are drawn afresh each round, so filling a cache one prompt at a time
    # would cost more than the batched full forward it saves (measured on SmolLM2: README, performance)
    scorer = EngineScorer(run.stack.model, run.tok, run.stack, steerer, cfg.generate.batch_size, None,
                          run.base_states)
    fctx = FilterContext(scorer=scorer, tokenizer=run.tok, data=run.data)
    with steerer.installed(run.stack.model):

        def sample(prompts, coeff, stream, *keys, stage="generate"):
            steerer.coeff = coeff
            run.clock.start(stage)
            comps = generate(
                run.stack.model, run.tok, prompts, max_new_tokens=cfg.generate.max_new_tokens,
                temperature=cfg.generate.temperature, top_p=cfg.generate.top_p,
                batch_size=cfg.generate.batch_size, seed=derive_seed(cfg.seed, stream, *keys), steerer=steerer,
            )
            run.clock.start("filter")
            with steerer.paused():
                try:
                    res = run_filters(run.filters, comps, fctx)
                except RunError as exc:
                    named = run.filter_error(exc)
                    if named is exc:
                        raise
                    raise named from exc
            run.clock.stop()
            return comps, res

        run.clock.start("dose", f"round {r}: dose")
        probe_prompts = round_prompts(run, run.data.prompts, cfg.dose.probe_prompts, "dose.probe_prompts",
                                      Stream.PROBE, i)
        row["probe_prompts_distinct"] = distinct_count(len(run.data.prompts), cfg.dose.probe_prompts)
        probe_runs: dict[float, Any] = {}

        def probe(kappa: float):
            comps, res = sample(probe_prompts, kappa * cfg.dose.scale, Stream.PROBE_SAMPLE, i, stage="dose")
            probe_runs[kappa] = (comps, res)
            return res.kept / max(len(comps), 1), [c for c, k in zip(comps, res.keep) if k], len(comps)

        dose = control_dose(
            probe, cfg.dose.kappa_min, cfg.dose.kappa_max, cfg.dose.target, cfg.dose.steps, cfg.dose.controller
        )
        kappa = dose.kappa
        row.update(kappa=kappa, coeff=kappa * cfg.dose.scale, probe_survival=dose.survival,
                   dose_reached=float(dose.reached), dose_probes=float(len(dose.trace)))
        run.log(
            f"round {r}: dose trace " + ", ".join(f"kappa={k:.3g}: {s:.2f}" for k, s in dose.trace)
            + f" -> kappa={kappa:.3g}" + ("" if dose.reached else " (target not reached)")
        )
        batches = [probe_runs[kappa]]
        for a, alpha in enumerate(cfg.generate.alphas):
            run.progress(f"round {r}: generate (alpha {alpha:g})")
            prompts = round_prompts(run, run.data.prompts, cfg.generate.n_prompts, "generate.n_prompts",
                                    Stream.GENERATE, i, a)
            row["generate_prompts_distinct"] = distinct_count(len(run.data.prompts), cfg.generate.n_prompts)
            batches.append(sample(prompts, kappa * alpha * cfg.dose.scale, Stream.GENERATE_SAMPLE, i, a))
        kept: list[Completion] = []
        examples: dict[str, dict[str, Any]] = {}
        drops: dict[str, int] = {}
        total = 0
        for comps, res in batches:
            total += len(comps)
            for name, n in res.drops().items():
                drops[name] = drops.get(name, 0) + n
            for j, c in enumerate(comps):
                kind = "steered_kept" if res.keep[j] else "steered_dropped"
                if res.keep[j]:
                    kept.append(c)
                examples.setdefault(kind, {"user": c.user, "text": c.text, "finished": c.finished,
                                           "filters": res.per_completion(j)})
        samples = [{"kind": k, "round": r, **examples[k]} for k in ("steered_kept", "steered_dropped") if k in examples]
        row.update(kept=len(kept), total=total, keep_share=len(kept) / max(total, 1))
        row.update({f"drop_{k}": v for k, v in drops.items()})
        with steerer.paused():
            row.update(filter_gate(run, fctx, batches))

        steerer.coeff = kappa * cfg.dose.scale
        if cfg.eval.steered and run.evaluators:
            with run.clock("evaluate_steered", f"round {r}: evaluate steered"):
                metrics, eval_samples = run.evaluate(r, steerer, prefix="steered_")
            row.update(metrics)
            samples += eval_samples
    return SteeredRound(row, vectors, kept, samples)


def round_prompts(run: Run, pool: list[str], k: int, what: str, stream: Stream, *keys: object
                  ) -> list[tuple[str, list[int]]]:
    """k generation prompts from ``pool``: distinct when k <= len(pool); else the pool is cycled through
    deterministically (a prompt drawn twice still gets its own sample), and the log says so once."""
    n = len(pool)
    if k > n:
        run.say_once(what, (
            f"note: {what}={k} exceeds the {n} prompts of {run.data.source}: cycling through them "
            f"deterministically ({n} distinct prompts, each used {k // n}-{-(-k // n)} times)"
        ))
    idx = cycle_indices(n, k, run.cfg.seed, stream, *keys)
    return [(pool[i], render_prompt(run.tok, pool[i], run.data.neutral_system)) for i in idx]


def filter_gate(run: Run, fctx: FilterContext, batches: list[tuple[list[Completion], Any]]) -> dict[str, Any]:
    """The coherent share of the kept and of the dropped completions of the round, by the first evaluator that
    judges completions one by one (``Evaluator.judge_coherent``); {} when none does. A share over no completions
    is None."""
    comps = [c for cs, _ in batches for c in cs]
    keep = [k for _, res in batches for k in res.keep]
    for name, ev in run.evaluators:
        try:
            verdicts = ev.judge_coherent(comps, fctx, run.eval_caches.setdefault(name, {}))
        except Exception as exc:
            raise RunError(f"evaluator '{name}' raised {type(exc).__name__} in judge_coherent: {exc}") from exc
        if verdicts is None:
            continue
        if len(verdicts) != len(comps):
            raise RunError(f"evaluator '{name}': judge_coherent returned {len(verdicts)} verdicts for "
                           f"{len(comps)} completions")
        kept = [bool(v) for v, k in zip(verdicts, keep) if k]
        dropped = [bool(v) for v, k in zip(verdicts, keep) if not k]
        return {"filter_kept_coherent": sum(kept) / len(kept) if kept else None,
                "filter_dropped_coherent": sum(dropped) / len(dropped) if dropped else None}
    return {}
