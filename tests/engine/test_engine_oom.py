"""CUDA out-of-memory errors become one line naming the knob to lower (simulated: torch.OutOfMemoryError raised
on CPU from inside the engine stage)."""

from __future__ import annotations

import pytest
import torch

from shl import api
from shl.config.models import HealConfig, LoraConfig
from shl.engine import generate as generate_mod
from shl.engine import heal as heal_mod
from shl.engine import scoring as scoring_mod
from shl.engine.adapters import AdapterStack
from shl.engine.chat import encode_completion, render_prompt
from shl.engine.oom import knob_for, oom_as_run_error
from shl.errors import RunError


def _oom(*a, **k):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_generation_oom_names_generate_batch_size(llama, monkeypatch):
    monkeypatch.setattr(generate_mod, "sample_batch", _oom)
    monkeypatch.setattr(generate_mod, "GENERATE_IMPL", "fast")
    tok = llama.tokenizer
    with pytest.raises(RunError) as info, oom_as_run_error():
        generate_mod.generate(llama.model, tok, [("hi", render_prompt(tok, "hi"))], max_new_tokens=2)
    msg = str(info.value)
    assert "\n" not in msg and "CUDA out of memory" in msg and "generate.batch_size" in msg


def test_heal_oom_names_the_heal_knobs(llama, monkeypatch):
    tok = llama.tokenizer
    stack = AdapterStack(llama.model, LoraConfig(r=2, alpha=4.0))
    params = stack.new_round()
    c = api.Completion(user="q", prompt_ids=render_prompt(tok, "q"), completion_ids=encode_completion(tok, "ok."),
                       text="ok.")
    monkeypatch.setattr(heal_mod, "completion_terms", _oom)
    s = HealConfig(regulariser="kl_rev", barrier={"reference": "prev", "level": "sequence", "tau": 0.0}, lam=1.0,
                   spectral=0.0, weight_decay=0.0, epochs=1, lr=1e-3, batch_size=4, max_grad_norm=1.0)
    agg = type("A", (api.Aggregator,), {"name": "a", "aggregate": lambda self, kl: kl.mean()})()
    with pytest.raises(RunError) as info:
        heal_mod.heal_round(stack, tok, [c], s, agg, params, 0, 0)
    msg = str(info.value)
    assert "\n" not in msg and "heal.batch_size" in msg and "heal.gradient_checkpointing" in msg


def test_scoring_oom_names_the_scorer_batch_size(llama, monkeypatch):
    tok = llama.tokenizer
    c = api.Completion(user="q", prompt_ids=render_prompt(tok, "q"), completion_ids=encode_completion(tok, "ok."),
                       text="ok.")
    monkeypatch.setattr(scoring_mod, "final_states", _oom)
    with pytest.raises(RunError) as info:
        scoring_mod.completion_logprobs(llama.model, tok, [c], 4)
    assert "batch_size" in str(info.value) and "\n" not in str(info.value)


def test_knob_for_an_error_from_outside_the_engine_lists_the_batch_sizes():
    try:
        _oom()
    except torch.OutOfMemoryError as exc:
        stage, knob = knob_for(exc)
    assert stage == "run" and "generate.batch_size" in knob and "heal.batch_size" in knob
