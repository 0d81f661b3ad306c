"""The comparison report of an ablation output directory (``shl report``, and the end of ``shl ablate``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ShlError, ShlFault
from ..store import CORRUPT, OUT_RECORD, RUNS_DIR, inspect_run
from .record import read_record


def report(out: Path, con, formats: list[str], figures: bool):
    """Write the comparison report of an ablation output directory (warning about corrupt runs) and print the
    requested formats; returns the ``ReportResult``."""
    from shl_analysis import ComparisonSpec, write_report

    path = out / OUT_RECORD
    record = read_record(out)
    if record is None:
        raise ShlError(f"{out}: no {OUT_RECORD} here (is this an 'shl ablate' output directory?)")
    for run_id in record.get("runs") or []:
        st = inspect_run(out / RUNS_DIR / run_id)
        if st.status == CORRUPT:
            con.print(f"warning: {out / RUNS_DIR / run_id}: corrupt run ({st.reason}); excluded from the comparison",
                      markup=False)
    try:
        spec = ComparisonSpec.model_validate(record.get("comparison"))
    except Exception as exc:
        raise ShlError(f"{path}: comparison: {exc}".splitlines()[0]) from None
    try:
        result = write_report(out, spec, formats=("md", "csv", "latex", "html"), figures=figures,
                              run_ids=record.get("runs"),
                              planned_seeds=record.get("plan_seeds") or (), planned_arms=record.get("plan_arms") or (),
                              adaptive=record.get("adaptive"))
    except ValueError as exc:  # no runs yet, or no run of the baseline arm: a user-facing problem
        raise ShlError(f"{out}: cannot write the report: {exc}") from None
    except OSError as exc:
        raise ShlFault(f"cannot write the report: {exc.filename or out / 'report'}: {exc.strerror or exc}") from None
    for fmt in formats:
        if fmt == "md":
            con.out(result.markdown, highlight=False)
        elif fmt == "csv":
            con.out((out / "report" / "comparison.csv").read_text(), highlight=False)
        elif fmt == "latex":
            con.out((out / "report" / "comparison.tex").read_text(), highlight=False)
        elif fmt == "html":
            con.print(f"html report: {out / 'report' / 'report.html'}", markup=False)
    con.print(f"report written to {out / 'report'}", markup=False)
    return result
