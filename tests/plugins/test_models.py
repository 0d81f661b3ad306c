from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from shl.errors import ShlError
from shl_plugins.models.hf import HF
from shl_plugins.models.tiny_random import TinyRandom
from shl_plugins.models.tiny_tokenizer import build_tokenizer, tiny_tokenizer

IDS = torch.tensor([[1, 5, 6, 7, 8]])


def load(**params):
    return TinyRandom(TinyRandom.Params(**params)).load("cpu", "float32")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gpt2", "gemma"])
def test_tiny_random_arch_forward(arch):
    m = load(arch=arch)
    assert not m.model.training
    with torch.no_grad():
        out = m.model(IDS, output_hidden_states=True)
    assert out.logits.shape == (1, 5, len(m.tokenizer))
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape[-1] == 64
    assert torch.isfinite(out.logits).all()
    assert m.model.config.eos_token_id == m.tokenizer.eos_token_id


def test_tiny_random_deterministic_and_rng_untouched():
    state = torch.random.get_rng_state()
    a, b, c = load(seed=3), load(seed=3), load(seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():
        la, lb, lc = (m.model(IDS).logits for m in (a, b, c))
    assert torch.equal(la, lb) and not torch.equal(la, lc)


def test_tiny_random_dtype_and_params():
    assert load(hidden=32, heads=2).model.dtype == torch.float32
    assert TinyRandom(TinyRandom.Params()).load("cpu", "bfloat16").model.dtype == torch.bfloat16
    with pytest.raises(ValidationError):
        TinyRandom.Params(hidden=66, heads=4)
    with pytest.raises(ValidationError):
        TinyRandom.Params(arch="mamba")
    with pytest.raises(ShlError, match="unknown dtype"):
        TinyRandom(TinyRandom.Params()).load("cpu", "int8")


def test_tiny_tokenizer_chat_template_and_round_trip():
    tok = tiny_tokenizer()
    assert tok is tiny_tokenizer()
    assert tok.padding_side == "left"
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eot|>", "<|pad|>")
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi there!"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|bos|><|system|>\nBe kind.<|eot|><|user|>\nHi there!<|eot|><|assistant|>\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids[-2:]) == "<|assistant|>\n"
    turn = tok.apply_chat_template(msgs[1:] + [{"role": "assistant", "content": "Hello."}], tokenize=False)
    assert turn.endswith("<|assistant|>\nHello.<|eot|>")
    for s in ["The teacher explained why the rules matter.", "Héllo wörld!  \n  ok 😀 {x: 1}"]:
        enc = tok.encode(s, add_special_tokens=True)
        assert tok.eos_token_id not in enc and tok.bos_token_id not in enc
        assert tok.decode(enc) == s


def test_tiny_tokenizer_deterministic():
    assert build_tokenizer().get_vocab() == tiny_tokenizer().get_vocab()
    assert len(tiny_tokenizer()) == 512


def test_defaults_name_registered_components():
    for cls in (HF, TinyRandom):
        assert cls.default_data == "builtin:care_authority.yaml"
        assert [f["name"] for f in cls.default_filters] == ["tail_ppl", "repetition", "narration", "boilerplate", "length"]
        assert [e["name"] for e in cls.default_evaluators] == ["coherence", "trait_margin"]


def test_hf_loads_saved_tiny_model(tmp_path):
    m = load(arch="qwen3")
    m.model.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    loaded = HF(HF.Params(name_or_path=str(tmp_path))).load("cpu", "auto")
    assert loaded.model.dtype == torch.float32 and not loaded.model.training
    assert loaded.tokenizer.padding_side == "left" and loaded.tokenizer.pad_token == "<|pad|>"
    with torch.no_grad():
        assert torch.allclose(loaded.model(IDS).logits, m.model(IDS).logits)


def test_hf_errors(tmp_path):
    with pytest.raises(ValidationError):
        HF.Params()
    with pytest.raises(ShlError, match="cannot load") as err:
        HF(HF.Params(name_or_path=str(tmp_path / "missing" / "model"))).load("cpu", "float32")
    assert "\n" not in str(err.value)
    m = load(arch="gpt2")
    m.model.save_pretrained(tmp_path)
    tok = build_tokenizer()
    tok.chat_template = None
    tok.save_pretrained(tmp_path)
    with pytest.raises(ShlError, match="no chat template"):
        HF(HF.Params(name_or_path=str(tmp_path))).load("cpu", "float32")


def test_files_that_are_not_a_readable_model_gguf_are_one_line(tmp_path):
    """Not GGUF at all, or a GGUF file transformers cannot read as a model (here: a control vector, architecture
    'controlvector'): one line naming the file, for `shl models convert` and for a run's model."""
    import os
    import subprocess
    import sys

    import numpy as np
    from gguf import GGUFWriter

    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    cv = tmp_path / "vector.gguf"
    w = GGUFWriter(str(cv), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_uint32("controlvector.layer_count", 1)
    w.add_tensor("direction.1", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    env = {"SHL_CACHE_DIR": str(tmp_path / "cache")}
    for path, needle in ((text, "not a GGUF file"), (cv, "GGUF architecture 'controlvector' is not one transformers")):
        proc = subprocess.run([sys.executable, "-m", "shl", "models", "convert", str(path)], cwd=tmp_path,
                              capture_output=True, text=True, env={**os.environ, **env})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and not list((tmp_path / "cache").rglob("config.json")) and str(path) in lines[0] and needle in lines[0], proc.stderr
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: x\nmodel: {{name: hf, params: {{name_or_path: '{text}'}}}}\n")
    proc = subprocess.run([sys.executable, "-m", "shl", "validate", str(cfg)], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **env})
    assert proc.returncode == 2 and "not a GGUF file" in proc.stderr and "Traceback" not in proc.stderr
