"""N-gram repetition filter: drops completions stuck in a loop."""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from pydantic import Field

from shl import api

NS = (2, 3, 4)
_WORD = re.compile(r"[\w']+")
_SPACE = re.compile(r"\s+")


def words_of(text: str) -> list[str]:
    """Lower-cased words: runs of letters, digits, underscores and apostrophes (punctuation dropped)."""
    return _WORD.findall(text.lower())


def top_share(seq: Sequence, n: int) -> float:
    """Share of the most common n-gram among all n-grams of ``seq`` (0 when it has none)."""
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    if not grams:
        return 0.0
    return Counter(grams).most_common(1)[0][1] / len(grams)


def repetition_score(text: str, min_words: int = 4, min_chars: int = 16) -> float:
    """max(word part, character part), each the max over n in (2, 3, 4) of ``top_share``.

    Word part: over ``words_of(text)``; 0 when the text has fewer than ``min_words`` words.
    Character part: over the lower-cased text with whitespace runs collapsed to one space and stripped;
    0 when that is shorter than ``min_chars`` characters.
    """
    words = words_of(text)
    word_part = max(top_share(words, n) for n in NS) if len(words) >= min_words else 0.0
    chars = _SPACE.sub(" ", text.lower()).strip()
    char_part = max(top_share(chars, n) for n in NS) if len(chars) >= min_chars else 0.0
    return max(word_part, char_part)


def loop_share(text: str, n: int = 4) -> float:
    """Share of the word n-grams of ``text`` that repeat an n-gram seen earlier in it (0 when it has none).

    Catches loops of any period: a 15-word sentence said 8 times scores about 7/8 (its every n-gram after the
    first pass repeats), where ``repetition_score`` (the largest single n-gram's share) gives about 1/15; fluent
    prose of a few dozen words scores 0 or close to it."""
    words = words_of(text)
    seen: set[tuple[str, ...]] = set()
    repeated = total = 0
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        total += 1
        repeated += gram in seen
        seen.add(gram)
    return repeated / total if total else 0.0


class Repetition(api.Filter):
    """Score: the largest share any single n-gram takes among all n-grams of its kind (see ``repetition_score``).

    For n in {2, 3, 4}, over word n-grams (lower-cased, punctuation dropped) and character n-grams (lower-cased,
    whitespace collapsed), the count of the most common n-gram divided by the number of n-grams; the score is
    the max over both kinds and all n. E.g. "a b a b a b": word 2-grams ab,ba,ab,ba,ab -> 3/5, 3-grams
    aba,bab,aba,bab -> 2/4, 4-grams abab,baba,abab -> 2/3; score 2/3. A text looping with a period of p words
    scores about 1/p. Keep when score <= max_share.
    """

    name = "repetition"
    description = "largest share of a single word or character 2/3/4-gram"

    class Params(api.Params):
        max_share: float = Field(0.5, ge=0.0, le=1.0, description="keep completions whose top n-gram share is at most this")
        min_words: int = Field(4, ge=1, le=100_000, description="completions with fewer words score 0 for the word part")
        min_chars: int = Field(16, ge=1, le=1_000_000, description="completions with fewer characters score 0 for the character part")

    def judge(self, completions: Sequence[api.Completion], ctx: api.FilterContext) -> list[api.Verdict]:
        p = self.params
        scores = [repetition_score(c.text, p.min_words, p.min_chars) for c in completions]
        return [api.Verdict(score=s, keep=s <= p.max_share) for s in scores]
