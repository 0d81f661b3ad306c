"""Narration filter: drops completions that talk about the trait instead of acting it."""

from __future__ import annotations

from typing import Sequence

from pydantic import Field

from shl import api

from .repetition import words_of


def narration_share(text: str, vocabulary: set[str]) -> float:
    """Share of the text's words (see ``words_of``) that are in ``vocabulary``; 0 for a text with no words."""
    words = words_of(text)
    if not words:
        return 0.0
    return sum(w in vocabulary for w in words) / len(words)


class Narration(api.Filter):
    """Score: share of the completion's words that are narration markers.

    Markers are the data's ``narration_words`` plus ``extra_words``; words are compared lower-cased with
    punctuation stripped (``words_of``). A completion with no words scores 0. Keep when score <= max_share.
    """

    name = "narration"
    description = "share of words that name the trait (talking about it instead of acting it)"

    class Params(api.Params):
        max_share: float = Field(0.05, ge=0.0, le=1.0, description="keep completions whose marker share is at most this")
        extra_words: list[str] = Field(default_factory=list, description="markers added to the data's narration_words")

    def judge(self, completions: Sequence[api.Completion], ctx: api.FilterContext) -> list[api.Verdict]:
        vocabulary = {w for entry in [*ctx.data.narration_words, *self.params.extra_words] for w in words_of(entry)}
        scores = [narration_share(c.text, vocabulary) for c in completions]
        return [api.Verdict(score=s, keep=s <= self.params.max_share) for s in scores]
