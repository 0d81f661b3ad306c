"""The ablation record (``shl-ablation.yaml``) of an output directory: what ``shl report`` compares. This module is
its one reader: the fields the runner and the report rely on are checked here, so a damaged or hand-edited record
is one line naming the file and the field, never a traceback later."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from ..errors import ShlError
from .files import read_text_nofollow
from .layout import FORMAT_VERSION, OUT_RECORD, parse_run_dirname


class AblationRecord(BaseModel):
    """The checked fields of ``shl-ablation.yaml`` (the resolved experiment beside them is kept as it is)."""

    model_config = ConfigDict(extra="allow")

    format: StrictStr = Field(description='"shl-ablation"')
    version: StrictInt = Field(ge=1, description="the store format version that wrote it")
    name: StrictStr = Field(description="the experiment's name")
    runs: list[StrictStr] = Field(default_factory=list, description="run directory names the report compares")
    plan_seeds: list[StrictInt] = Field(default_factory=list, description="every seed planned on this directory")
    plan_arms: list[StrictStr] = Field(default_factory=list, description="every arm planned on this directory")
    overrides: list[StrictStr] = Field(default_factory=list, description="the --set overrides")
    comparison: dict[str, Any] = Field(default_factory=dict, description="the declared comparison")
    adaptive: Optional[dict[str, Any]] = Field(None, description="the --until-mde record")

    @field_validator("runs")
    @classmethod
    def _runs(cls, runs: list[str]) -> list[str]:
        for name in runs:
            if parse_run_dirname(name) is None or "/" in name or "\\" in name:
                raise ValueError(f"{name!r} is not a run directory name")
        return runs

    @field_validator("plan_seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be >= 0")
        return seeds


def read_ablation_record(out: str | Path) -> dict[str, Any] | None:
    """The record of an output directory as a dict (None when there is none); anything malformed (unreadable,
    a link, not shl's, a newer format, a field of the wrong type) is a one-line ShlError naming the file."""
    path = Path(out) / OUT_RECORD
    if not path.exists() and not path.is_symlink():
        return None
    fix = "move it away or choose another --out"
    try:
        raw = yaml.safe_load(read_text_nofollow(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        kind = "a symbolic link" if path.is_symlink() else f"unreadable ({type(exc).__name__})"
        raise ShlError(f"{path}: {kind}; not an shl ablation record ({fix})") from None
    if not isinstance(raw, dict) or raw.get("format") != "shl-ablation":
        raise ShlError(f"{path}: not an shl ablation record; {fix}")
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ShlError(f"{path}: written by a newer shl (format {version}; this shl reads up to {FORMAT_VERSION}); "
                       f"upgrade shl or {fix}")
    try:
        AblationRecord.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        raise ShlError(f"{path}: {where}: {msg}; a damaged shl ablation record ({fix})") from None
    return raw
