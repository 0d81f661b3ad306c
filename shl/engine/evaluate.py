"""Running the evaluator plugins on the student (unsteered, or steered at the round's dose)."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Sequence

from ..api import EvalContext, Evaluator, SteeringData
from ..errors import RunError
from .adapters import merged_student
from .chat import render_prompt
from .generate import generate
from .seeds import Stream, derive_seed

# What ``EvalContext.generate`` samples with; ``Scorer.token_probs`` defaults to the same transform.
EVAL_TEMPERATURE = 1.0
EVAL_TOP_P = 1.0


@merged_student
def evaluate(
    evaluators: Sequence[tuple[str, Evaluator]],
    stack: Any,
    tokenizer: Any,
    data: SteeringData,
    scorer: Any,
    *,
    seed: int,
    round: int,
    max_new_tokens: int,
    batch_size: int,
    steerer: Any = None,
    prefix: str = "",
    caches: dict[str, dict[str, Any]] | None = None,
    origins: dict[str, str] | None = None,
    lasting: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    """Metrics (keys prefixed, e.g. ``steered_``) and samples.

    Common random numbers: a sampling seed is derived from (run seed, "eval", evaluator name, model, call
    number) only, never from the round, the arm's config or the prefix, and the batches are formed from the
    prompt lengths alone; so every round, the steered point and every arm of a seed sample the same prompts with
    the same random numbers (on CPU; GPU kernels add float noise).

    ``origins``: per evaluator name, where it comes from (`` (plugin 'p', distribution d v)``), appended to the
    RunError when that evaluator fails. ``lasting``: per evaluator name, its ``EvalContext.lasting`` dict."""
    metrics: dict[str, float | None] = {}
    owners: dict[str, str] = {}
    samples: list[dict[str, Any]] = []
    keyed: dict[tuple, list[Any]] = {}  # generations asked for by key: sampled once per evaluation, shared
    for name, ev in evaluators:
        calls = [0]
        origin = (origins or {}).get(name, "")

        def gen(users: Sequence[str], n: int = 1, system: str | None = "__neutral__", model: str = "student",
                key: str | None = None, per_seed: bool = True, _name: str = name):
            if model not in ("student", "base"):
                raise ValueError(f"generate: model must be 'student' or 'base', got {model!r}")
            if not per_seed and key is None:
                raise ValueError("generate: per_seed=False needs a key (the random numbers come from the key alone)")
            sys_prompt = data.neutral_system if system == "__neutral__" else system
            prompts = [(u, render_prompt(tokenizer, u, sys_prompt)) for u in users for _ in range(n)]
            calls[0] += 1
            if key is not None:
                memo = (tuple(users), n, sys_prompt, model, key, per_seed)
                if memo not in keyed:
                    root = seed if per_seed else 0
                    keyed[memo] = sample(prompts, model, derive_seed(root, Stream.EVAL, "key" if per_seed else
                                                                     "key-any-seed", key))
                return list(keyed[memo])
            return sample(prompts, model, derive_seed(seed, Stream.EVAL, _name, model, calls[0]))

        def sample(prompts: list[tuple[str, list[int]]], model: str, sample_seed: int) -> list[Any]:
            kwargs = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=EVAL_TEMPERATURE,
                          top_p=EVAL_TOP_P, seed=sample_seed)
            if model == "base":
                remember = getattr(scorer, "remember_base", None)  # the sampler's log-probs are the base's scores
                with stack.disabled() as base, (steerer.paused() if steerer is not None else nullcontext()):
                    comps = generate(base, tokenizer, prompts, logprobs=remember is not None, **kwargs)
                if remember is not None:
                    remember(comps)
                return comps
            return generate(stack.model, tokenizer, prompts, steerer=steerer, **kwargs)

        ctx = EvalContext(
            generate=gen,
            render=lambda u, s: render_prompt(tokenizer, u, s),
            scorer=scorer,
            tokenizer=tokenizer,
            data=data,
            seed=derive_seed(seed, Stream.EVAL, name),
            round=round,
            steered=steerer is not None,
            cache=caches.setdefault(name, {}) if caches is not None else {},
            lasting=lasting.setdefault(name, {}) if lasting is not None else {},
        )
        try:
            out = ev.evaluate(ctx)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(f"evaluator '{name}' raised {type(exc).__name__}: {exc}{origin}") from exc
        if not isinstance(out, dict):
            raise RunError(f"evaluator '{name}' returned {type(out).__name__}, expected a dict of metrics{origin}")
        for key, value in out.items():
            if key in owners:
                first = (origins or {}).get(owners[key], "")
                raise RunError(
                    f"evaluators '{owners[key]}'{first} and '{name}'{origin} both return the metric '{key}'"
                )
            owners[key] = name
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise RunError(f"evaluator '{name}' returned a non-numeric value for '{key}': {value!r}{origin}") from None
            metrics[prefix + key] = v if math.isfinite(v) else None
        for s in ctx.samples:
            samples.append({"kind": f"{prefix}eval", "evaluator": name, "round": round, **s})
    return metrics, samples
