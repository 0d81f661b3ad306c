"""The barrier's pluggable parts: the KL aggregator and the lambda schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from .component import Component

if TYPE_CHECKING:  # pragma: no cover
    import torch


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
