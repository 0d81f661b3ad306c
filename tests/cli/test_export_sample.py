"""``shl export`` and ``shl sample`` on real tiny runs: the exported model loads in plain transformers (no shl
import) and its logits equal the student's (rebuilt independently from the run's adapters with PEFT) within
float tolerance (atol 1e-5 + rtol 1e-5, float32 CPU); the ``--adapter`` export, loaded with PEFT, gives the same logits,
fits vLLM's rules (rank buckets, no modules_to_save, no LoRA on the embeddings or the head unless asked), and
``--max-rank`` compresses it optimally with the errors it states."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import run_shl, shl_env, shl_main, write_run_config

pytestmark = pytest.mark.system  # export and sample on every tiny architecture (the fast tier keeps test_cvector_logits)

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


VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py MaxLoRARanks


def vllm_refusals(adapter_dir: Path, max_lora_rank: int = 16) -> list[str]:
    """What vLLM would refuse in a PEFT adapter directory (vllm/lora/peft_helper.py and vllm/config/lora.py, restated):
    a --max-lora-rank it does not offer, a rank above it, modules_to_save, DoRA, a bias, LoRA on the embeddings or
    the LM head, and full base weights in the adapter file."""
    from safetensors import safe_open

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    out = []
    if max_lora_rank not in VLLM_MAX_LORA_RANKS:
        out.append("max_lora_rank")
    if cfg["r"] > max_lora_rank:
        out.append("rank")
    if cfg.get("modules_to_save"):
        out.append("modules_to_save")
    if cfg.get("use_dora"):
        out.append("dora")
    if cfg.get("bias", "none") != "none":
        out.append("bias")
    if any("embed_tokens" in k or "lm_head" in k or "lora_embedding" in k for k in keys):
        out.append("embedding_or_head")
    if any("base_layer" in k for k in keys):
        out.append("base_weights")
    return out


def adapter_updates(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Per module, the update scaling * B @ A an adapter directory holds (float64)."""
    from safetensors.torch import load_file

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    t = load_file(str(adapter_dir / "adapter_model.safetensors"))
    scaling = cfg["lora_alpha"] / cfg["r"]
    return {k[: -len(".lora_A.weight")]: scaling * t[k.replace("lora_A", "lora_B")].double() @ t[k].double()
            for k in t if k.endswith(".lora_A.weight")}


@pytest.mark.parametrize("arch,rank,bucket", [("llama", 16, 16), ("gemma", 8, 8)])
def test_adapter_export_states_its_rank_and_the_vllm_max_lora_rank(runs, tmp_path, capsys, arch, rank, bucket):
    rc, out, err = shl_main(capsys, "export", runs[arch], "--adapter", "--out", tmp_path / "a")
    assert rc == 0, err
    assert f"rank {rank} (the stack's rank: {rank})" in out and f"--enable-lora --max-lora-rank {bucket}" in out
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert cfg["r"] == rank and cfg["lora_alpha"] == rank and not cfg.get("modules_to_save")
    assert vllm_refusals(tmp_path / "a", bucket) == []
    smaller = VLLM_MAX_LORA_RANKS[VLLM_MAX_LORA_RANKS.index(bucket) - 1]
    assert vllm_refusals(tmp_path / "a", smaller) == ["rank"]
    record = json.loads((tmp_path / "a" / "shl_export.json").read_text())
    assert record["vllm"]["rank"] == rank and record["vllm"]["max_lora_rank"] == bucket


