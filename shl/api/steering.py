"""Steering methods: paired activations -> a steering vector, and how it is applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from .component import Component

if TYPE_CHECKING:  # pragma: no cover
    import torch


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
