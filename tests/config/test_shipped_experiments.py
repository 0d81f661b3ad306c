"""Every experiment file the repository ships plans without error (the runs it names, their configs, the declared
comparison and its frontier), so a shipped file cannot rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shl.config.experiment import load_experiment, plan_runs
from shl.manager import get_host

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "experiments").rglob("*.yaml")
                 if "arms" in (yaml.safe_load(p.read_text()) or {}))


def test_there_are_shipped_experiments():
    names = {p.stem for p in SHIPPED}
    assert {"barrier_agg", "barrier_agg_frontier", "barrier_smollm2"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_a_shipped_experiment_plans(path: Path):
    exp, base = load_experiment(path)
    runs = plan_runs(path, exp, base, get_host().registry)
    assert {r.arm for r in runs} == set(exp.arms)
    frontier = exp.comparison.frontier
    if frontier is not None:
        assert set(frontier.arms()) <= set(exp.arms)
