"""SmolLM2-135M-Instruct end to end on a CPU: the shipped round runs, the steered point moves the persona trait
while a random vector of the same norm does not, the healed student keeps part of it, the exported student is the
student, the exported control vector is shl's steering, and metrics repeat exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import ROOT, shl

from shl.store import inspect_run


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_shipped_round_runs_end_to_end(smoke_run: Path):
    assert inspect_run(smoke_run).status == "complete"
    base, r1 = rows(smoke_run)
    assert base["trait_logodds"] == 0.0
    assert base["coherence"] >= 0.95  # the base model's own answers, under the threshold calibrated to it
    assert r1["kept"] >= 8 and 0.2 <= r1["kappa"] <= 1.0
    for key in ("coherence", "trait_logodds", "steered_coherence", "steered_trait_logodds", "heal_nll", "kl_agg"):
        assert isinstance(r1[key], float), key
    samples = [json.loads(line) for line in (smoke_run / "samples.jsonl").read_text().splitlines()]
    assert any(s["kind"] == "steered_kept" and len(s["text"].split()) >= 5 for s in samples)


def test_the_healed_student_keeps_part_of_the_steered_trait(smoke_run: Path):
    _, r1 = rows(smoke_run)
    steered, healed, se = r1["steered_trait_logodds"], r1["trait_logodds"], r1["trait_logodds_se"]
    assert steered > 3 * r1["steered_trait_logodds_se"]  # the steered point writes more like the positive persona
    assert healed - 1.64 * se > 0  # the unsteered healed student keeps some of it (one-sided 95%)
    assert healed < steered  # ... part of it


def test_steering_moves_the_trait_and_a_random_vector_of_the_same_norm_does_not(smollm2: Path):
    """At one fixed coefficient (controller off), the steered point's trait of the mean-diff vector is far above
    0; a random vector with the same norm (the `random` method) does not move it towards the persona (measured:
    +0.116 +- 0.018 against -0.040 +- 0.018: any perturbation this large makes answers slightly less persona-like),
    and the two differ by far more than their noise."""
    from shl.config import load_run_config
    from shl.engine.evaluate import evaluate
    from shl.engine.loop import Run
    from shl.engine.scoring import EngineScorer
    from shl.engine.steering import Steerer
    from shl.manager import get_host

    host = get_host()
    results = {}
    for method in ("mean_diff", "random"):
        cfg = load_run_config(ROOT / "experiments/real/smoke_smollm2.yaml", [f"steer.method={method}"], host.registry)
        run = Run(cfg, host, data_root=ROOT / "experiments/real")
        run.prepare()
        from shl.engine.extract import extract_pairs

        pairs = extract_pairs(run.stack.model, run.tok, run.data, run.data.contexts[:32], run.layers, "prompt_mean", 32)
        vectors = {k: run.method.fit_layer(p, n, layer=k, round_index=0) for k, (p, n) in pairs.items()}
        steerer = Steerer(run.method, vectors, 8.0)
        evaluators = [("persona_logodds", host.registry.build("evaluator", "persona_logodds", {"n_prompts": 24}))]
        scorer = EngineScorer(run.stack.model, run.tok, run.stack, steerer, 64, run.prompt_cache)
        caches: dict = {}
        evaluate(evaluators, run.stack, run.tok, run.data, EngineScorer(run.stack.model, run.tok, run.stack, None, 64,
                 run.prompt_cache), seed=0, round=0, max_new_tokens=32, batch_size=64, caches=caches)
        with steerer.installed(run.stack.model):
            metrics, _ = evaluate(evaluators, run.stack, run.tok, run.data, scorer, seed=0, round=1,
                                  max_new_tokens=32, batch_size=64, steerer=steerer, caches=caches)
        results[method] = (metrics["trait_logodds"], metrics["trait_logodds_se"], float(
            torch.cat([v.flatten() for v in vectors.values()]).norm()))
    (md, md_se, md_norm), (rnd, rnd_se, rnd_norm) = results["mean_diff"], results["random"]
    assert rnd_norm == pytest.approx(md_norm, rel=1e-5)
    assert md > 4 * md_se, results
    assert rnd < 1.64 * rnd_se and abs(rnd) < md / 2, results  # not towards the persona (one-sided 95%)
    assert md - rnd > 4 * (md_se**2 + rnd_se**2) ** 0.5, results


def test_the_exported_student_is_the_student_in_plain_transformers(smoke_run: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shl.export import load_student

    proc = shl("export", smoke_run, "--out", tmp_path / "student", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "student", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(tmp_path / "student")
    student = load_student(smoke_run)
    text = tok.apply_chat_template([{"role": "user", "content": "My neighbour broke a rule. What should I do?"}],
                                   add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        got, want = model(input_ids=ids).logits, student.model(input_ids=ids).logits
    # merged float32 weights round differently from base + LoRA branches: logits of magnitude ~20 agree to ~1e-4
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_the_exported_control_vector_is_shls_steering(smoke_run: Path, tmp_path: Path):
    """The control vector of round 1 reads back through gguf and repeng with the run's dose in it, imports
    (``from_file``) bit for bit, and, added by a plain hook at llama.cpp's place (block output), gives shl's own
    steered logits of that round bit for bit (tests/cli/test_cvector_logits.py on tiny models)."""
    import numpy as np
    from cvector_helpers import block_hook_logits, gguf_fields, import_repeng, llama_cpp_load, shl_steered_logits
    from safetensors.torch import load_file

    from shl.export import load_student
    from shl.export_cvector import export_control_vector
    from shl_plugins.steering.from_file import FromFile

    out = export_control_vector(smoke_run, tmp_path / "r1.gguf", round=1).path
    student = load_student(smoke_run, round=0)
    model, tok = student.model, student.tokenizer
    directions = llama_cpp_load(out, model.config.num_hidden_layers, model.config.hidden_size)
    stored = load_file(str(smoke_run / "vectors" / "round_0.safetensors"))
    vectors = {int(k.split("_")[1]): v for k, v in stored.items()}
    assert sorted(directions) == sorted(vectors) == [18]
    coeff = rows(smoke_run)[1]["coeff"]
    method = student.host.registry.build("steering", "mean_diff", {})
    text = tok.apply_chat_template([{"role": "user", "content": "What should I do today?"}],
                                   add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    want = shl_steered_logits(model, ids, method, vectors, coeff)
    assert torch.equal(block_hook_logits(model, ids, directions), want)

    fields = gguf_fields(out)
    assert fields["general.architecture"][0] == "controlvector" and fields["controlvector.model_hint"][0] == "llama"
    assert fields["controlvector.layer_count"][0] == 1 and fields["shl.coeff"][0] == coeff
    cv = import_repeng().ControlVector.import_gguf(str(out))
    assert sorted(cv.directions) == [18] and cv.directions[18].dtype == np.float32
    assert np.array_equal(cv.directions[18], (coeff * vectors[18]).numpy())
    imported = FromFile(FromFile.Params(path=str(out))).fit_layer(torch.zeros(2, 576), torch.zeros(2, 576), layer=18,
                                                                   round_index=0)
    assert torch.equal(imported, coeff * vectors[18])


def test_metrics_repeat_exactly(smollm2: Path, tmp_path: Path):
    small = ["--set", "generate.n_prompts=8", "--set", "dose.probe_prompts=4", "--set", "steer.n_contexts=8",
             "--set", "eval.evaluators=[{name: coherence, params: {n_prompts: 6}}, "
             "{name: persona_logodds, params: {n_prompts: 6}}]", "--set", "heal.epochs=1", "--set", "loop.min_kept=2"]
    config = ROOT / "experiments" / "real" / "smoke_smollm2.yaml"
    for name in ("a", "b"):
        proc = shl("run", config, *small, "--out", tmp_path / name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == (tmp_path / "b" / "metrics.jsonl").read_bytes()
