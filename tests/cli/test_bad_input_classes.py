"""Classes of bad input found by a fuzz trial (issue 22): each is one ``error:`` line naming the problem and where
it is, exit code 2, no traceback, before any work starts. One representative case per class here, often more."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import run_shl, write_experiment, write_run_config


def one_line_error(proc, *needles: str, problems: int = 1) -> str:
    """Exit 2, no traceback, one ``error:`` line per problem (``problems``); the first line holds ``needles``."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == problems and all(line.startswith("error: ") for line in lines), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------- YAML values JSON cannot hold


@pytest.mark.parametrize("value, kind", [
    ("!!set {rmse: null, mean: null}", "set"),
    ("2026-12-07", "date"),
    ("2026-12-07 10:00:00", "timestamp"),
    ("!!binary aGVsbG8=", "binary"),
    ("!!omap [{a: 1}, {b: 2}]", "ordered pairs"),
])
def test_non_json_yaml_values_are_rejected_in_a_run_config(tmp_path: Path, value: str, kind: str):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: x\nmodel: tiny_random\nfilters: {value}\n")
    one_line_error(run_shl("validate", cfg.name, cwd=tmp_path), "run.yaml", "filters", kind)


@pytest.mark.parametrize("where", ["arm", "set"])
def test_a_date_under_a_dotted_key_is_one_line_even_with_dry_run(tmp_path: Path, where: str):
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    text = exp.read_text()
    if where == "arm":
        text = text.replace("heal.barrier.aggregator: rmse", "heal.barrier.aggregator: rmse\n    description.when: 2026-12-07", 1)
    else:
        text += "set:\n  loop.when: 2026-12-07\n"
    assert raw  # the file parsed before the edit
    exp.write_text(text)
    one_line_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "date")


def test_a_set_in_an_override_is_rejected(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    one_line_error(run_shl("validate", cfg.name, "--set", "filters=!!set {a: null}", cwd=tmp_path),
                   "--set", "set (!!set)")


def test_an_alias_bomb_in_set_is_one_short_line(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    bomb = "[" + ",".join(["&a [1,2,3,4,5,6,7,8,9,10]"] + ["*a"] * 2000) + "]"
    line = one_line_error(run_shl("validate", cfg.name, "--set", f"generate.alphas={bomb}", cwd=tmp_path),
                          "generate.alphas")
    assert len(line) < 300


# ---------------------------------------------------------------- arms and seeds


@pytest.mark.parametrize("arms, needle", [("mean,mean", "named twice"), (",,", "no arm names"), ("mean,,rmse", "empty")])
def test_arms_option_is_checked(tmp_path: Path, arms: str, needle: str):
    exp = write_experiment(tmp_path)
    one_line_error(run_shl("ablate", exp.name, "--arms", arms, "--dry-run", cwd=tmp_path), "--arms", needle)


@pytest.mark.parametrize("over, needle", [
    ({"seed": 3}, "seed"),
    ({"heal.lam": 0.5, "heal": {"lam": 2.0}}, "heal.lam"),
    ({"heal.barrier": {"tau": 1.0}, "heal.barrier.tau": 2.0}, "heal.barrier"),
])
def test_arm_overrides_that_would_silently_lose_a_value(tmp_path: Path, over: dict, needle: str):
    exp = write_experiment(tmp_path, arms={"mean": {"heal.barrier.aggregator": "mean"}, "odd": over})
    one_line_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "arms", "odd", needle)


def test_a_component_named_then_given_params_is_fine(tmp_path: Path):
    exp = write_experiment(tmp_path, arms={"mean": {"heal.barrier.aggregator": "mean"},
                                           "p95": {"heal.barrier.aggregator": "p95",
                                                   "heal.barrier.aggregator.params.q": 0.9}})
    proc = run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_until_mde_with_fewer_max_seeds_than_planned(tmp_path: Path):
    exp = write_experiment(tmp_path, seeds="0-1")
    one_line_error(run_shl("ablate", exp.name, "--until-mde", "0.1", "--max-seeds", "1", cwd=tmp_path),
                   "--max-seeds 1", "2 seeds")


# ---------------------------------------------------------------- values checked before any work


@pytest.mark.parametrize("over, needles", [
    ({"device": "banana"}, ("device", "banana")),
    ({"heal": {"lora": {"target_modules": ["q_proj", "nonexistent_proj"]}}}, ("target_modules", "nonexistent_proj")),
    ({"heal": {"lam": 1e300, "schedule": {"name": "power", "params": {"p": 64.0}}}, "loop": {"rounds": 3}},
     ("heal.schedule", "power")),
    ({"heal": {"schedule": {"name": "power", "params": {"p": 1e308}}}}, ("heal.schedule.params.p",)),
    ({"model": {"name": "toyworld", "params": {"variant": "small"}},
      "eval": {"evaluators": [{"name": "toy_exact", "params": {"n_per_prompt": 1000000000000}}]}},
     ("n_per_prompt",)),
    ({"filters": [{"name": "length", "params": {"max_tokens": 10**12}}]}, ("max_tokens",)),
])
def test_config_values_that_cannot_run_fail_validation(tmp_path: Path, over: dict, needles: tuple[str, ...]):
    cfg = write_run_config(tmp_path, **over)
    one_line_error(run_shl("validate", cfg.name, cwd=tmp_path), *needles)


def test_a_set_value_is_blamed_on_the_override(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    line = one_line_error(run_shl("validate", cfg.name, "--set", "steer.layers=[99]", cwd=tmp_path),
                          "--set steer.layers=[99]")
    assert not line.startswith(f"error: {cfg.name}")


def test_comparison_target_effect_must_be_finite(tmp_path: Path):
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    raw["comparison"]["target_effect"] = float("inf")
    exp.write_text(yaml.safe_dump(raw))
    one_line_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), "target_effect")


