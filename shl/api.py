"""The plugin author's API: component base classes and the data they exchange with the engine.

A component is a class with a unique ``name`` (per family) and a nested pydantic ``Params`` model.
The engine builds one instance per use with validated params: ``Component(params)``.

This module imports no torch at import time, so plugin entry modules can import it freely; torch is
imported inside the methods that need it. Tensors in signatures are ``torch.Tensor``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import types
import typing
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

if TYPE_CHECKING:  # pragma: no cover
    import torch

FAMILIES = ("steering", "filter", "aggregator", "schedule", "evaluator", "model")


def _scalar_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_types(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return set().union(*(_scalar_types(a) for a in typing.get_args(annotation)))
    return {annotation}


class Params(BaseModel):
    """Base for every component's ``Params``: unknown keys are errors; give every field a description.

    Scalars are checked, not coerced: an ``int`` field rejects booleans, floats and strings, a ``bool`` field
    anything but true/false, a ``float`` field booleans (numeric strings such as YAML's ``1e-3`` are accepted),
    and no float field accepts inf or NaN.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or value is None:
            return value
        kinds = _scalar_types(field.annotation)
        numeric = bool(kinds & {int, float})
        if isinstance(value, bool):
            if numeric and bool not in kinds:
                raise ValueError("expected a number, got a boolean")
        elif bool in kinds and not (numeric or kinds & {str, Any}):
            raise ValueError("expected true or false")
        elif int in kinds and not kinds & {float, str, Any} and not isinstance(value, int):
            raise ValueError("expected an integer")
        return value


class Component:
    """Base of every pluggable component.

    Subclasses set ``name`` (the name users write in YAML), ``family`` (set by the family base class),
    an optional one-line ``description``, and a nested ``Params(shl.api.Params)`` model.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    description: ClassVar[str] = ""

    class Params(Params):
        pass

    def __init__(self, params: BaseModel | None = None):
        self.params = params if params is not None else self.Params()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


# --------------------------------------------------------------------------------------------- steering


class SteeringMethod(Component):
    """Turns paired activations into a steering vector, and applies it.

    ``fit`` receives, for ONE layer, the reduced hidden states of the positive-persona prompts ``pos`` and of
    the negative-persona prompts ``neg`` (float32, shape [n, d], row i of both from the same context) and
    returns a vector of shape [d]. Its norm is the method's natural dose at coefficient 1 (mean-diff: the raw
    difference of means), so doses are comparable across methods.

    ``apply`` adds the vector to hidden states ``h`` ([batch, seq, d], any float dtype) at coefficient
    ``coeff`` and returns the new hidden states. The default is ``h + coeff * v`` at every position; override
    it for gated rules. It must not modify ``h`` in place.
    """

    family: ClassVar[str] = "steering"

    def fit(self, pos: "torch.Tensor", neg: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError

    def apply(self, h: "torch.Tensor", v: "torch.Tensor", coeff: float) -> "torch.Tensor":
        return h + coeff * v.to(dtype=h.dtype, device=h.device)


# --------------------------------------------------------------------------------------------- filters


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


# --------------------------------------------------------------------------------------------- barrier


class Aggregator(Component):
    """Aggregates per-position KL values into the barrier's scalar D.

    ``aggregate(kl)`` receives a 1-D float32 tensor of per-position KL divergences (>= 0) and returns a
    0-dim tensor, differentiable with respect to ``kl``. An empty ``kl`` must raise ``ValueError``.
    """

    family: ClassVar[str] = "aggregator"

    def aggregate(self, kl: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError


class Schedule(Component):
    """The barrier weight per heal round: ``lam(round_index, base_lam)``; round_index counts from 0."""

    family: ClassVar[str] = "schedule"

    def lam(self, round_index: int, base_lam: float) -> float:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- data


@dataclass
class Persona:
    """A pole of the trait axis: a system prompt that asks the model to act it."""

    name: str
    system: str


@dataclass
class SteeringData:
    """The prompts a run uses: persona pair, extraction contexts, generation pool and held-out eval prompts.

    ``neutral_system`` is the system prompt used for generation and evaluation ("" or None: no system turn).
    ``narration_words`` lists words that signal the completion talks ABOUT the trait (narration filter).
    """

    positive: Persona
    negative: Persona
    neutral_system: str | None
    contexts: list[str]
    prompts: list[str]
    eval_prompts: list[str]
    narration_words: list[str] = field(default_factory=list)
    source: str = ""


# --------------------------------------------------------------------------------------------- models


@dataclass
class LoadedModel:
    """What a model source returns: an HF causal LM (eval mode, on the device) and its tokenizer.

    The tokenizer must have a chat template; ``info`` is free-form (recorded with the run).
    """

    model: Any
    tokenizer: Any
    name: str
    info: dict[str, Any] = field(default_factory=dict)


class ModelSource(Component):
    """Loads a causal LM and its tokenizer. ``load(device, dtype)`` returns a ``LoadedModel``.

    ``dtype`` is a string: "float32", "bfloat16", "float16" or "auto". Loading failures should raise
    ``shl.errors.ShlError`` with a one-line reason.

    The class attributes give what a run uses when its config leaves a choice unset (resolved before the run
    is hashed, so they must not depend on loading): ``default_data`` (a steering-data file path, or
    ``"builtin:NAME"`` for a file in ``experiments/data`` shipped with shl), ``default_filters`` and
    ``default_evaluators`` (lists of ``{"name": ..., "params": {...}}``).
    """

    family: ClassVar[str] = "model"
    default_data: ClassVar[str | None] = "builtin:care_authority.yaml"
    default_filters: ClassVar[list[dict[str, Any]]] = []
    default_evaluators: ClassVar[list[dict[str, Any]]] = []

    def load(self, device: str, dtype: str) -> LoadedModel:
        raise NotImplementedError

    def num_layers(self) -> int | None:
        """The number of decoder layers the model will have, known WITHOUT loading it (from the params, a local
        config file...), so ``steer.layers`` is checked before any run starts; None = unknown until loaded.
        Must not download anything or import torch."""
        return None

    def identity(self) -> str | None:
        """A fingerprint of WHICH model ``load`` will return, beyond the params (which are hashed anyway), known
        WITHOUT loading the weights: e.g. for a local directory a hash of its config and of its weight files'
        sizes and modification times, for a generated model the key of its cache. It enters the run hash and the
        shared-stage cache key, so a run or a cached stage computed on other weights is never reused. Equal
        models must give equal strings across processes and machines (no absolute temp paths, no ids of
        objects). None = the params identify the model completely. Must not download anything or import torch."""
        return None


# --------------------------------------------------------------------------------------------- evaluators


@dataclass
class EvalContext:
    """What an evaluator may use to measure the current student.

    ``generate(users, n=1, system=..., model="student")`` samples completions, batched, deterministic for the
    run's seed. ``model="student"`` is the model in its CURRENT state (the engine turns steering on for the
    "steered" point and off otherwise); ``model="base"`` is the base model (adapters and steering off).
    ``system`` defaults to the data's neutral system prompt (pass a persona's system prompt to condition).
    ``cache`` is a dict private to this evaluator that persists across the run's evaluations (e.g. for base
    model completions, which do not change between rounds).
    ``render(user, system)`` returns the token ids of a rendered chat prompt (ending at the assistant turn), to
    build ``Completion`` objects for the scorer.
    ``scorer`` scores under "base" or "student" (the current state: steered at the steered point, like
    ``generate``); ``scorer.token_probs`` gives the probabilities ``generate`` sampled each token from.
    ``generate`` samples at temperature 1, top-p 1; its seeds depend on the run seed, the evaluator's name, the
    model and the call number only (not on the round or the arm), so every arm and round of a seed is evaluated
    on the same prompts with the same random numbers (common random numbers). ``seed`` is a per-(run seed,
    evaluator) integer (the same every round) for any extra randomness. ``tokenizer`` and ``data`` are the
    run's. Append a few completions worth reading to ``samples`` (dicts with at least "user" and "text"); the
    engine stores them with the round.
    """

    generate: Callable[..., list[Completion]]
    render: Callable[[str, "str | None"], list[int]]
    scorer: Scorer
    tokenizer: Any
    data: SteeringData
    seed: int
    round: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)


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


BASE_CLASSES: dict[str, type[Component]] = {
    "steering": SteeringMethod,
    "filter": Filter,
    "aggregator": Aggregator,
    "schedule": Schedule,
    "evaluator": Evaluator,
    "model": ModelSource,
}
