"""The heal's epoch order: a seeded permutation; grouped by length, batches pad less and still mix the data."""

from __future__ import annotations

import random

from shl.api import Completion
from shl.config.models import HealConfig
from shl.engine.heal_batches import epoch_order

SETTINGS = HealConfig(regulariser="kl_rev", lam=1.0, spectral=0.0, weight_decay=0.0, epochs=3, lr=1e-3, batch_size=8,
                      max_grad_norm=1.0)


def completions(n: int = 100) -> list[Completion]:
    rng = random.Random(0)
    return [Completion("u", [1] * rng.randint(20, 35), [2] * rng.randint(5, 64), "t") for _ in range(n)]


def real_share(comps, order, bs) -> float:
    lengths = [len(comps[i].prompt_ids) + len(comps[i].completion_ids) for i in order]
    batches = [lengths[i:i + bs] for i in range(0, len(lengths), bs)]
    return sum(map(sum, batches)) / sum(max(b) * len(b) for b in batches)


def test_grouped_order_is_a_deterministic_permutation_that_pads_less():
    comps = completions()
    plain = SETTINGS.model_copy(update={"group_by_length": False})
    grouped = epoch_order(comps, SETTINGS, seed=3, round_index=1, epoch=0)
    assert sorted(grouped) == list(range(len(comps)))
    assert grouped == epoch_order(comps, SETTINGS, seed=3, round_index=1, epoch=0)
    assert grouped != epoch_order(comps, SETTINGS, seed=3, round_index=1, epoch=1)
    random_order = epoch_order(comps, plain, seed=3, round_index=1, epoch=0)
    assert sorted(random_order) == list(range(len(comps)))
    assert real_share(comps, grouped, 8) > real_share(comps, random_order, 8) + 0.1
    # the grouped batches are not sorted globally: short and long batches alternate across the epoch
    firsts = [grouped[i] for i in range(0, len(grouped), 8)]
    assert firsts != sorted(firsts, key=lambda i: len(comps[i].completion_ids))
