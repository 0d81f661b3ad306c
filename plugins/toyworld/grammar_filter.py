"""The ``grammar`` filter: the toy world's oracle. Keeps exactly the completions that parse under the grammar."""

from __future__ import annotations

from typing import Sequence

from shl.api import Completion, Filter, FilterContext, Params, Verdict

from .parser import parse


def completion_parses(c: Completion) -> bool:
    """A completion is grammatical when it ended with the end-of-turn token and its text parses."""
    return bool(c.finished) and parse(c.text).ok


class GrammarFilter(Filter):
    """Score 1.0 if the completion parses under the toy world's grammar (and finished), else 0.0; keep = parses.

    Only meaningful for the toy world; it is ground truth, so filter ablations can compare realistic filters
    with the oracle."""

    name = "grammar"
    description = "toy world oracle: keep completions that parse under the grammar"

    class Params(Params):
        pass

    def judge(self, completions: Sequence[Completion], ctx: FilterContext) -> list[Verdict]:
        out = []
        for c in completions:
            ok = completion_parses(c)
            out.append(Verdict(score=1.0 if ok else 0.0, keep=ok))
        return out
