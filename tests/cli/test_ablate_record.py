"""Which runs the report compares: every seed planned on this directory, under the current config."""

from __future__ import annotations

import pytest
import yaml
from cli_helpers import done_dirs, run_shl, write_experiment


@pytest.mark.system
def test_later_seed_batches_join_the_comparison_and_config_changes_do_not_mix(tmp_path):
    exp = write_experiment(tmp_path, seeds="0-1")
    out = tmp_path / "out"
    assert run_shl("ablate", exp.name, "--out", out, "--no-report", cwd=tmp_path).returncode == 0
    res = run_shl("ablate", exp.name, "--out", out, "--seeds", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "seeds usable in every arm: 3 (0, 1, 2)" in res.stdout
    record = yaml.safe_load((out / "shl-ablation.yaml").read_text())
    assert record["plan_seeds"] == [0, 1, 2] and len(record["runs"]) == 6
    assert sorted(record["runs"]) == sorted(done_dirs(out / "runs"))

    # a changed config: the old runs stay on disk but are not compared; the seeds not rerun count as missing
    res = run_shl("ablate", exp.name, "--out", out, "--seeds", "0", "--set", "heal.lr=0.002", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(done_dirs(out / "runs")) == 8
    report = (out / "report" / "comparison.md").read_text()
    assert "seeds usable in every arm: 1 (0)" in report
    assert "seeds dropped from all comparisons: 2" in report
