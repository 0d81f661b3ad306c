from __future__ import annotations

import pytest
from pydantic import ValidationError

from shl_plugins.schedules.constant import Constant
from shl_plugins.schedules.cosine import Cosine
from shl_plugins.schedules.linear import Linear
from shl_plugins.schedules.power import Power


def lams(s, n=6, lam=2.0):
    return [s.lam(r, lam) for r in range(n)]


def test_constant():
    assert lams(Constant()) == [2.0] * 6


def test_power():
    assert lams(Power(), 4) == pytest.approx([2.0, 1.0, 2 / 3, 0.5])
    assert Power(Power.Params(p=0.5)).lam(3, 2.0) == pytest.approx(4.0)
    assert lams(Power(Power.Params(p=0.0)), 3) == [2.0] * 3


def test_cosine():
    assert lams(Cosine()) == pytest.approx([2.0, 1.5, 0.5, 0.0, 0.0, 0.0], abs=1e-12)
    assert lams(Cosine(Cosine.Params(floor=0.2)), 5) == pytest.approx([2.0, 1.6, 0.8, 0.4, 0.4])
    assert lams(Cosine(Cosine.Params(rounds=1)), 3) == [2.0] * 3


def test_linear():
    assert lams(Linear()) == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0, 0.0])
    assert lams(Linear(Linear.Params(floor=0.1)))[4:] == pytest.approx([0.2, 0.2])


@pytest.mark.parametrize(
    "cls,bad", [(Cosine, {"floor": 1.5}), (Cosine, {"rounds": 0}), (Linear, {"rounds": 0}), (Power, {"q": 1})]
)
def test_params_validation(cls, bad):
    with pytest.raises(ValidationError):
        cls.Params(**bad)
