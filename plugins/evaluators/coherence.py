"""Generic coherence evaluator: span perplexities under the base model (calibrated), loops and emptiness."""

from __future__ import annotations

import math
import statistics
from typing import Optional

from pydantic import Field

from shl import api

from ..filters.repetition import loop_share, repetition_score, words_of
from .spans import content_logprobs, head_and_span_ppl


def distinct_bigrams(texts: list[str]) -> float:
    """Distinct word bigrams over all texts / total word bigrams (0 when there are none)."""
    grams = [g for t in texts for g in zip(words_of(t), words_of(t)[1:])]
    return len(set(grams)) / len(grams) if grams else 0.0


class Coherence(api.Evaluator):
    """Share of the student's unsteered completions that are coherent.

    The student writes one completion (neutral system prompt) for each of the first ``n_prompts`` held-out
    eval prompts (``key="answers"``: the same completions ``persona_logodds`` reads, when it uses as many
    prompts). The BASE model scores each completion's content tokens (the end-of-turn token left out). A
    completion is coherent when all of these hold:

    - it has at least ``min_answer_words`` words (an answer that is only the end-of-turn token is not coherent);
    - its head perplexity (of its first ``window`` tokens: where a derailed answer shows first) is <=
      ``max_head_ppl``, and its span perplexity (the highest perplexity of any ``window`` consecutive tokens:
      derailing anywhere, start, middle or end; a shorter answer is one span) is <= ``max_span_ppl``. Each
      threshold, when null, is calibrated to the model: the ``calibration_quantile`` of the same score over the
      base model's own answers to ``n_calibration`` prompts of the generation pool (never the eval prompts),
      sampled with the same random numbers in every run and kept across runs (``EvalContext.lasting``);
    - its n-gram repetition score (as in the ``repetition`` filter) is <= ``max_rep``;
    - its ``loop_share`` (the share of its word 4-grams that repeat an earlier one: loops of any period, which a
      base model reads with low perplexity) is <= ``max_loop``.

    Metrics: ``coherence`` (that share, in [0, 1]), ``coherence_se`` (binomial standard error sqrt(p(1-p)/n)),
    ``coherence_max_head_ppl`` and ``coherence_max_span_ppl`` (the thresholds used), ``head_ppl`` and
    ``span_ppl`` (medians over the completions), ``rep`` (mean repetition score), ``loop`` (mean loop share)
    and ``distinct2`` (distinct word bigrams / all word bigrams, pooled over the completions).
    Cost per call: one generation of ``n_prompts`` answers (shared with ``persona_logodds``) and one base-model
    scoring of them; once per model, data and params (then kept on disk), ``n_calibration`` base-model answers
    (the sampler's own log-probabilities score them).
    """

    name = "coherence"
    description = "share of unsteered completions without an implausible span, loops or emptiness (calibrated)"
    metrics = ("coherence", "coherence_se", "coherence_max_head_ppl", "coherence_max_span_ppl", "head_ppl",
               "span_ppl", "distinct2", "rep", "loop")

    class Params(api.Params):
        n_prompts: int = Field(64, ge=1, le=100_000, description="held-out eval prompts used (the first n)")
        window: int = Field(8, ge=1, le=100_000, description="tokens per span (head and span perplexities)")
        max_head_ppl: Optional[float] = Field(None, gt=0.0, description="highest perplexity of the first window "
                                              "tokens still counted as coherent; null = calibrated")
        max_span_ppl: Optional[float] = Field(None, gt=0.0, description="highest perplexity of any window "
                                              "consecutive tokens still counted as coherent; null = calibrated")
        calibration_quantile: float = Field(0.99, gt=0.0, le=1.0, description="a calibrated threshold is this "
                                            "quantile of the base model's own answers' scores")
        n_calibration: int = Field(64, ge=8, le=100_000, description="base-model answers to generation-pool "
                                   "prompts that calibrate the thresholds (once per run; several per prompt when "
                                   "the pool is smaller)")
        max_rep: float = Field(0.5, ge=0.0, le=1.0, description="highest repetition score still counted as coherent")
        max_loop: float = Field(0.25, ge=0.0, le=1.0, description="highest share of repeated word 4-grams still "
                                "counted as coherent")
        min_words: int = Field(4, ge=1, le=10_000, description="completions with fewer words score 0 for word repetition")
        min_answer_words: int = Field(1, ge=0, le=10_000, description="completions with fewer words are incoherent")

    def _ppls(self, ctx: api.EvalContext, completions: list[api.Completion]) -> list[tuple[float, float]]:
        """(head, span) perplexity per completion under the base model; (inf, inf) with no content token."""
        scored = [c for c in completions if c.completion_ids]
        logprobs = iter(ctx.scorer.logprobs(scored, model="base") if scored else [])
        return [head_and_span_ppl(content_logprobs(c, next(logprobs)), self.params.window) if c.completion_ids
                else (math.inf, math.inf) for c in completions]

    def thresholds(self, ctx: api.EvalContext) -> tuple[float, float]:
        """(max head ppl, max span ppl): the given ones, the others calibrated. The calibration samples with the
        same random numbers whatever the run seed (``per_seed=False``), so it is a property of the model, the data
        and these params: it is kept in ``ctx.lasting`` and later runs (other seeds and arms too) reuse it."""
        p = self.params
        if p.max_head_ppl is not None and p.max_span_ppl is not None:
            return p.max_head_ppl, p.max_span_ppl
        if "calibrated" not in ctx.cache:
            kept = ctx.lasting.get("calibrated")
            if isinstance(kept, list) and len(kept) == 2 and all(isinstance(x, (int, float)) for x in kept):
                ctx.cache["calibrated"] = (float(kept[0]), float(kept[1]))
            else:
                ctx.cache["calibrated"] = self._calibrate(ctx)
                ctx.lasting["calibrated"] = list(ctx.cache["calibrated"])
        return self._limits(ctx.cache["calibrated"])

    def _limits(self, calibrated: tuple[float, float]) -> tuple[float, float]:
        """The given thresholds, the calibrated ones where none is given."""
        p = self.params
        return (calibrated[0] if p.max_head_ppl is None else p.max_head_ppl,
                calibrated[1] if p.max_span_ppl is None else p.max_span_ppl)

    def _calibrate(self, ctx: api.EvalContext) -> tuple[float, float]:
        p = self.params
        eval_set = set(ctx.data.eval_prompts)
        pool = [u for u in ctx.data.prompts if u not in eval_set][: p.n_calibration]
        if not pool:
            raise ValueError("coherence: calibrating its thresholds needs generation-pool prompts that are not "
                             "eval prompts; the data has none (set max_head_ppl and max_span_ppl)")
        per_prompt = -(-p.n_calibration // len(pool))  # a small pool: several answers per prompt
        answers = ctx.generate(pool, n=per_prompt, model="base", key="coherence-calibration", per_seed=False)
        scores = [s for s in self._ppls(ctx, answers) if math.isfinite(s[0])]
        if not scores:
            raise ValueError("coherence: the base model's calibration answers are all empty "
                             "(set max_head_ppl and max_span_ppl)")
        return quantile([s[0] for s in scores], p.calibration_quantile), quantile([s[1] for s in scores],
                                                                                   p.calibration_quantile)

    def _coherent(self, c: api.Completion, ppls: tuple[float, float], rep: float, loop: float,
                  limits: tuple[float, float]) -> bool:
        p = self.params
        return (len(words_of(c.text)) >= p.min_answer_words and ppls[0] <= limits[0] and ppls[1] <= limits[1]
                and rep <= p.max_rep and loop <= p.max_loop)

    def judge_coherent(self, completions, ctx, cache):
        """The same criteria as ``evaluate`` per completion; None before the thresholds are known (calibrated
        thresholds come from the run's first evaluation)."""
        p = self.params
        if (p.max_head_ppl is None or p.max_span_ppl is None) and "calibrated" not in cache:
            return None
        limits = self._limits(cache.get("calibrated", (math.inf, math.inf)))
        ppls = self._ppls(ctx, list(completions))
        return [self._coherent(c, pp, repetition_score(c.text, p.min_words), loop_share(c.text), limits)
                for c, pp in zip(completions, ppls)]

    def evaluate(self, ctx: api.EvalContext) -> dict[str, float]:
        p = self.params
        users = list(ctx.data.eval_prompts[: p.n_prompts])
        if not users:
            raise ValueError("coherence: the data has no eval_prompts")
        limits = self.thresholds(ctx)
        completions = ctx.generate(users, key="answers")  # shared with other evaluators reading the same answers
        ppls = self._ppls(ctx, completions)
        reps = [repetition_score(c.text, p.min_words) for c in completions]
        loops = [loop_share(c.text) for c in completions]
        ok = [self._coherent(c, pp, rep, loop, limits) for c, pp, rep, loop in zip(completions, ppls, reps, loops)]
        n = len(completions)
        share = sum(ok) / n
        for c, pp, rep, loop in list(zip(completions, ppls, reps, loops))[:2]:
            ctx.samples.append({"user": c.user, "text": c.text, "evaluator": self.name, "head_ppl": pp[0],
                                "span_ppl": pp[1], "rep": rep, "loop": loop})
        return {
            "coherence": share,
            "coherence_se": math.sqrt(share * (1.0 - share) / n),
            "coherence_max_head_ppl": float(limits[0]),
            "coherence_max_span_ppl": float(limits[1]),
            "head_ppl": float(statistics.median(pp[0] for pp in ppls)),
            "span_ppl": float(statistics.median(pp[1] for pp in ppls)),
            "distinct2": distinct_bigrams([c.text for c in completions]),
            "rep": sum(reps) / n,
            "loop": sum(loops) / n,
        }


def quantile(values: list[float], q: float) -> float:
    """The empirical quantile: the smallest value with at least a share q of the values at or below it."""
    xs = sorted(values)
    return xs[min(len(xs), max(1, math.ceil(q * len(xs)))) - 1]
