"""A random direction with the mean-difference vector's norm: the control every steering effect is read against."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pydantic import Field

from shl import api

from .mean_diff import _check_pair

if TYPE_CHECKING:  # pragma: no cover
    import torch


class RandomDirection(api.SteeringMethod):
    """v = |mean(pos) - mean(neg)| * u, with u a uniformly random unit vector (an isotropic Gaussian, normalised).

    The dose is the mean-difference vector's (its norm), so an arm with ``random`` beside one with ``mean_diff``
    separates what steering in the persona direction does from what any perturbation of that size does (coherence
    loss, drift). ``u`` depends only on ``seed``, the layer and the round (a fixed direction per layer and round,
    the same in every run with the same params), never on the activations.
    """

    name = "random"
    description = "random direction with the mean-difference norm (the control for a steering effect)"

    class Params(api.Params):
        seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the random directions")
        same_every_round: bool = Field(True, description="one direction per layer for all rounds (false: a new "
                                       "direction each round)")

    def fit(self, pos: "torch.Tensor", neg: "torch.Tensor") -> "torch.Tensor":
        return self.fit_layer(pos, neg, layer=0, round_index=0)

    def fit_layer(self, pos: "torch.Tensor", neg: "torch.Tensor", *, layer: int, round_index: int) -> "torch.Tensor":
        import torch

        _check_pair(pos, neg)
        norm = (pos.float().mean(dim=0) - neg.float().mean(dim=0)).norm()
        r = 0 if self.params.same_every_round else round_index
        digest = hashlib.sha256(f"shl-random-direction:{self.params.seed}:{layer}:{r}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        u = torch.randn(pos.shape[1], generator=gen, dtype=torch.float32)
        return u / u.norm() * norm
