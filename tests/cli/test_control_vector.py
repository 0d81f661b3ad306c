"""``shl export --control-vector`` and the ``from_file`` steering method on one finished toy-world run (the small toy
model, trained into a temporary cache when it is not cached): the file reads back with the ``gguf`` reader under
llama.cpp's loader rules and with repeng's importer, bit for bit; importing it reproduces the run's round-1 steered
point; vectors that have no control-vector form are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import run_shl, shl_main, write_run_config
from cvector_helpers import gguf_fields, import_repeng, llama_cpp_load

pytestmark = pytest.mark.system  # control-vector export/import end to end (the fast tier keeps test_cvector_logits)

TOY = {"model": {"name": "toyworld", "params": {"variant": "small"}},
       "eval": {"max_new_tokens": 12,
                "evaluators": [{"name": "toy_exact", "params": {"n_prompts": 8, "n_samples": 2}}]}}
TOY_LAYERS, TOY_N_LAYER, TOY_N_EMBD = [1], 2, 64  # the small toy model: 2 decoder blocks, hidden 64


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def steered_samples(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return [s for s in lines if s["kind"] == "steered_eval"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """One finished 1-round toy-world run, steering layer 1."""
    from shl_plugins.toyworld.train import is_cached

    mp = pytest.MonkeyPatch()
    if not is_cached("small", 0):
        mp.setenv("SHL_CACHE_DIR", str(tmp_path_factory.mktemp("shl_cache")))
    root = tmp_path_factory.mktemp("cvec_toy")
    try:
        cfg = write_run_config(root, "toy.yaml", steer={"layers": TOY_LAYERS}, **TOY)
        res = run_shl("run", cfg, "--out", root / "run", cwd=root)
        assert res.returncode == 0, res.stderr[-2000:]
        yield root / "run"
    finally:
        mp.undo()


def round_vector(run_dir: Path, k: int = 1) -> tuple[dict[int, torch.Tensor], float]:
    raw = load_file(str(run_dir / "vectors" / f"round_{k - 1}.safetensors"))
    return {int(n.split("_")[1]): v for n, v in raw.items()}, rows(run_dir)[k]["coeff"]


def test_control_vector_reads_back_with_gguf_and_repeng(toy, tmp_path):
    out = tmp_path / "toy.gguf"
    res = run_shl("export", toy, "--round", "1", "--control-vector", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    vectors, coeff = round_vector(toy)
    want = {k: coeff * v for k, v in vectors.items()}  # what shl's hook added: coeff * v in float32
    assert coeff > 0 and f"coeff={coeff:.6g}" in res.stdout and "default scale 1.0 reproduces it" in res.stdout
    assert "direction.1 = shl layer(s) 1" in res.stdout

    applied = llama_cpp_load(out, TOY_N_LAYER, TOY_N_EMBD)
    assert sorted(applied) == TOY_LAYERS
    for k in TOY_LAYERS:
        assert torch.equal(torch.from_numpy(applied[k]), want[k])
    fields = gguf_fields(out)
    assert fields["general.architecture"][0] == "controlvector"
    assert fields["controlvector.model_hint"][0] == "llama"
    assert fields["controlvector.layer_count"][0] == len(TOY_LAYERS)
    assert fields["shl.coeff"][0] == coeff and fields["shl.round"][0] == 1
    assert "scale 1.0 reproduces" in fields["shl.scale"][0]

    repeng = import_repeng()
    cv = repeng.ControlVector.import_gguf(str(out))
    assert cv.model_type == "llama" and sorted(cv.directions) == TOY_LAYERS
    for k in TOY_LAYERS:
        assert cv.directions[k].dtype == np.float32 and cv.directions[k].shape == (TOY_N_EMBD,)
        assert np.array_equal(cv.directions[k], want[k].numpy())


def test_export_then_import_gives_the_same_vector_bit_for_bit(toy, tmp_path):
    from shl.export_cvector import export_control_vector
    from shl_plugins.steering.from_file import FromFile

    out = export_control_vector(toy, tmp_path / "toy.gguf", round=1).path
    vectors, coeff = round_vector(toy)
    pos = neg = torch.zeros(2, TOY_N_EMBD)
    gguf_in = FromFile(FromFile.Params(path=str(out)))
    own_in = FromFile(FromFile.Params(path=str(toy / "vectors" / "round_{round}.safetensors")))
    for k, v in vectors.items():
        assert torch.equal(gguf_in.fit_layer(pos, neg, layer=k, round_index=0), coeff * v)
        assert torch.equal(own_in.fit_layer(pos, neg, layer=k, round_index=0), v)


def test_importing_round_1s_vector_reproduces_the_steered_point(toy, tmp_path):
    from shl.export_cvector import export_control_vector

    out = export_control_vector(toy, tmp_path / "r1.gguf", round=1).path
    original = rows(toy)
    # shl's own safetensors, everything else equal: round 1 is the same computation, to the last metric
    own = {"layers": TOY_LAYERS, "method": {"name": "from_file",
                                            "params": {"path": str(toy / "vectors" / "round_0.safetensors")}}}
    cfg = write_run_config(tmp_path, "own.yaml", steer=own, **TOY)
    res = run_shl("run", cfg, "--out", tmp_path / "own", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert rows(tmp_path / "own")[1] == original[1]
    # the control vector holds the dose, so a fixed dose of 1 gives the same steered point
    cv = {"layers": TOY_LAYERS, "method": {"name": "from_file", "params": {"path": str(out)}}}
    cfg = write_run_config(tmp_path, "cv.yaml", steer=cv, dose={"controller": False, "kappa_max": 1.0, "scale": 1.0},
                           **TOY)
    res = run_shl("run", cfg, "--out", tmp_path / "cv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    row = rows(tmp_path / "cv")[1]
    assert row["coeff"] == 1.0
    steered = {k: v for k, v in original[1].items() if k.startswith("steered_")}
    assert len(steered) >= 6 and {k: row[k] for k in steered} == steered
    assert steered_samples(tmp_path / "cv") == steered_samples(toy) != []
    assert steered["steered_trait_signed"] != original[0]["trait_signed"]  # the steering shows in the point


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Finished 1-round tiny_random runs whose vectors have no control-vector form."""
    root = tmp_path_factory.mktemp("cvec_tiny")
    specs = {"gated": {"method": {"name": "cosine_gated", "params": {"threshold": 0.1}}, "layers": [1]},
             "layer0": {"layers": [0, 1]}}
    out = {}
    for name, steer in specs.items():
        cfg = write_run_config(root, f"{name}.yaml", steer=steer)
        res = run_shl("run", cfg, "--out", root / name, cwd=root)
        assert res.returncode == 0, res.stderr[-2000:]
        out[name] = root / name
    return out


