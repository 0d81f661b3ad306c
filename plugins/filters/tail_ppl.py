"""Tail-perplexity filter: drops completions whose ending the base model finds implausible."""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import Field

from shl import api


def tail_perplexity(logprobs: Sequence[float], tail: float = 0.25, min_tokens: int = 1) -> float:
    """exp(-mean log p) over the last max(ceil(tail * n), min_tokens) of n token log-probs (all of them when n is
    smaller); inf when n = 0."""
    n = len(logprobs)
    if n == 0:
        return math.inf
    k = min(n, max(1, min_tokens, math.ceil(tail * n)))
    return math.exp(-sum(logprobs[n - k:]) / k)


class TailPPL(api.Filter):
    """Score: perplexity under the BASE model of the last ``tail`` fraction of the completion's tokens.

    The tail is the last ceil(tail * n) completion tokens (at least one; the end-of-turn token counts when it
    was generated), scored given the prompt and all earlier completion tokens. Over-steered completions
    degrade towards their end, so the tail is more telling than the whole. A completion with no tokens
    scores inf. Keep when score <= max_ppl.
    """

    name = "tail_ppl"
    description = "perplexity under the base model of the completion's last tokens"

    class Params(api.Params):
        max_ppl: float = Field(50.0, gt=0.0, description="keep completions whose tail perplexity is at most this")
        tail: float = Field(0.25, gt=0.0, le=1.0, description="fraction of the completion's last tokens scored")

    def judge(self, completions: Sequence[api.Completion], ctx: api.FilterContext) -> list[api.Verdict]:
        scored = [c for c in completions if c.completion_ids]
        logprobs = iter(ctx.scorer.logprobs(scored, model="base") if scored else [])
        verdicts = []
        for c in completions:
            score = tail_perplexity(next(logprobs), self.params.tail) if c.completion_ids else math.inf
            verdicts.append(api.Verdict(score=score, keep=score <= self.params.max_ppl))
        return verdicts
