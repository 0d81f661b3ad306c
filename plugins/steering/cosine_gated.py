"""Mean-difference vector applied with a cosine gate per position."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

from .mean_diff import MeanDiff

if TYPE_CHECKING:  # pragma: no cover
    import torch


class CosineGated(api.SteeringMethod):
    """Mean-diff vector v, applied per position as h + relu(|cos(h, v)| - threshold) * coeff * v.

    Positions already (anti-)aligned with v get the most push; positions with |cos| <= threshold are left
    unchanged. The gate is computed in float32 and the result cast back to h's dtype.
    """

    name = "cosine_gated"
    description = "mean-diff vector added in proportion to relu(|cos(h, v)| - threshold) per position"

    class Params(api.Params):
        threshold: float = Field(
            0.0, ge=0.0, lt=1.0, description="|cosine| below which a position is not steered"
        )

    def fit(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return MeanDiff().fit(pos, neg)

    def apply(self, h: torch.Tensor, v: torch.Tensor, coeff: float) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        h32 = h.float()
        v32 = v.to(device=h.device, dtype=torch.float32)
        cos = F.cosine_similarity(h32, v32.expand_as(h32), dim=-1, eps=1e-12)
        gate = torch.relu(cos.abs() - self.params.threshold)
        return (h32 + (gate * coeff)[..., None] * v32).to(h.dtype)
