"""Evaluators: measure the current student and return float metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from .component import Component
from .filters import Completion, FilterContext, Scorer

if TYPE_CHECKING:  # pragma: no cover
    from .data import SteeringData


@dataclass
class EvalContext:
    """What an evaluator may use to measure the current student.

    ``generate(users, n=1, system=..., model="student")`` samples completions, batched, deterministic for the
    run's seed. ``model="student"`` is the model in its CURRENT state (the engine turns steering on for the
    "steered" point and off otherwise); ``model="base"`` is the base model (adapters and steering off).
    ``system`` defaults to the data's neutral system prompt (pass a persona's system prompt to condition).
    ``cache`` is a dict private to this evaluator that persists across the run's evaluations (e.g. for base
    model completions, which do not change between rounds). ``lasting`` is a dict private to this evaluator that
    persists across RUNS (JSON values only; on disk, see ``shl.engine.lasting``): every run with the same model,
    data, device, dtype, evaluator params and generation settings sees what an earlier one stored. Keep there only
    what depends on nothing else (never on the run seed, the round or the student): a calibration on the base
    model, sampled with ``generate(..., per_seed=False)``.
    ``render(user, system)`` returns the token ids of a rendered chat prompt (ending at the assistant turn), to
    build ``Completion`` objects for the scorer.
    ``scorer`` scores under "base" or "student" (the current state: steered at the steered point, like
    ``generate``); ``scorer.token_probs`` gives the probabilities ``generate`` sampled each token from.
    ``generate`` samples at temperature 1, top-p 1; its seeds depend on the run seed, the evaluator's name, the
    model and the call number only (not on the round or the arm), so every arm and round of a seed is evaluated
    on the same prompts with the same random numbers (common random numbers). ``generate(..., key="k")`` derives
    the seed from the run seed and ``k`` alone: two calls with the same key (say, the base model's answers and the
    student's) sample with the same random numbers, whichever model and call number, and within one evaluation
    every evaluator asking for the same users, system prompt, model and key gets the same completions, sampled
    once (``coherence`` and ``persona_logodds`` share their answers under ``key="answers"``); with
    ``per_seed=False`` (and a key) the random numbers depend on the key alone, the same in every run of every
    seed. ``seed`` is a per-(run seed,
    evaluator) integer (the same every round) for any extra randomness. ``tokenizer`` and ``data`` are the
    run's. ``round`` is the round of the metrics row (0: the base model); ``steered`` is True while the steered
    point is evaluated. Append a few completions worth reading to ``samples`` (dicts with at least "user" and "text"); the
    engine stores them with the round.
    """

    generate: Callable[..., list[Completion]]
    render: Callable[[str, "str | None"], list[int]]
    scorer: Scorer
    tokenizer: Any
    data: SteeringData
    seed: int
    round: int
    steered: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    lasting: dict[str, Any] = field(default_factory=dict)


class Evaluator(Component):
    """Measures the student. ``evaluate(ctx)`` returns a flat dict of float metrics.

    Key names are global: two evaluators in one config must not return the same key. The canonical keys are
    ``trait`` (higher = more of the positive persona) and ``coherence`` (higher = more coherent). Keys ending
    in ``_se`` are standard errors.
    """

    family: ClassVar[str] = "evaluator"
    metrics: ClassVar[tuple[str, ...] | None] = None
    """The metric keys ``evaluate()`` returns (``_se`` keys may be listed or are implied by their metric), so a
    comparison on a metric no evaluator produces is rejected before anything runs. None = undeclared, not
    checked."""

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

    def judge_coherent(self, completions: Sequence[Completion], ctx: FilterContext,
                       cache: dict[str, Any]) -> list[bool] | None:
        """Optional: per completion, whether this evaluator's own coherence measure counts it as coherent.

        The engine applies it to every round's steered completions, after the filters voted, and records the
        coherent share of the kept and of the dropped ones (``filter_kept_coherent``,
        ``filter_dropped_coherent``): the filter gate of the report (``shl_analysis.gates``). The first evaluator
        of a config that answers is used. ``ctx.scorer`` scores under the base model (steering paused);
        ``cache`` is this evaluator's ``EvalContext.cache`` in this run (what ``evaluate`` stored, e.g. a
        calibrated threshold). Return None (the default) when the evaluator has no per-completion coherence."""
        return None
