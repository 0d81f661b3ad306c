"""Named random streams: one table (``Stream``); a stream's seeds are fixed by its name; generators draw what the
global RNG would; the global RNG is seeded only inside a block and restored after it."""

from __future__ import annotations

import pytest
import torch

from shl.engine.seeds import Stream, derive_seed, seeded_global_rng, torch_generator


def test_stream_names_are_distinct_and_pin_the_seeds():
    names = [s.value for s in Stream]
    assert len(set(names)) == len(names)
    # the name is what is hashed: these numbers are the seeds runs have always used
    assert derive_seed(0, Stream.INIT) == 3438356991773892963
    assert derive_seed(3, Stream.EXTRACT, 1) == 4271534037678815702
    assert derive_seed(7, Stream.HEAL, 0, 1) == 4474156763671449906
    assert derive_seed(3, "extract", 1) == derive_seed(3, Stream.EXTRACT, 1)


def test_an_unknown_stream_is_refused():
    with pytest.raises(ValueError, match="unknown random stream 'extrakt'"):
        derive_seed(0, "extrakt", 1)


def test_a_generator_draws_what_the_seeded_global_rng_draws():
    probs = torch.softmax(torch.randn(4, 50, generator=torch.Generator().manual_seed(0)), -1)
    g = torch_generator(5, Stream.BATCH, 2)
    ours = [torch.multinomial(probs, 1, generator=g).squeeze(1).tolist() for _ in range(3)]
    with seeded_global_rng("cpu", 5, Stream.BATCH, 2):
        theirs = [torch.multinomial(probs, 1).squeeze(1).tolist() for _ in range(3)]
    assert ours == theirs


def test_the_global_rng_is_restored_after_a_seeded_block():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded_global_rng("cpu", 0, Stream.LORA_INIT, 0):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)  # the block left the global stream where it was
    torch.manual_seed(derive_seed(0, Stream.LORA_INIT, 0))
    assert torch.equal(torch.rand(3), inside)
