"""The exported control vector, added the way llama.cpp adds it (``direction.N`` to the output of block N, at every
position, scale 1.0) by a plain forward hook, reproduces shl's own steered logits at the run's dose; added one block
early (the input of block N) it does not; repeng's ``ControlModel`` with the imported file at strength 1.0 reproduces
them too. One finished run per model; a real model is one more parameter
(e.g. ``pytest.param({"name": "hf", "params": {"name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}},
id="smollm2", marks=pytest.mark.gpu)``)."""

from __future__ import annotations

import json

import pytest
import torch

from cli_helpers import run_shl, write_run_config
from cvector_helpers import block_hook_logits, import_repeng, llama_cpp_load, shl_steered_logits

MODELS = [
    pytest.param({"name": "tiny_random", "params": {"arch": "llama", "layers": 3}}, [1, 2], id="tiny-llama"),
]


@pytest.mark.parametrize("model_cfg,layers", MODELS)
def test_block_output_hook_with_the_exported_file_reproduces_shls_steered_logits(tmp_path, model_cfg, layers):
    from shl.export import load_student
    from shl.export_cvector import export_control_vector

    cfg = write_run_config(tmp_path, "run.yaml", model=model_cfg, steer={"layers": layers})
    res = run_shl("run", cfg, "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = export_control_vector(tmp_path / "run", tmp_path / "r1.gguf", round=1).path

    student = load_student(tmp_path / "run", round=0)  # round 1's steered point: the model before its heal
    model, tok = student.model, student.tokenizer
    n_layer, n_embd = model.config.num_hidden_layers, model.config.hidden_size
    directions = llama_cpp_load(out, n_layer, n_embd)
    assert sorted(directions) == layers
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "run" / "vectors" / "round_0.safetensors"))
    vectors = {int(k.split("_")[1]): v for k, v in stored.items()}
    coeff = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1])["coeff"]
    method = student.host.registry.build("steering", "mean_diff", {})
    chat = tok.apply_chat_template([{"role": "user", "content": "What should I do today?"}],
                                   add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = torch.tensor([chat["input_ids"]])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
    want = shl_steered_logits(model, ids, method, vectors, coeff)
    got = block_hook_logits(model, ids, directions)
    assert (want - plain).abs().max() > 1e-3  # the steering moves the logits
    assert torch.equal(got, want)  # same float32 additions at the same place: bit for bit
    early = block_hook_logits(model, ids, directions, at="input")
    assert (early - want).abs().max() > 1e-3  # one block off is visibly different: the mapping matters
    half = block_hook_logits(model, ids, directions, scale=0.5)
    torch.testing.assert_close(half, shl_steered_logits(model, ids, method, vectors, coeff * 0.5), rtol=1e-5,
                               atol=1e-5)

    repeng = import_repeng()  # repeng's own steering: ControlModel on the same layer ids, strength 1.0
    vector = repeng.ControlVector.import_gguf(str(out))
    controlled = repeng.ControlModel(model, sorted(vector.directions))
    try:
        controlled.set_control(vector, 1.0)
        with torch.no_grad():
            via_repeng = controlled(input_ids=ids).logits
    finally:
        controlled.unwrap()
    assert torch.equal(via_repeng, want)
