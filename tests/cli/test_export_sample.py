"""``shl export`` and ``shl sample`` on real tiny runs: the exported model loads in plain transformers (no shl
import) and its logits equal the student's (rebuilt independently from the run's adapters with PEFT) within
float tolerance (atol 1e-5 + rtol 1e-5, float32 CPU); the ``--adapter`` export, loaded with PEFT, gives the same logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import run_shl, shl_env, write_run_config

ATOL = 1e-5
RTOL = 1e-5  # merged float32 weights round differently from base + LoRA branches (logits ~10: ~1e-6 relative)
IDS = [[1, 5, 17, 42, 60, 7, 30, 12, 2, 64, 8, 33]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs: llama with 2 heal rounds, gemma with 1."""
    root = tmp_path_factory.mktemp("export_runs")
    out = {}
    for arch, rounds in (("llama", 2), ("gemma", 1)):
        cfg = write_run_config(root, f"{arch}.yaml", loop={"rounds": rounds},
                               model={"name": "tiny_random", "params": {"arch": arch}})
        res = run_shl("run", cfg, "--out", root / arch, cwd=root)
        assert res.returncode == 0, res.stderr[-2000:]
        out[arch] = root / arch
    return out


def student_logits(run_dir: Path, arch: str, rounds: int) -> torch.Tensor:
    """The student rebuilt without shl's export code: tiny_random base + PEFT adapters r0..r{rounds-1}."""
    from peft import PeftModel

    from shl.manager import make_host

    base = make_host().registry.build("model", "tiny_random", {"arch": arch}).load("cpu", "float32").model.eval()
    model = base
    if rounds:
        model = PeftModel.from_pretrained(base, str(run_dir / "adapters" / "r0"), adapter_name="r0")
        for i in range(1, rounds):
            model.load_adapter(str(run_dir / "adapters" / f"r{i}"), adapter_name=f"r{i}")
        model.base_model.set_adapter([f"r{i}" for i in range(rounds)])
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits


PLAIN = """
import sys, json, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(d).eval()
tok = AutoTokenizer.from_pretrained(d)
with torch.no_grad():
    logits = model(input_ids=torch.tensor(json.loads(sys.argv[2]))).logits
torch.save(logits, sys.argv[3])
ids = tok.apply_chat_template([{"role": "user", "content": "Hello there?"}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=5, do_sample=False)
assert out.shape[1] > ids["input_ids"].shape[1]
print(json.dumps({"shl_imported": any(m == "shl" or m.startswith("shl.") for m in sys.modules),
                  "text": tok.decode(out[0, ids["input_ids"].shape[1]:])}))
"""


