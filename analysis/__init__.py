"""Statistics and reporting over the shl result store (never imports torch).

The public names below are exported lazily (PEP 562): ``import shl_analysis.spec`` (which the experiment
config does) loads pydantic only, not pandas/scipy/statsmodels/matplotlib. A name is imported from its
submodule on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ComparisonSpec": "spec",
    "FrontierSpec": "spec",
    "MetricSpec": "spec",
    "compare_frontiers": "frontier",
    "PairedResult": "paired",
    "paired_comparison": "paired",
    "ReportResult": "report",
    "paired_differences": "report",
    "write_report": "report",
    "load_runs": "results",
    "run_table": "results",
    "describe_stopping_rule": "power",
    "exact_min_n": "power",
    "exact_min_p": "power",
    "min_detectable_effect": "power",
    "seeds_needed": "power",
    "seeds_to_add": "power",
    "verdict_alpha": "power",
}

__all__ = [
    "ComparisonSpec",
    "FrontierSpec",
    "compare_frontiers",
    "MetricSpec",
    "PairedResult",
    "ReportResult",
    "load_runs",
    "paired_comparison",
    "paired_differences",
    "run_table",
    "describe_stopping_rule",
    "exact_min_n",
    "exact_min_p",
    "min_detectable_effect",
    "seeds_needed",
    "seeds_to_add",
    "verdict_alpha",
    "write_report",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve through __getattr__
    from .frontier import compare_frontiers
    from .paired import PairedResult, paired_comparison
    from .power import (
        describe_stopping_rule,
        exact_min_n,
        exact_min_p,
        min_detectable_effect,
        seeds_needed,
        seeds_to_add,
        verdict_alpha,
    )
    from .report import ReportResult, paired_differences, write_report
    from .results import load_runs, run_table
    from .spec import ComparisonSpec, FrontierSpec, MetricSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
