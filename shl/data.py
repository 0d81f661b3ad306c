"""Steering data files: the persona pair, extraction contexts, generation pool and held-out eval prompts.

Format (YAML)::

    positive: {name: care, system: "You are ..."}
    negative: {name: authority, system: "You are ..."}
    neutral_system: null          # system prompt for generation and evaluation; null = no system turn
    contexts: [...]               # user turns for extraction (paired across the two personas)
    prompts: [...]                # user turns for steered generation
    eval_prompts: [...]           # held-out user turns for evaluation (disjoint from prompts and contexts:
                                  # checked on load, comparing texts up to case and whitespace)
    narration_words: [...]        # optional: words that mean "talking about the trait"

``builtin:NAME`` names a file shipped with shl (``experiments/data/NAME`` in the source tree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator

from .api import Persona, SteeringData
from .config.data_path import BUILTIN_PREFIX, data_digest, resolve_data_path
from .config.identity import model_identity, run_hash, run_identity  # noqa: F401 - re-exported for older callers
from .config.reading import read_yaml
from .config.validation_errors import validation_message
from .errors import ConfigError

__all__ = ["BUILTIN_PREFIX", "DataFile", "check_data", "check_held_out", "data_digest", "load_data", "resolve_data_path"]


def _text(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty (a prompt or persona needs text)")
    return value


Text = Annotated[StrictStr, AfterValidator(_text)]
"""A non-blank string."""


class _Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(description="the pole's name")
    system: Text = Field(description="system prompt that asks the model to act this pole")


class DataFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    positive: _Persona = Field(description="the pole steering moves towards")
    negative: _Persona = Field(description="the opposite pole")
    neutral_system: Optional[StrictStr] = Field(None, description="system prompt for generation/evaluation")
    contexts: list[Text] = Field(min_length=2, description="extraction user turns")
    prompts: list[Text] = Field(min_length=1, description="generation user turns")
    eval_prompts: list[Text] = Field(min_length=1, description="held-out evaluation user turns")
    narration_words: list[Text] = Field(default_factory=list, description="narration markers")

    @model_validator(mode="after")
    def _distinct_poles(self) -> "DataFile":
        if _same_text(self.positive.system) == _same_text(self.negative.system):
            raise ValueError("positive.system and negative.system are the same text: the two personas must differ, "
                             "or the steering vector is zero")
        if _same_text(self.positive.name) == _same_text(self.negative.name):
            raise ValueError("positive.name and negative.name are the same: name the two poles differently")
        return self


def load_data(spec: str, relative_to: Path | None = None) -> SteeringData:
    path = resolve_data_path(spec, relative_to)
    if not path.is_file():
        raise ConfigError(f"data: '{spec}': no such steering data file")
    raw = read_yaml(path)
    try:
        f = DataFile.model_validate(raw)
    except ValidationError as exc:
        lines = validation_message(exc).splitlines()
        raise ConfigError("\n".join(f"{path}: {line}" for line in lines)) from None
    check_held_out(f, path)
    return SteeringData(
        positive=Persona(f.positive.name, f.positive.system),
        negative=Persona(f.negative.name, f.negative.system),
        neutral_system=f.neutral_system,
        contexts=list(f.contexts),
        prompts=list(f.prompts),
        eval_prompts=list(f.eval_prompts),
        narration_words=list(f.narration_words),
        source=str(path),
    )


def check_data(spec: str, relative_to: Path | None, source: str, overrides: list[str] = ()) -> SteeringData:
    """``load_data`` before a run starts, its errors prefixed by where ``data:`` came from: the ``--set`` override
    that set it, else ``source`` (the config or experiment file)."""
    from .config.overrides import shown_override

    try:
        return load_data(spec, relative_to)
    except ConfigError as exc:
        setter = next((o for o in reversed(list(overrides)) if o.split("=", 1)[0].strip() == "data"), None)
        where = f"--set {shown_override(setter)}" if setter else source
        raise ConfigError("\n".join(f"{where}: {line}" for line in str(exc).splitlines())) from None


def _same_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_held_out(f: DataFile, path: Path | str) -> None:
    """The held-out evaluation prompts must be disjoint from the generation prompts and the extraction contexts
    (compared up to case and whitespace): a one-line ConfigError naming the file, how many overlap, and one."""
    held_out = {_same_text(e) for e in f.eval_prompts}
    parts = []
    for field, items in (("prompts", f.prompts), ("contexts", f.contexts)):
        shared = list(dict.fromkeys(x for x in items if _same_text(x) in held_out))
        if shared:
            example = shared[0] if len(shared[0]) <= 80 else shared[0][:77] + "..."
            parts.append(f"{len(shared)} in {field} (e.g. {example!r})")
    if parts:
        raise ConfigError(
            f"{path}: eval_prompts: held-out evaluation prompts also appear in the training data: "
            f"{' and '.join(parts)}; eval_prompts must be disjoint from prompts and contexts"
        )

