"""Faults and hostile output directories: one line naming the path, exit 2 for bad input and 1 for a fault,
no traceback, nothing of the user's deleted or overwritten, and a later call resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import shl_cmd, shl_env, write_run_config
from fault_helpers import complete_runs, make_experiment, shl_faulty, snapshot, user_files_intact

from shl.store import TERMINAL, inspect_run

pytestmark = pytest.mark.system  # the fault-injection tier: pytest -m system


def one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def make_project(directory: Path) -> dict[str, bytes]:
    """A user's project folder that happens to hold a config.yaml."""
    (directory / "src").mkdir(parents=True)
    (directory / "data").mkdir()
    (directory / "README.md").write_text("# my project\n")
    (directory / "src" / "main.py").write_text("print('hi')\n")
    (directory / "data" / "table.csv").write_text("a,b\n1,2\n")
    (directory / "config.yaml").write_text("learning_rate: 3\n")
    return snapshot(directory)


def test_run_refuses_a_users_directory(tmp_path: Path):
    before = make_project(tmp_path / "project")
    cfg = write_run_config(tmp_path)
    for extra in ((), ("--force",)):
        proc = shl_faulty(tmp_path, "run", cfg.name, "--out", "project", *extra)
        one_error_line(proc, 2, "project", "not a run directory")
        assert snapshot(tmp_path / "project") == before


def test_run_uses_an_empty_directory_and_redoes_its_own(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    cfg = write_run_config(tmp_path)
    first = shl_faulty(tmp_path, "run", cfg.name, "--out", "empty")
    assert first.returncode == 0, first.stderr
    assert inspect_run(tmp_path / "empty").status == "complete"
    again = shl_faulty(tmp_path, "run", cfg.name, "--out", "empty", "--force")
    assert again.returncode == 0 and inspect_run(tmp_path / "empty").status == "complete"


def test_ablate_into_a_users_folder_keeps_their_files(tmp_path: Path):
    """A user's own report/ folder where shl's belongs is refused before any run starts (not after them)."""
    exp = make_experiment(tmp_path)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "comparison.md").write_text("my own report\n")
    first = shl_faulty(tmp_path, "ablate", exp.name, "--out", ".")
    one_error_line(first, 2, "report", "not made by shl")
    assert not (tmp_path / "runs").exists()
    assert (tmp_path / "report" / "comparison.md").read_text() == "my own report\n"
    user_files_intact(tmp_path)
    runs = shl_faulty(tmp_path, "ablate", exp.name, "--out", ".", "--no-report")
    assert runs.returncode == 0 and "0 done, 2 to run" in runs.stdout, runs.stdout + runs.stderr
    again = shl_faulty(tmp_path, "ablate", exp.name, "--out", ".", "--no-report")
    assert again.returncode == 0 and "2 done, 0 to run" in again.stdout, again.stdout + again.stderr
    assert (tmp_path / "report" / "comparison.md").read_text() == "my own report\n"
    user_files_intact(tmp_path)


@pytest.mark.parametrize("where", ["out", "out/runs"])
def test_a_file_where_a_directory_belongs(tmp_path: Path, where: str):
    exp = make_experiment(tmp_path)
    if where != "out":
        (tmp_path / "out").mkdir()
    (tmp_path / where).write_text("mine\n")
    one_error_line(shl_faulty(tmp_path, "ablate", exp.name, "--out", "out"), 2, where, "is a file")
    assert (tmp_path / where).read_text() == "mine\n"


def test_users_runs_folder_is_refused(tmp_path: Path):
    exp = make_experiment(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "results.txt").write_text("mine\n")
    one_error_line(shl_faulty(tmp_path, "ablate", exp.name, "--out", "."), 2, "runs", "not made by shl")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["results.txt"]


def test_read_only_output_directory_is_one_line(tmp_path: Path):
    exp = make_experiment(tmp_path)
    out = tmp_path / "out"
    proc = shl_faulty(tmp_path, "ablate", exp.name, "--out", "out",
                      fault={"root": str(out), "action": "erofs", "nth": 1})
    one_error_line(proc, 1, "Read-only file system", str(out))


def test_disk_full_while_writing_the_report_keeps_the_old_report(tmp_path: Path):
    exp = make_experiment(tmp_path)
    assert shl_faulty(tmp_path, "ablate", exp.name, "--out", "out").returncode == 0
    before = snapshot(tmp_path / "out" / "report")
    proc = shl_faulty(tmp_path, "report", "out", fault={"root": str(tmp_path / "out"), "action": "enospc",
                                                      "nth": 1, "match": r"comparison\.md"})
    one_error_line(proc, 1, "No space left on device", "comparison.md")
    assert snapshot(tmp_path / "out" / "report") == before


def test_disk_full_inside_a_run_fails_it_cleanly_and_a_rerun_completes(tmp_path: Path):
    exp = make_experiment(tmp_path)
    proc = shl_faulty(tmp_path, "ablate", exp.name, "--out", "out", "--no-report",
                      fault={"root": str(tmp_path / "out"), "action": "enospc", "nth": 2, "match": r"metrics\.jsonl$"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out and "No space left on device" in out, out[-3000:]
    rerun = shl_faulty(tmp_path, "ablate", exp.name, "--out", "out", "--no-report")
    assert rerun.returncode == 0 and "1 done, 1 to run" in rerun.stdout, rerun.stdout + rerun.stderr
    assert len(complete_runs(tmp_path / "out")) == 2


def test_sigterm_says_terminated_and_the_ablation_resumes(tmp_path: Path):
    exp = make_experiment(tmp_path)
    proc = subprocess.Popen(shl_cmd("ablate", exp.name, "--out", "out", "--no-report"), cwd=tmp_path, env=shl_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "out" / "runs").glob("*/metrics.jsonl")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout + stderr
    assert stderr.strip().splitlines()[-1] == "terminated" and "Traceback" not in stderr
    resumed = shl_faulty(tmp_path, "ablate", exp.name, "--out", "out", "--no-report")
    assert resumed.returncode == 0 and "took over a stale lock" not in resumed.stdout
    assert len(complete_runs(tmp_path / "out")) == 2


def test_leftover_temporary_files_are_cleaned_and_results_readable_by_others(tmp_path: Path):
    exp = make_experiment(tmp_path)
    assert shl_faulty(tmp_path, "ablate", exp.name, "--out", "out", "--no-report").returncode == 0
    run = next((tmp_path / "out" / "runs").glob("mean__*"))
    (run / ".metrics.jsonl.shl-k2j4h5g6.tmp").write_text("half a row")
    (tmp_path / "out" / ".shl-ablation.yaml.shl-abcdefgh.tmp").write_text("half")
    again = shl_faulty(tmp_path, "ablate", exp.name, "--out", "out", "--no-report")
    assert again.returncode == 0 and "removed 2 temporary file(s)" in again.stdout, again.stdout
    assert not list((tmp_path / "out").rglob(".*.tmp"))
    mask = os.umask(0)
    os.umask(mask)
    for name in ("DONE.json", "config.yaml", "meta.json", "metrics.jsonl", "SHL_RUN.json"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert inspect_run(run).status in TERMINAL
