"""A plugin that raises mid-run: the run ends 'failed' with a message naming the plugin; nothing half-written."""

from __future__ import annotations

import json
import types

import pytest

from shl.api import Evaluator, Filter, Params
from shl.config.loading import resolve_run_config
from shl.config.models import RunConfig
from shl.engine.loop import Run
from shl.hookspecs import hookimpl
from shl.manager import make_host
from shl.store import RunStore


class ExplodingFilter(Filter):
    name = "exploding_filter"

    class Params(Params):
        pass

    def judge(self, completions, ctx):
        raise ZeroDivisionError("boom in judge")


class ExplodingEvaluator(Evaluator):
    name = "exploding_eval"

    class Params(Params):
        pass

    def evaluate(self, ctx):
        raise KeyError("boom in evaluate")


def _plugin():
    mod = types.SimpleNamespace()
    mod.shl_register_filters = hookimpl(lambda register: register(ExplodingFilter))
    mod.shl_register_evaluators = hookimpl(lambda register: register(ExplodingEvaluator))
    return mod


@pytest.mark.parametrize(
    "where, needle",
    [("filters", "filter 'exploding_filter' raised ZeroDivisionError"),
     ("eval", "evaluator 'exploding_eval' raised KeyError")],
)
def test_plugin_that_raises_fails_the_run_cleanly(tmp_path, where, needle):
    host = make_host(extra_plugins=[("exploding", _plugin())])
    raw = {
        "model": {"name": "tiny_random"},
        "steer": {"n_contexts": 8, "layers": [1]},
        "dose": {"probe_prompts": 8, "steps": 1},
        "generate": {"n_prompts": 8, "max_new_tokens": 8},
        "filters": [{"name": "exploding_filter"}] if where == "filters" else [],
        "heal": {"epochs": 1},
        "loop": {"rounds": 1},
        "eval": {"max_new_tokens": 8, "evaluators": [
            {"name": "exploding_eval"} if where == "eval" else {"name": "coherence", "params": {"n_prompts": 4}}]},
    }
    cfg = resolve_run_config(RunConfig.model_validate(raw), host.registry)
    store = RunStore(tmp_path / "run")
    outcome = Run(cfg, host, store).execute()
    assert outcome.status == "failed" and needle in outcome.message
    assert store.status() == "failed" and not store.is_done()
    failed = json.loads((store.dir / "FAILED.json").read_text())
    assert needle in failed["error"] and "Traceback" in failed["traceback"]
    rounds = [r["round"] for r in store.metrics()]
    assert rounds == ([0] if where == "filters" else [])  # only complete rows were written
