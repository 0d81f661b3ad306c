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
    ({"heal": {"lam": 1e300}}, ("heal.lam",)),
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


# ---------------------------------------------------------------- found by the second fuzz trial


@pytest.mark.parametrize("override, needle", [
    ("steer.layers.\u00b2=3", "cannot set"),
    ("generate.temperature=1e-300", "generate.temperature"),
    ("dose.scale=1e308", "dose.scale"),
    ("heal.lr=1e300", "heal.lr"),
    ("generate.alphas=[1.0, -2.0]", "generate.alphas"),
    ('model.name="a\\0b"', "NUL"),
])
def test_values_that_would_fail_later_fail_validation(tmp_path: Path, override: str, needle: str):
    cfg = write_run_config(tmp_path)
    one_line_error(run_shl("validate", cfg.name, "--set", override, cwd=tmp_path), needle)


def test_an_error_about_a_mapping_is_blamed_on_the_override_inside_it(tmp_path: Path):
    cfg = write_run_config(tmp_path)
    one_line_error(run_shl("validate", cfg.name, "--set", "dose.kappa_max=1e-30", cwd=tmp_path),
                   "--set dose.kappa_max=1e-30", "kappa_min")


def test_a_nul_byte_in_base_is_one_line(tmp_path: Path):
    (tmp_path / "n.yaml").write_text('base: "a\\0b"\nname: x\n')
    one_line_error(run_shl("validate", "n.yaml", cwd=tmp_path), "n.yaml", "NUL")


def test_a_base_that_is_a_device(tmp_path: Path):
    (tmp_path / "z.yaml").write_text("base: /dev/zero\nname: x\n")
    one_line_error(run_shl("validate", "z.yaml", cwd=tmp_path), "/dev/zero", "not a regular file")


def test_a_base_chain_longer_than_the_limit(tmp_path: Path):
    from shl.config.reading import MAX_BASE_CHAIN

    for i in range(MAX_BASE_CHAIN + 5):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n" if i < MAX_BASE_CHAIN + 4 else "name: x\n")
    one_line_error(run_shl("validate", "c0.yaml", cwd=tmp_path), "c0.yaml", "chain of more than")


def test_a_bad_shl_workers_fails_before_anything_is_written(tmp_path: Path):
    from cli_helpers import shl_env

    exp = write_experiment(tmp_path)
    for value in ("\u00b2", "0", "x"):
        proc = run_shl("ablate", exp.name, "--out", "W", cwd=tmp_path, env=shl_env(SHL_WORKERS=value))
        one_line_error(proc, "SHL_WORKERS")
        assert not (tmp_path / "W").exists()


def test_adaptive_seeds_that_would_pass_the_largest_seed(tmp_path: Path):
    exp = write_experiment(tmp_path)
    top = 2**63 - 1
    one_line_error(run_shl("ablate", exp.name, "--out", "M", "--seeds", f"{top - 1}-{top}", "--until-mde", "0.01",
                           "--max-seeds", "6", cwd=tmp_path), "largest seed")
    assert not (tmp_path / "M" / "runs").exists()


@pytest.mark.parametrize("args, needle", [
    (("--coeffs", ","), "--coeffs"),
    (("--coeffs", "nan,inf"), "--coeffs"),
    (("--layer", "nan"), "--layer"),
    (("--plot", "out.txt"), "--plot"),
])
def test_toyworld_sweep_arguments_are_checked_before_the_sweep(tmp_path: Path, args, needle):
    one_line_error(run_shl("toyworld", "sweep", "--variant", "small", *args, cwd=tmp_path), needle)


def test_a_schedule_that_overflows_in_a_later_round_fails_at_plan_time(tmp_path: Path):
    """A third-party schedule whose lam is finite in round 0 and inf from round 2: refused before any work."""
    import types

    from pydantic import Field

    from shl import api
    from shl.config import load_run_config
    from shl.errors import ConfigError
    from shl.hookspecs import hookimpl
    from shl.testing import make_host

    class Explode(api.Schedule):
        name = "explode"
        description = "finite, then not"

        class Params(api.Params):
            at: int = Field(2, ge=0, le=100, description="first round index with an infinite lam")

        def lam(self, round_index: int, base_lam: float) -> float:
            return float("inf") if round_index >= self.params.at else base_lam

    module = types.SimpleNamespace(shl_register_schedules=hookimpl(lambda register: register(Explode)))
    host = make_host(extra_plugins=[("explode", module)])
    cfg = write_run_config(tmp_path, heal={"schedule": "explode"}, loop={"rounds": 3})
    with pytest.raises(ConfigError, match="schedule 'explode' gives lam=inf for round index 2"):
        load_run_config(cfg, [], host.registry)
    load_run_config(cfg, ["loop.rounds=2"], host.registry)  # rounds 0 and 1 are fine


@pytest.mark.parametrize("frontier, needle", [
    ({"x": "trait", "y": "coherence", "baseline": "mean", "families": {"mean": ["mean"], "rmse": ["nope"]}},
     "comparison.frontier: 'nope' is not an arm"),
    ({"x": "trait", "y": "coherence", "baseline": "z", "families": {"mean": ["mean"], "rmse": ["rmse"]}},
     "frontier baseline 'z' is not one of the families"),
    ({"x": "trait", "y": "coherence", "baseline": "mean", "families": {"mean": ["mean"], "rmse": ["mean"]}},
     "arm 'mean' is already in family 'mean'"),
    ({"x": "kl", "y": "coherence", "baseline": "mean", "families": {"mean": ["mean"], "rmse": ["rmse"]}},
     "frontier x 'kl' is not one of the metrics"),
])
def test_a_frontier_that_names_what_is_not_there(tmp_path: Path, frontier: dict, needle: str):
    exp = write_experiment(tmp_path)
    raw = yaml.safe_load(exp.read_text())
    raw["comparison"]["frontier"] = frontier
    exp.write_text(yaml.safe_dump(raw))
    one_line_error(run_shl("ablate", exp.name, "--dry-run", cwd=tmp_path), needle)
