"""Evaluator state that lasts across runs (``EvalContext.lasting``): what an evaluator computes from the base
model and the data alone, such as ``coherence``'s calibrated thresholds, kept on disk and reused by every later
run that would compute exactly the same.

An entry is one JSON file under ``$SHL_CACHE_DIR/evaluators`` (default ``~/.cache/shl``), named by the hash of
everything such a value can depend on: the evaluator's name, params, plugin (distribution and version) and code
(its module's bytes, shl's version and commit), the model's identity, the steering data file's bytes, the device, dtype and CPU instruction set, the evaluation's
generation settings and the versions of the libraries that decide exact values. Without a model identity (a
source that cannot name its weights) nothing is kept. A malformed entry is a miss, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..environment import cache_root

LASTING_VERSION = 1


def code_digest(cls: type) -> str | None:
    """sha256 of the source file of the module that defines ``cls`` (None when it has none)."""
    import hashlib
    import sys

    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def lasting_key(evaluator: str, params: dict[str, Any], component: Any, evaluator_cls: type, model_identity: str,
                data_sha256: str, device: str, dtype: str, eval_settings: dict[str, Any]) -> str:
    """The entry's name: everything a value computed from the base model and the data can depend on, the code
    included (the evaluator's module and shl's version and commit), so a changed calibration is never reused."""
    from ..config.identity import config_hash
    from ..environment import RESULT_LIBRARIES, cpu_capability, library_versions, shl_source

    return config_hash({"lasting": LASTING_VERSION, "evaluator": evaluator, "params": params,
                        "component": component, "code": code_digest(evaluator_cls), "shl": shl_source(),
                        "model_identity": model_identity, "data_sha256": data_sha256,
                        "device": device, "dtype": dtype, "cpu_capability": cpu_capability(),
                        "eval": eval_settings, "libraries": library_versions(RESULT_LIBRARIES)})


class LastingEntry:
    """One evaluator's lasting dict for one key: ``data`` (loaded, or empty), ``save()`` when it changed."""

    def __init__(self, key: str | None, root: Path | None = None):
        self.path = None if key is None else (root or cache_root()) / "evaluators" / f"{key[:32]}.json"
        self.data: dict[str, Any] = {}
        self._saved = "{}"
        if self.path is not None and self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict):
                    self.data, self._saved = loaded, json.dumps(loaded, sort_keys=True)
            except (OSError, ValueError):
                pass

    def save(self) -> bool:
        """Write the dict when it changed since it was loaded; False when nothing was written."""
        if self.path is None:
            return False
        text = json.dumps(self.data, sort_keys=True)
        if text == self._saved:
            return False
        from ..store.files import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, text + "\n")
        except OSError:
            return False
        self._saved = text
        return True
