"""Locating the decoder layers of a causal LM, and resolving the config's layer choice."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ConfigError, ShlError

_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "language_model.model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "transformer.blocks",
    "transformer.layers",
)


def unwrap(model: Any) -> Any:
    """The underlying transformers model of a PEFT model (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def decoder_layers(model: Any) -> list[Any]:
    import torch.nn as nn

    base = unwrap(model)
    for path in _PATHS:
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return list(obj)
    n = getattr(getattr(base, "config", None), "num_hidden_layers", None)
    if n:
        for _, module in base.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) == n:
                return list(module)
    raise ShlError(
        f"cannot locate the decoder layers of {type(base).__name__}: none of {', '.join(_PATHS)} is a ModuleList "
        "(steering needs the per-layer hidden states)"
    )


def resolve_layers(specs: Sequence[int | float], n_layers: int, model_name: str = "the model") -> list[int]:
    """Ints are indices (negative from the end); floats in [0, 1) are fractions of depth."""
    out = []
    for i, spec in enumerate(specs):
        if isinstance(spec, float):
            idx = min(int(spec * n_layers), n_layers - 1)
        else:
            idx = spec + n_layers if spec < 0 else spec
        if not 0 <= idx < n_layers:
            raise ConfigError(f"steer.layers[{i}]={spec}: out of range, {model_name} has {n_layers} layers")
        if idx not in out:
            out.append(idx)
    return out
