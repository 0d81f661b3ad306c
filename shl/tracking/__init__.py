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

from .ablation import report_files, track_ablation
from .common import RECORD, Warn, warn_stderr
from .guarded import checked_trackers
from .refs import merge_trackers, option_trackers, parse_tracker_option, resolve_trackers
from .run import RunTracking, TrackerPlan

__all__ = [
    "RECORD",
    "RunTracking",
    "TrackerPlan",
    "Warn",
    "checked_trackers",
    "merge_trackers",
    "option_trackers",
    "parse_tracker_option",
    "report_files",
    "resolve_trackers",
    "track_ablation",
    "warn_stderr",
]
