"""Padding helpers: left padding for generation and extraction, right padding for scoring and training."""

from __future__ import annotations

from typing import Sequence


def _pad(seqs: Sequence[Sequence[int]], pad_id: int, device, left: bool):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            cols = slice(width - len(s), width) if left else slice(0, len(s))
            ids[i, cols] = torch.tensor(list(s), dtype=torch.long)
            mask[i, cols] = 1
    return ids.to(device), mask.to(device)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device=None):
    """(ids, attention mask) with padding on the left, as generation and extraction need."""
    return _pad(seqs, pad_id, device, left=True)


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int, device=None):
    """(ids, attention mask) with padding on the right, as scoring and training use."""
    return _pad(seqs, pad_id, device, left=False)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar lengths (sorted, stable), so padding stays small."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
