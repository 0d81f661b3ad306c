"""The toy model: trained on first use (SMALL variant here), cached, loadable as a standard HF model."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shl_plugins.toyworld import train  # noqa: E402
from shl_plugins.toyworld.source import ToyWorldSource  # noqa: E402
from shl_plugins.toyworld.tokenizer import EOT, build_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("shl_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SHL_CACHE_DIR", str(d))
    yield d
    mp.undo()


@pytest.fixture(scope="module")
def small(cache):
    return ToyWorldSource(ToyWorldSource.Params(variant="small", seed=0)).load("cpu", "float32")


def test_tokenizer_chat_template():
    tok = build_tokenizer()
    msgs = [{"role": "system", "content": "persona : care"},
            {"role": "user", "content": "i found sam crying near the shop . what now ?"}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith(tok.bos_token) and text.count(tok.bos_token) == 1
    assert text.endswith("<|assistant|>")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == tok(text)["input_ids"]  # no BOS added on top of the template's: never a double BOS
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert tok.unk_token_id not in ids
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "good luck with it ."}], tokenize=False)
    assert full.rstrip().endswith("good luck with it . " + EOT)
    assert tok.eos_token == EOT and tok.padding_side == "left"
    batch = tok(["a b", "i hope this helps ."], padding=True, add_special_tokens=False)
    assert batch["input_ids"][0][0] == tok.pad_token_id  # left padding
    assert tok.decode(tok("i hope this helps .")["input_ids"]) == "i hope this helps ."


def test_small_model_trains_saves_and_loads(small, cache):
    path = train.model_dir("small", 0)
    assert str(path).startswith(str(cache))
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "info.json"):
        assert (path / f).is_file(), f
    info = json.loads((path / "info.json").read_text())
    assert info["world_version"] == train.world.WORLD_VERSION
    assert info["steps"] == train.VARIANTS["small"]["train"]["steps"]
    assert info["n_params"] > 0 and info["wall_s"] > 0 and info["final_loss"] < 3.0
    # a standard HF model directory: plain Auto* classes load it
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "llama"
    assert tok.chat_template and tok.padding_side == "left" and tok.eos_token == EOT
    assert small.model.config.eos_token_id == tok.eos_token_id
    assert not small.model.training
    assert small.info["variant"] == "small"
    # it generates and (usually) stops with end-of-turn
    msgs = [{"role": "user", "content": "i found sam crying near the shop . what now ?"}]
    enc = tok(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False),
              return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    out = small.model.generate(**enc, do_sample=True, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_cache_hit_on_second_load(small, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(train, "train_into", boom)
    again = ToyWorldSource(ToyWorldSource.Params(variant="small", seed=0)).load("cpu", "float32")
    for (n, a), (_, b) in zip(small.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), n


def test_cache_key_changes_with_world_and_hparams(cache, monkeypatch):
    k = train.cache_key("small", 0)
    assert train.cache_key("small", 1) != k
    assert train.cache_key("default", 0) != k
    monkeypatch.setattr(train.world, "WORLD_VERSION", "toyworld-test-changed")
    assert train.cache_key("small", 0) != k


def test_same_seed_identical_weights(small, tmp_path):
    from safetensors.torch import load_file

    cached = train.model_dir("small", 0)
    again = train.train_into(tmp_path / "again", "small", seed=0, verbose=False)
    assert again["final_loss"] == json.loads((cached / "info.json").read_text())["final_loss"]
    wa, wb = load_file(cached / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_dtype_is_a_clear_error(cache):
    from shl.errors import ShlError

    with pytest.raises(ShlError, match="dtype"):
        ToyWorldSource(ToyWorldSource.Params(variant="small")).load("cpu", "float64")


@pytest.mark.system
def test_a_damaged_cache_is_named_and_rebuilt_on_request(small, cache, tmp_path):
    """Flipped bytes of the same size: every plan and load refuses the cache in one line naming its path (never
    NaN probabilities later); `shl toyworld build --rebuild` trains it again."""
    import subprocess
    import sys

    path = train.model_dir("small", 0)
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    env = {**__import__("os").environ, "SHL_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("name: t\nmodel: {name: toyworld, params: {variant: small}}\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "shl", "validate", cfg.name], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and "model.safetensors fails its checksum" in lines[0]
        assert "--rebuild" in lines[0]
        with pytest.raises(train.CacheDamaged):
            ToyWorldSource(ToyWorldSource.Params(variant="small", seed=0)).load("cpu", "float32")
        proc = subprocess.run([sys.executable, "-m", "shl", "toyworld", "build", "--variant", "small", "--rebuild"],
                              cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert weights.read_bytes() == good  # training is deterministic: the same weights again
        proc = subprocess.run([sys.executable, "-m", "shl", "validate", cfg.name], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    finally:
        weights.write_bytes(good)


def test_the_cache_key_includes_the_library_versions():
    spec = train.spec("small", 0)
    assert set(spec["libraries"]) == {"torch", "transformers", "tokenizers"}
    assert spec["libraries"]["torch"] == torch.__version__.split("+")[0] or spec["libraries"]["torch"] == torch.__version__
