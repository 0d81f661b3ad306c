"""Seed-derived random streams: one independent integer seed per (run seed, round, stage[, extra]).

Two arms with the same seed see identical inputs until the first stage whose config differs, because no
stage consumes another stage's randomness.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *keys: object) -> int:
    blob = ":".join([str(seed), *map(str, keys)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def torch_generator(seed: int, *keys: object):
    import torch

    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *keys))
    return g


def sample_indices(n_pool: int, k: int, seed: int, *keys: object) -> list[int]:
    """k distinct indices from range(n_pool) (all of them, shuffled, if k >= n_pool), deterministically."""
    import torch

    perm = torch.randperm(n_pool, generator=torch_generator(seed, *keys)).tolist()
    if k <= n_pool:
        return perm[:k]
    reps = [perm] + [torch.randperm(n_pool, generator=torch_generator(seed, *keys, r)).tolist() for r in range(1, -(-k // n_pool))]
    return [i for block in reps for i in block][:k]
