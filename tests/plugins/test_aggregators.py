from __future__ import annotations

import math

import pytest
import torch

from shl_plugins.aggregators.max import Max
from shl_plugins.aggregators.mean import Mean
from shl_plugins.aggregators.p95 import P95
from shl_plugins.aggregators.rmse import RMSE

KL = torch.tensor([0.0, 1.0, 2.0, 3.0])
ALL = [Mean(), RMSE(), Max(), P95()]


@pytest.mark.parametrize(
    "agg,expected",
    [(Mean(), 1.5), (RMSE(), math.sqrt(3.5 + 1e-8)), (Max(), 3.0), (P95(), 2.85), (P95(P95.Params(q=0.5)), 1.5)],
)
def test_known_values(agg, expected):
    out = agg.aggregate(KL)
    assert out.ndim == 0 and out.dtype == torch.float32
    assert out.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("agg", ALL)
def test_half_input_computed_in_float32(agg):
    assert agg.aggregate(KL.to(torch.bfloat16)).dtype == torch.float32


@pytest.mark.parametrize("agg", ALL)
def test_empty_raises(agg):
    with pytest.raises(ValueError, match="empty mask"):
        agg.aggregate(torch.zeros(0))


def test_rmse_gradient_finite_at_zero():
    kl = torch.zeros(5, requires_grad=True)
    out = RMSE().aggregate(kl)
    out.backward()
    assert out.item() == pytest.approx(1e-4, rel=1e-3)
    assert torch.isfinite(kl.grad).all()


@pytest.mark.parametrize("agg", ALL)
def test_differentiable(agg):
    kl = KL.clone().requires_grad_(True)
    agg.aggregate(kl).backward()
    assert torch.isfinite(kl.grad).all() and kl.grad.abs().sum() > 0
