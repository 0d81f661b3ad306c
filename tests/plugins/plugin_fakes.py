"""Fakes for plugin tests: a Scorer subclass with fixed log-probs (the documented plugin contract)."""

from __future__ import annotations

from typing import Callable, Sequence

from shl import api


class FixedScorer(api.Scorer):
    """Returns ``fn(completion, model)`` as the log-probs of each completion; records every call."""

    def __init__(self, fn: Callable[[api.Completion, str], list[float]]):
        self.fn = fn
        self.calls: list[tuple[str, list[api.Completion]]] = []

    def logprobs(self, completions: Sequence[api.Completion], model: str = "base") -> list[list[float]]:
        self.calls.append((model, list(completions)))
        return [self.fn(c, model) for c in completions]


def completion(text: str = "", ids: Sequence[int] = (), user: str = "u", finished: bool = True, **meta) -> api.Completion:
    return api.Completion(user=user, prompt_ids=[1, 2], completion_ids=list(ids), text=text, finished=finished, meta=meta)
