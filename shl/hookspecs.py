"""The hooks a plugin implements (pluggy project name ``shl``).

A plugin is a module (or object) exposing functions decorated with ``shl.hookimpl`` (the ``hookimpl`` marker
defined here, re-exported by the ``shl`` package) and is found through the ``shl`` entry-point group. Registration hooks receive a ``register`` callback; call it once per
component class. Components are chosen by NAME from YAML, never by pluggy's call order.

Observer hooks (``shl_run_start``, ``shl_round_end``, ``shl_run_end``) are for trackers and loggers: they
receive copies of what the engine records and must not change results.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("shl")
hookimpl = pluggy.HookimplMarker("shl")

Register = Callable[[type], None]


@hookspec
def shl_register_steering_methods(register: Register) -> None:
    """Register steering methods: subclasses of ``shl.api.SteeringMethod`` (fit paired activations -> vector)."""


@hookspec
def shl_register_filters(register: Register) -> None:
    """Register completion filters: subclasses of ``shl.api.Filter`` (score + keep vote per completion)."""


@hookspec
def shl_register_aggregators(register: Register) -> None:
    """Register barrier aggregators: subclasses of ``shl.api.Aggregator`` (per-position KL -> scalar D)."""


@hookspec
def shl_register_schedules(register: Register) -> None:
    """Register lambda schedules: subclasses of ``shl.api.Schedule`` (heal round index -> barrier weight)."""


@hookspec
def shl_register_evaluators(register: Register) -> None:
    """Register evaluators: subclasses of ``shl.api.Evaluator`` (student -> dict of float metrics)."""


@hookspec
def shl_register_models(register: Register) -> None:
    """Register model sources: subclasses of ``shl.api.ModelSource`` (-> HF causal LM + tokenizer)."""


@hookspec
def shl_run_start(run_dir: str, config: dict[str, Any]) -> None:
    """Observer: a run starts. ``config`` is the fully resolved config (a copy)."""


@hookspec
def shl_round_end(run_dir: str, round: int, metrics: dict[str, Any]) -> None:
    """Observer: a heal round ended; ``metrics`` is the row written to metrics.jsonl (a copy)."""


@hookspec
def shl_run_end(run_dir: str, status: str, message: str) -> None:
    """Observer: a run ended with ``status`` (complete, stopped, starved, failed)."""
