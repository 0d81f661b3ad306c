"""The heal's batches: the order in which an epoch visits the kept completions, and one batch's training tensors
(right-padded ids, the positions that predict a completion token, the targets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..api import Completion
from ..config.models import HealConfig
from ..errors import RunError
from .batching import pad_id, right_pad
from .seeds import Stream, torch_generator


@dataclass
class BatchTensors:
    ids: Any
    mask: Any
    select: Any  # bool [B, T]: logits positions that predict a completion token
    targets: Any  # [M] the predicted tokens, in select order
    seq_index: Any  # [M] which sequence each selected position belongs to


def batch_tensors(completions: Sequence[Completion], tokenizer: Any, device: Any) -> BatchTensors:
    import torch

    seqs = [list(c.prompt_ids) + list(c.completion_ids) for c in completions]
    ids, mask = right_pad(seqs, pad_id(tokenizer), device)
    select = torch.zeros_like(ids, dtype=torch.bool)
    for row, c in enumerate(completions):
        n_p, n_c = len(c.prompt_ids), len(c.completion_ids)
        select[row, n_p - 1 : n_p - 1 + n_c] = True
    if not bool(select.any()):
        raise RunError("heal: the batch has no completion tokens to train on (empty mask)", status="failed")
    shifted = torch.zeros_like(select)
    shifted[:, 1:] = select[:, :-1]
    targets = ids[shifted]
    seq_index = torch.arange(ids.shape[0], device=device)[:, None].expand_as(ids)[select]
    return BatchTensors(ids, mask, select, targets, seq_index)


def epoch_order(completions: Sequence[Completion], heal: HealConfig, seed: int, round_index: int,
                epoch: int) -> list[int]:
    """The order in which an epoch visits the completions: a seeded permutation; with ``heal.group_by_length``, each
    window of 4 batches is then sorted by length and the batches shuffled, so a batch pads little (about 84%
    of its tokens are real on the toy world, against 70% for random batches) and still mixes the data."""
    import torch

    gen = torch_generator(seed, Stream.HEAL, round_index, epoch)
    order = torch.randperm(len(completions), generator=gen).tolist()
    if not heal.group_by_length:
        return order
    bs, window = heal.batch_size, 4 * heal.batch_size
    length = [len(c.prompt_ids) + len(c.completion_ids) for c in completions]
    grouped: list[int] = []
    for start in range(0, len(order), window):
        grouped += sorted(order[start:start + window], key=lambda i: length[i])
    batches = [grouped[i:i + bs] for i in range(0, len(grouped), bs)]
    return [i for b in (batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()) for i in b]
