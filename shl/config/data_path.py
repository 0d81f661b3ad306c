"""Where a run config's ``data:`` points: ``builtin:NAME`` (a file shipped with shl, ``experiments/data/NAME``
in the source tree) or a path; and the digest of the file's bytes, which a run's identity covers."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

BUILTIN_PREFIX = "builtin:"


def resolve_data_path(spec: str, relative_to: Path | None = None) -> Path:
    """The file ``spec`` names; a relative path that does not exist as given is taken relative to
    ``relative_to`` (the folder of the experiment file). An unknown built-in name is a one-line ConfigError."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX):]
        path = Path(str(resources.files("shl_plugins.data").joinpath(name)))
        if not path.is_file():
            raise ConfigError(f"data: no built-in data file '{name}'")
        return path
    path = Path(spec)
    if not path.is_absolute() and relative_to is not None and not path.exists():
        path = relative_to / path
    return path


def data_digest(spec: str, relative_to: Path | None = None) -> str:
    """sha256 of the steering data file's bytes: editing the file changes every run that reads it."""
    path = resolve_data_path(spec, relative_to)
    if not path.is_file():
        raise ConfigError(f"data: '{spec}': no such steering data file")
    return hashlib.sha256(path.read_bytes()).hexdigest()
