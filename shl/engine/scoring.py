"""Batched log-probabilities of completion tokens under the base model or the student (never steered)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Sequence

from ..api import Completion, Scorer
from .batching import length_batches, pad_id, right_pad


def completion_logprobs(model: Any, tokenizer: Any, completions: Sequence[Completion], batch_size: int) -> list[list[float]]:
    """log p(completion token | prompt, previous completion tokens), float32, one list per completion."""
    import torch

    device = next(model.parameters()).device
    out: list[list[float]] = [[] for _ in completions]
    seqs = [list(c.prompt_ids) + list(c.completion_ids) for c in completions]
    for idx in length_batches([len(s) for s in seqs], batch_size):
        ids, mask = right_pad([seqs[i] for i in idx], pad_id(tokenizer), device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        for row, i in enumerate(idx):
            n_p, n_c = len(completions[i].prompt_ids), len(completions[i].completion_ids)
            if n_c == 0:
                continue
            lg = logits[row, n_p - 1 : n_p - 1 + n_c].float()
            tgt = ids[row, n_p : n_p + n_c]
            lp = lg.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(lg, dim=-1)
            out[i] = lp.tolist()
    return out


class EngineScorer(Scorer):
    """The engine's scorer: switches adapters off for "base" and pauses steering for both."""

    def __init__(self, model: Any, tokenizer: Any, adapters: Any, steerer: Any = None, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.adapters = adapters
        self.steerer = steerer
        self.batch_size = batch_size

    def logprobs(self, completions: Sequence[Completion], model: str = "base") -> list[list[float]]:
        if model not in ("base", "student"):
            raise ValueError(f"scorer model must be 'base' or 'student', got {model!r}")
        pause = self.steerer.paused() if self.steerer is not None else nullcontext()
        state = self.adapters.disabled() if model == "base" else nullcontext()
        with pause, state:
            return completion_logprobs(self.adapters.model, self.tokenizer, completions, self.batch_size)