def _data(**over) -> dict:
    base = {"positive": {"name": "care", "system": "Care for people."},
            "negative": {"name": "rules", "system": "Follow the rules."},
            "neutral_system": None, "contexts": ["c one", "c two"], "prompts": ["p one"], "eval_prompts": ["e one"]}
    base.update(over)
    return base


@pytest.mark.parametrize("over, needle, problems", [
    ({"negative": {"name": "rules", "system": "Care for  people."}}, "the same text", 1),
    ({"contexts": ["", "  "]}, "contexts[0]", 2),
    ({"prompts": [""], "eval_prompts": [" "]}, "empty", 2),
])
def test_steering_data_that_cannot_steer(tmp_path: Path, over: dict, needle: str, problems: int):
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(_data(**over)))
    cfg = write_run_config(tmp_path, data="data.yaml")
    one_line_error(run_shl("validate", cfg.name, cwd=tmp_path), "data.yaml", needle, problems=problems)


def test_base_pointing_at_a_data_file(tmp_path: Path):
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(_data()))
    (tmp_path / "run.yaml").write_text("base: data.yaml\nname: x\n")
    one_line_error(run_shl("validate", "run.yaml", cwd=tmp_path), "base", "steering data file")


# ---------------------------------------------------------------- command-line numbers


@pytest.mark.parametrize("args, needle", [
    (("sample", "nowhere", "--max-new-tokens", "-5"), "--max-new-tokens"),
    (("sample", "nowhere", "--max-new-tokens", "100000000"), "--max-new-tokens"),
    (("sample", "nowhere", "--device", "banana"), "--device"),
    (("sample", "nowhere", "--n", "0"), "--n"),
    (("export", "nowhere", "--round", "-1", "--out", "x"), "--round"),
    (("ablate", "x.yaml", "--workers", "0"), "--workers"),
    (("ablate", "x.yaml", "--until-mde", "inf"), "--until-mde"),
    (("ablate", "x.yaml", "--bogus"), "unrecognized"),
    (("run",), "required"),
    (("toyworld", "sweep", "--prompts", "0"), "--prompts"),
])
def test_command_line_numbers_and_usage_errors_are_one_line(tmp_path: Path, args, needle):
    one_line_error(run_shl(*args, cwd=tmp_path), needle)
