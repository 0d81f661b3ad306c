"""The ablation runner: expand arms x seeds, skip complete runs, execute the rest, then compare.

Exactly-once bookkeeping lives here: a run's directory is named by the hash of its resolved config; a run
counts only when its DONE.json marker exists (written last, atomically); anything else (killed, failed) is
wiped and redone on the next invocation. One ``shl ablate`` per output directory at a time (a lock file).

Modules: ``plan`` (experiment -> runs and their state), ``lock`` (the output lock), ``record`` (the ablation
record ``shl report`` compares), ``execution`` (executors, progress, failures), ``adaptive`` (``--until-mde``),
``reporting`` (the comparison report) and ``ablation`` (``ablate``, ``AblateOptions``, ``AblationResult``).
"""

from .ablation import AblateOptions, AblationResult, ablate
from .adaptive import add_seeds_adaptively
from .execution import auto_workers, env_workers, execute, print_stage_summary, record_failure
from .lock import LOCK, output_lock
from .plan import Plan, make_plan, print_status, status_table, warn_corrupt
from .record import prepare_out, read_record, write_experiment_record
from .reporting import report

__all__ = [
    "LOCK", "AblateOptions", "AblationResult", "Plan", "ablate", "add_seeds_adaptively", "auto_workers",
    "env_workers", "execute", "make_plan", "output_lock", "prepare_out", "print_stage_summary", "print_status",
    "read_record", "record_failure", "report", "status_table", "warn_corrupt", "write_experiment_record",
]
