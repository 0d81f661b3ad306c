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

from importlib import resources
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .api import Persona, SteeringData
from .config.loading import config_hash, model_source_name, read_yaml, validation_message
from .errors import ConfigError, ShlError

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


def data_digest(spec: str, relative_to: Path | None = None) -> str:
    """sha256 of the steering data file's bytes: editing the file changes every run that reads it."""
    import hashlib

    path = resolve_data_path(spec, relative_to)
    if not path.is_file():
        raise ConfigError(f"data: '{spec}': no such steering data file")
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- run identity


def resolved_device(spec: str) -> str:
    """The device a run of ``device: spec`` uses on THIS machine: ``auto`` is cuda when available, else cpu."""
    if spec != "auto":
        return spec
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolved_dtype(spec: str, device: str) -> str:
    """The dtype ``dtype: spec`` documents for ``device`` (auto: bfloat16 on CUDA, float32 elsewhere)."""
    if spec != "auto":
        return spec
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def component_refs(resolved: dict, registry: Any) -> list[tuple[str, str, str]]:
    """(YAML path, family, name) of every component a resolved config uses, the model source included."""
    model = resolved.get("model") or {}
    refs = [("model", "model", model_source_name(registry, model.get("name", "")))]
    steer = (resolved.get("steer") or {}).get("method")
    if steer:
        refs.append(("steer.method", "steering", steer["name"]))
    for i, f in enumerate(resolved.get("filters") or []):
        refs.append((f"filters[{i}]", "filter", f["name"]))
    heal = resolved.get("heal") or {}
    if (heal.get("barrier") or {}).get("aggregator"):
        refs.append(("heal.barrier.aggregator", "aggregator", heal["barrier"]["aggregator"]["name"]))
    if heal.get("schedule"):
        refs.append(("heal.schedule", "schedule", heal["schedule"]["name"]))
    for i, e in enumerate((resolved.get("eval") or {}).get("evaluators") or []):
        refs.append((f"eval.evaluators[{i}]", "evaluator", e["name"]))
    return refs


def component_origins(resolved: dict, registry: Any, paths: Any = None) -> dict[str, dict[str, Any]]:
    """Per YAML path, the component used there and where it came from: ``{"name", "plugin", "distribution",
    "version"}`` (the plugin is null when the registry does not know the name). ``paths``: only these paths'
    prefixes (e.g. ``("model", "steer", "filters", "eval")``)."""
    out: dict[str, dict[str, Any]] = {}
    for path, family, name in component_refs(resolved, registry):
        if paths is not None and not path.startswith(tuple(paths)):
            continue
        try:
            origin = registry.entry(family, name).origin
        except Exception:
            origin = None
        out[path] = {
            "name": name,
            "plugin": origin.plugin if origin else None,
            "distribution": origin.distribution if origin else None,
            "version": origin.version if origin else None,
        }
    return out


def model_identity(resolved: dict, registry: Any) -> str | None:
    """The model source's ``identity()`` for a resolved config (no weights loaded); a source that raises is a
    one-line ShlError naming it and its plugin."""
    model = resolved.get("model") or {}
    name = model.get("name", "")
    src = model_source_name(registry, name)
    params = dict(model.get("params") or {})
    if src == "hf" and name != "hf":
        params["name_or_path"] = name
    try:
        entry = registry.entry("model", src)
    except Exception:
        return None
    try:
        source = entry.cls(entry.cls.Params.model_validate(params))
        ident = source.identity() if hasattr(source, "identity") else None
    except Exception as exc:
        raise ShlError(
            f"model: source '{src}' from {entry.origin.describe()}: identity() raised {type(exc).__name__}: {exc}"
        ) from None
    return None if ident is None else str(ident)


def run_identity(resolved: dict, registry: Any, device: str | None = None) -> dict[str, Any]:
    """What a run's results depend on beyond its config and data: the model's identity, the plugin providing
    each component (distribution and version), and the device and dtype resolved on the machine that runs it
    (``device``: that machine's resolution of ``auto``; default: this machine's)."""
    dev = device or resolved_device(str(resolved.get("device", "auto")))
    return {
        "model_identity": model_identity(resolved, registry),
        "components": component_origins(resolved, registry),
        "device": dev,
        "dtype": resolved_dtype(str(resolved.get("dtype", "auto")), dev),
    }


def run_hash(resolved: dict, relative_to: Path | None = None, registry: Any = None, device: str | None = None) -> str:
    """The identity of a run: its fully resolved config, the content of the data file it reads, and
    ``run_identity`` (model identity, component plugin versions, resolved device and dtype). ``registry``:
    the one the config was resolved with (default: the process-wide host's)."""
    digest = data_digest(resolved["data"], relative_to) if resolved.get("data") else None
    if registry is None:
        from .manager import get_host

        registry = get_host().registry
    return config_hash({**resolved, "data_sha256": digest, "run_identity": run_identity(resolved, registry, device)})
