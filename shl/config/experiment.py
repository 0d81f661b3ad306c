"""The experiment config: a base run config, named arms as partial overrides, seeds, and the comparison."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from shl_analysis.spec import ComparisonSpec

from ..errors import ConfigError
from ..registry import Registry
from ..store import run_dirname
from .checks import metric_produced, produced_metrics
from .identity import run_hash
from .loading import validate_run_config
from .models import ENGINE_METRICS, MAX_SEED, STEERED_PREFIX, ComponentRef, Real, RunConfig, safe_name
from .overrides import apply_overrides, deep_merge
from .reading import MAX_CONFIG_BYTES, is_steering_data, read_yaml, with_base
from .validation_errors import validate_model

MAX_SEEDS = 1000
"""At most this many seeds in one plan (a list, a count or ranges)."""
MAX_RUNS = 10_000
"""At most this many (arm, seed) runs in one plan."""

__all__ = [
    "ENGINE_METRICS", "MAX_RUNS", "MAX_SEEDS", "ExperimentConfig", "PlannedRun", "deep_merge",
    "identical_arms", "load_experiment", "parse_seeds", "plan_runs",
]


def _seed_count_error(n: int, what: str) -> ValueError:
    return ValueError(f"{what} is {n} seeds; at most {MAX_SEEDS} per plan")


def _seed(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) > len(str(MAX_SEED)) or int(text) > MAX_SEED:
        raise ValueError(f"{text} is not an integer in [0, {MAX_SEED}]")
    return int(text)


def parse_seeds(value: Any) -> list[int]:
    """``[0, 1, 2]``, ``3`` (= 0-2), ``"0-4"`` or ``"0,2,5"`` -> a sorted list of distinct seeds.

    At most MAX_SEEDS seeds (checked before any range is expanded), each in [0, 2**63 - 1]."""
    if isinstance(value, bool):
        raise ValueError("expected a list, a count, or a range like '0-4'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a count must be >= 1")
        if value > MAX_SEEDS:
            raise _seed_count_error(value, f"a count of {value}")
        return list(range(value))
    if isinstance(value, str):
        out: list[int] = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                lo, hi = (_seed(x) for x in part.split("-", 1))
                if lo is None or hi is None or lo > hi:
                    raise ValueError(f"bad range '{part}' (expected like 0-4)")
                if len(out) + hi - lo + 1 > MAX_SEEDS:
                    raise _seed_count_error(len(out) + hi - lo + 1, f"'{value}'")
                out.extend(range(lo, hi + 1))
            elif _seed(part) is not None:
                out.append(int(part))
            else:
                raise ValueError(f"bad seed '{part}'")
        value = out
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list, a count, or a range like '0-4'")
    if len(value) > MAX_SEEDS:
        raise _seed_count_error(len(value), "the list")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise ValueError(f"{s!r} is not an integer in [0, {MAX_SEED}]")
    return sorted(set(value))


class ExecutorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: Literal["auto", "inprocess", "local", "ray"] = Field(
        "auto", description="where runs execute: auto (local worker processes when more than one worker, else "
        "in process), inprocess, local, or ray")
    workers: StrictInt | None = Field(None, ge=1, le=256, description="local worker processes (null: one per "
                                      "core, at most 4, for CPU runs; 1 on a GPU)")
    address: str | None = Field(None, description="Ray cluster address (ray only; null = RAY_ADDRESS or local)")
    num_cpus: Real = Field(1.0, gt=0, le=4096, description="CPUs per run (ray only)")
    num_gpus: Real = Field(0.0, ge=0, le=1024, description="GPUs per run (ray only)")


class ExperimentConfig(BaseModel):
    """An ablation: every arm x seed is one run of ``base`` with the arm's overrides."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="experiment name (default output directory: runs/<name>); a safe file name")
    description: str = Field("", description="what the experiment asks")
    base: Union[str, dict[str, Any]] = Field(
        default_factory=dict, description="the base run config: a path (relative to this file) or a mapping"
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="overrides applied to the base for every arm, before the arm's own (dotted keys or nested)",
    )
    arms: dict[str, dict[str, Any]] = Field(
        min_length=1,
        description="arm name -> partial overrides of the base config (nested mapping, or dotted keys)",
    )
    seeds: Any = Field(default_factory=lambda: [0, 1, 2], description="seeds: a list, a count, or '0-4'")
    comparison: ComparisonSpec = Field(description="the declared comparison (baseline arm, metrics, endpoint...)")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="executor")
    trackers: list[ComponentRef] = Field(
        default_factory=list, description="trackers every run and the report are mirrored to, e.g. [{name: wandb, "
        "params: {project: p}}] (see `shl plugins`); outside the run config, so they change no result")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        return safe_name(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: Any) -> list[int]:
        return parse_seeds(v)

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_names(cls, arms: Any) -> Any:
        if not isinstance(arms, dict):
            return arms
        out = {}
        for name, over in arms.items():
            if not isinstance(name, str) or not safe_name_ok(name) or "__" in name:
                raise ValueError(
                    f"arm name {name!r}: use 1-100 letters, digits, '.', '-' and single '_', starting with a letter "
                    "or digit"
                )
            if over is not None and not isinstance(over, dict):
                raise ValueError(f"arm {name!r}: overrides must be a mapping, got {type(over).__name__}")
            problem = override_problem(over or {})
            if problem:
                raise ValueError(f"arm {name!r}: {problem}")
            out[name] = over or {}
        return out

    @field_validator("set", mode="before")
    @classmethod
    def _set(cls, over: Any) -> Any:
        problem = override_problem(over) if isinstance(over, dict) else ""
        if problem:
            raise ValueError(problem)
        return over


