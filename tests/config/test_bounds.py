"""Counts, sizes and seeds are bounded; counts and flags are not coerced; floats are finite; errors are few."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import yaml
from cli_helpers import TINY_RUN, write_experiment
from pydantic import BaseModel

from shl.config.experiment import MAX_SEEDS, ExperimentConfig, load_experiment, parse_seeds, plan_runs
from shl.config.loading import MAX_ERROR_LINES, load_run_config, validate_model
from shl.config.models import RunConfig
from shl.errors import ConfigError


def _fields(model: type[BaseModel], prefix: str = ""):
    """(dotted path, FieldInfo, scalar type) for every int/float/bool field of the config tree."""
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        base = args[0] if typing.get_origin(ann) is typing.Union and len(args) == 1 else ann
        if isinstance(base, type) and issubclass(base, BaseModel):
            yield from _fields(base, f"{prefix}{name}.")
        elif base in (int, float, bool):
            yield f"{prefix}{name}", f, base


INT_FIELDS = [(p, f) for p, f, t in _fields(RunConfig) if t is int]
FLOAT_FIELDS = [(p, f) for p, f, t in _fields(RunConfig) if t is float]
BOOL_FIELDS = [(p, f) for p, f, t in _fields(RunConfig) if t is bool]


def _nested(path: str, value) -> dict:
    out: dict = {}
    node = out
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _validate(path: str, value) -> RunConfig:
    return validate_model(RunConfig, _nested(path, value), "cfg.yaml")


def _upper(f) -> float | None:
    return next((m.le for m in f.metadata if getattr(m, "le", None) is not None), None)


def test_the_field_lists_cover_the_audited_fields():
    names = {p for p, _ in INT_FIELDS}
    for expected in ("generate.n_prompts", "generate.max_new_tokens", "generate.batch_size", "heal.epochs",
                     "loop.rounds", "steer.n_contexts", "dose.probe_prompts", "heal.lora.r", "eval.batch_size"):
        assert expected in names
    assert "heal.lam" in {p for p, _ in FLOAT_FIELDS} and "eval.steered" in {p for p, _ in BOOL_FIELDS}


@pytest.mark.parametrize("path,field", INT_FIELDS, ids=[p for p, _ in INT_FIELDS])
def test_every_count_has_an_upper_bound_and_rejects_values_above_it(path, field):
    top = _upper(field)
    assert top is not None, f"{path} has no upper bound"
    assert top <= 2**63 - 1
    with pytest.raises(ConfigError, match=rf"cfg.yaml: {path}: .*less than or equal"):
        _validate(path, int(top) + 1)


@pytest.mark.parametrize("path,field", INT_FIELDS, ids=[p for p, _ in INT_FIELDS])
@pytest.mark.parametrize("bad", [True, "3", 3.0, 1e23])
def test_counts_reject_bools_strings_and_floats(path, field, bad):
    with pytest.raises(ConfigError, match=rf"^cfg.yaml: {path}: .*integer"):
        _validate(path, bad)


@pytest.mark.parametrize("path,field", BOOL_FIELDS, ids=[p for p, _ in BOOL_FIELDS])
@pytest.mark.parametrize("bad", [1, 0, "yes", "true"])
def test_flags_reject_ints_and_strings(path, field, bad):
    with pytest.raises(ConfigError, match=rf"^cfg.yaml: {path}: .*boolean"):
        _validate(path, bad)


@pytest.mark.parametrize("path,field", FLOAT_FIELDS, ids=[p for p, _ in FLOAT_FIELDS])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, "inf", "nan", True])
def test_floats_must_be_finite_numbers(path, field, bad):
    with pytest.raises(ConfigError, match=rf"^cfg.yaml: {path}: "):
        _validate(path, bad)


def test_numeric_strings_stay_accepted_for_floats_as_yaml_reads_1e_3():
    raw = yaml.safe_load("heal: {lr: 1e-3, lam: 2}\ndose: {scale: 1.0e+1}")
    assert raw["heal"]["lr"] == "1e-3"  # PyYAML: no dot -> a string
    cfg = validate_model(RunConfig, raw)
    assert cfg.heal.lr == 0.001 and cfg.heal.lam == 2.0 and cfg.dose.scale == 10.0


def test_layers_and_alphas_are_typed_too():
    for bad, what in (({"steer": {"layers": [True]}}, "steer.layers"), ({"steer": {"layers": ["1"]}}, "steer.layers"),
                      ({"generate": {"alphas": [math.inf]}}, "generate.alphas"),
                      ({"steer": {"layers": list(range(1000))}}, "steer.layers")):
        with pytest.raises(ConfigError, match=what):
            validate_model(RunConfig, bad)
    assert validate_model(RunConfig, {"steer": {"layers": [1, -1, 0.5]}}).steer.layers == [1, -1, 0.5]


def test_yaml_float_for_a_count_is_rejected_not_truncated(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("generate:\n  n_prompts: 1.0e+23\nloop:\n  rounds: true\n")
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}: generate.n_prompts: Input should be a valid integer (got 1e+23)",
        f"{path}: loop.rounds: Input should be a valid integer (got True)",
    ]


# ------------------------------------------------------------------------------------ plugin params


def _plugin_fields(registry, kind):
    out = []
    for family in ("steering", "filter", "aggregator", "schedule", "evaluator", "model"):
        for name in registry.names(family):
            params = registry.get(family, name).Params
            for fname, f in params.model_fields.items():
                args = [a for a in typing.get_args(f.annotation) if a is not type(None)] or [f.annotation]
                if kind in args:
                    out.append((family, name, fname, params))
    return out


def test_plugin_params_reject_non_finite_floats_and_coerced_counts(registry):
    floats = _plugin_fields(registry, float)
    ints = _plugin_fields(registry, int)
    bools = _plugin_fields(registry, bool)
    assert floats and ints and bools
    for family, name, fname, params in floats:
        for bad in (math.inf, math.nan, True):
            with pytest.raises(Exception):
                params.model_validate({fname: bad})
    for family, name, fname, params in ints:
        for bad in (True, "3", 3.0):
            with pytest.raises(Exception):
                params.model_validate({fname: bad})
    for family, name, fname, params in bools:
        for bad in (1, "yes"):
            with pytest.raises(Exception):
                params.model_validate({fname: bad})


def test_plugin_param_error_names_the_path_and_the_plugin(tmp_path: Path, registry):
    raw = {**TINY_RUN, "heal": {"barrier": {"aggregator": {"name": "p95", "params": {"q": ".inf"}}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw).replace("'.inf'", ".inf"))
    with pytest.raises(ConfigError) as info:
        load_run_config(path, registry=registry)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    assert "heal.barrier.aggregator.params.q" in msg and "finite" in msg and "p95" in msg


def test_plugin_float_params_still_take_yaml_numeric_strings(tmp_path: Path, registry):
    raw = {**TINY_RUN, "heal": {"barrier": {"aggregator": {"name": "rmse", "params": {"eps": "1e-6"}}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_run_config(path, registry=registry).heal.barrier.aggregator.params["eps"] == 1e-6


# ------------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize("seeds", ["0-200000", 200000, "0-10000000000000", list(range(MAX_SEEDS + 1)),
                                   "0-500,1000-1600"])
def test_too_many_seeds_is_one_clear_error_before_expanding(seeds):
    with pytest.raises(ValueError, match=rf"at most {MAX_SEEDS} per plan"):
        parse_seeds(seeds)


@pytest.mark.parametrize("seeds", ["99999999999999999999999", [2**64], "0-99999999999999999999999", "1²"])
def test_out_of_range_or_odd_seeds_are_rejected(seeds):
    with pytest.raises(ValueError):
        parse_seeds(seeds)


def test_seed_limit_is_inclusive():
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS
    assert parse_seeds(MAX_SEEDS) == list(range(MAX_SEEDS))


def test_experiment_with_too_many_seeds_fails_at_load(tmp_path: Path):
    exp = write_experiment(tmp_path, seeds="0-200000")
    with pytest.raises(ConfigError) as info:
        load_experiment(exp)
    assert str(info.value) == f"{exp}: seeds: '0-200000' is 200001 seeds; at most {MAX_SEEDS} per plan (got '0-200000')"


def test_plan_is_bounded_in_runs(tmp_path: Path, registry):
    arms = {f"a{i}": {"heal.lam": float(i)} for i in range(11)}
    exp_path = write_experiment(tmp_path, arms=arms, baseline="a0", seeds=f"0-{MAX_SEEDS - 1}")
    exp, base = load_experiment(exp_path)
    with pytest.raises(ConfigError, match=r"11 arms x 1000 seeds = 11000 runs; at most 10000"):
        plan_runs(exp_path, exp, base, registry)


# ------------------------------------------------------------------------------------ error lines


def test_many_errors_are_cut_to_the_first_twenty(tmp_path: Path):
    path = tmp_path / "keys.yaml"
    path.write_text("".join(f"key{i}: {i}\n" for i in range(5000)))
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_ERROR_LINES + 1
    assert lines[0] == f"{path}: key0: unknown key"
    assert lines[-1] == f"... and {5000 - MAX_ERROR_LINES} more errors"


def test_many_experiment_errors_are_cut_too(tmp_path: Path):
    raw = {f"k{i}": i for i in range(100)}
    with pytest.raises(ConfigError) as info:
        validate_model(ExperimentConfig, raw, "e.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_ERROR_LINES + 1 and lines[-1].startswith("... and ")


def test_many_plugin_param_errors_are_cut(tmp_path: Path, registry):
    raw = {**TINY_RUN, "steer": {"method": {"name": "mean_diff", "params": {f"x{i}": i for i in range(50)}}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_run_config(path, registry=registry)
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_ERROR_LINES + 1
    assert lines[0].startswith(f"{path}: steer.method.params.x") and "mean_diff" in lines[0]
    assert lines[-1] == "... and 30 more errors"
