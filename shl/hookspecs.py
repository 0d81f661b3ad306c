"""The hooks a plugin implements (pluggy project name ``shl``).

A plugin is a module (or object) exposing functions decorated with ``shl.hookimpl`` (the ``hookimpl`` marker
defined here, re-exported by the ``shl`` package) and is found through the ``shl`` entry-point group.

Registration hooks, one per component family (``shl_register_<family title>``, one per row of
``shl.api.FAMILY_TABLE``), receive a ``register`` callback; call it once per component class. Components are
chosen by NAME from YAML, never by pluggy's call order.

Observer hooks (``shl_run_start``, ``shl_round_end``, ``shl_run_end``) are for loggers: they receive copies of
what the engine records and must not change results. Trackers (W&B, MLflow) are a component family instead,
so that they are switched on by name, not by being installed.

``shl_register_commands`` adds subcommands to the ``shl`` command line (``shl.plugin_commands``).
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from .api.barrier import Aggregator, Schedule
from .api.component import Component
from .api.evaluators import Evaluator
from .api.filters import Filter
from .api.models import ModelSource
from .api.steering import SteeringMethod
from .api.trackers import Tracker

hookspec = pluggy.HookspecMarker("shl")
hookimpl = pluggy.HookimplMarker("shl")

Register = Callable[[type[Component]], None]
"""The callback a registration hook receives: ``register(MyClass)`` once per component class."""


# Registration hooks: one per row of ``shl.api.FAMILY_TABLE``, written out so that they can be found by name
# (tests/test_docs.py checks that they and the table agree: names, base classes, docstrings).

@hookspec
def shl_register_steering_methods(register: Callable[[type[SteeringMethod]], None]) -> None:
    """Register steering methods: subclasses of ``shl.api.SteeringMethod`` (fit paired activations -> vector).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_filters(register: Callable[[type[Filter]], None]) -> None:
    """Register completion filters: subclasses of ``shl.api.Filter`` (score + keep vote per completion).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_aggregators(register: Callable[[type[Aggregator]], None]) -> None:
    """Register barrier aggregators: subclasses of ``shl.api.Aggregator`` (per-position KL -> scalar D).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_schedules(register: Callable[[type[Schedule]], None]) -> None:
    """Register lambda schedules: subclasses of ``shl.api.Schedule`` (heal round index -> barrier weight).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    """Register evaluators: subclasses of ``shl.api.Evaluator`` (student -> dict of float metrics).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_models(register: Callable[[type[ModelSource]], None]) -> None:
    """Register model sources: subclasses of ``shl.api.ModelSource`` (-> HF causal LM + tokenizer).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_register_trackers(register: Callable[[type[Tracker]], None]) -> None:
    """Register trackers: subclasses of ``shl.api.Tracker`` (mirror runs and reports to W&B, MLflow, ...).

    :param register: call it once per class, ``register(MyClass)``; the class's ``name`` is what YAML uses.
    """


@hookspec
def shl_run_start(run_dir: str, config: dict[str, Any]) -> None:
    """Observer: a run starts.

    :param run_dir: the run's directory.
    :param config: the fully resolved run config (a copy).
    """


@hookspec
def shl_round_end(run_dir: str, round_index: int, metrics: dict[str, Any]) -> None:
    """Observer: a heal round ended (round 0 is the evaluation before any heal).

    :param run_dir: the run's directory.
    :param round_index: the round the row belongs to (``metrics["round"]``).
    :param metrics: the row written to metrics.jsonl (a copy).
    """


@hookspec
def shl_run_end(run_dir: str, status: str, message: str) -> None:
    """Observer: a run ended.

    :param run_dir: the run's directory.
    :param status: complete, stopped, starved, failed or nan.
    :param message: the reason, for a run that did not complete ("" or a summary otherwise).
    """


@hookspec
def shl_register_commands(register: Callable[..., None]) -> None:
    """Add subcommands to the ``shl`` command line (argparse); they are listed in ``shl --help`` like the built-ins.

    A command's ``add_arguments`` runs for ``shl --help`` and every plugin command, so keep it cheap; import
    anything heavy (torch) inside its handler. The handler raises ``shl.errors.ShlError`` (or ``ConfigError``)
    for bad input: one ``error:`` line, exit code 2, as for the built-in commands. A name taken by a built-in
    command or by another plugin is an error naming the plugin.

    :param register: call it once per command, ``register(name, help, add_arguments, handler)`` or
        ``register(shl.plugin_commands.Command(...))`` (which also takes ``usage`` and ``summary``, the
        command's line in the overview at the end of ``shl --help``). ``name`` is the word after ``shl``;
        ``help`` its one-line description; ``add_arguments(parser)`` adds its arguments to an
        ``argparse.ArgumentParser``; ``handler(args)`` runs it with the parsed ``argparse.Namespace`` and returns
        the exit code (None counts as 0).
    """
