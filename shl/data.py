"""Steering data files: the persona pair, extraction contexts, generation pool and held-out eval prompts.

Format (YAML)::

    positive: {name: care, system: "You are ..."}
    negative: {name: authority, system: "You are ..."}
    neutral_system: null          # system prompt for generation and evaluation; null = no system turn
    contexts: [...]               # user turns for extraction (paired across the two personas)
    prompts: [...]                # user turns for steered generation
    eval_prompts: [...]           # held-out user turns for evaluation (disjoint from prompts)
    narration_words: [...]        # optional: words that mean "talking about the trait"

``builtin:NAME`` names a file shipped with shl (``experiments/data/NAME`` in the source tree).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .api import Persona, SteeringData
from .config.loading import config_hash, read_yaml, validation_message
from .errors import ConfigError

BUILTIN_PREFIX = "builtin:"


class _Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the pole's name")
    system: str = Field(description="system prompt that asks the model to act this pole")


class DataFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    positive: _Persona = Field(description="the pole steering moves towards")
    negative: _Persona = Field(description="the opposite pole")
    neutral_system: Optional[str] = Field(None, description="system prompt for generation/evaluation")
    contexts: list[str] = Field(min_length=2, description="extraction user turns")
    prompts: list[str] = Field(min_length=1, description="generation user turns")
    eval_prompts: list[str] = Field(min_length=1, description="held-out evaluation user turns")
    narration_words: list[str] = Field(default_factory=list, description="narration markers")


def resolve_data_path(spec: str, relative_to: Path | None = None) -> Path:
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX):]
        path = Path(str(resources.files("shl_plugins.data").joinpath(name)))
        if not path.is_file():
            raise ConfigError(f"data: no built-in data file '{name}'")
        return path
    path = Path(spec)
    if not path.is_absolute() and relative_to is not None and not path.exists():
        path = relative_to / path
    return path


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


def data_digest(spec: str, relative_to: Path | None = None) -> str:
    """sha256 of the steering data file's bytes: editing the file changes every run that reads it."""
    import hashlib

    path = resolve_data_path(spec, relative_to)
    if not path.is_file():
        raise ConfigError(f"data: '{spec}': no such steering data file")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_hash(resolved: dict, relative_to: Path | None = None) -> str:
    """The identity of a run: its fully resolved config plus the content of the data file it reads."""
    digest = data_digest(resolved["data"], relative_to) if resolved.get("data") else None
    return config_hash({**resolved, "data_sha256": digest})
