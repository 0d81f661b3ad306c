"""Applying a steering vector through forward hooks on decoder layers.

The hook handles a layer output that is a Tensor or a tuple (hidden states first), adds the steering only
where the prompt is real (left padding respected during the prefill), and can be switched off without being
removed (the scorer scores the unsteered student while a steering context is open).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..api import SteeringMethod
from .layers import decoder_layers


class Steerer:
    """Holds per-layer vectors and a coefficient; ``active`` toggles the effect of installed hooks."""

    def __init__(self, method: SteeringMethod, vectors: dict[int, Any], coeff: float):
        self.method = method
        self.vectors = vectors
        self.coeff = float(coeff)
        self.active = True
        self.prefill_mask = None  # [batch, seq] 1 for real tokens, set by the generator

    def _hook(self, layer: int):
        def hook(module, args, output):
            if not self.active or self.coeff == 0.0:
                return output
            h = output[0] if isinstance(output, tuple) else output
            new = self.method.apply(h, self.vectors[layer], self.coeff)
            mask = self.prefill_mask
            if mask is not None and mask.shape[-1] == h.shape[1] and mask.shape[0] == h.shape[0]:
                m = mask.to(device=h.device, dtype=h.dtype).unsqueeze(-1)
                new = h + m * (new - h)
            if isinstance(output, tuple):
                return (new,) + tuple(output[1:])
            return new

        return hook

    @contextmanager
    def installed(self, model: Any) -> Iterator["Steerer"]:
        layers = decoder_layers(model)
        handles = [layers[i].register_forward_hook(self._hook(i)) for i in self.vectors]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    @contextmanager
    def paused(self) -> Iterator[None]:
        was = self.active
        self.active = False
        try:
            yield
        finally:
            self.active = was


class LayersCaptured(Exception):
    """Raised by ``capture_layers(..., stop=True)`` once the deepest requested layer has run: the rest of the
    forward (later layers, the LM head) would be thrown away."""


@contextmanager
def capture_layers(model: Any, layers: list[int], stop: bool = False) -> Iterator[dict[int, Any]]:
    """Record the hidden-state output of the given decoder layers on the next forward passes. With ``stop``,
    the forward ends right after the deepest of them (``LayersCaptured``, which the caller catches): extraction
    at layer 12 of 30 costs 13/30 of a forward."""
    store: dict[int, Any] = {}
    blocks = decoder_layers(model)
    deepest = max(layers) if layers else -1

    def make(i: int):
        def hook(module, args, output):
            store[i] = output[0] if isinstance(output, tuple) else output
            if stop and i == deepest:
                raise LayersCaptured()

        return hook

    handles = [blocks[i].register_forward_hook(make(i)) for i in layers]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
