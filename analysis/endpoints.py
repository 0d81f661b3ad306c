"""Reduce one run's per-round metric trajectory to a single endpoint value."""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal, Mapping

import numpy as np

Endpoint = Literal["final", "last_k", "auc"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def metric_series(rows: Iterable[Mapping[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (rounds, values) of `metric`; rows lacking it, or with a null/non-numeric/NaN
    value, are skipped. A round that appears twice keeps its last value."""
    by_round: dict[int, float] = {}
    for row in rows:
        v = row.get(metric)
        r = row.get("round")
        if r is None or not _is_number(v) or math.isnan(float(v)):
            continue
        by_round[int(r)] = float(v)
    rounds = np.array(sorted(by_round), dtype=float)
    values = np.array([by_round[int(r)] for r in rounds], dtype=float)
    return rounds, values


def endpoint_value(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    endpoint: Endpoint = "final",
    last_k: int = 2,
) -> float:
    """Endpoint of `metric` over one run's rows (dicts with an int "round").

    "final": value at the largest round present. "last_k": mean of the last
    `last_k` rounds present (fewer if the run has fewer). "auc": trapezoidal
    area under value-vs-round divided by the round span, i.e. a mean level
    (the single value if only one round is present). NaN if no usable rows.
    """
    rounds, values = metric_series(rows, metric)
    if values.size == 0:
        return math.nan
    if endpoint == "final":
        return float(values[-1])
    if endpoint == "last_k":
        if last_k < 1:
            raise ValueError(f"last_k must be >= 1, got {last_k}")
        return float(values[-last_k:].mean())
    if endpoint == "auc":
        if values.size == 1:
            return float(values[0])
        area = float(np.sum((values[1:] + values[:-1]) / 2.0 * np.diff(rounds)))
        return area / float(rounds[-1] - rounds[0])
    raise ValueError(f"unknown endpoint {endpoint!r}; expected 'final', 'last_k' or 'auc'")
