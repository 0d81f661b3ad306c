from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from shl_plugins.steering.cosine_gated import CosineGated
from shl_plugins.steering.mean_diff import MeanDiff
from shl_plugins.steering.svd import SVD

POS = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
NEG = torch.tensor([[0.0, 0.0], [1.0, 0.0]])


def test_mean_diff_exact():
    assert torch.equal(MeanDiff().fit(POS, NEG), torch.tensor([1.5, 3.0]))
    v = MeanDiff(MeanDiff.Params(normalize=True)).fit(POS, NEG)
    assert torch.allclose(v, torch.tensor([1.5, 3.0]) / math.sqrt(11.25))


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        MeanDiff().fit(POS, NEG[:1])
    with pytest.raises(ValueError, match="no activation pairs"):
        SVD().fit(torch.zeros(0, 3), torch.zeros(0, 3))


def _rank1(sign: float):
    u = torch.tensor([0.6, -0.8, 0.0])
    c = torch.tensor([1.0, 2.0, 3.0])
    neg = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    return neg + sign * c[:, None] * u, neg, u


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_svd_rank1_is_mean_projection_sign_aligned(sign):
    pos, neg, u = _rank1(sign)
    v = SVD().fit(pos, neg)
    assert torch.allclose(v, sign * 2.0 * u, atol=1e-5)
    assert ((pos - neg) @ v).mean() > 0
    assert torch.allclose(SVD(SVD.Params(normalize=True)).fit(pos, neg), sign * u, atol=1e-5)


def test_svd_top1_known_answer_differs_from_mean_diff():
    neg = torch.zeros(2, 2)
    pos = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(SVD().fit(pos, neg), torch.tensor([1.5, 0.0]), atol=1e-6)
    assert torch.allclose(MeanDiff().fit(pos, neg), torch.tensor([1.5, 0.5]))


@pytest.mark.parametrize("n,d", [(6, 3), (2, 4)])
def test_svd_full_rank_reproduces_mean_diff(n, d):
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert torch.allclose(SVD(SVD.Params(k=d)).fit(pos, neg), MeanDiff().fit(pos, neg), atol=1e-5)


def test_svd_params_validation():
    with pytest.raises(ValidationError):
        SVD.Params(k=0)


def test_cosine_gated_gate():
    v = torch.tensor([1.0, 0.0])
    h = torch.tensor([[[0.0, 5.0], [2.0, 0.0], [-3.0, 0.0]]])
    before = h.clone()
    out = CosineGated(CosineGated.Params(threshold=0.2)).apply(h, v, 2.0)
    assert torch.equal(h, before)
    assert torch.allclose(out[0, 0], h[0, 0])
    assert torch.allclose(out[0, 1], h[0, 1] + 0.8 * 2.0 * v)
    assert torch.allclose(out[0, 2], h[0, 2] + 0.8 * 2.0 * v)


def test_cosine_gated_dtype_and_fit():
    m = CosineGated()
    assert torch.equal(m.fit(POS, NEG), MeanDiff().fit(POS, NEG))
    h = torch.randn(2, 3, 4).to(torch.bfloat16)
    assert m.apply(h, torch.ones(4), 1.0).dtype == torch.bfloat16
    with pytest.raises(ValidationError):
        CosineGated.Params(threshold=1.0)


def test_random_direction_has_the_mean_diff_norm_and_ignores_its_direction():
    from shl_plugins.steering.random_direction import RandomDirection

    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g)
    md = MeanDiff().fit(pos, neg)
    r = RandomDirection().fit_layer(pos, neg, layer=3, round_index=0)
    assert torch.allclose(r.norm(), md.norm())
    assert abs(float(torch.nn.functional.cosine_similarity(r, md, dim=0))) < 0.5  # not the persona direction
    swapped = RandomDirection().fit_layer(pos + 5.0, neg + 5.0, layer=3, round_index=0)
    assert torch.allclose(swapped, r)  # the direction never depends on the activations, only the norm does
    assert torch.equal(RandomDirection().fit_layer(pos, neg, layer=3, round_index=2), r)  # same every round
    fresh = RandomDirection(RandomDirection.Params(same_every_round=False))
    assert not torch.equal(fresh.fit_layer(pos, neg, layer=3, round_index=2), r)
    assert not torch.equal(RandomDirection().fit_layer(pos, neg, layer=4, round_index=0), r)
    assert not torch.equal(RandomDirection(RandomDirection.Params(seed=1)).fit_layer(pos, neg, layer=3,
                                                                                     round_index=0), r)
