"""Checks made before any run starts: layers against the model's depth, comparison metrics against what the
evaluators produce, identical arms, and names that are safe single path components."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import TINY_RUN, run_shl, write_experiment, write_run_config

from shl import api
from shl.config.experiment import identical_arms, load_experiment, plan_runs
from shl.config.loading import load_run_config, model_layers
from shl.config.models import ENGINE_METRICS, RunConfig
from shl.errors import ConfigError


def _plan(path: Path, registry, **kw):
    exp, base = load_experiment(path)
    return plan_runs(path, exp, base, registry, **kw)


def _error(fn, *args, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


# ------------------------------------------------------------------------------------ layers


@pytest.mark.parametrize("layers,bad", [([99], "99"), ([0, 2], "2"), ([-3], "-3")])
def test_out_of_range_layer_is_caught_at_load(tmp_path: Path, registry, layers, bad):
    path = write_run_config(tmp_path, steer={"layers": layers})
    msg = _error(load_run_config, path, registry=registry)
    assert msg.startswith(f"{path}: steer.layers[")
    assert f"={bad}: out of range, model 'tiny_random' has 2 layers" in msg


def test_layer_check_follows_the_model_params_and_overrides(tmp_path: Path, registry):
    path = write_run_config(tmp_path, steer={"layers": [5, -6, 0.9]})
    cfg = load_run_config(path, ["model.params.layers=6"], registry)
    assert cfg.steer.layers == [5, -6, 0.9]
    assert "steer.layers" in _error(load_run_config, path, ["model.params.layers=5"], registry)


def test_layer_check_in_plan_names_the_arm(tmp_path: Path, registry):
    exp = write_experiment(tmp_path, arms={"mean": {}, "deep": {"steer.layers": [7]}})
    msg = _error(_plan, exp, registry)
    assert msg.startswith(f"{exp}: arms.deep: steer.layers[0]=7: out of range") and "tiny_random" in msg


def test_toyworld_depth_is_known_without_loading(registry):
    toy = registry.get("model", "toyworld")
    assert toy(toy.Params()).num_layers() == 4
    assert toy(toy.Params(variant="small")).num_layers() == 2
    cfg = RunConfig.model_validate({"model": {"name": "toyworld", "params": {"variant": "small"}},
                                    "steer": {"layers": [3]}})
    from shl.config.loading import resolve_run_config

    assert "has 2 layers" in _error(resolve_run_config, cfg, registry)


def test_hf_depth_from_a_local_config_only(tmp_path: Path, registry):
    hf = registry.get("model", "hf")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 3}))
    assert hf(hf.Params(name_or_path=str(tmp_path / "m"))).num_layers() == 3
    assert hf(hf.Params(name_or_path="no-such-org/no-such-model-xyz")).num_layers() is None
    path = write_run_config(tmp_path, model={"name": str(tmp_path / "m")}, steer={"layers": [3]})
    assert f"model '{tmp_path / 'm'}' has 3 layers" in _error(load_run_config, path, registry=registry)
    unknown = write_run_config(tmp_path, "u.yaml", model={"name": "no-such-org/no-such-model-xyz"},
                               steer={"layers": [99]})
    assert load_run_config(unknown, registry=registry).steer.layers == [99]  # unknown depth: checked at run time


def test_model_source_default_is_unknown_depth(registry):
    assert api.ModelSource().num_layers() is None
    cfg = load_run_config(None, ["model.name=tiny_random", "steer.layers=[1]"], registry)
    assert model_layers(cfg, registry) == 2


# ------------------------------------------------------------------------------------ comparison metrics


def _with_metrics(tmp_path: Path, names: list[str], **kw) -> Path:
    exp = write_experiment(tmp_path, **kw)
    raw = yaml.safe_load(exp.read_text())
    raw["comparison"]["metrics"] = [{"name": n} for n in names]
    raw["comparison"]["primary"] = names[0]
    exp.write_text(yaml.safe_dump(raw))
    return exp


def test_unknown_comparison_metric_is_rejected_at_planning(tmp_path: Path, registry):
    exp = _with_metrics(tmp_path, ["coherence", "coherense"])
    msg = _error(_plan, exp, registry)
    assert msg.startswith(f"{exp}: comparison.metrics[1]: no run of arm 'mean' produces metric 'coherense'")
    assert "coherence" in msg and "trait_margin" in msg and "trait_raw" in msg


@pytest.mark.parametrize("metric", ["coherence", "coherence_se", "trait_raw", "steered_trait", "steered_trait_se",
                                    "kappa", "keep_share", "heal_nll", "barrier_active", "kl_agg", "cos_r0",
                                    "vector_norm", "probe_survival", "lam", "tau", "drop_length", "distinct2"])
def test_evaluator_steered_and_engine_metrics_are_accepted(tmp_path: Path, registry, metric):
    assert _plan(_with_metrics(tmp_path, [metric]), registry)


def test_engine_metric_list_matches_what_the_engine_writes():
    for key in ("kappa", "kept", "keep_share", "heal_nll", "barrier_active", "kl_agg", "cos_r0", "vector_norm",
                "probe_survival", "lam", "tau", "heal_loss", "heal_kl", "spectral_norm2", "heal_steps"):
        assert key in ENGINE_METRICS


def test_steered_metric_needs_steered_evaluation(tmp_path: Path, registry):
    exp = _with_metrics(tmp_path, ["steered_trait"], base_over={"eval": {"steered": False}})
    msg = _error(_plan, exp, registry)
    assert "'steered_trait'" in msg and "eval.steered: true" in msg


def test_metric_missing_in_one_arm_only_is_rejected(tmp_path: Path, registry):
    arms = {"mean": {}, "rmse": {"eval.evaluators": [{"name": "coherence"}]}}
    exp = _with_metrics(tmp_path, ["trait"], arms=arms)
    assert "no run of arm 'rmse' produces metric 'trait'" in _error(_plan, exp, registry)


def test_declared_metrics_of_builtin_evaluators(registry):
    for name in registry.names("evaluator"):
        metrics = registry.get("evaluator", name).metrics
        if name in ("coherence", "trait_margin", "toy_exact"):
            assert metrics and all(isinstance(m, str) for m in metrics)
    assert "trait_signed" in registry.get("evaluator", "toy_exact").metrics


def test_undeclared_evaluator_skips_the_check(tmp_path: Path, registry, monkeypatch):
    monkeypatch.setattr(registry.get("evaluator", "trait_margin"), "metrics", None)
    assert _plan(_with_metrics(tmp_path, ["anything_goes"]), registry)


def test_coherence_floor_metric_must_be_produced(tmp_path: Path, registry):
    path = write_run_config(tmp_path, loop={"coherence_floor": 0.2, "coherence_metric": "coherense"})
    msg = _error(load_run_config, path, registry=registry)
    assert msg.startswith(f"{path}: loop.coherence_metric: 'coherense' is not a metric of this run")
    ok = write_run_config(tmp_path, "ok.yaml", loop={"coherence_floor": 0.2, "coherence_metric": "trait"})
    assert load_run_config(ok, registry=registry).loop.coherence_floor == 0.2


# ------------------------------------------------------------------------------------ identical arms


def test_identical_arms_are_detected(tmp_path: Path, registry):
    arms = {"mean": {"heal.barrier.aggregator": "mean"}, "rmse": {"heal.barrier.aggregator": "rmse"},
            "again": {"heal.barrier.aggregator": {"name": "mean"}}, "dflt": {}, "named": {"name": "other"}}
    planned = _plan(write_experiment(tmp_path, arms=arms), registry)
    # the base aggregator is rmse (params default), and a run's name does not change what it does
    assert identical_arms(planned) == [("mean", "again"), ("rmse", "dflt"), ("rmse", "named")]


def test_distinct_arms_have_no_warning(tmp_path: Path, registry):
    assert identical_arms(_plan(write_experiment(tmp_path), registry)) == []
    assert identical_arms([]) == []


# ------------------------------------------------------------------------------------ names


BAD_NAMES = ["", "../escape", "a/b", "a\\b", ".hidden", "-x", "a\x00b", "x" * 101, " ", "a b", "..", "_x"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_experiment_names_are_rejected(tmp_path: Path, name: str):
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**raw, "name": name}))
    error = _error(load_experiment, exp)
    assert "name:" in error
    assert ("a NUL character is not allowed" if "\x00" in name else "not a safe name") in error


@pytest.mark.parametrize("name", BAD_NAMES + ["a__b"])
def test_unsafe_arm_names_are_rejected(tmp_path: Path, name: str):
    exp = write_experiment(tmp_path, arms={"mean": {}, name: {"heal.lam": 0.5}})
    assert "arm name" in _error(load_experiment, exp)


@pytest.mark.parametrize("name", BAD_NAMES + [5])
def test_unsafe_run_names_are_rejected(tmp_path: Path, name):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**TINY_RUN, "name": name}))
    assert _error(load_run_config, path).startswith(f"{path}: name: ")


@pytest.mark.parametrize("name", ["a", "barrier_agg", "v1.2-final", "A" * 100, "0"])
def test_safe_names_are_accepted(tmp_path: Path, name: str):
    exp = write_experiment(tmp_path, arms={"mean": {}, name: {"heal.lam": 0.5}})
    raw = yaml.safe_load(exp.read_text())
    exp.write_text(yaml.safe_dump({**raw, "name": name}))
    assert load_experiment(exp)[0].name == name
    assert load_run_config(None, [f"name={name!r}"]).name == name


# ------------------------------------------------------------------------------------ the real CLI


def test_cli_seeds_flag_too_many_is_one_line_and_fast(tmp_path: Path):
    exp = write_experiment(tmp_path)
    proc = run_shl("ablate", exp.name, "--dry-run", "--seeds", "0-200000", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines == ["error: --seeds: '0-200000' is 200001 seeds; at most 1000 per plan"], lines
