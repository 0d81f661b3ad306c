"""The component registry: name -> class per family, with the plugin each came from."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel

from .api import BASE_CLASSES, FAMILIES, Component
from .errors import PluginError


@dataclass(frozen=True)
class Origin:
    """Where a component came from: the plugin (entry-point name), its distribution and version."""

    plugin: str
    distribution: str = ""
    version: str = ""

    def describe(self) -> str:
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"plugin '{self.plugin}'{dist}"


@dataclass(frozen=True)
class Entry:
    cls: type[Component]
    origin: Origin


class Registry:
    """Holds every registered component class. Duplicate names within a family are recorded as conflicts."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {f: {} for f in FAMILIES}
        self.conflicts: list[str] = []
        self.disabled_lookup: Callable[[str, str], Origin | None] | None = None
        """Set by the plugin manager: (family, name) -> the disabled plugin that provides it, if any (asked only
        when a name is unknown, so disabled plugins are loaded only to explain that error)."""

    def add(self, cls: type[Component], origin: Origin) -> None:
        """Register ``cls`` from ``origin``: a subclass of its family's ``shl.api`` base class with a ``name`` and
        a pydantic ``Params``, else a PluginError naming the plugin (plugins call this through the registration
        hooks' ``register``, so anything may arrive). A name another class already holds in the family is
        recorded in ``conflicts``."""
        family = getattr(cls, "family", "")
        if family not in BASE_CLASSES or not (isinstance(cls, type) and issubclass(cls, BASE_CLASSES[family])):
            raise PluginError(
                f"{origin.describe()} registered {cls!r}, which is not a subclass of a shl.api component base class"
            )
        name = getattr(cls, "name", "")
        if not name or not isinstance(name, str):
            raise PluginError(f"{origin.describe()} registered {cls.__name__} without a 'name'")
        params = getattr(cls, "Params", None)
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise PluginError(f"{origin.describe()}: {family} '{name}' has no pydantic Params model")
        existing = self._entries[family].get(name)
        if existing is not None and existing.cls is not cls:
            self.conflicts.append(
                f"duplicate {family} name '{name}': registered by {existing.origin.describe()} "
                f"and by {origin.describe()}"
            )
            return
        self._entries[family][name] = Entry(cls, origin)

    def check(self) -> None:
        """Raise on the first duplicate-name conflict."""
        if self.conflicts:
            raise PluginError(self.conflicts[0])

    def names(self, family: str) -> list[str]:
        return sorted(self._entries[family])

    def entries(self, family: str) -> dict[str, Entry]:
        return dict(self._entries[family])

    def get(self, family: str, name: str) -> type[Component]:
        return self.entry(family, name).cls

    def entry(self, family: str, name: str) -> Entry:
        entries = self._entries[family]
        if name not in entries:
            available = ", ".join(sorted(entries)) or "none"
            disabled = self._disabled_origin(family, name)
            if disabled is not None:
                hint = (f": provided by {disabled.describe()}, which is disabled "
                        f"(SHL_DISABLE_PLUGINS names '{disabled.plugin}')")
            else:
                close = difflib.get_close_matches(name, list(entries), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise PluginError(f"unknown {family} '{name}'{hint}; available: {available}")
        return entries[name]

    def _disabled_origin(self, family: str, name: str) -> Origin | None:
        if self.disabled_lookup is None:
            return None
        try:
            return self.disabled_lookup(family, name)
        except Exception:  # explaining an error must never raise another one
            return None

    def build(self, family: str, name: str, params: dict[str, Any] | None = None) -> Component:
        """Instantiate a component with params validated by its own Params model."""
        cls = self.get(family, name)
        return cls(cls.Params(**(params or {})))

    def describe(self) -> list[dict[str, Any]]:
        """One dict per component: family, name, plugin, distribution, version, description, params schema."""
        rows = []
        for family in FAMILIES:
            for name, entry in sorted(self._entries[family].items()):
                rows.append(
                    {
                        "family": family,
                        "name": name,
                        "plugin": entry.origin.plugin,
                        "distribution": entry.origin.distribution,
                        "version": entry.origin.version,
                        "description": entry.cls.description or (entry.cls.__doc__ or "").strip().split("\n")[0],
                        "params": entry.cls.Params.model_json_schema(),
                    }
                )
        return rows
