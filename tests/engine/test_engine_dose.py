"""The dose controller on a known survival curve."""

from __future__ import annotations

import math

from shl.engine.dose import control_dose


def curve(threshold: float):
    """survival 1.0 below ``threshold``, 0.5 above; survivors are the kappa itself."""
    calls = []

    def probe(kappa: float):
        calls.append(kappa)
        s = 1.0 if kappa <= threshold else 0.5
        return s, [kappa], 4

    return probe, calls


def test_kappa_max_is_used_when_it_already_meets_the_target():
    probe, calls = curve(2.0)
    r = control_dose(probe, 0.2, 1.0, 0.75, steps=4)
    assert (r.kappa, r.reached, r.kept, r.total) == (1.0, True, [1.0], 4)
    assert calls == [1.0]


def test_bisection_in_log_space_keeps_the_largest_feasible_kappa():
    probe, calls = curve(0.5)
    r = control_dose(probe, 0.2, 1.0, 0.75, steps=3)
    assert r.reached and r.kappa <= 0.5
    mid = math.exp((math.log(0.2) + math.log(1.0)) / 2)
    assert calls[:3] == [1.0, 0.2, mid]
    assert len(calls) == 2 + 3 and r.kept == [r.kappa]
    assert r.kappa == max(k for k in calls if k <= 0.5)


def test_nothing_feasible_falls_back_to_kappa_min_unreached():
    probe, calls = curve(0.1)
    r = control_dose(probe, 0.2, 1.0, 0.75, steps=3)
    assert (r.kappa, r.reached, r.survival) == (0.2, False, 0.5)
    assert calls == [1.0, 0.2]


def test_controller_off_uses_kappa_max():
    probe, calls = curve(0.1)
    r = control_dose(probe, 0.2, 1.0, 0.75, steps=3, enabled=False)
    assert (r.kappa, r.reached) == (1.0, False) and calls == [1.0]