@pytest.mark.parametrize("run,words", [
    ("gated", ["steering method 'cosine_gated'", "per-position gate", "static control vector cannot express"]),
    ("layer0", ["shl layer 0", "rejects direction.0", "steer.layers >= 1"]),
])
def test_vectors_without_a_control_vector_form_are_refused_in_one_line(tiny_runs, tmp_path, capsys, run, words):
    out = tmp_path / "x.gguf"
    rc, _, err = shl_main(capsys, "export", tiny_runs[run], "--control-vector", out)
    assert rc == 2 and err.startswith("error: ") and err.strip().count("\n") == 0
    assert all(w in err for w in words), err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,words", [
    (["--round", "0"], "--round 0 has no stored steering vector"),
    (["--round", "2"], "--round 2 has no stored steering vector"),
    (["--out", "d"], "leave out --out"),
    (["--adapter"], "leave out --out, --adapter"),
])
def test_bad_control_vector_requests_are_one_line_errors(tiny_runs, tmp_path, capsys, args, words):
    rc, _, err = shl_main(capsys, "export", tiny_runs["layer0"], "--control-vector", tmp_path / "x.gguf", *args)
    assert rc == 2 and words in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "x.gguf").exists()


def test_an_existing_file_is_never_overwritten(tiny_runs, tmp_path, capsys):
    out = tmp_path / "x.gguf"
    out.write_text("mine")
    rc, _, err = shl_main(capsys, "export", tiny_runs["layer0"], "--control-vector", out)
    assert rc == 2 and "exists" in err and out.read_text() == "mine"