def plain_transformers_logits(directory: Path, tmp_path: Path) -> tuple[torch.Tensor, dict]:
    out = tmp_path / "logits.pt"
    res = subprocess.run([sys.executable, "-c", PLAIN, str(directory), json.dumps(IDS), str(out)],
                         capture_output=True, text=True, env=shl_env(), cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return torch.load(out), json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("arch,rounds,round_flag", [("llama", 2, []), ("llama", 1, ["--round", "1"]),
                                                    ("gemma", 1, [])])
def test_merged_export_loads_in_plain_transformers_with_the_students_logits(runs, tmp_path, arch, rounds,
                                                                             round_flag):
    out = tmp_path / "exported"
    res = run_shl("export", runs[arch], "--out", out, *round_flag, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert "chat_template" in (out / "tokenizer_config.json").read_text() or (out / "chat_template.jinja").is_file()
    record = json.loads((out / "shl_export.json").read_text())
    assert record["round"] == rounds and record["adapters"] == [f"r{i}" for i in range(rounds)]
    got, info = plain_transformers_logits(out, tmp_path)
    assert info["shl_imported"] is False
    want = student_logits(runs[arch], arch, rounds)
    base = student_logits(runs[arch], arch, 0)
    assert (want - base).abs().max() > 1e-4  # the heal changed the student: a real test of the merge
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("arch,rounds", [("llama", 2), ("gemma", 1)])
def test_adapter_export_is_one_peft_adapter_equivalent_to_the_stack(runs, tmp_path, arch, rounds):
    from peft import PeftModel

    from shl.manager import make_host

    out = tmp_path / "adapter"
    res = run_shl("export", runs[arch], "--out", out, "--adapter", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    cfg = json.loads((out / "adapter_config.json").read_text())
    r0 = json.loads((runs[arch] / "adapters" / "r0" / "adapter_config.json").read_text())
    assert cfg["r"] == rounds * r0["r"] and cfg["lora_alpha"] == cfg["r"]  # ranks concatenated, scaling 1
    base = make_host().registry.build("model", "tiny_random", {"arch": arch}).load("cpu", "float32").model.eval()
    model = PeftModel.from_pretrained(base, str(out)).eval()
    with torch.no_grad():
        got = model(input_ids=torch.tensor(IDS)).logits
    torch.testing.assert_close(got, student_logits(runs[arch], arch, rounds), rtol=RTOL, atol=ATOL)


def test_export_refuses_an_unfinished_run_and_a_non_empty_out(runs, tmp_path):
    res = run_shl("export", tmp_path, "--out", tmp_path / "x", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "not a verified finished run" in res.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    res = run_shl("export", runs["llama"], "--out", busy, cwd=tmp_path)
    assert res.returncode == 2 and "exists and is not empty" in res.stderr
    assert (busy / "f").read_text() == "x"
    res = run_shl("export", runs["llama"], "--out", tmp_path / "y", "--round", "5", cwd=tmp_path)
    assert res.returncode == 2 and "out of range" in res.stderr and not (tmp_path / "y").exists()


def test_export_refuses_a_corrupt_run(runs, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs["llama"], bad)
    with open(bad / "metrics.jsonl", "a") as f:
        f.write('{"round": 9}\n')
    res = run_shl("export", bad, "--out", tmp_path / "z", cwd=tmp_path)
    assert res.returncode == 2 and "corrupt" in res.stderr and not (tmp_path / "z").exists()


def test_sample_prints_student_and_steered_completions(runs, tmp_path):
    res = run_shl("sample", runs["llama"], "--steered", "--n", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("student (round 2):") == 2 and res.stdout.count("steered (round 2") == 2
    coeff = [json.loads(x) for x in (runs["llama"] / "metrics.jsonl").read_text().splitlines()][2]["coeff"]
    assert f"steering coefficient {coeff:.4g}" in res.stdout
    res = run_shl("sample", runs["llama"], "--round", "1", "--prompt", "What should I do today?", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "user: What should I do today?" in res.stdout and "student (round 1):" in res.stdout
    res = run_shl("sample", runs["llama"], "--round", "0", "--steered", cwd=tmp_path)
    assert res.returncode == 2 and "--round >= 1" in res.stderr


def test_sample_is_reproducible_for_a_seed(runs, tmp_path):
    a = run_shl("sample", runs["gemma"], "--n", "2", "--seed", "3", cwd=tmp_path)
    b = run_shl("sample", runs["gemma"], "--n", "2", "--seed", "3", cwd=tmp_path)
    assert a.returncode == 0 and a.stdout == b.stdout


def _toy_variant() -> str | None:
    from shl_plugins.toyworld.train import is_cached

    for variant in ("small", "default"):
        if is_cached(variant, 0):
            return variant
    return None


def test_toy_world_student_exports_with_equal_logits(tmp_path):
    """The toy world's student (cached toy model: no training in the test) exported and reloaded in plain
    transformers equals the student rebuilt from the run's adapters."""
    variant = _toy_variant()
    if variant is None:
        pytest.skip("no cached toy model (shl toyworld build --variant small)")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from shl_plugins.toyworld.train import model_dir

    cfg = write_run_config(tmp_path, "toy.yaml", model={"name": "toyworld", "params": {"variant": variant}},
                           steer={"layers": [1]},
                           eval={"evaluators": [{"name": "toy_exact", "params": {"n_prompts": 4, "n_samples": 0}}]})
    res = run_shl("run", cfg, "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "exported"
    res = run_shl("export", tmp_path / "run", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    got, info = plain_transformers_logits(out, tmp_path)
    assert info["shl_imported"] is False
    base = AutoModelForCausalLM.from_pretrained(model_dir(variant, 0), dtype=torch.float32).eval()
    student = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapters" / "r0"), adapter_name="r0").eval()
    with torch.no_grad():
        want = student(input_ids=torch.tensor(IDS)).logits
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)