@dataclass
class PlannedRun:
    """One (arm, seed) of an experiment with its fully resolved config."""

    arm: str
    seed: int
    config: RunConfig
    hash: str

    @property
    def dirname(self) -> str:
        return run_dirname(self.arm, self.seed, self.hash)


def safe_name_ok(name: str) -> bool:
    try:
        safe_name(name)
    except ValueError:
        return False
    return True


def _leaf_paths(over: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf path a nested override mapping writes (a component's ``params`` is one value)."""
    out = []
    for key, value in over.items():
        path = prefix + (str(key),)
        if isinstance(value, dict) and value and key != "params":
            out += _leaf_paths(value, path)
        else:
            out.append(path)
    return out


def _writes_into(shorter: tuple[str, ...], value: Any, longer: tuple[str, ...]) -> bool:
    """Whether ``longer`` may be applied after ``shorter`` = ``value`` without one silently replacing the other:
    a component named by a string gets its ``name``/``params``, a mapping gets a key it does not set itself."""
    nxt = longer[len(shorter)]
    if isinstance(value, str):
        return nxt in ("name", "params")
    return isinstance(value, dict) and nxt not in value


def override_problem(over: dict[str, Any]) -> str:
    """Why an arm's (or ``set:``'s) overrides cannot apply as written, or "": it sets the seed (seeds come from
    the experiment's ``seeds:``), or two of its entries write the same value, where one would silently win
    (``heal.lam: 0.5`` beside ``heal: {lam: 2.0}``: dotted keys apply after the nested mapping)."""
    nested = {k: v for k, v in over.items() if "." not in str(k)}
    dotted = [(tuple(str(k).split(".")), v) for k, v in over.items() if "." in str(k)]
    if "seed" in nested or any(d[0] == "seed" for d, _ in dotted):
        return ("sets 'seed', which an experiment takes from its seeds: (or --seeds), never from an arm or set:; "
                "remove it")

    def clash(a: tuple[str, ...], b: tuple[str, ...]) -> str:
        return f"'{'.'.join(a)}' and '{'.'.join(b)}' both set {'.'.join(a if len(a) < len(b) else b)}; keep one"

    def mixed(n: tuple[str, ...], d: tuple[str, ...]) -> str:
        shown = "..."
        for part in reversed(n[1:]):
            shown = "{" + part + ": " + shown + "}"
        shown = f"{n[0]}: {shown}"
        both = ".".join(n if len(n) < len(d) else d)
        return f"the nested '{shown}' and the dotted key '{'.'.join(d)}' both set {both}; keep one"

    leaves = _leaf_paths(nested)
    for d, _ in dotted:
        for n in leaves:
            if n[: len(d)] == d:  # the dotted key replaces what the nested mapping set there
                return mixed(n, d)
            if d[: len(n)] == n and not _writes_into(n, _value_at(nested, n), d):
                return mixed(n, d)
    for i, (d1, v1) in enumerate(dotted):
        for d2, _ in dotted[i + 1:]:
            if d1[: len(d2)] == d2:  # a later, shorter key replaces the earlier one's value
                return clash(d2, d1)
            if d2[: len(d1)] == d1 and not _writes_into(d1, v1, d2):
                return clash(d1, d2)
    return ""


def _value_at(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def arm_overrides(over: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split an arm's mapping into nested overrides and dotted-key overrides (``heal.lam: 0.1``)."""
    nested = {k: v for k, v in over.items() if "." not in k}
    dotted = [f"{k}={_yaml_scalar(v)}" for k, v in over.items() if "." in k]
    return nested, dotted


def _yaml_scalar(v: Any) -> str:
    return json.dumps(v)


def load_experiment(path: str | Path, overrides: list[str] = ()) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The experiment and its base run config as a raw mapping (``base:`` chains resolved; not yet validated)."""
    path = Path(path)
    raw = read_yaml(path, "an experiment file", MAX_CONFIG_BYTES)
    if "arms" not in raw and "comparison" not in raw and ("model" in raw or "steer" in raw or "heal" in raw):
        raise ConfigError(f"{path}: is a run config (it has no 'arms:'), not an experiment; run it with 'shl run'")
    if "arms" not in raw and is_steering_data(raw):
        raise ConfigError(f"{path}: is a steering data file (personas, contexts, prompts), not an experiment")
    exp = validate_model(ExperimentConfig, raw, str(path))
    if exp.comparison.baseline not in exp.arms:
        raise ConfigError(
            f"{path}: comparison.baseline: '{exp.comparison.baseline}' is not an arm (arms: {', '.join(exp.arms)})"
        )
    frontier = exp.comparison.frontier
    if frontier is not None:
        unknown = [a for a in frontier.arms() if a not in exp.arms]
        if unknown:
            raise ConfigError(f"{path}: comparison.frontier: '{unknown[0]}' is not an arm (arms: "
                              f"{', '.join(exp.arms)})")
    if isinstance(exp.base, str):
        if not exp.base.strip():
            raise ConfigError(f"{path}: base: expected the path of a run config file, got ''")
        base = with_base({"base": exp.base}, path)
    else:
        base = with_base(dict(exp.base), path)
    return exp, base


def plan_runs(
    path: str | Path,
    exp: ExperimentConfig,
    base: dict[str, Any],
    registry: Registry,
    overrides: list[str] = (),
    seeds: list[int] | None = None,
    arms: list[str] | None = None,
) -> list[PlannedRun]:
    """Every (arm, seed) run, validated and resolved, so a bad arm fails before anything runs.

    Also checked here, before anything runs: at most MAX_RUNS runs, each arm's ``steer.layers`` against the
    model's depth (when known without loading), and that every comparison metric is produced by every arm
    (an evaluator's declared metric, its ``steered_`` version, or an engine metric)."""
    from ..tracking import resolve_trackers

    resolve_trackers(exp.trackers, registry, str(path))  # named, with their params checked, before anything runs
    arm_names = list(exp.arms) if arms is None else list(arms)
    if not arm_names:
        raise ConfigError("--arms: no arm names")
    twice = sorted({a for a in arm_names if arm_names.count(a) > 1})
    if twice:
        raise ConfigError(f"--arms: arm '{twice[0]}' is named twice")
    seed_list = seeds if seeds is not None else exp.seeds
    if len(arm_names) * len(seed_list) > MAX_RUNS:
        raise ConfigError(
            f"{path}: {len(arm_names)} arms x {len(seed_list)} seeds = {len(arm_names) * len(seed_list)} runs; "
            f"at most {MAX_RUNS} per plan"
        )
    planned = []
    for arm in arm_names:
        if arm not in exp.arms:
            raise ConfigError(f"--arms: no arm '{arm}' (arms: {', '.join(exp.arms)})")
        common_nested, common_dotted = arm_overrides(exp.set)
        nested, dotted = arm_overrides(exp.arms[arm])
        try:
            common = apply_overrides(deep_merge(base, common_nested), common_dotted)
            raw = apply_overrides(deep_merge(common, nested), [*dotted, *overrides])
        except ConfigError as exc:
            raise ConfigError(f"{path}: arms.{arm}: {exc}") from None
        source = f"{path}: arms.{arm}"
        for seed in seed_list:
            raw_seed = {**raw, "seed": seed}
            cfg = validate_run_config(raw_seed, registry, source, overrides)
            planned.append(PlannedRun(arm, seed, cfg, run_hash(cfg.model_dump(mode="json"), Path(path).parent)))
        if planned:
            check_comparison_metrics(path, exp, arm, planned[-1].config, registry)
    return planned


def check_comparison_metrics(
    path: str | Path, exp: ExperimentConfig, arm: str, cfg: RunConfig, registry: Registry
) -> None:
    """Every comparison metric must be one a run of ``arm`` writes; skipped when an evaluator of the arm does
    not declare its metrics (``Evaluator.metrics`` is None)."""
    for i, m in enumerate(exp.comparison.metrics):
        if metric_produced(m.name, cfg, registry) is False:
            produced = sorted(produced_metrics(cfg, registry) or ())
            evaluators = ", ".join(e.name for e in cfg.eval.evaluators or []) or "none"
            hint = "" if cfg.eval.steered else f"; '{STEERED_PREFIX}*' metrics need eval.steered: true"
            raise ConfigError(
                f"{path}: comparison.metrics[{i}]: no run of arm '{arm}' produces metric '{m.name}' (its "
                f"evaluators {evaluators} produce: {', '.join(produced) or 'nothing'}; the engine also writes "
                f"{', '.join(ENGINE_METRICS)}, drop_<filter>{hint})"
            )


def identical_arms(planned: list[PlannedRun]) -> list[tuple[str, str]]:
    """Pairs ``(first, later)`` of arms whose resolved configs are identical apart from seed and name (by
    planning order; three identical arms a, b, c give (a, b) and (a, c)): such arms compare a config with
    itself."""
    first_of: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    seen_arms: set[str] = set()
    for run in planned:
        if run.arm in seen_arms:
            continue
        seen_arms.add(run.arm)
        d = run.config.model_dump(mode="json")
        d.pop("seed", None)
        d.pop("name", None)
        key = json.dumps(d, sort_keys=True, default=str)
        if key in first_of:
            pairs.append((first_of[key], run.arm))
        else:
            first_of[key] = run.arm
    return pairs
