"""The experiment config: a base run config, named arms as partial overrides, seeds, and the comparison."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator
from shl_analysis.spec import ComparisonSpec

from ..data import run_hash
from ..errors import ConfigError
from ..registry import Registry
from .loading import apply_overrides, read_yaml, resolve_run_config, validate_model
from .models import RunConfig


def parse_seeds(value: Any) -> list[int]:
    """``[0, 1, 2]``, ``3`` (= 0-2), ``"0-4"`` or ``"0,2,5"`` -> a sorted list of distinct seeds."""
    if isinstance(value, bool):
        raise ValueError("seeds: expected a list, a count, or a range like '0-4'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("seeds: a count must be >= 1")
        return list(range(value))
    if isinstance(value, str):
        out: list[int] = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                lo, hi = part.split("-", 1)
                if not (lo.strip().isdigit() and hi.strip().isdigit()) or int(lo) > int(hi):
                    raise ValueError(f"seeds: bad range '{part}' (expected like 0-4)")
                out.extend(range(int(lo), int(hi) + 1))
            elif part.isdigit():
                out.append(int(part))
            else:
                raise ValueError(f"seeds: bad seed '{part}'")
        value = out
    if not isinstance(value, list) or not value:
        raise ValueError("seeds: expected a non-empty list, a count, or a range like '0-4'")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ValueError(f"seeds: {s!r} is not a non-negative integer")
    return sorted(set(value))


class ExecutorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["inprocess", "ray"] = Field("inprocess", description="where runs execute")
    address: str | None = Field(None, description="Ray cluster address (ray only; null = RAY_ADDRESS or local)")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per run (ray only)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per run (ray only)")


class ExperimentConfig(BaseModel):
    """An ablation: every arm x seed is one run of ``base`` with the arm's overrides."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="experiment name (default output directory: runs/<name>)")
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

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: Any) -> list[int]:
        return parse_seeds(v)

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, over in arms.items():
            if not name or "/" in name or name.startswith(".") or "__" in name:
                raise ValueError(f"arm name {name!r}: use letters, digits, '-' and single '_'")
            if over is None:
                arms[name] = {}
            elif not isinstance(over, dict):
                raise ValueError(f"arm {name!r}: overrides must be a mapping, got {type(over).__name__}")
        return arms


@dataclass
class PlannedRun:
    """One (arm, seed) of an experiment with its fully resolved config."""

    arm: str
    seed: int
    config: RunConfig
    hash: str

    @property
    def dirname(self) -> str:
        return f"{self.arm}__seed{self.seed}__{self.hash[:12]}"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("params",):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def arm_overrides(over: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split an arm's mapping into nested overrides and dotted-key overrides (``heal.lam: 0.1``)."""
    nested = {k: v for k, v in over.items() if "." not in k}
    dotted = [f"{k}={_yaml_scalar(v)}" for k, v in over.items() if "." in k]
    return nested, dotted


def _yaml_scalar(v: Any) -> str:
    import json

    return json.dumps(v)


def load_experiment(path: str | Path, overrides: list[str] = ()) -> tuple[ExperimentConfig, dict[str, Any]]:
    """The experiment and its base run config as a raw mapping (not yet validated)."""
    path = Path(path)
    raw = read_yaml(path)
    exp = validate_model(ExperimentConfig, raw, str(path))
    if exp.comparison.baseline not in exp.arms:
        raise ConfigError(
            f"{path}: comparison.baseline: '{exp.comparison.baseline}' is not an arm (arms: {', '.join(exp.arms)})"
        )
    if isinstance(exp.base, str):
        base_path = Path(exp.base)
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        base = read_yaml(base_path)
    else:
        base = dict(exp.base)
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
    """Every (arm, seed) run, validated and resolved, so a bad arm fails before anything runs."""
    planned = []
    for arm in arms or list(exp.arms):
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
        for seed in seeds if seeds is not None else exp.seeds:
            raw_seed = {**raw, "seed": seed}
            cfg = validate_model(RunConfig, raw_seed, source)
            cfg = resolve_run_config(cfg, registry, source)
            planned.append(PlannedRun(arm, seed, cfg, run_hash(cfg.model_dump(mode="json"), Path(path).parent)))
    return planned
