"""Boilerplate filter: drops refusals and assistant-identity disclaimers."""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from shl import api

DEFAULT_PHRASES = [
    "as an ai",
    "i'm sorry, but",
    "i am sorry, but",
    "i cannot",
    "i can't help",
    "language model",
    "i am an assistant",
    "i'm an assistant",
]


def _norm(text: str) -> str:
    return text.lower().replace("\u2019", "'")


class Boilerplate(api.Filter):
    """Score: 1.0 if any phrase occurs in the completion (case-insensitive substring, curly apostrophes read
    as straight ones), else 0.0. Keep when score == 0.
    """

    name = "boilerplate"
    description = "refusal / AI-identity boilerplate phrases"

    class Params(api.Params):
        phrases: list[str] = Field(
            default_factory=lambda: list(DEFAULT_PHRASES),
            description="phrases that mark boilerplate (case-insensitive substrings)",
        )

    def judge(self, completions: Sequence[api.Completion], ctx: api.FilterContext) -> list[api.Verdict]:
        phrases = [_norm(p) for p in self.params.phrases if p]
        verdicts = []
        for c in completions:
            text = _norm(c.text)
            score = 1.0 if any(p in text for p in phrases) else 0.0
            verdicts.append(api.Verdict(score=score, keep=score == 0.0))
        return verdicts
