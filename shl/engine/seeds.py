"""Seed-derived random streams: one independent integer seed per (run seed, stream, keys), from the one table of
named streams below (``Stream``).

Two arms with the same seed see identical inputs until the first stage whose config differs, because no
stage consumes another stage's randomness: every draw comes from a ``torch.Generator`` seeded from its stream,
except where a library draws only from torch's global RNG (PEFT's LoRA init, LoRA dropout, ``model.generate``,
a model source initialising weights); there the global RNG is seeded from the stream for that block only and
restored after it (``seeded_global_rng``).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from enum import Enum
from typing import Any, Iterator


class Stream(str, Enum):
    """Every named random stream of a run. The value is the name hashed into the seed: never change one (it
    would change every number drawn from that stream); add a member for a new stream."""

    INIT = "init"  # global RNG while the model source loads (weights it initialises randomly)
    EXTRACT = "extract"  # which contexts a round's extraction uses; keys: round index
    PROBE = "probe"  # which prompts the dose probe uses; keys: round index
    PROBE_SAMPLE = "probe-sample"  # the dose probe's sampling; keys: round index
    GENERATE = "generate"  # which prompts a round samples per alpha; keys: round index, alpha index
    GENERATE_SAMPLE = "generate-sample"  # sampling of those prompts; keys: round index, alpha index
    BATCH = "batch"  # one generation batch, under the seed a ``generate`` call got; keys: batch index
    EVAL = "eval"  # evaluator sampling (keys: evaluator, model, call number) and EvalContext.seed (evaluator)
    LORA_INIT = "lora-init"  # global RNG while a round's adapter is created and trained (LoRA init, dropout)
    HEAL = "heal"  # the order in which a heal epoch visits the completions; keys: round index, epoch
    SHL_SAMPLE = "shl-sample"  # the prompts ``shl sample`` draws
    SWEEP_RANDOM = "sweep-random"  # the random control vector of `shl sweep`; keys: layer


def derive_seed(seed: int, stream: Stream | str, *keys: object) -> int:
    """The integer seed of ``stream`` (a ``Stream``, or its value) under the run seed and ``keys``."""
    try:
        name = Stream(stream).value
    except ValueError:
        raise ValueError(f"unknown random stream {stream!r}: add it to shl.engine.seeds.Stream") from None
    blob = ":".join([str(seed), name, *map(str, keys)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def torch_generator(seed: int, stream: Stream | str, *keys: object, device: Any = None):
    """A ``torch.Generator`` (on ``device``; CPU by default) seeded from the stream."""
    import torch

    g = torch.Generator(device=device) if device is not None else torch.Generator()
    g.manual_seed(derive_seed(seed, stream, *keys))
    return g


@contextmanager
def seeded_global_rng(device: Any, seed: int, stream: Stream | str, *keys: object) -> Iterator[None]:
    """Torch's global RNG (CPU, and ``device`` when it is a CUDA device) seeded from the stream inside the block and
    restored after it: for libraries that draw only from the global RNG (PEFT's LoRA init and dropout,
    ``model.generate``, a model source initialising weights), so nothing outside the block depends on it."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, stream, *keys))
        yield


def sample_indices(n_pool: int, k: int, seed: int, stream: Stream | str, *keys: object) -> list[int]:
    """min(k, n_pool) distinct indices from range(n_pool), deterministically: never a repeat. When k > n_pool
    the caller gets all of the pool (shuffled) and must record that it used fewer than it asked for."""
    import torch

    perm = torch.randperm(n_pool, generator=torch_generator(seed, stream, *keys)).tolist()
    return perm[: max(min(k, n_pool), 0)]


def cycle_indices(n_pool: int, k: int, seed: int, stream: Stream | str, *keys: object) -> list[int]:
    """Exactly k indices from range(n_pool): the first n_pool are ``sample_indices`` (distinct), and when
    k > n_pool further independent shuffles of the whole pool follow, so every index is used floor(k / n_pool)
    or ceil(k / n_pool) times. For sampling (generation), where the same prompt drawn twice still gives a
    different completion; callers record ``distinct_count(n_pool, k)`` so the repetition is never silent."""
    import torch

    first = sample_indices(n_pool, k, seed, stream, *keys)
    if k <= n_pool:
        return first
    more = [torch.randperm(n_pool, generator=torch_generator(seed, stream, *keys, r)).tolist()
            for r in range(1, -(-k // n_pool))]
    return [i for block in [first, *more] for i in block][:k]


def distinct_count(n_pool: int, k: int) -> int:
    """How many distinct items ``sample_indices`` / ``cycle_indices`` use for k draws from a pool of n_pool."""
    return max(min(k, n_pool), 0)
