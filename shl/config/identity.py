"""A run's identity: the hash of its fully resolved config, the content of its data file, and what else its
results depend on (the model's identity, the plugin providing each component, the resolved device and dtype).

The functions take a resolved config as a mapping (``RunConfig.model_dump(mode="json")``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import ShlError
from .data_path import data_digest
from .models import ComponentRef
from .slots import component_slots, model_source


def config_hash(data: dict[str, Any]) -> str:
    """A stable hash of a resolved config mapping (key order does not matter)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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
    return [(path, family, ref.name) for path, family, ref in component_slots(resolved, registry)]


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
    source = model_source(registry, ComponentRef(name=model.get("name", ""), params=model.get("params") or {}))
    try:
        entry = registry.entry("model", source.name)
    except Exception:
        return None
    try:
        instance = entry.cls(entry.cls.Params.model_validate(source.params))
        ident = instance.identity() if hasattr(instance, "identity") else None
    except ShlError:
        raise
    except Exception as exc:
        raise ShlError(
            f"model: source '{source.name}' from {entry.origin.describe()}: identity() raised "
            f"{type(exc).__name__}: {exc}"
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
        from ..manager import get_host

        registry = get_host().registry
    return config_hash({**resolved, "data_sha256": digest, "run_identity": run_identity(resolved, registry, device)})
