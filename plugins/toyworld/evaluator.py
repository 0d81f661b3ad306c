"""The ``toy_exact`` evaluator: exact coherence and trait of the toy world's completions, with standard errors."""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import Field

from shl.api import Completion, EvalContext, Evaluator, Params

from .world import NEGATIVE, POSITIVE, parse, pole_of


def _se_share(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else float("nan")


def exact_metrics(completions: Sequence[Completion], positive: str = POSITIVE) -> dict[str, float]:
    """coherence = share that parse (and finished); trait = share choosing the positive pole among ALL
    completions; trait_signed = positive share - negative share (``positive`` names the positive pole). Each with its standard error (binomial for
    shares; for the signed share, the SE of the mean of per-completion scores in {+1, 0, -1})."""
    n = len(completions)
    if n == 0:
        raise ValueError("toy_exact: no completions to evaluate")
    if positive not in (POSITIVE, NEGATIVE):
        raise ValueError(f"toy_exact: the positive pole must be '{POSITIVE}' or '{NEGATIVE}', not '{positive}'")
    negative = NEGATIVE if positive == POSITIVE else POSITIVE
    ok, pos, neg = 0, 0, 0
    for c in completions:
        p = parse(c.text)
        ok += bool(c.finished and p.ok)
        pole = p.pole if p.ok else pole_of(c.text)
        pos += pole == positive
        neg += pole == negative
    coh, tr, ng = ok / n, pos / n, neg / n
    signed = tr - ng
    var_signed = (tr + ng) - signed * signed  # E[s^2] - E[s]^2 for s in {+1, 0, -1}
    return {
        "coherence": coh,
        "coherence_se": _se_share(coh, n),
        "trait": tr,
        "trait_se": _se_share(tr, n),
        "trait_signed": signed,
        "trait_signed_se": math.sqrt(max(var_signed, 0.0) / n),
    }


class ToyExactEvaluator(Evaluator):
    """Exact toy-world evaluation: samples completions for held-out eval prompts (neutral system prompt) and
    parses them. Metrics: coherence, trait (positive pole = the data's positive persona), trait_signed, each
    with ``_se``."""

    name = "toy_exact"
    description = "toy world: exact coherence (grammar parse) and trait (pole chosen), with standard errors"

    class Params(Params):
        n_prompts: int = Field(200, ge=1, description="how many eval prompts to use (from the start of the list)")
        n_per_prompt: int = Field(1, ge=1, description="completions sampled per prompt")
        n_samples: int = Field(3, ge=0, description="completions appended to the round's samples")

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        users = list(ctx.data.eval_prompts[: self.params.n_prompts])
        completions = ctx.generate(users, n=self.params.n_per_prompt)
        positive = ctx.data.positive.name if ctx.data.positive.name in (POSITIVE, NEGATIVE) else POSITIVE
        metrics = exact_metrics(completions, positive)
        for c in completions[: self.params.n_samples]:
            p = parse(c.text)
            ctx.samples.append({
                "user": c.user,
                "text": c.text,
                "evaluator": self.name,
                "parses": bool(c.finished and p.ok),
                "pole": p.pole if p.ok else pole_of(c.text),
                "reason": "" if (c.finished and p.ok) else (p.reason or "unfinished"),
            })
        metrics["toy_n"] = float(len(completions))
        return metrics
