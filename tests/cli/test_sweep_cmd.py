"""``shl sweep``: the unhealed model steered at layers x coefficients by the config's method and by a random
vector of the same norm, measured by the config's evaluators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_shl, write_run_config


def test_the_sweep_measures_what_a_run_measures(tmp_path: Path):
    """The unsteered cell equals a run's round-0 metrics, and the vector's cell at the run's layer and dose equals
    the run's round-1 steered metrics, value for value: the same vectors, evaluators and random numbers."""
    config = write_run_config(tmp_path)
    assert run_shl("run", config.name, "--out", "R", cwd=tmp_path).returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "R" / "metrics.jsonl").read_text().splitlines()]
    coeff = rows[1]["coeff"]
    proc = run_shl("sweep", config.name, "--layers", "1", "--coeffs", f"{coeff},{2 * coeff}", "--out", "S", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == json.loads((tmp_path / "S" / "sweep.json").read_text()) | {"out": "S"}
    cells = {(r["layer"], r["coeff"], r["vector"]): r for r in result["rows"]}
    assert len(cells) == 5  # the unsteered model, then 2 coefficients x (mean_diff, random)
    base = cells[(None, 0.0, "none")]
    assert {k: base[k] for k in rows[0] if k != "round"} == {k: v for k, v in rows[0].items() if k != "round"}
    steered = cells[(1, coeff, "mean_diff")]
    assert {k: steered[k] for k in ("trait", "trait_se", "coherence", "rep", "span_ppl")} == \
        {k: rows[1][f"steered_{k}"] for k in ("trait", "trait_se", "coherence", "rep", "span_ppl")}
    for c in (coeff, 2 * coeff):
        assert cells[(1, c, "random")]["vector_norm"] == pytest.approx(cells[(1, c, "mean_diff")]["vector_norm"],
                                                                       rel=1e-6)
        assert cells[(1, c, "random")]["trait"] != cells[(1, c, "mean_diff")]["trait"]
    assert result["trait"] == "trait" and result["coherence"] == "coherence"
    assert {p.name for p in (tmp_path / "S").iterdir()} >= {"sweep.json", "sweep.csv", "sweep.png", "sweep.svg"}
    assert len((tmp_path / "S" / "sweep.csv").read_text().splitlines()) == 6


@pytest.mark.parametrize("args, needle", [
    (("--coeffs", "1,nan"), "--coeffs"),
    (("--layers", ","), "--layers"),
    (("--trait", "nope"), "--trait nope: the config's evaluators report no such metric"),
    (("--floor", "1.5"), "--floor"),
])
def test_bad_sweep_arguments_are_one_line_before_any_work(tmp_path: Path, args, needle):
    config = write_run_config(tmp_path)
    proc = run_shl("sweep", config.name, *args, "--out", "S", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "S").exists()


def test_the_sweep_does_not_write_into_a_folder_it_did_not_make(tmp_path: Path):
    config = write_run_config(tmp_path)
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "notes.txt").write_text("mine")
    proc = run_shl("sweep", config.name, "--coeffs", "1", "--layers", "1", "--out", "S", cwd=tmp_path)
    assert proc.returncode == 2 and "S" in proc.stderr
    assert [p.name for p in (tmp_path / "S").iterdir()] == ["notes.txt"]
