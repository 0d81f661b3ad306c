"""Bad input: exit code 2, one ``error: ...`` line per problem naming what and where, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import TINY_ARMS, run_shl, write_experiment, write_run_config


def assert_user_error(proc, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, out
    assert all(line.startswith("error: ") for line in lines), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    return proc.stderr


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nheal:\n  lam: [1\n  epochs: 1\n")
    err = assert_user_error(run_shl("validate", bad.name, cwd=tmp_path), "bad.yaml", "YAML syntax error")
    assert "line 4" in err


def test_unknown_key_names_the_dotted_path(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barier": {"tau": 1.0}})
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "heal.barier", "unknown key")


def test_unknown_key_via_set(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    assert_user_error(run_shl("validate", cfg.name, "--set", "heal.barier.tau=1", cwd=tmp_path), "heal.barier")


def test_wrong_type_names_the_path(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"lam": "abc"})
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "heal.lam", "abc")


def test_unknown_plugin_lists_available_names(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barrier": {"aggregator": "nope"}})
    err = assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "heal.barrier.aggregator", "nope")
    for name in ("rmse", "mean", "max", "p95"):
        assert name in err


def test_invalid_plugin_params_name_param_and_plugin(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barrier": {"aggregator": {"name": "p95", "params": {"q": 2}}}})
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "heal.barrier.aggregator.params.q", "p95")


def test_unknown_plugin_param_key(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barrier": {"aggregator": {"name": "p95", "params": {"qq": 0.5}}}})
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "heal.barrier.aggregator.params.qq", "p95")


def test_missing_config_file(tmp_path: Path):
    assert_user_error(run_shl("validate", "nowhere.yaml", cwd=tmp_path), "nowhere.yaml", "no such file")
    assert_user_error(run_shl("run", "nowhere.yaml", cwd=tmp_path), "nowhere.yaml")
    assert_user_error(run_shl("ablate", "nowhere.yaml", "--dry-run", cwd=tmp_path), "nowhere.yaml")


def test_top_level_not_a_mapping(tmp_path: Path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    assert_user_error(run_shl("validate", bad.name, cwd=tmp_path), "list.yaml", "mapping")


@pytest.mark.parametrize(
    "override, needle",
    [("heal.lam", "heal.lam"), ("=3", "=3"), ("heal..lam=1", "heal..lam"), ("steer.layers.5=1", "index 5")],
)
def test_bad_set_syntax(tmp_path: Path, override: str, needle: str):
    cfg = write_run_config(tmp_path)
    assert_user_error(run_shl("validate", cfg.name, "--set", override, cwd=tmp_path), "--set", needle)


def test_model_that_cannot_be_loaded(tmp_path: Path):
    cfg = write_run_config(tmp_path, model={"name": "/nonexistent/path"})
    # validate accepts it: an unknown model name is an id/path for the 'hf' source, checked when loading
    ok = run_shl("validate", cfg.name, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "name_or_path" not in yaml.safe_load(ok.stdout)["model"]["params"]
    assert_user_error(
        run_shl("run", cfg.name, "--out", "out", cwd=tmp_path, env=None), "/nonexistent/path", "cannot load"
    )


def test_layers_out_of_range(tmp_path: Path):
    cfg = write_run_config(tmp_path, steer={"layers": [40]})
    err = assert_user_error(run_shl("run", cfg.name, "--out", "out", cwd=tmp_path), "steer.layers[0]")
    assert "2 layers" in err  # tiny_random has 2 layers by default


def test_float_layer_out_of_range_at_validation(tmp_path: Path):
    cfg = write_run_config(tmp_path, steer={"layers": [1.5]})
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "steer.layers")


def test_experiment_baseline_not_an_arm(tmp_path: Path):
    exp = write_experiment(tmp_path, baseline="nope")
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "comparison.baseline", "nope", "mean")


def test_experiment_bad_arm_override_key(tmp_path: Path):
    arms = {**TINY_ARMS, "rmse": {"heal.barier.aggregator": "rmse"}}
    exp = write_experiment(tmp_path, arms=arms)
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "arms.rmse", "heal.barier")


def test_experiment_bad_arm_value(tmp_path: Path):
    arms = {**TINY_ARMS, "rmse": {"heal": {"barrier": {"aggregator": "nope"}}}}
    exp = write_experiment(tmp_path, arms=arms)
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "arms.rmse", "nope", "rmse")


def test_experiment_unknown_top_level_key_and_bad_seeds(tmp_path: Path):
    exp = write_experiment(tmp_path, armz={})
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "armz", "unknown key")
    exp = write_experiment(tmp_path, name="exp2.yaml")
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", "--seeds", "x", cwd=tmp_path), "--seeds")
    assert_user_error(run_shl("ablate", exp.name, "--dry-run", "--arms", "nope", cwd=tmp_path), "nope")


def test_bad_input_runs_nothing(tmp_path: Path):
    exp = write_experiment(tmp_path, baseline="nope")
    run_shl("ablate", exp.name, "--out", "abl", cwd=tmp_path)
    assert not (tmp_path / "abl" / "runs").exists()


def test_report_on_missing_directory(tmp_path: Path):
    assert_user_error(run_shl("report", "nowhere", cwd=tmp_path), "nowhere")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_shl("report", "empty", cwd=tmp_path), "shl-ablation.yaml")


def test_validate_good_config_prints_resolved_yaml(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    proc = run_shl("validate", cfg.name, "--set", "heal.lam=0.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert resolved["model"]["name"] == "tiny_random"
    assert resolved["heal"]["lam"] == 0.5
    # resolved: defaults and plugin params are filled in
    assert resolved["heal"]["barrier"]["aggregator"]["name"] == "rmse"
    assert "params" in resolved["heal"]["barrier"]["aggregator"]
    assert resolved["steer"]["method"]["name"] == "mean_diff"
    assert resolved["filters"] == []
    assert resolved["eval"]["evaluators"], "evaluators default to the model source's"
    assert resolved["model"]["params"]["layers"] == 2
    assert "valid" in proc.stderr


def test_set_reaches_params_of_a_component_given_by_name(tmp_path: Path):
    cfg = write_run_config(tmp_path, heal={"barrier": {"aggregator": "p95"}})
    ok = run_shl("validate", cfg.name, "--set", "heal.barrier.aggregator.params.q=0.5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    agg = yaml.safe_load(ok.stdout)["heal"]["barrier"]["aggregator"]
    assert agg["name"] == "p95" and agg["params"]["q"] == 0.5
    bad = run_shl("validate", cfg.name, "--set", "heal.barrier.aggregator.params.q=2", cwd=tmp_path)
    assert_user_error(bad, "heal.barrier.aggregator.params.q", "p95")


def test_missing_or_malformed_steering_data(tmp_path: Path):
    cfg = write_run_config(tmp_path, data="no_such_data.yaml")
    assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "data", "no_such_data.yaml")
    (tmp_path / "bad_data.yaml").write_text("positive: {name: a, system: s}\ncontexts: [x]\n")
    cfg = write_run_config(tmp_path, "bad.yaml", data="bad_data.yaml")
    err = assert_user_error(run_shl("validate", cfg.name, cwd=tmp_path), "bad_data.yaml")
    assert "negative" in err and "contexts" in err  # a missing pole, and too few contexts
    exp = write_experiment(tmp_path, base_over={"data": "no_such_data.yaml"})
    assert_user_error(run_shl("ablate", exp.name, "--out", tmp_path / "out", cwd=tmp_path), "no_such_data.yaml")
    assert not (tmp_path / "out" / "runs").exists()
