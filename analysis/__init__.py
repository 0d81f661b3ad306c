"""Statistics and reporting over the shl result store (never imports torch)."""

from .paired import PairedResult, paired_comparison
from .report import ReportResult, write_report
from .results import load_runs, run_table
from .spec import ComparisonSpec, MetricSpec

__all__ = [
    "ComparisonSpec",
    "MetricSpec",
    "PairedResult",
    "ReportResult",
    "load_runs",
    "paired_comparison",
    "run_table",
    "write_report",
]
