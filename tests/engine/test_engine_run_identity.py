"""A run's identity (run hash, shared-stage key) covers the model's identity, the plugin versions of the components
it uses and the resolved device/dtype; run-time failures name the plugin and distribution of the component."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from shl.api import Evaluator, Filter, Params, SteeringMethod
from shl.config.loading import resolve_run_config
from shl.config.models import RunConfig
from shl.data import load_data, model_identity, run_hash, run_identity
from shl.engine.loop import Run
from shl.engine.shared_stages import shared_stage_key
from shl.hookspecs import hookimpl
from shl.manager import make_host
from shl.registry import Entry, Origin
from shl.store import RunStore


def tiny_cfg(registry, **over) -> RunConfig:
    raw = {
        "seed": 0,
        "device": "cpu",
        "model": {"name": "tiny_random", "params": {"arch": "llama"}},
        "steer": {"n_contexts": 8, "layers": [1]},
        "dose": {"probe_prompts": 8, "steps": 1},
        "generate": {"n_prompts": 8, "max_new_tokens": 8},
        "filters": [],
        "heal": {"epochs": 1},
        "loop": {"rounds": 1},
        "eval": {"max_new_tokens": 8, "evaluators": [{"name": "coherence", "params": {"n_prompts": 4}}]},
        **over,
    }
    return resolve_run_config(RunConfig.model_validate(raw), registry)


def with_origin(registry, family: str, name: str, origin: Origin) -> None:
    """Re-register a component as if another distribution/version provided it."""
    cls = registry.get(family, name)
    registry._entries[family][name] = Entry(cls, origin)


# ------------------------------------------------------------------------------------------------ model identity


def test_a_local_model_directory_is_fingerprinted_without_loading(tmp_path, host):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"num_hidden_layers": 2}')
    (d / "tokenizer_config.json").write_text('{"chat_template": "a"}')
    weights = d / "model.safetensors"
    weights.write_bytes(b"w" * 100)
    src = host.registry.build("model", "hf", {"name_or_path": str(d)})
    first = src.identity()
    assert first and first == src.identity()
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))  # the weights replaced in place: same size, new mtime
    moved = src.identity()
    assert moved != first
    (d / "config.json").write_text('{"num_hidden_layers": 3}')
    assert src.identity() != moved
    assert host.registry.build("model", "hf", {"name_or_path": "org/not-local"}).identity() is None


def test_generated_models_are_identified_by_what_generates_them(host):
    def ident(src, **params):
        return host.registry.build("model", src, params).identity()

    assert ident("tiny_random", seed=1) != ident("tiny_random", seed=2)
    assert ident("tiny_random", seed=1) == ident("tiny_random", seed=1)
    from shl_plugins.toyworld.train import cache_key

    assert ident("toyworld", variant="small", seed=3) == f"toyworld:small-s3-{cache_key('small', 3)}"


# ------------------------------------------------------------------------------------------------ run hash


def test_run_hash_covers_model_identity_plugin_versions_and_device(tmp_path, monkeypatch):
    host = make_host()
    cfg = tiny_cfg(host.registry)
    d = cfg.model_dump(mode="json")
    h = run_hash(d, registry=host.registry)
    assert h == run_hash(d, registry=host.registry)
    ident = run_identity(d, host.registry)
    assert ident["device"] == "cpu" and ident["dtype"] == "float32"
    assert ident["model_identity"] == model_identity(d, host.registry)
    assert ident["components"]["steer.method"]["name"] == "mean_diff"
    # device/dtype as resolved on the machine that runs it
    assert run_hash(d, registry=host.registry, device="cuda") != h
    # another version of the plugin that provides a component the run uses
    origin = host.registry.entry("steering", "mean_diff").origin
    with_origin(host.registry, "steering", "mean_diff", Origin(origin.plugin, "shl", "999.0"))
    assert run_hash(d, registry=host.registry) != h
    with_origin(host.registry, "steering", "mean_diff", origin)
    assert run_hash(d, registry=host.registry) == h
    # a component the run does not use does not matter
    with_origin(host.registry, "steering", "svd", Origin("x", "other", "2.0"))
    assert run_hash(d, registry=host.registry) == h
    # the model's identity
    tiny = type(host.registry.build("model", "tiny_random", {}))
    monkeypatch.setattr(tiny, "identity", lambda self: "other weights")
    assert run_hash(d, registry=host.registry) != h


def test_run_hash_is_stable_across_processes(tmp_path):
    host = make_host()
    d = tiny_cfg(host.registry).model_dump(mode="json")
    (tmp_path / "cfg.json").write_text(json.dumps(d))
    code = ("import json, sys; from shl.data import run_hash; "
            "print(run_hash(json.load(open(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cfg.json")], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == run_hash(d, registry=host.registry)


# ------------------------------------------------------------------------------------------------ shared-stage key


def test_shared_stage_key_covers_identity_versions_device_and_dtype():
    host = make_host()
    cfg = tiny_cfg(host.registry)
    source = load_data(cfg.data).source

    def key(identity: str, device: str = "cpu", dtype: str = "float32") -> str:
        return shared_stage_key(cfg, host.registry, identity, device, dtype, source)

    base = key("weights A")
    assert key("weights A") == base
    assert key("weights B") != base
    assert key("weights A", dtype="bfloat16") != base
    assert key("weights A", device="cuda") != base
    origin = host.registry.entry("evaluator", "coherence").origin
    with_origin(host.registry, "evaluator", "coherence", Origin(origin.plugin, "shl", "999.0"))
    assert key("weights A") != base  # a pre-heal component
    with_origin(host.registry, "evaluator", "coherence", origin)
    agg = cfg.heal.barrier.aggregator.name
    with_origin(host.registry, "aggregator", agg, Origin("x", "other", "2.0"))
    assert key("weights A") == base  # the heal's components do not enter the pre-heal stages


# ------------------------------------------------------------------------------------------------ run-time errors


class ExplodingMethod(SteeringMethod):
    name = "exploding_method"

    class Params(Params):
        pass

    def fit(self, pos, neg):
        raise ZeroDivisionError("boom in fit")


class ExplodingEvaluator(Evaluator):
    name = "exploding_eval2"

    class Params(Params):
        pass

    def evaluate(self, ctx):
        raise KeyError("boom in evaluate")


class ExplodingFilter(Filter):
    name = "exploding_filter2"

    class Params(Params):
        pass

    def judge(self, completions, ctx):
        raise ZeroDivisionError("boom in judge")


def _plugin():
    mod = types.SimpleNamespace()
    mod.shl_register_steering_methods = hookimpl(lambda register: register(ExplodingMethod))
    mod.shl_register_evaluators = hookimpl(lambda register: register(ExplodingEvaluator))
    mod.shl_register_filters = hookimpl(lambda register: register(ExplodingFilter))
    return mod


@pytest.mark.parametrize(
    "where, needle",
    [("steer", "steering method 'exploding_method' raised ZeroDivisionError: boom in fit"),
     ("eval", "evaluator 'exploding_eval2' raised KeyError: 'boom in evaluate'"),
     ("filters", "filter 'exploding_filter2' raised ZeroDivisionError: boom in judge")],
)
def test_run_time_failures_name_the_plugin_and_distribution(tmp_path, where, needle):
    host = make_host(extra_plugins=[("exploding", _plugin())], entry_points=True)
    with_origin(host.registry, "steering", "exploding_method", Origin("exploding", "shl-exploding", "1.2.3"))
    with_origin(host.registry, "evaluator", "exploding_eval2", Origin("exploding", "shl-exploding", "1.2.3"))
    with_origin(host.registry, "filter", "exploding_filter2", Origin("exploding", "shl-exploding", "1.2.3"))
    over = {
        "steer": {"steer": {"method": "exploding_method", "n_contexts": 8, "layers": [1]}},
        "eval": {"eval": {"max_new_tokens": 8, "evaluators": [{"name": "exploding_eval2"}]}},
        "filters": {"filters": [{"name": "length"}, {"name": "exploding_filter2"}]},
    }[where]
    cfg = tiny_cfg(host.registry, **over)
    store = RunStore(tmp_path / "run")
    outcome = Run(cfg, host, store).execute()
    assert outcome.status == "failed"
    assert outcome.message == f"{needle} (plugin 'exploding', distribution shl-exploding 1.2.3)"
    meta = json.loads((store.dir / "meta.json").read_text())
    key = {"steer": "steer.method", "eval": "eval.evaluators[0]", "filters": "filters[1]"}[where]
    assert meta["components"][key]["distribution"] == "shl-exploding"
    assert meta["components"][key]["version"] == "1.2.3"
