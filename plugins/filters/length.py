"""Length filter."""

from __future__ import annotations

from typing import Sequence

from pydantic import Field, model_validator

from shl import api


class Length(api.Filter):
    """Score: the number of completion tokens (``len(completion_ids)``, end-of-turn token included when generated).

    Keep when min_tokens <= score <= max_tokens and, with require_finished, the completion ended with an
    end-of-turn token rather than at max_new_tokens.
    """

    name = "length"
    description = "number of completion tokens within bounds (optionally: generation finished)"

    class Params(api.Params):
        min_tokens: int = Field(4, ge=0, le=1_000_000, description="fewest completion tokens kept")
        max_tokens: int = Field(1_000_000, ge=0, le=1_000_000, description="most completion tokens kept")
        require_finished: bool = Field(False, description="also drop completions cut off at max_new_tokens")

        @model_validator(mode="after")
        def _bounds(self):
            if self.min_tokens > self.max_tokens:
                raise ValueError(f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})")
            return self

    def judge(self, completions: Sequence[api.Completion], ctx: api.FilterContext) -> list[api.Verdict]:
        p = self.params
        verdicts = []
        for c in completions:
            n = len(c.completion_ids)
            keep = p.min_tokens <= n <= p.max_tokens and (c.finished or not p.require_finished)
            verdicts.append(api.Verdict(score=float(n), keep=keep))
        return verdicts
