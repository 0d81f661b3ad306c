"""`shl ablate` end to end on a tiny random model: arms x seeds, resume by config hash, reports, the lock,
and failure isolation. The tests of the first part share one ablation directory and run in file order."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from cli_helpers import TINY_ARMS, done_dirs, run_shl, write_experiment


def mtimes(runs: Path) -> dict[str, int]:
    return {name: (d / "DONE.json").stat().st_mtime_ns for name, d in done_dirs(runs).items()}


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate")
    exp = write_experiment(tmp)
    proc = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp)
    return tmp, exp, tmp / "abl", proc


def test_ablate_runs_every_arm_and_seed(ablation):
    tmp, exp, out, proc = ablation
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    dirs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())
    assert len(dirs) == 4
    seen = set()
    for d in dirs:
        assert json.loads((d / "DONE.json").read_text())["status"] == "complete"
        meta = json.loads((d / "meta.json").read_text())
        seen.add((meta["arm"], meta["seed"]))
        assert d.name.startswith(f"{meta['arm']}__seed{meta['seed']}__")
        assert meta["config_hash"].startswith(d.name.rsplit("__", 1)[1])
        assert not (d / "FAILED.json").exists()
    assert seen == {(a, s) for a in TINY_ARMS for s in (0, 1)}
    assert (out / "shl-ablation.yaml").is_file()


def test_ablate_writes_report(ablation):
    tmp, exp, out, proc = ablation
    assert proc.returncode == 0
    report = out / "report"
    for name in ("comparison.md", "comparison.csv", "comparison.tex", "tidy.csv"):
        assert (report / name).is_file(), name
    assert list((report / "figures").glob("*.png"))
    assert list((report / "figures").glob("*.svg"))
    assert "Paired comparison" in proc.stdout or "comparison" in proc.stdout


def test_dry_run_lists_all_done(ablation):
    tmp, exp, out, proc = ablation
    assert proc.returncode == 0
    before = mtimes(out / "runs")
    dry = run_shl("ablate", exp.name, "--out", "abl", "--dry-run", cwd=tmp)
    assert dry.returncode == 0, dry.stderr
    assert "4 done, 0 pending, 0 failed" in dry.stdout
    assert mtimes(out / "runs") == before


def test_second_ablate_runs_nothing(ablation):
    tmp, exp, out, proc = ablation
    before = mtimes(out / "runs")
    again = run_shl("ablate", exp.name, "--out", "abl", "--no-report", cwd=tmp)
    assert again.returncode == 0, again.stderr
    assert "4 done, 0 to run" in again.stdout
    assert mtimes(out / "runs") == before


def test_report_latex_and_csv(ablation):
    tmp, exp, out, proc = ablation
    assert proc.returncode == 0
    tex = run_shl("report", "abl", "--format", "latex", "--no-figures", cwd=tmp)
    assert tex.returncode == 0, tex.stderr
    assert "\\begin{tabular}" in tex.stdout and "\\end{tabular}" in tex.stdout
    assert "Traceback" not in tex.stderr
    c = run_shl("report", "abl", "--format", "csv", "--no-figures", cwd=tmp)
    assert c.returncode == 0, c.stderr
    body = c.stdout[: c.stdout.index("report written")] if "report written" in c.stdout else c.stdout
    rows = list(csv.DictReader(io.StringIO(body.strip())))
    assert rows and {"metric", "arm"} <= set(rows[0])
    assert {r["arm"] for r in rows} == {"rmse"}
    assert {r["metric"] for r in rows} == {"coherence", "trait"}
    md = run_shl("report", "abl", "--no-figures", cwd=tmp)
    assert md.returncode == 0, md.stderr
    assert "| metric |" in md.stdout


def test_lock_refuses_a_second_ablate(ablation):
    tmp, exp, out, proc = ablation
    before = mtimes(out / "runs")
    fd = os.open(out / ".shl.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert locked.returncode == 2, locked.stdout + locked.stderr
    assert locked.stderr.startswith("error: ")
    assert "another 'shl ablate' is running" in locked.stderr
    assert "Traceback" not in locked.stderr
    assert mtimes(out / "runs") == before


@pytest.mark.system
def test_more_seeds_runs_only_the_new_ones(ablation):
    tmp, exp, out, proc = ablation
    before = mtimes(out / "runs")
    assert len(before) == 4
    dry = run_shl("ablate", exp.name, "--out", "abl", "--seeds", "0-2", "--dry-run", cwd=tmp)
    assert dry.returncode == 0, dry.stderr
    assert "4 done, 2 pending, 0 failed" in dry.stdout
    run = run_shl("ablate", exp.name, "--out", "abl", "--seeds", "0-2", "--no-report", cwd=tmp)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "4 done, 2 to run" in run.stdout
    after = mtimes(out / "runs")
    assert len(after) == 6
    for name, mtime in before.items():
        assert after[name] == mtime, f"{name} was re-executed"
    new = set(after) - set(before)
    assert {n.split("__")[1] for n in new} == {"seed2"}


def test_config_change_makes_new_run_dirs(ablation):
    tmp, exp, out, proc = ablation
    before = mtimes(out / "runs")
    dry = run_shl("ablate", exp.name, "--out", "abl", "--set", "heal.lr=0.002", "--dry-run", cwd=tmp)
    assert dry.returncode == 0, dry.stderr
    assert "0 done, 4 pending" in dry.stdout
    listed = set(re.findall(r"(?:mean|rmse)__seed\d__[0-9a-f]{12}", dry.stdout))
    assert len(listed) == 4
    assert not listed & set(before)
    for name in listed:  # same (arm, seed) as a stored run, another hash
        arm, seed, _ = name.split("__")
        assert any(b.startswith(f"{arm}__{seed}__") for b in before)
    assert mtimes(out / "runs") == before


@pytest.mark.system
def test_failing_arm_is_isolated(tmp_path: Path):
    arms = {"mean": {"heal.barrier.aggregator": "mean"}, "broken": {"model.name": "/nonexistent/path"}}
    exp = write_experiment(tmp_path, arms=arms)
    proc = run_shl("ablate", exp.name, "--out", "abl", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "Traceback" not in out
    runs = tmp_path / "abl" / "runs"
    dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(dirs) == 4
    for d in dirs:
        if d.name.startswith("mean__"):
            assert json.loads((d / "DONE.json").read_text())["status"] == "complete"
            assert not (d / "FAILED.json").exists()
        else:
            assert not (d / "DONE.json").exists()
            failed = json.loads((d / "FAILED.json").read_text())
            assert failed["status"] == "failed"
            assert "/nonexistent/path" in failed["error"]
            assert failed["traceback"]
    assert "run failed" in proc.stdout
    md = (tmp_path / "abl" / "report" / "comparison.md").read_text()
    assert "dropped" in md
    assert re.search(r"seeds dropped from all comparisons: 2", md), md
    dry = run_shl("ablate", exp.name, "--out", "abl", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0
    assert "2 done, 0 pending, 2 failed" in dry.stdout


def test_report_without_baseline_runs_is_a_user_error(ablation, tmp_path: Path):
    tmp, exp, out, proc = ablation
    assert proc.returncode == 0
    (tmp_path / "partial" / "runs").mkdir(parents=True)
    shutil.copy(out / "shl-ablation.yaml", tmp_path / "partial" / "shl-ablation.yaml")
    report = run_shl("report", "partial", cwd=tmp_path)
    assert report.returncode == 2 and "Traceback" not in report.stderr, report.stderr
    assert report.stderr.startswith("error: ") and "no run" in report.stderr
    rmse = next(d for d in (out / "runs").iterdir() if d.name.startswith("rmse__"))
    shutil.copytree(rmse, tmp_path / "partial" / "runs" / rmse.name)
    report = run_shl("report", "partial", cwd=tmp_path)
    assert report.returncode == 2 and "Traceback" not in report.stderr, report.stderr
    assert "baseline" in report.stderr and "mean" in report.stderr
