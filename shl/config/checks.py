"""Pre-run checks over a resolved run config: ``steer.layers`` against the model's depth, the lambda schedule over
the run's rounds, ``heal.lora.target_modules`` against the model's modules (when known without loading), and
which metrics a run writes (for ``loop.coherence_metric`` here, and an experiment's comparison metrics).

Each problem is a ConfigError prefixed by where its value came from (``blame``: the file, or the ``--set``
override that wrote that path)."""

from __future__ import annotations

import json
import math
from typing import Callable

from ..errors import ConfigError, ShlError
from ..registry import Registry
from .models import ENGINE_METRIC_PREFIXES, ENGINE_METRICS, STEERED_PREFIX, RunConfig
from .reading import one_line
from .slots import model_source

_LAYER_COUNTS: dict[str, int | None] = {}


def model_layers(cfg: RunConfig, registry: Registry) -> int | None:
    """The decoder layer count of a resolved config's model, from its source's ``num_layers()`` (never loads the
    model; memoised per model source and params); None = unknown until loaded."""
    source = model_source(registry, cfg.model)
    key = json.dumps([source.name, source.params], sort_keys=True, default=str)
    if key not in _LAYER_COUNTS:
        cls = registry.get("model", source.name)
        try:
            n = cls(cls.Params.model_validate(source.params)).num_layers()
        except Exception:
            n = None
        _LAYER_COUNTS[key] = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None
    return _LAYER_COUNTS[key]


Blame = Callable[[tuple[str, ...]], str]


def _where(blame: Blame | None, source: str, *path: str) -> str:
    where = blame(path) if blame is not None else source
    return f"{where}: " if where else ""


def check_layers(cfg: RunConfig, registry: Registry, source: str = "", blame: Blame | None = None) -> None:
    """``steer.layers`` must exist in the model, when the model source knows its depth without loading."""
    from ..engine.layers import resolve_layers

    n = model_layers(cfg, registry)
    if n is None:
        return
    try:
        resolve_layers(cfg.steer.layers, n, f"model '{cfg.model.name}'")
    except ConfigError as exc:
        raise ConfigError(f"{_where(blame, source, 'steer', 'layers')}{exc}") from None


def check_schedule(cfg: RunConfig, registry: Registry, source: str = "", blame: Blame | None = None) -> None:
    """The lambda schedule must give a finite lam >= 0 for every round of the run (``heal.lam`` and its params),
    so a schedule that overflows at round 3 fails now, not after two rounds."""
    if cfg.heal.regulariser == "nll":
        return
    ref = cfg.heal.schedule
    try:
        schedule = registry.build("schedule", ref.name, ref.params)
    except Exception:
        return  # reported by resolution
    for i in range(cfg.loop.rounds):
        try:
            lam = float(schedule.lam(i, cfg.heal.lam))
        except Exception as exc:
            lam, why = math.nan, f"raises {type(exc).__name__}: {exc}"
        else:
            why = f"gives lam={lam!r}"
        if not math.isfinite(lam) or lam < 0:
            raise ConfigError(
                f"{_where(blame, source, 'heal', 'schedule')}heal.schedule: schedule '{ref.name}' {why} for round index "
                f"{i} with heal.lam={cfg.heal.lam:g} (lam must be a finite number >= 0 in every round of "
                f"loop.rounds={cfg.loop.rounds}); change its params or heal.lam"
            )


_MODULES: dict[str, list[str] | None] = {}


def model_modules(cfg: RunConfig, registry: Registry) -> list[str] | None:
    """The module names of a resolved config's model, from its source's ``module_names()`` (never loads weights;
    memoised per model source and params); None = unknown until loaded."""
    source = model_source(registry, cfg.model)
    key = json.dumps([source.name, source.params], sort_keys=True, default=str)
    if key not in _MODULES:
        cls = registry.get("model", source.name)
        try:
            names = cls(cls.Params.model_validate(source.params)).module_names()
        except Exception:
            names = None
        _MODULES[key] = list(names) if isinstance(names, (list, tuple)) else None
    return _MODULES[key]


