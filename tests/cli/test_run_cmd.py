"""`shl run` on a tiny random model: the per-round table, the run directory layout, and no rerun when done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_shl, write_run_config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = write_run_config(tmp)
    proc = run_shl("run", cfg.name, "--out", "out", cwd=tmp)
    return tmp, cfg, proc


def test_run_exits_zero_and_prints_round_table(tiny_run):
    _, _, proc = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    for header in ("trait", "kept/total", "kappa", "heal NLL"):
        assert header in proc.stdout, header
    assert "status: complete" in proc.stdout


def test_run_directory_layout(tiny_run):
    tmp, cfg, proc = tiny_run
    assert proc.returncode == 0
    out = tmp / "out"
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "samples.jsonl", "DONE.json", "log.txt"):
        assert (out / name).is_file(), name
    assert (out / "vectors" / "round_0.safetensors").is_file()
    assert (out / "adapters" / "r0").is_dir()
    assert any((out / "adapters" / "r0").iterdir())
    done = json.loads((out / "DONE.json").read_text())
    assert done["status"] == "complete"
    assert done["rounds"] == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["round"] for r in rows] == [0, 1]
    assert "kept" in rows[1] and "total" in rows[1]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if line.strip()]
    assert samples
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["name"] == "tiny_random"
    assert config["loop"]["rounds"] == 1
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["config_hash"]


def test_second_run_says_already_complete(tiny_run):
    tmp, cfg, proc = tiny_run
    assert proc.returncode == 0
    done = tmp / "out" / "DONE.json"
    before = done.stat().st_mtime_ns
    metrics_before = (tmp / "out" / "metrics.jsonl").read_text()
    again = run_shl("run", cfg.name, "--out", "out", cwd=tmp)
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout
    assert "heal NLL" in again.stdout  # the stored table is shown again
    assert done.stat().st_mtime_ns == before
    assert (tmp / "out" / "metrics.jsonl").read_text() == metrics_before


def test_complete_dir_of_another_config_is_refused(tiny_run):
    tmp, cfg, proc = tiny_run
    assert proc.returncode == 0
    before = (tmp / "out" / "DONE.json").stat().st_mtime_ns
    other = run_shl("run", cfg.name, "--out", "out", "--set", "heal.lr=0.002", cwd=tmp)
    assert other.returncode == 2
    assert other.stderr.startswith("error: ") and "different config" in other.stderr
    assert "Traceback" not in other.stderr
    assert (tmp / "out" / "DONE.json").stat().st_mtime_ns == before


def test_run_refuses_to_wipe_a_directory_that_is_not_a_run(tmp_path):
    cfg = write_run_config(tmp_path)
    precious = tmp_path / "project"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    res = run_shl("run", cfg.name, "--out", precious, "--force", cwd=tmp_path)
    assert res.returncode == 2 and "not a run directory" in res.stderr and "Traceback" not in res.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_the_round_table_shows_the_trait_the_evaluators_wrote():
    """A real-model run writes trait_logodds, not trait: the table shows that column instead of an empty one."""
    from rich.console import Console

    from shl.commands import round_table, trait_metric

    rows = [{"round": 0, "coherence": 0.96, "trait_logodds": 0.0, "trait_logodds_se": 0.0},
            {"round": 1, "coherence": 0.92, "trait_logodds": 0.0812, "trait_logodds_se": 0.02,
             "steered_trait_logodds": 0.1234, "kept": 25, "total": 32}]
    assert trait_metric(rows) == "trait_logodds"
    assert trait_metric([{"round": 0, "trait": 0.5, "trait_coherent": 0.6}]) == "trait"
    con = Console(width=250, record=True)
    con.print(round_table(rows))
    text = con.export_text()
    assert "trait_logodds" in text and "steered trait_logodds" in text
    assert "0.081" in text and "0.123" in text and "25/32" in text
