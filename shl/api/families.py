"""The component families: the one table that the registry, the registration hookspecs, the config's
component slots and the docs are derived from."""

from __future__ import annotations

from dataclasses import dataclass

from .barrier import Aggregator, Schedule
from .component import Component
from .evaluators import Evaluator
from .filters import Filter
from .models import ModelSource
from .steering import SteeringMethod
from .trackers import Tracker


@dataclass(frozen=True)
class Family:
    """One family of components.

    ``name`` is the family's key (``Component.family``); ``base`` the class every member subclasses; ``hook``
    the registration hookspec plugins implement; ``title`` the plural noun used in docs and errors; ``purpose``
    a few words on what a member does; ``slot`` where a run config names members (a dotted path; None when
    the family is chosen outside the run config); ``many`` whether the slot holds a list.
    """

    name: str
    base: type[Component]
    hook: str
    title: str
    purpose: str
    slot: str | None
    many: bool = False


FAMILY_TABLE: tuple[Family, ...] = (
    Family("steering", SteeringMethod, "shl_register_steering_methods", "steering methods",
           "fit paired activations -> vector", "steer.method"),
    Family("filter", Filter, "shl_register_filters", "completion filters",
           "score + keep vote per completion", "filters", many=True),
    Family("aggregator", Aggregator, "shl_register_aggregators", "barrier aggregators",
           "per-position KL -> scalar D", "heal.barrier.aggregator"),
    Family("schedule", Schedule, "shl_register_schedules", "lambda schedules",
           "heal round index -> barrier weight", "heal.schedule"),
    Family("evaluator", Evaluator, "shl_register_evaluators", "evaluators",
           "student -> dict of float metrics", "eval.evaluators", many=True),
    Family("model", ModelSource, "shl_register_models", "model sources",
           "-> HF causal LM + tokenizer", "model"),
    Family("tracker", Tracker, "shl_register_trackers", "trackers",
           "mirror runs and reports to W&B, MLflow, ...", None, many=True),
)

FAMILIES: tuple[str, ...] = tuple(f.name for f in FAMILY_TABLE)
BASE_CLASSES: dict[str, type[Component]] = {f.name: f.base for f in FAMILY_TABLE}
REGISTRATION_HOOKS: tuple[str, ...] = tuple(f.hook for f in FAMILY_TABLE)


def family(name: str) -> Family:
    """The family called ``name`` (KeyError if there is none)."""
    for f in FAMILY_TABLE:
        if f.name == name:
            return f
    raise KeyError(name)
