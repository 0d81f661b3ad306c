"""vLLM's rank buckets and the rank-R compression of a concatenated adapter (``shl.export_adapter``), on numbers."""

from __future__ import annotations

import pytest
import torch

from shl.export_adapter import vllm_max_lora_rank, truncate


@pytest.mark.parametrize("rank,bucket", [(1, 1), (2, 8), (8, 8), (9, 16), (16, 16), (17, 32), (300, 320),
                                         (320, 320), (321, 512), (512, 512), (513, None)])
def test_the_smallest_vllm_max_lora_rank(rank, bucket):
    assert vllm_max_lora_rank(rank) == bucket


def test_truncate_is_the_best_rank_r_approximation_of_each_update():
    g = torch.Generator().manual_seed(0)
    parts = {"wide": (torch.randn(6, 40, generator=g), torch.randn(24, 6, generator=g)),
             "thin": (torch.randn(6, 3, generator=g), torch.randn(5, 6, generator=g))}  # rank 3 < 6
    out, err, worst = truncate(parts, 2)
    lost = total = 0.0
    worst_want = 0.0
    for name, (a, b) in parts.items():
        dw = (b.double() @ a.double())
        s = torch.linalg.svdvals(dw)
        a2, b2 = out[name]
        assert a2.shape == (2, a.shape[1]) and b2.shape == (b.shape[0], 2)
        e = float(((dw - b2.double() @ a2.double()) ** 2).sum())
        assert e == pytest.approx(float((s[2:] ** 2).sum()), rel=1e-5)  # Eckart-Young: no rank-2 matrix is closer
        lost, total = lost + e, total + float((s ** 2).sum())
        worst_want = max(worst_want, (e / float((s ** 2).sum())) ** 0.5)
    assert err == pytest.approx((lost / total) ** 0.5, rel=1e-5) and worst == pytest.approx(worst_want, rel=1e-5)
    exact, err0, _ = truncate(parts, 8)  # above the rank: exact, zero-padded to the rank asked
    for name, (a, b) in parts.items():
        a8, b8 = exact[name]
        assert a8.shape[0] == 8 and b8.shape[1] == 8
        torch.testing.assert_close(b8 @ a8, b @ a, rtol=1e-5, atol=1e-4)
    assert err0 == pytest.approx(0.0, abs=1e-7)
