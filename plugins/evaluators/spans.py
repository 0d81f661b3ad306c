"""Per-completion perplexities of spans of a completion's content tokens, as the coherence evaluator reads them."""

from __future__ import annotations

import math
from typing import Sequence

from shl import api


def content_logprobs(c: api.Completion, logprobs: Sequence[float]) -> list[float]:
    """The log-probs of the completion's content tokens: its end-of-turn token (the last token of a finished
    completion) left out, since a likely end-of-turn token would lower the perplexity of a short answer."""
    lp = list(logprobs)
    return lp[:-1] if c.finished and lp else lp


def head_and_span_ppl(logprobs: Sequence[float], window: int) -> tuple[float, float]:
    """(perplexity of the first ``window`` tokens, the highest perplexity of any ``window`` consecutive tokens);
    a shorter text is one span; (inf, inf) for no tokens."""
    n = len(logprobs)
    if n == 0:
        return math.inf, math.inf
    w = min(window, n)
    sums = [sum(logprobs[:w])]
    for i in range(w, n):
        sums.append(sums[-1] + logprobs[i] - logprobs[i - w])
    return math.exp(-sums[0] / w), math.exp(-min(sums) / w)
