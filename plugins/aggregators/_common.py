"""Shared input check for the built-in aggregators."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def as_kl(kl: torch.Tensor, name: str) -> torch.Tensor:
    """Flatten to float32 and reject an empty input."""
    import torch

    kl = kl.reshape(-1).to(torch.float32)
    if kl.numel() == 0:
        raise ValueError(f"aggregator '{name}' received no KL positions (empty mask)")
    return kl
