"""Trackers around runs and ablations (the ``tracker`` family: W&B, MLflow, or your own).

A tracker is switched on by name, never by being installed: the experiment's ``trackers:`` list, or
``--tracker NAME[:key=value,...]`` on ``shl ablate`` and ``shl run``. Trackers are outside the run config, so they
change no run hash and no result.

- ``resolve_trackers`` validates refs against the registry (one line per problem, naming the YAML path);
  ``checked_trackers`` runs each tracker's ``check()`` once before the runs and leaves out, with one warning line,
  a tracker that cannot work (its library missing).
- ``RunTracking`` mirrors one run while it executes: a per-run plugin on the host's plugin manager hears the
  engine's observer hooks (run start, each metrics row, run end) and calls every tracker.
- ``track_ablation`` then logs the finished runs a tracker has not logged yet (a tracker added to a finished
  ablation sees every run, replayed from the stored config, metrics and status) and the report, once.
- ``tracked.jsonl`` in the ablation's output directory records which runs and which report each tracker logged,
  so a resumed ablation logs nothing twice.

Every tracker call is guarded: an exception becomes one warning line naming the tracker, and that tracker is not
called again for the run (or the ablation's catch-up and report). Trackers get copies; nothing shl stores changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .api import TrackedAblation, TrackedRun
from .errors import ConfigError
from .hookspecs import hookimpl

RECORD = "tracked.jsonl"
"""In an ablation's output directory: one JSON line per run or report a tracker logged."""

Warn = Callable[[str], None]


