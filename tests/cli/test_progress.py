"""Progress a person can see: off a terminal, `shl run` and `shl ablate` print where the running stage is
(generation batches and tokens, dose probes, heal steps with the loss, scoring), at most one line per
SHL_PROGRESS_EVERY seconds; progress never changes a stored result."""

from __future__ import annotations

import pytest
import re
from pathlib import Path

from cli_helpers import run_shl, shl_env, write_experiment, write_run_config

LINE = re.compile(r"^\[\s*\d+s\] ")


@pytest.mark.system
def test_shl_run_prints_stage_progress_lines_in_a_log(tmp_path: Path):
    cfg = write_run_config(tmp_path, generate={"n_prompts": 8, "max_new_tokens": 16}, heal={"epochs": 2})
    proc = run_shl("run", cfg.name, "--out", "r", cwd=tmp_path, env=shl_env(SHL_PROGRESS_EVERY="0"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if LINE.match(line)]
    text = "\n".join(lines)
    for needle in ("load model", "evaluate base: generation batch 1/", "token 8/", "dose probe 1 at kappa",
                   "round 1: heal: heal epoch 2/2, step 1/", "loss ", "scoring batch 1/"):
        assert needle in text, (needle, text[-3000:])


@pytest.mark.system
def test_progress_lines_are_rate_limited(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    proc = run_shl("run", cfg.name, "--out", "r", cwd=tmp_path, env=shl_env(SHL_PROGRESS_EVERY="3600"))
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stdout.splitlines() if LINE.match(line)]) == 1  # the first one only


@pytest.mark.system
def test_progress_changes_no_stored_result(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    quiet = run_shl("run", cfg.name, "--out", "quiet", cwd=tmp_path, env=shl_env(SHL_PROGRESS_EVERY="3600"))
    loud = run_shl("run", cfg.name, "--out", "loud", cwd=tmp_path, env=shl_env(SHL_PROGRESS_EVERY="0"))
    assert quiet.returncode == loud.returncode == 0
    for name in ("metrics.jsonl", "samples.jsonl", "config.yaml"):
        assert (tmp_path / "quiet" / name).read_bytes() == (tmp_path / "loud" / name).read_bytes(), name


@pytest.mark.system
def test_shl_ablate_prints_progress_lines_with_the_run_label(tmp_path: Path):
    exp = write_experiment(tmp_path, seeds="0")
    proc = run_shl("ablate", exp.name, "--out", "out", "--no-report", cwd=tmp_path, env=shl_env(SHL_PROGRESS_EVERY="0"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if LINE.match(line)]
    assert any(re.search(r"\] mean seed 0: round 1: heal: heal epoch 1/1, step 1/\d+, loss", line) for line in lines)
