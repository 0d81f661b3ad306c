"""The steering data a run uses: the persona pair and its prompts."""

from __future__ import annotations

from dataclasses import dataclass, field


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
