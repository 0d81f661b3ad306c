"""Mean-difference steering vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

if TYPE_CHECKING:  # pragma: no cover
    import torch


class MeanDiff(api.SteeringMethod):
    """v = mean(pos) - mean(neg) over the paired activations (raw scale; unit norm with ``normalize``).

    The vector's norm is the natural dose at coefficient 1: the distance between the two persona means.
    """

    name = "mean_diff"
    description = "difference of the positive and negative activation means"

    class Params(api.Params):
        normalize: bool = Field(False, description="rescale the vector to unit L2 norm")

    def fit(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        _check_pair(pos, neg)
        v = pos.float().mean(dim=0) - neg.float().mean(dim=0)
        return _unit(v) if self.params.normalize else v


def _check_pair(pos: torch.Tensor, neg: torch.Tensor) -> None:
    if pos.ndim != 2 or pos.shape != neg.shape:
        raise ValueError(
            f"steering fit expects pos and neg of the same shape [n, d]; got {tuple(pos.shape)} and {tuple(neg.shape)}"
        )
    if pos.shape[0] == 0:
        raise ValueError("steering fit received no activation pairs")


def _unit(v: torch.Tensor) -> torch.Tensor:
    norm = v.norm()
    if norm == 0:
        raise ValueError("cannot normalize a zero steering vector (positive and negative activations coincide)")
    return v / norm
