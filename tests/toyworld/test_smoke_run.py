"""experiments/smoke.yaml end to end on the DEFAULT toy model, through the real CLI (slow: trains the model
on first use)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_round_heals_the_steered_point(tmp_path):
    out = tmp_path / "smoke"
    res = subprocess.run(
        [sys.executable, "-m", "shl", "run", str(REPO / "experiments" / "smoke.yaml"), "--out", str(out)],
        capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "steered coher." in res.stdout and "coher." in res.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    base, healed = rows
    # the steered point moves the trait and costs coherence; the healed, unsteered student keeps more
    # coherence than its steered teacher and more of the trait than the base model
    assert healed["steered_trait"] > base["trait"] + 0.2
    assert healed["steered_coherence"] < base["coherence"]
    assert healed["coherence"] > healed["steered_coherence"]
    assert healed["trait"] > base["trait"]
    assert json.loads((out / "DONE.json").read_text())["status"] == "complete"
