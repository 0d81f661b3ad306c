"""The runner as a library: ``shl.ablate(...)`` from Python with explicit arguments, no argparse; per-stage wall
times live in timings.jsonl (and the report), never in the deterministic metrics rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import write_experiment
from rich.console import Console

import shl
from shl.errors import ShlError
from shl.store import inspect_run


def test_ablate_from_python(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SHL_WORKERS", "1")
    exp = write_experiment(tmp_path)
    quiet = Console(quiet=True)
    result = shl.ablate(exp, seeds=[0, 1], out=tmp_path / "out", console=quiet)
    assert result.ok and len(result.executed) == 4 and result.failed == 0
    assert {r["state"] for r in result.status} == {"pending"}
    assert set(result.report.table["metric"]) == {"coherence", "trait"}
    again = shl.ablate(exp, seeds="0-1", out=tmp_path / "out", console=quiet, report=False)
    assert again.executed == [] and {r["state"] for r in again.status} == {"done"} and again.report is None

    for run in [p for p in (tmp_path / "out" / "runs").iterdir() if p.is_dir()]:
        assert inspect_run(run).status == "complete"
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert not any(k.endswith("_s") or "time" in k for row in rows for k in row), rows[0].keys()
        timings = [json.loads(x) for x in (run / "timings.jsonl").read_text().splitlines()]
        assert [t["round"] for t in timings] == [r["round"] for r in rows]
        assert timings[0]["stages"]["load"] > 0
        if not timings[1].get("shared"):
            assert {"extract", "dose", "generate", "heal", "evaluate"} <= set(timings[1]["stages"])
        assert all(t["total_s"] == pytest.approx(sum(t["stages"].values()), abs=1e-3) for t in timings)
    md = (tmp_path / "out" / "report" / "comparison.md").read_text()
    assert "## Where the time went" in md and "| heal |" in md
    assert (tmp_path / "out" / "report" / "timings.csv").is_file()

    with pytest.raises(ShlError, match="until-mde"):
        shl.ablate(exp, out=tmp_path / "out", until_mde=-1.0, console=quiet)
