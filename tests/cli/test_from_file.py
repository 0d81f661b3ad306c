"""The ``from_file`` steering method with vectors written by other tools: repeng's ``export_gguf``, a file laid out as
llama.cpp's cvector-generator writes it (every block 1..n-1, ``layer_count`` as int32), and files llama.cpp's loader
rejects. Checked at plan time (``shl validate``: one line, exit 2) against a tiny_random model's hidden size and
depth, and read back bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import write_run_config
from cvector_helpers import import_repeng
from shl.testing import assert_component_contract
from shl_plugins.steering.from_file import FromFile

HIDDEN, LAYERS = 32, 3  # the tiny_random model of these tests
MODEL = {"name": "tiny_random", "params": {"hidden": HIDDEN, "layers": LAYERS}}


def directions(layers, n=HIDDEN, seed=0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(n).astype(np.float32) for k in layers}


def write_gguf(path: Path, tensors: dict[str, np.ndarray], arch: str = "controlvector", count_type: str = "int32"):
    """A GGUF file written with the gguf package as llama.cpp's cvector-generator lays it out (layer_count int32)."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_string(f"{arch}.model_hint", "llama")
    getattr(w, f"add_{count_type}")(f"{arch}.layer_count", len(tensors))
    for name, t in tensors.items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def validate(capsys, tmp_path: Path, path: Path, layers, rounds: int = 1, **params) -> tuple[int, str]:
    from shl.cli import main

    steer = {"layers": layers, "method": {"name": "from_file", "params": {"path": str(path), **params}}}
    cfg = write_run_config(tmp_path, "cfg.yaml", model=MODEL, steer=steer, loop={"rounds": rounds})
    rc = main(["validate", str(cfg)])
    return rc, "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("# "))


def test_contract():
    assert_component_contract(FromFile, require_defaults=False)


def test_a_repeng_vector_is_used_bit_for_bit(tmp_path, capsys):
    repeng = import_repeng()
    dirs = directions([1, 2])
    path = tmp_path / "repeng.gguf"
    repeng.ControlVector(model_type="llama", directions=dirs).export_gguf(str(path))
    assert validate(capsys, tmp_path, path, [1, 2]) == (0, "")
    method = FromFile(FromFile.Params(path=str(path)))
    pos = neg = torch.zeros(4, HIDDEN)
    for k, v in dirs.items():
        assert torch.equal(method.fit_layer(pos, neg, layer=k, round_index=3), torch.from_numpy(v))
    rc, err = validate(capsys, tmp_path, path, [1])
    assert rc == 2 and err.count("\n") == 1
    assert "holds direction.1, direction.2 (shl layers [1, 2]" in err and "steer.layers resolves to [1]" in err
    assert "set steer.layers: [1, 2]" in err and "(plugin 'from_file' from 'steering')" in err
    assert validate(capsys, tmp_path, path, [1], subset=True) == (0, "")


def test_a_cvector_generator_layout_file_is_read_with_every_block(tmp_path, capsys):
    dirs = directions(range(1, LAYERS))  # cvector-generator writes direction.1 .. direction.{n_layer - 1}
    path = write_gguf(tmp_path / "gen.gguf", {f"direction.{k}": v for k, v in dirs.items()})
    assert validate(capsys, tmp_path, path, [1, 2]) == (0, "")
    assert validate(capsys, tmp_path, path, [-2, -1]) == (0, "")  # negative indices resolve to 1, 2
    method = FromFile(FromFile.Params(path=str(path)))
    assert torch.equal(method.fit_layer(torch.zeros(1, HIDDEN), torch.zeros(1, HIDDEN), layer=2, round_index=0),
                       torch.from_numpy(dirs[2]))


@pytest.mark.parametrize("tensors,arch,words", [
    ({"direction.0": np.ones(HIDDEN, np.float32)}, "controlvector", "direction.0 (llama.cpp's loader rejects it"),
    ({"direction.1": np.ones(HIDDEN, np.float16)}, "controlvector", "direction.1 is F16, not F32"),
    ({"direction.1": np.ones((2, HIDDEN), np.float32)}, "controlvector", "direction.1 is not 1-D"),
    ({"dir.1": np.ones(HIDDEN, np.float32)}, "controlvector", "tensor 'dir.1' is not named direction.N"),
    ({"direction.1": np.ones(HIDDEN, np.float32)}, "llama", "not a llama.cpp control vector (general.architecture"),
    ({"direction.1": np.ones(HIDDEN + 1, np.float32)}, "controlvector",
     f"vectors of length {HIDDEN + 1}, but the model's hidden size is {HIDDEN}"),
    ({"direction.1": np.ones(HIDDEN, np.float32), "direction.3": np.ones(HIDDEN, np.float32)}, "controlvector",
     f"layer 3 is outside the model ({LAYERS} decoder layers"),
])
def test_files_llama_cpp_or_the_model_would_reject_are_one_line_plan_errors(tmp_path, capsys, tensors, arch, words):
    path = write_gguf(tmp_path / "bad.gguf", tensors, arch=arch)
    rc, err = validate(capsys, tmp_path, path, [1])
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_shl_safetensors_missing_files_and_pinned_digests(tmp_path, capsys):
    import hashlib

    from safetensors.torch import save_file

    dirs = {k: torch.from_numpy(v) for k, v in directions([0, 2], seed=1).items()}
    for i in range(2):  # one file per heal round: round_{round}
        save_file({f"layer_{k}": v * (i + 1) for k, v in dirs.items()}, str(tmp_path / f"round_{i}.safetensors"))
    pattern = tmp_path / "round_{round}.safetensors"
    assert validate(capsys, tmp_path, pattern, [0, 2], rounds=2) == (0, "")  # shl's own files may steer layer 0
    method = FromFile(FromFile.Params(path=str(pattern)))
    z = torch.zeros(1, HIDDEN)
    assert torch.equal(method.fit_layer(z, z, layer=2, round_index=1), dirs[2] * 2)
    rc, err = validate(capsys, tmp_path, tmp_path / "none.gguf", [1])
    assert rc == 2 and "none.gguf: no such vector file" in err
    raw = (tmp_path / "round_0.safetensors").read_bytes()
    good = hashlib.sha256(raw).hexdigest()
    assert validate(capsys, tmp_path, tmp_path / "round_0.safetensors", [0, 2], sha256=good) == (0, "")
    rc, err = validate(capsys, tmp_path, tmp_path / "round_0.safetensors", [0, 2], sha256="0" * 64)
    assert rc == 2 and f"sha256 is {good}, not the pinned" in err
    rc, err = validate(capsys, tmp_path, pattern, [0, 2], rounds=2, sha256=good)  # round 1's file differs
    assert rc == 2 and "round_1.safetensors: sha256 is" in err
