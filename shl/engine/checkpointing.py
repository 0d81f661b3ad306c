"""Gradient checkpointing of the decoder layers for the heal's student forward (``heal.gradient_checkpointing``)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def checkpointed_layers(model: Any, enabled: bool) -> Iterator[None]:
    """Gradient checkpointing of the decoder layers (``heal.gradient_checkpointing``) for forwards run inside:
    each layer's forward runs under ``torch.utils.checkpoint`` (non-reentrant, RNG state preserved, so LoRA
    dropout masks replay) while gradients are enabled, and is recomputed in the backward. Unlike transformers'
    switch it does not need train mode (the heal keeps the base model in eval mode so the reference stays exact).
    Forward hooks (steering) stay outside the checkpoint."""
    if not enabled:
        yield
        return
    import torch
    from torch.utils.checkpoint import checkpoint

    from .layers import decoder_layers

    layers = decoder_layers(model)

    def wrap(forward: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                if "use_cache" in kwargs:
                    kwargs["use_cache"] = False
                return checkpoint(forward, *args, use_reentrant=False, **kwargs)
            return forward(*args, **kwargs)

        return run

    for layer in layers:
        layer.forward = wrap(type(layer).forward.__get__(layer))
    try:
        yield
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)
