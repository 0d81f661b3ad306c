"""Generic coherence evaluator: tail perplexity under the base model plus n-gram repetition."""

from __future__ import annotations

import math
import statistics
from typing import Optional

from pydantic import Field

from shl import api

from ..filters.repetition import loop_share, repetition_score, words_of
from ..filters.tail_ppl import tail_perplexity


def distinct_bigrams(texts: list[str]) -> float:
    """Distinct word bigrams over all texts / total word bigrams (0 when there are none)."""
    grams = [g for t in texts for g in zip(words_of(t), words_of(t)[1:])]
    return len(set(grams)) / len(grams) if grams else 0.0


class Coherence(api.Evaluator):
    """Share of the student's unsteered completions that are coherent.

    The student writes one completion (neutral system prompt) for each of the first ``n_prompts`` held-out
    eval prompts (``key="answers"``: the same completions ``persona_logodds`` reads, when it uses as many
    prompts). A completion is coherent when all of these hold:

    - it has at least ``min_answer_words`` words (an answer that is only the end-of-turn token is not coherent);
    - its tail perplexity under the BASE model (the last ``tail`` fraction of its tokens, at least
      ``min_tail_tokens`` of them, as in the ``tail_ppl`` filter) is <= the threshold: ``max_ppl`` when given,
      else calibrated to the model, the ``calibration_quantile`` of the tail perplexities of the base model's own
      answers to ``n_calibration`` prompts of the generation pool (never the eval prompts), sampled once per run;
    - its n-gram repetition score (as in the ``repetition`` filter) is <= ``max_rep``;
    - its ``loop_share`` (the share of its word 4-grams that repeat an earlier one: loops of any period) is
      <= ``max_loop``.

    Metrics: ``coherence`` (that share, in [0, 1]), ``coherence_se`` (binomial standard error sqrt(p(1-p)/n)),
    ``coherence_max_ppl`` (the threshold used), ``tail_ppl`` (median tail perplexity), ``rep`` (mean
    repetition score), ``loop`` (mean loop share) and ``distinct2`` (distinct word bigrams / all word bigrams,
    pooled over the completions).
    """

    name = "coherence"
    description = "share of unsteered completions the base model finds plausible, without loops, not empty"
    metrics = ("coherence", "coherence_se", "coherence_max_ppl", "tail_ppl", "distinct2", "rep", "loop")

    class Params(api.Params):
        n_prompts: int = Field(64, ge=1, le=100_000, description="held-out eval prompts used (the first n)")
        max_ppl: Optional[float] = Field(None, gt=0.0, description="highest tail perplexity still counted as "
                                         "coherent; null = calibrated to the base model (see calibration_quantile)")
        calibration_quantile: float = Field(0.99, gt=0.0, le=1.0, description="with max_ppl null: the threshold is "
                                            "this quantile of the base model's own answers' tail perplexities")
        n_calibration: int = Field(64, ge=8, le=100_000, description="with max_ppl null: base-model answers to "
                                   "generation-pool prompts that calibrate the threshold (once per run; several "
                                   "per prompt when the pool is smaller)")
        max_rep: float = Field(0.5, ge=0.0, le=1.0, description="highest repetition score still counted as coherent")
        max_loop: float = Field(0.25, ge=0.0, le=1.0, description="highest share of repeated word 4-grams still "
                                "counted as coherent")
        tail: float = Field(0.25, gt=0.0, le=1.0, description="fraction of the completion's last tokens scored")
        min_tail_tokens: int = Field(8, ge=1, le=100_000, description="score at least this many last tokens (all "
                                     "of a shorter completion), not the end-of-turn token alone")
        min_words: int = Field(4, ge=1, le=10_000, description="completions with fewer words score 0 for word repetition")
        min_answer_words: int = Field(1, ge=0, le=10_000, description="completions with fewer words are incoherent")

    def _tail_ppls(self, ctx: api.EvalContext, completions: list[api.Completion]) -> list[float]:
        p = self.params
        scored = [c for c in completions if c.completion_ids]
        logprobs = iter(ctx.scorer.logprobs(scored, model="base") if scored else [])
        return [tail_perplexity(next(logprobs), p.tail, p.min_tail_tokens) if c.completion_ids else math.inf
                for c in completions]

    def threshold(self, ctx: api.EvalContext) -> float:
        """``max_ppl``, or the calibrated threshold (computed on the first call of a run, then cached)."""
        p = self.params
        if p.max_ppl is not None:
            return p.max_ppl
        if "max_ppl" not in ctx.cache:
            eval_set = set(ctx.data.eval_prompts)
            pool = [u for u in ctx.data.prompts if u not in eval_set][: p.n_calibration]
            if not pool:
                raise ValueError("coherence: calibrating max_ppl needs generation-pool prompts that are not eval "
                                 "prompts; the data has none (set max_ppl)")
            per_prompt = -(-p.n_calibration // len(pool))  # a small pool: several answers per prompt
            answers = ctx.generate(pool, n=per_prompt, model="base", key="coherence-calibration")
            ppls = sorted(x for x in self._tail_ppls(ctx, answers) if math.isfinite(x))
            if not ppls:
                raise ValueError("coherence: the base model's calibration answers are all empty (set max_ppl)")
            # the empirical quantile (the smallest value with at least that share of the answers at or below it)
            ctx.cache["max_ppl"] = ppls[min(len(ppls), math.ceil(p.calibration_quantile * len(ppls))) - 1]
        return ctx.cache["max_ppl"]

    def _coherent(self, c: api.Completion, ppl: float, rep: float, loop: float, max_ppl: float) -> bool:
        p = self.params
        return len(words_of(c.text)) >= p.min_answer_words and ppl <= max_ppl and rep <= p.max_rep and loop <= p.max_loop

    def judge_coherent(self, completions, ctx, cache):
        """The same criteria as ``evaluate`` per completion; None before the threshold is known (calibrated
        thresholds come from the run's first evaluation)."""
        max_ppl = self.params.max_ppl if self.params.max_ppl is not None else cache.get("max_ppl")
        if max_ppl is None:
            return None
        ppls = self._tail_ppls(ctx, list(completions))
        return [self._coherent(c, ppl, repetition_score(c.text, self.params.min_words), loop_share(c.text), max_ppl)
                for c, ppl in zip(completions, ppls)]

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        p = self.params
        users = list(ctx.data.eval_prompts[: p.n_prompts])
        if not users:
            raise ValueError("coherence: the data has no eval_prompts")
        max_ppl = self.threshold(ctx)
        completions = ctx.generate(users, key="answers")  # shared with other evaluators reading the same answers
        ppls = self._tail_ppls(ctx, completions)
        reps = [repetition_score(c.text, p.min_words) for c in completions]
        loops = [loop_share(c.text) for c in completions]
        ok = [self._coherent(c, ppl, rep, loop, max_ppl) for c, ppl, rep, loop in zip(completions, ppls, reps, loops)]
        n = len(completions)
        share = sum(ok) / n
        for c, ppl, rep, loop in list(zip(completions, ppls, reps, loops))[:2]:
            ctx.samples.append(
                {"user": c.user, "text": c.text, "evaluator": self.name, "tail_ppl": ppl, "rep": rep, "loop": loop}
            )
        return {
            "coherence": share,
            "coherence_se": math.sqrt(share * (1.0 - share) / n),
            "coherence_max_ppl": float(max_ppl),
            "tail_ppl": float(statistics.median(ppls)),
            "distinct2": distinct_bigrams([c.text for c in completions]),
            "rep": sum(reps) / n,
            "loop": sum(loops) / n,
        }
