"""Statistics and reporting over the shl result store (never imports torch)."""

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
from .spec import ComparisonSpec, MetricSpec

__all__ = [
    "ComparisonSpec",
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
