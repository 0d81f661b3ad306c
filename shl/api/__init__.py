"""The plugin author's API: component base classes and the data they exchange with the engine.

A component is a class with a unique ``name`` (per family) and a nested pydantic ``Params`` model.
The engine builds one instance per use with validated params: ``Component(params)``.
The families, their base classes and registration hooks are listed once, in ``FAMILY_TABLE``.

This package imports no torch at import time, so plugin entry modules can import it freely; torch is
imported inside the methods that need it. Tensors in signatures are ``torch.Tensor``.
"""

from .barrier import Aggregator, Schedule
from .component import Component, Params
from .data import Persona, SteeringData
from .evaluators import EvalContext, Evaluator
from .families import BASE_CLASSES, FAMILIES, FAMILY_TABLE, REGISTRATION_HOOKS, Family, family
from .filters import Completion, Filter, FilterContext, Scorer, Verdict
from .models import LoadedModel, ModelSource
from .steering import SteeringMethod, SteeringPlan
from .trackers import TrackedAblation, TrackedRun, Tracker, numeric_metrics

__all__ = [
    "Aggregator", "BASE_CLASSES", "Completion", "Component", "EvalContext", "Evaluator", "FAMILIES",
    "FAMILY_TABLE", "Family", "Filter", "FilterContext", "LoadedModel", "ModelSource", "Params", "Persona",
    "REGISTRATION_HOOKS", "Schedule", "Scorer", "SteeringData", "SteeringMethod", "SteeringPlan", "TrackedAblation",
    "TrackedRun", "Tracker", "Verdict", "family", "numeric_metrics",
]
