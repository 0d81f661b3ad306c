"""Reduce one run's per-round metric trajectory to a single endpoint value."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import numpy as np

Endpoint = Literal["final", "last_k", "auc", "last_common"]


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
    common_round: int | None = None,
) -> float:
    """Endpoint of `metric` over one run's rows (dicts with an int "round").

    "final": value at the largest round present (a run that ended early, e.g.
    at the coherence floor, contributes an earlier round than a full run).
    "last_k": mean of the last `last_k` rounds present (fewer if the run has
    fewer). "auc": trapezoidal area under value-vs-round divided by the round
    span, i.e. a mean level (the single value if only one round is present).
    "last_common": value at `common_round` (the last round every paired run of
    the seed reached, see `common_round_of`), or, where the metric was not
    logged at that round, at the largest round before it that has a value; NaN
    when the run has no value at or before it. NaN if no usable rows.
    """
    rounds, values = metric_series(rows, metric)
    if endpoint == "last_common":
        if common_round is None:
            raise ValueError("the 'last_common' endpoint needs common_round (see common_round_of)")
        values = values[rounds <= common_round]
        return float(values[-1]) if values.size else math.nan
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
    raise ValueError(f"unknown endpoint {endpoint!r}; expected 'final', 'last_k', 'auc' or 'last_common'")


def last_round(rows: Iterable[Mapping[str, Any]]) -> int | None:
    """Largest round one run reached: the largest int "round" among its rows (None if it has none)."""
    rounds = [int(r["round"]) for r in rows if r.get("round") is not None]
    return max(rounds) if rounds else None


def common_round_of(runs: Iterable[Iterable[Mapping[str, Any]]]) -> int | None:
    """The last round every one of `runs` (the rows of each paired run of one seed, one run per arm) reached:
    the smallest of their last rounds. None when there is no run or a run has no rows."""
    lasts = [last_round(rows) for rows in runs]
    if not lasts or any(r is None for r in lasts):
        return None
    return min(lasts)


@dataclass(frozen=True)
class RunLengths:
    """How far each compared run got. last: (arm, seed) -> last round the run reached; full: the largest
    round any compared run reached (None without runs). A run "ended early" when its last round < full
    (e.g. stopped at the coherence floor)."""

    last: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def full(self) -> int | None:
        return max(self.last.values()) if self.last else None

    def ended_early(self, arm: str, seeds: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """(seed, last round) of the runs of `arm` (among `seeds`, default all) that ended before `full`."""
        full = self.full
        keep = None if seeds is None else {int(s) for s in seeds}
        return sorted((s, r) for (a, s), r in self.last.items()
                      if a == arm and r < full and (keep is None or s in keep))

    def common(self, seed: int) -> int | None:
        """The last round every compared run of `seed` reached (the `last_common` round)."""
        rounds = [r for (_, s), r in self.last.items() if s == seed]
        return min(rounds) if rounds else None