def test_max_rank_compresses_the_adapter_and_states_its_errors(runs, tmp_path, capsys):
    from peft import PeftModel

    from shl.engine.chat import render_prompt
    from shl.export import load_student
    from shl.manager import make_host
    from shl.sample import eval_prompts

    assert shl_main(capsys, "export", runs["llama"], "--adapter", "--out", tmp_path / "full")[0] == 0
    rc, out, err = shl_main(capsys, "export", runs["llama"], "--adapter", "--out", tmp_path / "r4", "--max-rank", "4")
    assert rc == 0, err
    assert "rank 4 (the stack's rank: 16)" in out and "--max-lora-rank 8" in out
    report = json.loads((tmp_path / "r4" / "shl_export.json").read_text())["vllm"]
    assert f"relative error of the updates {report['update_error']:.3g}" in out
    assert f"relative error {report['logits']['rel_error']:.3g}" in out
    cfg = json.loads((tmp_path / "r4" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 4 and vllm_refusals(tmp_path / "r4", 8) == []

    full, small = adapter_updates(tmp_path / "full"), adapter_updates(tmp_path / "r4")
    assert full.keys() == small.keys() and len(full) == report["modules"]
    lost = sum(float(((full[k] - small[k]) ** 2).sum()) for k in full)
    total = sum(float((full[k] ** 2).sum()) for k in full)
    best = sum(float((torch.linalg.svdvals(full[k])[4:] ** 2).sum()) for k in full)  # Eckart-Young optimum
    assert 0 < report["update_error"] < 1
    assert report["update_error"] == pytest.approx((lost / total) ** 0.5, rel=1e-5)
    assert lost == pytest.approx(best, rel=1e-5)

    student = load_student(runs["llama"], device="cpu")
    users, system = eval_prompts(student, None, 8, 0)
    base = make_host().registry.build("model", "tiny_random", {"arch": "llama"}).load("cpu", "float32").model.eval()
    model = PeftModel.from_pretrained(base, str(tmp_path / "full"), adapter_name="full")
    model.load_adapter(str(tmp_path / "r4"), adapter_name="r4")
    diff = norm = 0.0
    with torch.no_grad():
        for user in users:
            ids = torch.tensor([render_prompt(student.tokenizer, user, system)])
            model.set_adapter("full")
            want = model(input_ids=ids).logits
            model.set_adapter("r4")
            got = model(input_ids=ids).logits
            diff, norm = diff + float(((got - want) ** 2).sum()), norm + float((want ** 2).sum())
    assert 0 < report["logits"]["rel_error"] == pytest.approx((diff / norm) ** 0.5, rel=1e-4)
    assert report["logits"]["prompts"] == len(users) == 8

    rc, out, _ = shl_main(capsys, "export", runs["llama"], "--adapter", "--out", tmp_path / "same", "--max-rank", "32")
    assert rc == 0 and "rank 16 (the stack's rank: 16)" in out and "compressed" not in out
    rc, out, _ = shl_main(capsys, "export", runs["llama"], "--adapter", "--out", tmp_path / "r1", "--max-rank", "1")
    assert rc == 0 and "rank 1 (the stack's rank: 16), 14 modules; vLLM: --enable-lora --max-lora-rank 1\n" in out
    rc, _, err = shl_main(capsys, "export", runs["llama"], "--out", tmp_path / "x", "--adapter", "--max-rank", "0")
    assert rc == 2 and "--max-rank must be >= 1" in err and not (tmp_path / "x").exists(), err
    rc, _, err = shl_main(capsys, "export", runs["llama"], "--out", tmp_path / "x", "--max-rank", "4")
    assert rc == 2 and "apply to --adapter" in err and not (tmp_path / "x").exists(), err


@pytest.fixture(scope="module")
def head_run(tmp_path_factory):
    """A finished 1-round tiny llama run whose adapters train the embeddings and the LM head too."""
    root = tmp_path_factory.mktemp("head_run")
    cfg = write_run_config(root, "head.yaml", heal={"epochs": 1, "lora": {"target_modules": ["embed_tokens", "lm_head",
                                                                                              "q_proj"]}})
    res = run_shl("run", cfg, "--out", root / "run", cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "run"


def test_lora_on_embeddings_or_head_is_refused_unless_asked(head_run, tmp_path, capsys):
    from peft import PeftModel

    from shl.manager import make_host

    rc, _, err = shl_main(capsys, "export", head_run, "--adapter", "--out", tmp_path / "a")
    assert rc == 2 and err.count("\n") == 1 and not (tmp_path / "a").exists()
    assert "train model.embed_tokens, lm_head" in err and "--allow-embedding-lora" in err
    rc, out, err = shl_main(capsys, "export", head_run, "--adapter", "--out", tmp_path / "a", "--allow-embedding-lora")
    assert rc == 0, err
    assert "LoRA on the embeddings / LM head (model.embed_tokens, lm_head): vLLM may refuse it" in out
    assert vllm_refusals(tmp_path / "a", 8) == ["embedding_or_head"]  # the LoRA, never the base weights
    base = make_host().registry.build("model", "tiny_random", {"arch": "llama"}).load("cpu", "float32").model.eval()
    with torch.no_grad():
        got = PeftModel.from_pretrained(base, str(tmp_path / "a")).eval()(input_ids=torch.tensor(IDS)).logits
    want = student_logits(head_run, "llama", 1)
    assert (want - student_logits(head_run, "llama", 0)).abs().max() > 1e-4
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)  # the embedding update is in the adapter too
