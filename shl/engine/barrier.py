"""The heal's penalty terms: the per-position KL, its aggregation into D and the barrier relu(D - tau), and the
spectral penalty on each LoRA update."""

from __future__ import annotations

from typing import Any

from ..api import Aggregator


def divergence(log_p: Any, log_q: Any) -> Any:
    """Per-row KL(p || q) from float32 log-probabilities [M, V]."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def aggregate_barrier(
    kl: Any, seq_index: Any, n_seqs: int, aggregator: Aggregator, tau: float, level: str
) -> tuple[Any, Any]:
    """(penalty, D values): per sequence mean of relu(D_i - tau), or relu(D - tau) over the batch."""
    import torch

    if level == "batch":
        d = aggregator.aggregate(kl).reshape(1)
    else:
        d = torch.stack([aggregator.aggregate(kl[seq_index == i]) for i in range(n_seqs)])
    return torch.relu(d - tau).mean(), d


def spectral_penalty(pairs: list[tuple[Any, Any, float]]) -> Any:
    """sum over LoRA layers of the squared spectral norm of scaling * B @ A.

    The top right singular vector x of scaling * B @ A is found without gradient (QR, then the SVD of an
    r x r matrix: cheap); the penalty is ||scaling * B @ A @ x||^2, whose value is sigma_max^2 and whose
    gradient is that of sigma_max^2 (x is optimal). Differentiating through QR/SVD instead gives NaN gradients
    at B = 0 (every round's start) and wherever singular values coincide.
    """
    import torch

    total = None
    for a, b, scaling in pairs:
        a32, b32 = a.float(), b.float()
        with torch.no_grad():
            _, rb = torch.linalg.qr(b32)
            qa, ra = torch.linalg.qr(a32.T)
            _, _, vh = torch.linalg.svd(scaling * rb @ ra.T)
            x = qa @ vh[0]
        s = (scaling * (b32 @ (a32 @ x))).square().sum()
        total = s if total is None else total + s
    return total if total is not None else torch.zeros(())
