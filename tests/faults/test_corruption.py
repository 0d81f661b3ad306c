"""Damage each stored file of a finished run in turn: `shl report` and `shl ablate` name the run and the
problem in one warning line, exclude it from the comparison and count it as dropped; `shl ablate` redoes it
only with --redo-corrupt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fault_helpers import complete_runs, make_experiment, shl_faulty, snapshot

from shl.cli import main
from shl.store import inspect_run

pytestmark = pytest.mark.system  # the fault-injection tier: pytest -m system


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("finished")
    exp = make_experiment(d)
    proc = shl_faulty(d, "ablate", exp.name, "--seeds", "0-1", "--out", "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return d


def fresh(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished ablation, and the directory of its `rmse` seed-1 run."""
    work = tmp_path / "w"
    shutil.copytree(finished, work)
    run = next((work / "out" / "runs").glob("rmse__seed1__*"))
    return work, run


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def append(p: Path) -> None:
    with open(p, "ab") as f:
        f.write(b'{"round": 9, "coherence": 1.0}\n')


DAMAGE = {"truncate": truncate, "flip": flip, "append": append, "delete": Path.unlink}
FILES = ["metrics.jsonl", "config.yaml", "meta.json", "timings.jsonl", "samples.jsonl",
         "vectors/round_0.safetensors", "adapters/r0/adapter_model.safetensors", "adapters/r0/adapter_config.json"]


def report(out: Path, capsys) -> tuple[int, str, str]:
    rc = main(["report", str(out), "--no-figures"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def md_header(out: Path) -> str:
    return (out / "report" / "comparison.md").read_text().split("| metric")[0]


def matrix():
    """Every file x every damage; the default suite flips a byte in each file and damages metrics.jsonl every
    way, the rest run with -m slow."""
    for name in FILES:
        for damage in sorted(DAMAGE):
            fast = damage == "flip" or name == "metrics.jsonl"
            yield pytest.param(name, damage, marks=() if fast else pytest.mark.slow, id=f"{name}-{damage}")


@pytest.mark.parametrize("name,damage", list(matrix()))
def test_damaged_file_is_named_and_the_run_dropped(finished: Path, tmp_path: Path, capsys, name: str, damage: str):
    work, run = fresh(finished, tmp_path)
    DAMAGE[damage](run / name)
    state = inspect_run(run)
    assert state.status == "corrupt" and name in state.reason, state
    rc, out, err = report(work / "out", capsys)
    assert rc == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and run.name in warnings[0] and name in warnings[0], out
    header = md_header(work / "out")
    assert "seeds usable in every arm: 1 (0)" in header, header
    assert "seed 1: corrupt" in header and name in header, header


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", "", '"complete"'])
def test_garbage_done_marker_is_corrupt_not_a_traceback(finished: Path, tmp_path: Path, capsys, content: str):
    work, run = fresh(finished, tmp_path)
    (run / "DONE.json").write_text(content)
    rc, out, err = report(work / "out", capsys)
    assert rc == 0 and "Traceback" not in out + err
    assert f"{run.name}: corrupt run (DONE.json is" in out
    assert "seed 1: corrupt" in md_header(work / "out")


def test_done_marker_whose_row_count_disagrees_is_corrupt(finished: Path, tmp_path: Path):
    work, run = fresh(finished, tmp_path)
    done = json.loads((run / "DONE.json").read_text())
    done["metrics_rows"] += 1
    (run / "DONE.json").write_text(json.dumps(done))
    assert inspect_run(run).status == "corrupt" and "rows" in inspect_run(run).reason


def test_run_without_shl_marker_is_foreign_and_never_touched(finished: Path, tmp_path: Path, capsys):
    work, run = fresh(finished, tmp_path)
    (run / "SHL_RUN.json").unlink()
    rc, out, err = report(work / "out", capsys)
    assert rc == 0 and "seed 1: foreign" in md_header(work / "out")
    before = snapshot(run)
    proc = shl_faulty(work, "ablate", "exp.yaml", "--seeds", "0-1", "--out", "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and run.name in proc.stderr and "SHL_RUN.json" in proc.stderr
    assert snapshot(run) == before


def test_ablate_keeps_a_corrupt_run_until_asked_to_redo_it(finished: Path, tmp_path: Path):
    work, run = fresh(finished, tmp_path)
    original = (run / "metrics.jsonl").read_text()
    truncate(run / "metrics.jsonl")
    damaged = snapshot(run)
    proc = shl_faulty(work, "ablate", "exp.yaml", "--seeds", "0-1", "--out", "out")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out
    assert f"{run.name}: corrupt run (metrics.jsonl" in out and "--redo-corrupt" in out
    assert "3 done, 0 to run, 1 corrupt (excluded)" in out
    assert snapshot(run) == damaged
    redo = shl_faulty(work, "ablate", "exp.yaml", "--seeds", "0-1", "--out", "out", "--redo-corrupt")
    assert redo.returncode == 0, redo.stdout[-2000:] + redo.stderr[-2000:]
    assert "3 done, 1 to run" in redo.stdout
    assert complete_runs(work / "out")[run.name] == original


def test_malformed_shared_cache_entries_are_misses(finished: Path, tmp_path: Path):
    work, _ = fresh(finished, tmp_path)
    entries = sorted((work / "out" / "shared").glob("*.pt"))
    assert len(entries) == 2
    torch.save({"wrong": "structure"}, entries[0])
    entries[1].write_bytes(b"not a torch file")
    # a new heal setting: new runs, but the same pre-heal inputs, so they read the shared entries
    proc = shl_faulty(work, "ablate", "exp.yaml", "--seeds", "0-1", "--out", "out", "--set", "heal.lam=0.5")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for e in entries:
        assert f"shared-stage cache entry {e.relative_to(work)}" in out or e.name in out, out
    for e in entries:
        entry = torch.load(e, weights_only=False)
        assert isinstance(entry, dict) and {"base", "row", "vectors"} <= set(entry)


def test_record_of_another_kind_is_refused_in_one_line(finished: Path, tmp_path: Path):
    work, _ = fresh(finished, tmp_path)
    rec = work / "out" / "shl-ablation.yaml"
    for text in ("- just\n- a list\n", "\x00\xff binary", "name: [unclosed\n"):
        rec.write_text(text, encoding="latin-1")
        for args in (("report", "out"), ("ablate", "exp.yaml", "--seeds", "0-1", "--out", "out")):
            proc = shl_faulty(work, *args)
            assert proc.returncode == 2, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and "shl-ablation.yaml" in lines[0], lines
        assert rec.read_text(encoding="latin-1") == text
