"""`shl ablate --until-mde X --max-seeds N`: seeds are added in batches by the variance-only rule, the
record keeps the batches and the rule, and the report says the seeds were added adaptively."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import run_shl, write_experiment


@pytest.mark.system
def test_until_mde_adds_seed_batches_until_the_exact_test_can_decide(tmp_path: Path):
    # the tiny random model's coherence is 0 in every arm: the differences are exactly 0, so the rule stops
    # as soon as the exact sign-flip test could reach alpha (6 seeds for 2 arms at alpha 0.05)
    exp = write_experiment(tmp_path, seeds="0-1")
    proc = run_shl("ablate", exp.name, "--out", "out", "--until-mde", "0.05", "--max-seeds", "9",
                   "--seed-batch", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "adding seeds 2-3" in proc.stdout and "adding seeds 4-5" in proc.stdout
    assert "adding seeds 6" not in proc.stdout
    record = yaml.safe_load((tmp_path / "out" / "shl-ablation.yaml").read_text())
    assert record["plan_seeds"] == [0, 1, 2, 3, 4, 5]
    assert record["adaptive"]["batches"] == [[0, 1], [2, 3], [4, 5]]
    md = (tmp_path / "out" / "report" / "comparison.md").read_text()
    assert "seeds were added adaptively" in md and "seeds usable in every arm: 6" in md
    again = run_shl("report", "out", cwd=tmp_path)
    assert again.returncode == 0 and "seeds were added adaptively" in again.stdout


@pytest.mark.system
def test_until_mde_stops_at_max_seeds_and_rejects_bad_targets(tmp_path: Path):
    exp = write_experiment(tmp_path, seeds="0-1")
    proc = run_shl("ablate", exp.name, "--out", "out", "--until-mde", "0.05", "--max-seeds", "3",
                   "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = yaml.safe_load((tmp_path / "out" / "shl-ablation.yaml").read_text())
    assert record["adaptive"]["batches"] == [[0, 1], [2]]
    for bad in (["--until-mde", "0"], ["--until-mde", "nan"], ["--until-mde", "0.1", "--max-seeds", "0"]):
        res = run_shl("ablate", exp.name, "--out", "out", *bad, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
