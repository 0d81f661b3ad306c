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
    """min(k, n_pool) distinct indices from range(n_pool), deterministically: never a repeat. When k > n_pool
    the caller gets all of the pool (shuffled) and must record that it used fewer than it asked for."""
    import torch

    perm = torch.randperm(n_pool, generator=torch_generator(seed, *keys)).tolist()
    return perm[: max(min(k, n_pool), 0)]


def cycle_indices(n_pool: int, k: int, seed: int, *keys: object) -> list[int]:
    """Exactly k indices from range(n_pool): the first n_pool are ``sample_indices`` (distinct), and when
    k > n_pool further independent shuffles of the whole pool follow, so every index is used floor(k / n_pool)
    or ceil(k / n_pool) times. For sampling (generation), where the same prompt drawn twice still gives a
    different completion; callers record ``distinct_count(n_pool, k)`` so the repetition is never silent."""
    import torch

    first = sample_indices(n_pool, k, seed, *keys)
    if k <= n_pool:
        return first
    more = [torch.randperm(n_pool, generator=torch_generator(seed, *keys, r)).tolist() for r in range(1, -(-k // n_pool))]
    return [i for block in [first, *more] for i in block][:k]


def distinct_count(n_pool: int, k: int) -> int:
    """How many distinct items ``sample_indices`` / ``cycle_indices`` use for k draws from a pool of n_pool."""
    return max(min(k, n_pool), 0)
