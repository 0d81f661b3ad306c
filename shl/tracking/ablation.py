"""After an ablation: replay the finished runs a tracker has not logged, then log the report once."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..api import TrackedAblation, TrackedRun
from .common import Warn, warn_stderr
from .refs import _key
from .guarded import _Guarded
from .record import _read_record, _append_record


def _replay(t: _Guarded, run_dir: Path, status: str, message: str) -> bool:
    """Log a finished run from its stored config, metrics and status; False when the tracker failed."""
    import yaml

    from ..store import RunStore

    store = RunStore(run_dir)
    meta = store.meta()
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    run = TrackedRun(run_id=run_dir.name, run_dir=str(run_dir.resolve()), experiment=meta.get("experiment"),
                     arm=meta.get("arm"), seed=int(meta.get("seed", config.get("seed", 0))), config=config)
    ok = t.call("start_run", run)
    for row in store.metrics():
        ok = ok and t.call("log_metrics", int(row.get("round", 0)), row)
    return ok and t.call("end_run", status, message)


def report_files(result: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(files, figures) of a written report, by name (absolute paths)."""
    files, figures = {}, {}
    for p in getattr(result, "paths", []) or []:
        p = Path(p).resolve()
        (figures if p.parent.name == "figures" else files)[p.name] = str(p)
    return files, figures


def track_ablation(out: Path, experiment: str, refs: Sequence[dict[str, Any]], registry, run_ids: Iterable[str],
                   report: Any = None, warn: Warn = warn_stderr, executed: Iterable[str] = ()) -> int:
    """After an ablation's runs: log, for each tracker, every finished run of ``run_ids`` (directories under
    ``out/runs``) it has not logged yet, then the report (``ReportResult``) unless it logged the same comparison
    before. Runs ``executed`` by this invocation are not replayed (they were logged live, or the tracker failed on
    them just now: the next invocation replays them). Returns the number of runs replayed."""
    from ..store import TERMINAL, inspect_run

    if not refs:
        return 0
    out = Path(out)
    seen = _read_record(out)
    run_ids = [rid for rid in run_ids if rid not in set(executed)]
    missing = {rid for ref in refs for rid in run_ids if (_key(ref), "run", rid) not in seen}
    states = {rid: inspect_run(out / "runs" / rid) for rid in sorted(missing)}
    replayed = 0
    for ref in refs:
        key = _key(ref)
        todo = [rid for rid in run_ids if (key, "run", rid) not in seen and states[rid].status in TERMINAL]
        if not todo:
            continue
        t = _Guarded(ref, registry, warn, "the ablation goes on without it")
        for rid in todo:
            if not _replay(t, out / "runs" / rid, states[rid].status, states[rid].reason):
                break
            _append_record(out, ref, "run", rid)
            replayed += 1
    if report is not None:
        table = getattr(report, "table", None)
        rows = table.to_dict("records") if table is not None else []
        fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]
        files, figures = report_files(report)
        ablation = TrackedAblation(experiment, str(out.resolve()), rows, files, figures)
        for ref in refs:
            if (_key(ref), "report", fingerprint) in seen:
                continue
            t = _Guarded(ref, registry, warn, "the report is not logged to it")
            if t.call("log_ablation", copy.deepcopy(ablation)):
                _append_record(out, ref, "report", fingerprint)
    return replayed