def check_lora_targets(cfg: RunConfig, registry: Registry, source: str = "", blame: Blame | None = None) -> None:
    """Every ``heal.lora.target_modules`` entry must name modules of the model (as PEFT matches them: the full
    name or its last components), when the model source knows its modules without loading the weights."""
    from .lora_targets import unmatched_targets

    targets = cfg.heal.lora.target_modules
    if not targets:
        return
    names = model_modules(cfg, registry)
    if names is None:
        return
    problem = unmatched_targets(targets, names)
    if problem:
        raise ConfigError(f"{_where(blame, source, 'heal', 'lora', 'target_modules')}heal.lora.target_modules: {problem}")


def check_steering(cfg: RunConfig, registry: Registry, source: str = "", blame: Blame | None = None) -> None:
    """The steering method's optional ``check_plan`` (e.g. a vector file against the model's hidden size and
    depth, and ``steer.layers``), before anything loads."""
    from ..api import SteeringMethod, SteeringPlan
    from ..engine.layers import resolve_layers

    ref = cfg.steer.method
    entry = registry.entry("steering", ref.name)
    if entry.cls.check_plan is SteeringMethod.check_plan:
        return
    n = model_layers(cfg, registry)
    layers = None
    if n is not None:
        layers = tuple(resolve_layers(cfg.steer.layers, n))
    elif all(isinstance(x, int) and x >= 0 for x in cfg.steer.layers):
        layers = tuple(dict.fromkeys(cfg.steer.layers))
    model = model_source(registry, cfg.model)
    try:
        cls = registry.get("model", model.name)
        hidden = cls(cls.Params.model_validate(model.params)).hidden_size()
    except Exception:
        hidden = None
    hidden = hidden if isinstance(hidden, int) and not isinstance(hidden, bool) and hidden > 0 else None
    try:
        entry.cls(entry.cls.Params.model_validate(ref.params)).check_plan(
            SteeringPlan(layers, n, hidden, cfg.loop.rounds))
    except (ValueError, ShlError) as exc:
        where = _where(blame, source, "steer", "method")
        raise ConfigError(f"{where}steer.method: {one_line(exc)} (plugin '{ref.name}' from "
                          f"'{entry.origin.plugin}')") from None


def produced_metrics(cfg: RunConfig, registry: Registry) -> set[str] | None:
    """The metric keys a resolved config's evaluators declare (with ``_se`` and, when ``eval.steered``, the
    ``steered_`` versions); None when any evaluator does not declare its metrics."""
    out: set[str] = set()
    for ref in cfg.eval.evaluators or []:
        declared = getattr(registry.get("evaluator", ref.name), "metrics", None)
        if declared is None:
            return None
        out.update(declared)
        out.update(f"{m}_se" for m in declared if not m.endswith("_se"))
    if cfg.eval.steered:
        out.update([f"{STEERED_PREFIX}{m}" for m in out])
    return out


def metric_produced(name: str, cfg: RunConfig, registry: Registry) -> bool | None:
    """Whether a run of ``cfg`` writes metric ``name`` (an evaluator's or the engine's own); None = unknown."""
    if name in ENGINE_METRICS or name.startswith(ENGINE_METRIC_PREFIXES):
        return True
    produced = produced_metrics(cfg, registry)
    return None if produced is None else name in produced


def run_checks(cfg: RunConfig, registry: Registry, source: str = "", blame: Blame | None = None) -> None:
    """Checks over a fully resolved config: layers against the model's depth, the steering method's plan check,
    the schedule over the rounds, LoRA targets against the model's modules, the coherence floor's metric."""
    check_layers(cfg, registry, source, blame)
    check_steering(cfg, registry, source, blame)
    check_schedule(cfg, registry, source, blame)
    check_lora_targets(cfg, registry, source, blame)
    floor_metric = cfg.loop.coherence_metric
    if cfg.loop.coherence_floor is not None and metric_produced(floor_metric, cfg, registry) is False:
        where = _where(blame, source, "loop", "coherence_metric")
        raise ConfigError(
            f"{where}loop.coherence_metric: '{floor_metric}' is not a metric of this run (the evaluators "
            f"produce: {', '.join(sorted(produced_metrics(cfg, registry) or ()))})"
        )
