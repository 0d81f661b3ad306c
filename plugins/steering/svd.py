"""Steering vector from the top singular directions of the paired differences."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

from .mean_diff import _check_pair, _unit

if TYPE_CHECKING:  # pragma: no cover
    import torch


class SVD(api.SteeringMethod):
    """Projection of the mean paired difference onto the top-k right singular subspace of D.

    D is the UNcentred [n, d] matrix of paired differences d_i = pos_i - neg_i (centring would remove exactly
    the shift we want). With v_1..v_k its top-k right singular vectors, each sign-aligned so mean(D @ v_j) > 0,
    the vector is sum_j mean(D @ v_j) * v_j: the projection of mean(d) onto that subspace, so its dose is
    comparable to mean-diff (k = d, or k >= rank(D), reproduces mean-diff exactly).
    """

    name = "svd"
    description = "mean difference projected on the top-k singular directions of the paired differences"

    class Params(api.Params):
        k: int = Field(1, ge=1, le=4096, description="number of top right singular vectors to keep (capped at min(n, d))")
        normalize: bool = Field(False, description="rescale the vector to unit L2 norm")

    def fit(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        import torch

        _check_pair(pos, neg)
        d = pos.float() - neg.float()
        _, _, vh = torch.linalg.svd(d, full_matrices=False)
        top = vh[: self.params.k]
        proj = (d @ top.T).mean(dim=0)
        sign = torch.where(proj < 0, -1.0, 1.0)
        top = top * sign[:, None]
        proj = proj * sign
        v = proj @ top
        return _unit(v) if self.params.normalize else v
