import math

import pytest

from shl_analysis.endpoints import endpoint_value, metric_series

ROWS = [
    {"round": 2, "acc": 0.6, "loss": 1.0},
    {"round": 0, "acc": 0.2, "loss": None},
    {"round": 1, "acc": 0.4},
    {"round": 4, "acc": 1.0, "loss": 0.5, "note": "text"},
]


def test_final_uses_largest_round_regardless_of_order():
    assert endpoint_value(ROWS, "acc", "final") == pytest.approx(1.0)


def test_last_k_is_mean_of_last_k_rounds_present():
    assert endpoint_value(ROWS, "acc", "last_k", last_k=2) == pytest.approx(0.8)
    assert endpoint_value(ROWS, "acc", "last_k", last_k=3) == pytest.approx((0.4 + 0.6 + 1.0) / 3)
    assert endpoint_value(ROWS, "acc", "last_k", last_k=10) == pytest.approx(0.55)


def test_auc_is_trapezoid_over_span():
    # rounds 0,1,2,4: 0.3*1 + 0.5*1 + 0.8*2 = 2.4, span 4 -> 0.6
    assert endpoint_value(ROWS, "acc", "auc") == pytest.approx(0.6)


def test_missing_and_none_values_are_skipped():
    # loss present only at rounds 2 and 4
    assert endpoint_value(ROWS, "loss", "final") == pytest.approx(0.5)
    assert endpoint_value(ROWS, "loss", "auc") == pytest.approx(0.75)
    assert endpoint_value([{"round": 3, "loss": 2.0}], "loss", "auc") == pytest.approx(2.0)
    r, v = metric_series(ROWS, "loss")
    assert list(r) == [2, 4] and list(v) == [1.0, 0.5]


def test_non_numeric_and_absent_metric_give_nan():
    assert math.isnan(endpoint_value(ROWS, "note", "final"))
    assert math.isnan(endpoint_value(ROWS, "nope", "last_k"))
    assert math.isnan(endpoint_value([], "acc", "auc"))
    assert math.isnan(endpoint_value([{"round": 0, "flag": True}], "flag"))


def test_bad_arguments():
    with pytest.raises(ValueError):
        endpoint_value(ROWS, "acc", "median")
    with pytest.raises(ValueError):
        endpoint_value(ROWS, "acc", "last_k", last_k=0)
