"""Filters, and what filters and evaluators exchange with the engine: completions, verdicts, the scorer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from .component import Component

if TYPE_CHECKING:  # pragma: no cover
    from .data import SteeringData


@dataclass
class Completion:
    """One generated completion, as filters and evaluators see it.

    ``prompt_ids`` is the rendered chat prompt (system + user, ending at the assistant turn), tokenised alone;
    ``completion_ids`` the generated tokens (end-of-turn token included when the model produced it),
    ``text`` the decoded completion without special tokens, ``user`` the user turn's raw text,
    ``finished`` whether generation ended with an end-of-turn token (vs hitting max_new_tokens).
    """

    user: str
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finished: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A filter's judgement of one completion: a score (documented per filter) and a keep vote."""

    score: float
    keep: bool


class Scorer:
    """Scores token sequences under a model state; handed to filters and evaluators by the engine.

    Two model states: ``"base"`` (all adapters off, no steering) and ``"student"``, the student in its CURRENT
    state: its adapters, and the steering vector when the engine is evaluating the steered point (the state
    ``EvalContext.generate(model="student")`` samples from). Filters run with steering paused, so there
    ``"student"`` is the unsteered student. Prompt and completion are tokenised apart, then concatenated.
    Both methods are batched.
    """

    def logprobs(self, completions: Sequence[Completion], model: str = "base") -> list[list[float]]:
        """Per completion, the log-probabilities (float, no temperature) of its completion tokens given its
        prompt and the completion tokens before them, under ``model``."""
        raise NotImplementedError

    def token_probs(
        self,
        completions: Sequence[Completion],
        positions: Sequence[Sequence[int]],
        token_ids: Sequence[int],
        model: str = "student",
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> list[list[list[float]]]:
        """The SAMPLER's next-token probabilities of chosen tokens at chosen completion positions.

        ``out[i][k][m]`` is the probability that sampling (softmax of the logits divided by ``temperature``,
        then cut to the top-``top_p`` nucleus exactly as transformers' ``TopPLogitsWarper`` does) picks
        ``token_ids[m]`` as completion token number ``positions[i][k]`` of ``completions[i]``, given its prompt
        and ``completion_ids[:positions[i][k]]``, under ``model``. A position may equal
        ``len(completion_ids)`` (the distribution after the last token); build a ``Completion`` with the prefix
        you want to ask about any other continuation. The defaults (temperature 1, top-p 1, the current
        student) are what ``EvalContext.generate`` samples with, so these are exactly the probabilities the
        evaluation's completions were drawn from (up to float rounding).
        Scorers that cannot provide it raise ``NotImplementedError``.
        """
        raise NotImplementedError


@dataclass
class FilterContext:
    """What a filter may read besides the completions: a scorer, the tokenizer, and the steering data."""

    scorer: Scorer
    tokenizer: Any
    data: "SteeringData"


class Filter(Component):
    """Scores every completion and votes keep/drop. Votes of all filters in a chain are ANDed.

    ``judge`` returns one ``Verdict`` per completion, in order. Filters see all completions at once so they
    can batch model calls.
    """

    family: ClassVar[str] = "filter"

    def judge(self, completions: Sequence[Completion], ctx: FilterContext) -> list[Verdict]:
        raise NotImplementedError
