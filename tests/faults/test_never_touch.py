"""shl never deletes, truncates or overwrites a file it did not write (issue 22's fuzz classes): a user's hidden
temporary files, files behind symbolic links, a lock file that is a link, an ablation nested in a run directory,
a run of a newer shl; and a finished run whose record does not hold up (a manifest without its rounds' files, a
directory renamed to another run's name) is never used."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fault_helpers import make_experiment, shl_faulty, snapshot, user_files_intact

from shl.store import CORRUPT, DONE, FOREIGN, FORMAT_VERSION, MARKER, inspect_run

pytestmark = pytest.mark.system  # the fault-injection tier: pytest -m system


def one_error(proc, code: int, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-arm ablation with `--out .` in a folder of the user's."""
    d = tmp_path_factory.mktemp("finished")
    exp = make_experiment(d)
    proc = shl_faulty(d, "ablate", exp.name, "--out", ".", "--no-report")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return d


def fresh(finished: Path, tmp_path: Path) -> Path:
    work = tmp_path / "w"
    shutil.copytree(finished, work, symlinks=True)
    return work


def a_run(work: Path, arm: str = "rmse") -> Path:
    return next((work / "runs").glob(f"{arm}__seed0__*"))


def test_users_hidden_tmp_files_survive_ablate_out_dot(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    mine = {".thesis.tex.tmp": "chapter 1", ".coverage.tmp": "x", ".notes.abcdefgh.tmp": "y"}
    for name, text in mine.items():
        (work / name).write_text(text)
        (a_run(work) / name).write_text(text)  # even inside shl's own run directory: not shl's names
    proc = shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report")
    assert proc.returncode == 0, proc.stderr
    for name, text in mine.items():
        assert (work / name).read_text() == text
    user_files_intact(work)


def test_cleanup_never_follows_a_symlink_in_a_run_directory(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    shl_named = outside / ".round_0.safetensors.shl-abcdefgh.tmp"  # a name shl's cleanup would take in its own dir
    shl_named.write_text("the user's")
    run = a_run(work)
    shutil.rmtree(run / "vectors")
    (run / "vectors").symlink_to(outside, target_is_directory=True)
    (work / ".shl-ablation.yaml.shl-zzzzzzzz.tmp").symlink_to(outside / "precious.txt")
    (outside / "precious.txt").write_text("keep")
    before = snapshot(outside)
    proc = shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report")
    assert snapshot(outside) == before
    assert "Traceback" not in proc.stdout + proc.stderr
    assert inspect_run(run).status == CORRUPT  # its manifest's vector is behind a link now: never read


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_kept(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    target = tmp_path / "thesis.tex"
    target.write_text("\\chapter{One}\n")
    os.unlink(work / ".shl.lock")
    (work / ".shl.lock").symlink_to(target)
    one_error(shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report"), 2, ".shl.lock", "symbolic link")
    assert target.read_text() == "\\chapter{One}\n"


@pytest.mark.parametrize("cmd", ["ablate", "run"])
def test_an_output_directory_inside_a_run_directory_is_refused(finished: Path, tmp_path: Path, cmd: str):
    work = fresh(finished, tmp_path)
    nested = a_run(work) / "nested"
    args = ("ablate", "exp.yaml") if cmd == "ablate" else ("run", "exp_base.yaml")
    one_error(shl_faulty(work, *args, "--out", str(nested)), 2, "inside the run directory")
    assert not nested.exists()


def test_an_ablation_in_a_run_directory_is_refused(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    one_error(shl_faulty(work, "ablate", "exp.yaml", "--out", str(a_run(work))), 2, "is a run directory")


def test_a_run_directory_holding_foreign_things_is_never_deleted(finished: Path, tmp_path: Path):
    """A killed run (no DONE.json) would be redone from scratch; when it holds something a run never holds (a
    folder of the user's, a nested ablation), nothing is deleted and the ablation says why."""
    work = fresh(finished, tmp_path)
    run = a_run(work)
    os.unlink(run / DONE)
    (run / "my-notes").mkdir()
    (run / "my-notes" / "todo.txt").write_text("keep me")
    proc = shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report")
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "my-notes" in proc.stdout + proc.stderr
    assert (run / "my-notes" / "todo.txt").read_text() == "keep me"


def test_a_run_of_a_newer_shl_is_foreign_and_kept(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    marker = json.loads((run / MARKER).read_text())
    (run / MARKER).write_text(json.dumps({**marker, "version": FORMAT_VERSION + 1}))
    os.unlink(run / DONE)  # it looks unfinished to us, but it is not ours to redo
    before = snapshot(run)
    assert inspect_run(run).status == FOREIGN and "newer shl" in inspect_run(run).reason
    one_error(shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report"), 2, run.name, "newer shl")
    assert snapshot(run) == before


def test_a_symlinked_run_directory_is_one_line(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    real = tmp_path / "elsewhere"
    shutil.move(str(run), real)
    run.symlink_to(real, target_is_directory=True)
    one_error(shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report"), 2, run.name, "symbolic link")
    assert (real / DONE).is_file()


def test_a_manifest_that_omits_a_rounds_adapter_is_corrupt(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    done = json.loads((run / DONE).read_text())
    done["manifest"] = {k: v for k, v in done["manifest"].items() if not k.startswith("adapters/")}
    (run / DONE).write_text(json.dumps(done))
    shutil.rmtree(run / "adapters")
    state = inspect_run(run)
    assert state.status == CORRUPT and "adapters/r0" in state.reason
    one_error(shl_faulty(work, "export", str(run), "--out", "student"), 2, "not a verified finished run")
    assert not (work / "student").exists()


def test_a_run_directory_renamed_to_another_seed_is_not_counted(finished: Path, tmp_path: Path):
    from shl.manager import get_host
    from shl.runner import make_plan

    work = fresh(finished, tmp_path)
    run = a_run(work)
    plan = make_plan(str(work / "exp.yaml"), [], "1", "rmse", str(work), get_host().registry)
    renamed = plan.store(plan.runs[0]).dir  # exactly the name seed 1's run would have
    shutil.move(str(run), renamed)
    state = inspect_run(renamed)
    assert state.status == CORRUPT and "seed 0" in state.reason
    proc = shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--seeds", "0-1", "--dry-run")
    assert "corrupt" in proc.stdout and "1 done" in proc.stdout, proc.stdout


def test_export_and_sample_of_a_running_run_say_it_is_running(finished: Path, tmp_path: Path):
    from shl.store import WriterLock

    work = fresh(finished, tmp_path)
    run = a_run(work)
    os.unlink(run / DONE)
    with WriterLock(run):  # as a live writer holds it
        one_error(shl_faulty(work, "export", str(run), "--out", "student"), 2, "still running")
        one_error(shl_faulty(work, "sample", str(run)), 2, "still running")
        proc = shl_faulty(work, "ablate", "exp.yaml", "--out", ".", "--no-report")
        assert proc.returncode == 1 and "still running" in proc.stdout, proc.stdout
        assert not (run / DONE).exists()  # left alone
    assert inspect_run(a_run(work, "mean")).status == "complete"


@pytest.mark.parametrize("field, value, needle", [
    ("runs", [1, 2], "runs.0"),
    ("plan_seeds", ["x"], "plan_seeds.0"),
    ("plan_arms", 5, "plan_arms"),
    ("runs", ["../../etc"], "not a run directory name"),
    ("version", FORMAT_VERSION + 1, "newer shl"),
])
@pytest.mark.parametrize("cmd", ["report", "ablate"])
def test_a_malformed_ablation_record_is_one_line(finished: Path, tmp_path: Path, field, value, needle, cmd):
    import yaml

    work = fresh(finished, tmp_path)
    record = yaml.safe_load((work / "shl-ablation.yaml").read_text())
    record[field] = value
    (work / "shl-ablation.yaml").write_text(yaml.safe_dump(record))
    before = snapshot(work)
    args = ("report", ".") if cmd == "report" else ("ablate", "exp.yaml", "--out", ".")
    one_error(shl_faulty(work, *args), 2, "shl-ablation.yaml", needle)
    assert snapshot(work) == before


# ---------------------------------------------------------------- found by the second fuzz trial


def test_export_uses_only_the_rounds_the_run_recorded(finished: Path, tmp_path: Path):
    """An adapter folder planted next to a 1-round run's r0 is never stacked in: export reads the recorded
    rounds (DONE.json), not the folders on disk."""
    work = fresh(finished, tmp_path)
    run = a_run(work)
    shutil.copytree(a_run(work, "mean") / "adapters" / "r0", run / "adapters" / "r1")
    proc = shl_faulty(work, "export", str(run), "--out", "student", "--adapter")
    assert proc.returncode == 0, proc.stderr
    assert "after 1 heal round" in proc.stdout
    one_error(shl_faulty(work, "export", str(run), "--round", "2", "--out", "s2"), 2, "out of range")


def test_export_into_a_run_directory_is_refused(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    one_error(shl_faulty(work, "export", str(run), "--adapter", "--out", str(run / "adapters" / "r1")), 2,
              "inside the run directory")
    assert not (run / "adapters" / "r1").exists()


def test_a_shl_run_output_copied_under_an_ablation_runs_name_is_corrupt(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    single = tmp_path / "single"
    assert shl_faulty(work, "run", "exp_base.yaml", "--out", str(single)).returncode == 0
    shutil.rmtree(run)
    shutil.copytree(single, run)
    state = inspect_run(run)
    assert state.status == CORRUPT and "meta.json records arm 'None'" in state.reason


@pytest.mark.parametrize("where", [".shl-writer.lock", "DONE.json", "metrics.jsonl"])
def test_a_fifo_in_the_store_never_hangs(finished: Path, tmp_path: Path, where: str):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    (run / where).unlink(missing_ok=True)
    if where != "DONE.json":
        (run / DONE).unlink()
    os.mkfifo(run / where)
    proc = shl_faulty(work, "report", ".", "--no-figures", timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2 or "excluded" in proc.stdout + proc.stderr or "dropped" in proc.stdout


def test_a_fifo_as_the_ablation_record_is_one_line(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    os.unlink(work / "shl-ablation.yaml")
    os.mkfifo(work / "shl-ablation.yaml")
    one_error(shl_faulty(work, "report", ".", timeout=120), 2, "shl-ablation.yaml")


@pytest.mark.parametrize("damage", ["huge_rounds", "deep_json"])
def test_an_absurd_done_record_is_corrupt_not_a_crash(finished: Path, tmp_path: Path, damage: str):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    if damage == "huge_rounds":
        done = json.loads((run / DONE).read_text())
        (run / DONE).write_text(json.dumps({**done, "rounds": 10**9}))
    else:
        (run / DONE).write_text("[" * 100_000 + "]" * 100_000)
    assert inspect_run(run).status == CORRUPT
    proc = shl_faulty(work, "report", ".", "--no-figures")
    assert "Traceback" not in proc.stdout + proc.stderr and "corrupt run" in proc.stdout + proc.stderr


def test_undecodable_or_deep_lines_in_an_unfinished_run_do_not_stop_the_report(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    run = a_run(work)
    (run / DONE).unlink()
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe not text\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with open(run / "timings.jsonl", "ab") as f:
        f.write(b"[" * 100_000 + b"\n")
    proc = shl_faulty(work, "report", ".", "--no-figures")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_disk_full_during_shl_run_is_one_line_naming_the_path(finished: Path, tmp_path: Path):
    work = fresh(finished, tmp_path)
    proc = shl_faulty(work, "run", "exp_base.yaml", "--out", "single",
                      fault={"root": str(work), "action": "enospc", "nth": 2, "match": r"metrics\.jsonl$"})
    one_error(proc, 1, "No space left on device", "metrics.jsonl")
