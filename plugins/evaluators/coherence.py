"""Generic coherence evaluator: tail perplexity under the base model plus n-gram repetition."""

from __future__ import annotations

import math
import statistics

from pydantic import Field

from shl import api

from ..filters.repetition import repetition_score, words_of
from ..filters.tail_ppl import tail_perplexity


def distinct_bigrams(texts: list[str]) -> float:
    """Distinct word bigrams over all texts / total word bigrams (0 when there are none)."""
    grams = [g for t in texts for g in zip(words_of(t), words_of(t)[1:])]
    return len(set(grams)) / len(grams) if grams else 0.0


class Coherence(api.Evaluator):
    """Share of the student's unsteered completions that are coherent.

    The student writes one completion (neutral system prompt) for each of the first ``n_prompts`` held-out
    eval prompts (``key="answers"``: the same completions ``persona_logodds`` reads, when it uses as many
    prompts). A completion is coherent when its tail perplexity under the BASE model (as in the
    ``tail_ppl`` filter) is <= max_ppl AND its n-gram repetition score (as in the ``repetition`` filter) is
    <= max_rep. Metrics: ``coherence`` (that share, in [0, 1]), ``coherence_se`` (binomial standard error
    sqrt(p(1-p)/n)), ``tail_ppl`` (median tail perplexity), ``rep`` (mean repetition score) and ``distinct2``
    (distinct word bigrams / all word bigrams, pooled over the completions).
    """

    name = "coherence"
    description = "share of unsteered completions with low base-model tail perplexity and no n-gram loops"
    metrics = ("coherence", "coherence_se", "tail_ppl", "distinct2", "rep")

    class Params(api.Params):
        n_prompts: int = Field(64, ge=1, le=100_000, description="held-out eval prompts used (the first n)")
        max_ppl: float = Field(50.0, gt=0.0, description="highest tail perplexity still counted as coherent")
        max_rep: float = Field(0.5, ge=0.0, le=1.0, description="highest repetition score still counted as coherent")
        tail: float = Field(0.25, gt=0.0, le=1.0, description="fraction of the completion's last tokens scored")
        min_words: int = Field(4, ge=1, le=10_000, description="completions with fewer words score 0 for word repetition")

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        p = self.params
        users = list(ctx.data.eval_prompts[: p.n_prompts])
        if not users:
            raise ValueError("coherence: the data has no eval_prompts")
        completions = ctx.generate(users, key="answers")  # shared with other evaluators reading the same answers
        scored = [c for c in completions if c.completion_ids]
        logprobs = iter(ctx.scorer.logprobs(scored, model="base") if scored else [])
        ppls = [tail_perplexity(next(logprobs), p.tail) if c.completion_ids else math.inf for c in completions]
        reps = [repetition_score(c.text, p.min_words) for c in completions]
        ok = [ppl <= p.max_ppl and rep <= p.max_rep for ppl, rep in zip(ppls, reps)]
        n = len(completions)
        share = sum(ok) / n
        for c, ppl, rep in list(zip(completions, ppls, reps))[:2]:
            ctx.samples.append(
                {"user": c.user, "text": c.text, "evaluator": self.name, "tail_ppl": ppl, "rep": rep}
            )
        return {
            "coherence": share,
            "coherence_se": math.sqrt(share * (1.0 - share) / n),
            "tail_ppl": float(statistics.median(ppls)),
            "distinct2": distinct_bigrams([c.text for c in completions]),
            "rep": sum(reps) / n,
        }