def warn_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _one_line(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------ refs


def parse_tracker_option(text: str) -> dict[str, Any]:
    """``--tracker NAME`` or ``--tracker NAME:key=value,key=value`` (each value read as YAML) -> a ref."""
    import yaml

    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in (p.strip() for p in rest.split(",")):
        if not item:
            continue
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--tracker {text}: expected NAME or NAME:key=value,key=value")
        try:
            params[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            params[key.strip()] = raw
    if not name.strip():
        raise ConfigError(f"--tracker {text}: expected NAME or NAME:key=value,key=value")
    return {"name": name.strip(), "params": params}


def resolve_trackers(refs: Sequence[Any], registry, source: str = "", path: str = "trackers[{i}]",
                     ) -> list[dict[str, Any]]:
    """Each ref (a name, a ``{name, params}`` mapping or a ComponentRef) checked against the registry and its
    params validated by the tracker's own Params (defaults filled); a problem is a one-line ConfigError naming
    ``source`` and the path (``trackers[0].params.mode: ...``)."""
    from pydantic import ValidationError

    from .config.resolving import resolve_component
    from .config.models import ComponentRef

    out = []
    for i, ref in enumerate(refs):
        where = path.format(i=i)
        try:
            ref = ref if isinstance(ref, ComponentRef) else ComponentRef.model_validate(ref)
        except ValidationError:
            prefix = f"{source}: " if source else ""
            raise ConfigError(f"{prefix}{where}: expected a tracker name or {{name, params}}, got {ref!r}") from None
        out.append(resolve_component(registry, "tracker", ref, where, source).model_dump(mode="json"))
    return out


def option_trackers(options: Iterable[Any], registry) -> list[dict[str, Any]]:
    """Trackers given on the command line (``NAME[:key=value,...]`` strings) or from Python (strings, mappings),
    resolved; a problem names the option."""
    out = []
    for option in [options] if isinstance(options, str) else options:
        ref = parse_tracker_option(option) if isinstance(option, str) else option
        source = f"--tracker {option}" if isinstance(option, str) else "trackers"
        out += resolve_trackers([ref], registry, source, "tracker")  # "--tracker X: tracker.params.k: ..."
    return out


def merge_trackers(configured: Sequence[dict[str, Any]], extra: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``extra`` (from the command line) after ``configured`` (the experiment's); one of the same name replaces
    the configured one."""
    names = {r["name"] for r in extra}
    return [r for r in configured if r["name"] not in names] + list(extra)


def _key(ref: dict[str, Any]) -> str:
    """A tracker's identity in the record: its name and params (another W&B project logs everything anew)."""
    blob = json.dumps({"name": ref["name"], "params": ref.get("params", {})}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ guarded calls


class _Guarded:
    """One tracker instance whose calls never raise: the first exception is one warning line, then it is off."""

    def __init__(self, ref: dict[str, Any], registry, warn: Warn, then: str):
        self.name = ref["name"]
        self.warn = warn
        self.then = then
        self.tracker = None
        try:
            self.tracker = registry.build("tracker", ref["name"], ref.get("params") or {})
        except Exception as exc:
            self._fail("setup", exc)

    def call(self, method: str, *args: Any) -> bool:
        if self.tracker is None:
            return False
        try:
            getattr(self.tracker, method)(*args)
            return True
        except (Exception, SystemExit) as exc:
            self._fail(method, exc)
            return False

    def _fail(self, method: str, exc: BaseException) -> None:
        self.tracker = None
        self.warn(f"warning: tracker '{self.name}': {method} failed: {_one_line(f'{type(exc).__name__}: {exc}')}; "
                  f"{self.then}")


def checked_trackers(refs: Sequence[dict[str, Any]], registry, warn: Warn = warn_stderr) -> list[dict[str, Any]]:
    """The refs whose tracker passes its ``check()``; each one that does not is named in one warning line."""
    return [ref for ref in refs
            if _Guarded(ref, registry, warn, "the runs go on without it").call("check")]


# ------------------------------------------------------------------------------------------ the record


def _read_record(out: Path) -> set[tuple[str, str, str]]:
    """(tracker key, "run" or "report", run id or report fingerprint) for everything logged so far."""
    seen: set[tuple[str, str, str]] = set()
    try:
        lines = (Path(out) / RECORD).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return seen
    for line in lines:
        try:
            entry = json.loads(line)
            kind = "run" if "run" in entry else "report"
            seen.add((str(entry["key"]), kind, str(entry[kind])))
        except (ValueError, KeyError, TypeError):
            continue  # a torn line from a killed write: that entry counts as not logged
    return seen


def _append_record(out: Path | str, ref: dict[str, Any], kind: str, value: str) -> None:
    line = json.dumps({"tracker": ref["name"], "key": _key(ref), kind: value}) + "\n"
    try:
        with open(Path(out) / RECORD, "a") as f:
            f.write(line)
    except OSError:
        pass  # without the record, a later catch-up may log the run again; the run itself is unaffected


# ------------------------------------------------------------------------------------------ one run


@dataclass
class TrackerPlan:
    """The trackers a task's run is mirrored to (resolved refs), and the ablation output directory whose record
    notes the runs logged (None for a lone ``shl run``). Plain data: it travels with the task to a worker."""

    refs: list[dict[str, Any]] = field(default_factory=list)
    out: str | None = None


class _Bridge:
    """The per-run plugin: the engine's observer hooks for this run's directory, passed to ``RunTracking``."""

    def __init__(self, tracking: RunTracking):
        self.tracking = tracking

    @hookimpl
    def shl_run_start(self, run_dir: str, config: dict[str, Any]) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.start(config)

    @hookimpl
    def shl_round_end(self, run_dir: str, round_index: int, metrics: dict[str, Any]) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.log(round_index, metrics)

    @hookimpl
    def shl_run_end(self, run_dir: str, status: str, message: str) -> None:
        if self.tracking.is_mine(run_dir):
            self.tracking.end(status, message)


class RunTracking:
    """The trackers of one run, while it executes::

        with RunTracking(plan, host, run_dir, meta) as tracking:
            result = tracking.finished(Run(...).execute())

    Entering registers a per-run plugin on the host's plugin manager (removed on exit); with no trackers it does
    nothing. ``finish`` closes the tracker runs the engine did not (a run that raised); a run that finished
    (complete, stopped, starved) is recorded as logged for each tracker that logged all of it.
    """

    def __init__(self, plan: TrackerPlan | None, host, run_dir: str | Path, meta: dict[str, Any],
                 warn: Warn = warn_stderr):
        self.plan = plan
        self.host = host
        self.run_dir = str(Path(run_dir))
        self.meta = meta
        self.warn = warn
        self.trackers: list[_Guarded] = []
        self.started = False
        self.ended = False
        self._plugin_name: str | None = None

    def __enter__(self) -> RunTracking:
        if self.plan is None or not self.plan.refs:
            return self
        from .manager import get_host

        self.host = self.host or get_host()
        label = f"{self.meta.get('arm')} seed {self.meta.get('seed')}" if self.meta.get("arm") else self.run_dir
        then = f"run {label} goes on without it"
        self.trackers = [_Guarded(r, self.host.registry, self.warn, then) for r in self.plan.refs]
        self._plugin_name = f"shl-tracking-{id(self)}"
        self.host.pm.register(_Bridge(self), name=self._plugin_name)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.started and not self.ended:
            self.end("failed", _one_line(f"{exc_type.__name__}: {exc}") if exc_type else "ended without a status")
        if self._plugin_name is not None:
            self.host.pm.unregister(name=self._plugin_name)
            self._plugin_name = None

    def is_mine(self, run_dir: str) -> bool:
        return str(Path(run_dir)) == self.run_dir

    def start(self, config: dict[str, Any]) -> None:
        run = TrackedRun(
            run_id=Path(self.run_dir).name, run_dir=str(Path(self.run_dir).resolve()),
            experiment=self.meta.get("experiment"), arm=self.meta.get("arm"),
            seed=int(self.meta.get("seed", config.get("seed", 0))), config=config,
        )
        self.started = True
        for t in self.trackers:
            t.call("start_run", copy.deepcopy(run))

    def log(self, step: int, row: dict[str, Any]) -> None:
        for t in self.trackers:
            t.call("log_metrics", int(step), copy.deepcopy(row))

    def end(self, status: str, message: str) -> None:
        if self.ended or not self.started:
            return
        from .store import TERMINAL

        self.ended = True
        for t, ref in zip(self.trackers, self.plan.refs):
            if t.call("end_run", status, message) and status in TERMINAL and self.plan.out:
                _append_record(self.plan.out, ref, "run", Path(self.run_dir).name)

    def finish(self, status: str, message: str) -> None:
        """The run's outcome: closes tracker runs still open (the engine closes them itself when it can)."""
        if self.started and not self.ended:
            self.end(status, message)

    def finished(self, result: Any) -> Any:
        """``finish`` with a ``RunResult`` (its status and message), which it returns."""
        self.finish(result.status, result.message)
        return result


# ------------------------------------------------------------------------------------------ the ablation


def _replay(t: _Guarded, run_dir: Path, status: str, message: str) -> bool:
    """Log a finished run from its stored config, metrics and status; False when the tracker failed."""
    import yaml

    from .store import RunStore

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
    from .store import TERMINAL, inspect_run

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
