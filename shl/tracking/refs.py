"""Tracker refs: ``--tracker NAME[:key=value,...]``, the experiment's ``trackers:``, checked against the registry."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Sequence

from ..errors import ConfigError


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

    from ..config.resolving import resolve_component
    from ..config.models import ComponentRef

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
