"""Running a filter chain: every filter scores and votes on every completion; votes are ANDed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..api import Completion, Filter, FilterContext
from ..errors import RunError


@dataclass
class FilterResult:
    keep: list[bool]
    scores: dict[str, list[float]] = field(default_factory=dict)
    votes: dict[str, list[bool]] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return sum(self.keep)

    def drops(self) -> dict[str, int]:
        """Per filter: how many completions it voted to drop (a completion may be dropped by several)."""
        return {name: sum(not v for v in votes) for name, votes in self.votes.items()}

    def per_completion(self, i: int) -> dict[str, Any]:
        return {name: {"score": self.scores[name][i], "keep": self.votes[name][i]} for name in self.votes}


def run_filters(
    chain: Sequence[tuple[str, Filter]], completions: Sequence[Completion], ctx: FilterContext
) -> FilterResult:
    result = FilterResult(keep=[True] * len(completions))
    if not completions:
        return result
    for name, flt in chain:
        try:
            verdicts = flt.judge(completions, ctx)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(f"filter '{name}' raised {type(exc).__name__}: {exc}") from exc
        if len(verdicts) != len(completions):
            raise RunError(f"filter '{name}' returned {len(verdicts)} verdicts for {len(completions)} completions")
        key = name if name not in result.votes else f"{name}#{len(result.votes)}"
        result.scores[key] = [float(v.score) for v in verdicts]
        result.votes[key] = [bool(v.keep) for v in verdicts]
        result.keep = [k and bool(v.keep) for k, v in zip(result.keep, verdicts)]
    return result
