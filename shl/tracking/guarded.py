"""Tracker calls that never raise: the first exception is one warning line naming the tracker, then it is off."""

from __future__ import annotations

from typing import Any, Sequence

from .common import Warn, warn_stderr, _one_line


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
