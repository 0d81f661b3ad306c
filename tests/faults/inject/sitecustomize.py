"""Fault injection for shl's crash and fault tests, loaded by Python at start-up through PYTHONPATH.

``SHL_FAULT`` (JSON) selects the file operations under ``root`` that count: opening a file for writing, a
rename/replace, mkdir, remove/unlink and rmtree, each seen through a ``sys.addaudithook`` audit event, so shl
runs unmodified. ``action``:
  - ``log``: append ``<index>\\t<op>\\t<path relative to root>`` for every counted operation to ``log``;
  - ``kill``: SIGKILL this process at counted operation ``nth`` (1-based), before it happens;
  - ``enospc`` / ``erofs``: make counted operation ``nth`` fail with that OSError (the operation never happens);
    with ``match``, the ``nth`` counted operation whose relative path matches that regex instead;
  - ``kill_parent``: in a worker process of ``python -m shl`` (a process whose parent runs shl), SIGKILL that
    parent at counted operation ``nth``, then go on (the worker must then die with its parent, not finish the
    operation's run).
"""

import json
import os
import re
import signal
import sys

_SPEC = json.loads(os.environ.get("SHL_FAULT", "null") or "null")

if _SPEC:
    _ROOT = os.path.realpath(_SPEC["root"])
    _ACTION = _SPEC["action"]
    _NTH = int(_SPEC.get("nth", 0))
    _MATCH = re.compile(_SPEC["match"]) if _SPEC.get("match") else None
    _LOG = os.open(_SPEC["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if _SPEC.get("log") else None
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _state = {"n": 0, "busy": False}

    def _parent_runs_shl():
        try:
            with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return b"-m" in argv and b"shl" in argv

    def _rel(path):
        if isinstance(path, int) or path is None:
            return None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        full = os.path.realpath(os.path.join(os.getcwd(), os.fspath(path)))
        if full != _ROOT and not full.startswith(_ROOT + os.sep):
            return None
        return os.path.relpath(full, _ROOT)

    def _classify(event, args):
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if flags & _WRITE or any(c in mode for c in "wax+"):
                return "write", args[0]
            return None, None
        if event == "os.rename":
            return "replace", args[1]
        if event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"):
            return event.split(".")[-1], args[0]
        return None, None

    def _hook(event, args):
        if _state["busy"]:
            return
        op, path = _classify(event, args)
        if op is None:
            return
        rel = _rel(path)
        if rel is None:
            return
        if _MATCH is not None and not _MATCH.search(rel):
            return
        _state["busy"] = True
        try:
            _state["n"] += 1
            n = _state["n"]
            if _LOG is not None:
                os.write(_LOG, f"{n}\t{op}\t{rel}\n".encode())
            if n == _NTH:
                if _ACTION == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if _ACTION == "kill_parent" and _parent_runs_shl():
                    os.kill(os.getppid(), signal.SIGKILL)
                if _ACTION == "enospc":
                    raise OSError(28, "No space left on device", os.path.join(_ROOT, rel))
                if _ACTION == "erofs":
                    raise OSError(30, "Read-only file system", os.path.join(_ROOT, rel))
        finally:
            _state["busy"] = False

    sys.addaudithook(_hook)
