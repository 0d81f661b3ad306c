"""The plugin manager: finds plugins through the ``shl`` entry-point group and builds the registry.

Each entry point loads in its own try/except, so one broken plugin is reported (``shl plugins`` lists it,
and a warning is logged) without taking the CLI down. ``SHL_DISABLE_PLUGINS=name1,name2`` skips plugins by
entry-point name. A disabled plugin is loaded only to explain an error: when a config names a component the
registry does not have, the disabled plugins are asked whether one of them provides it, so the error can say so.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .api import REGISTRATION_HOOKS, Component
from .registry import Origin, Registry

ENTRY_POINT_GROUP = "shl"
DISABLE_ENV = "SHL_DISABLE_PLUGINS"

log = logging.getLogger("shl.plugins")


@dataclass
class PluginHost:
    """A pluggy manager, the registry built from it, and what failed to load."""

    pm: pluggy.PluginManager
    registry: Registry
    origins: dict[str, Origin] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    _disabled_sources: list[tuple[Origin, Callable[[], Any]]] = field(default_factory=list, repr=False)
    _disabled_index: dict[tuple[str, str], Origin] | None = field(default=None, repr=False)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def disabled_provider(self, family: str, name: str) -> Origin | None:
        """The disabled plugin (``SHL_DISABLE_PLUGINS``) that would register ``name`` in ``family``, if any.

        Disabled plugins are loaded only here, on the first question (an unknown name in a config), into a
        throwaway plugin manager; one that fails to load is left out (logged at debug level, logger ``shl.plugins``)."""
        if self._disabled_index is None:
            self._disabled_index = _index_disabled(self._disabled_sources)
        return self._disabled_index.get((family, name))

    def plugin_list(self) -> list[dict[str, str]]:
        """The loaded plugins (name, distribution, version): recorded with every run."""
        return [
            {"plugin": o.plugin, "distribution": o.distribution, "version": o.version}
            for o in sorted(self.origins.values(), key=lambda o: o.plugin)
        ]


def disabled_plugins() -> set[str]:
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def make_host(extra_plugins: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> PluginHost:
    """Build a fresh plugin host.

    ``extra_plugins`` are ``(name, module_or_object)`` pairs registered in addition to (or, with
    ``entry_points=False``, instead of) the installed entry points: tests use this to get an isolated host.
    An extra plugin replaces an installed entry point of the same name or of the same object, so a plugin under
    test that is also installed is registered once, under its extra name, and its name clashes with the other
    plugins show in ``registry.conflicts`` (pluggy would refuse a second copy of the same module).
    """
    pm = pluggy.PluginManager("shl")
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, registry=Registry())
    skip = disabled_plugins()
    extra_plugins = list(extra_plugins)
    extra_names = {name for name, _ in extra_plugins}
    extra_ids = {id(plugin) for _, plugin in extra_plugins}
    if entry_points:
        dists: dict[int, tuple[Any, str, str]] = {}  # id(distribution) -> (it, name, version): parsed once
        for ep in _entry_points():
            if ep.name in extra_names:
                continue
            origin = Origin(ep.name, *_dist_name_version(getattr(ep, "dist", None), dists))
            if ep.name in skip:
                host.disabled.append(ep.name)
                host._disabled_sources.append((origin, ep.load))
                continue
            try:
                plugin = ep.load()
                if id(plugin) in extra_ids:  # the plugin under test, installed too: the extra copy is registered
                    continue
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the host down
                record_failure(host, origin, f"failed to load: {type(exc).__name__}: {exc}")
                continue
            host.origins[ep.name] = origin
    for name, plugin in extra_plugins:
        if name in skip:
            host.disabled.append(name)
            host._disabled_sources.append((Origin(name), lambda _plugin=plugin: _plugin))
            continue
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            record_failure(host, Origin(name), f"failed to register: {type(exc).__name__}: {exc}")
            continue
        host.origins[name] = Origin(name, "", "")
    _build_registry(host)
    host.registry.disabled_lookup = host.disabled_provider
    return host


def _dist_name_version(
    dist: metadata.Distribution | None, seen: dict[int, tuple[Any, str, str]]
) -> tuple[str, str]:
    """(name, version) of an entry point's distribution, ("", "") without one; each distribution's metadata is
    read once per ``make_host`` (parsing it costs milliseconds, and one distribution has many entry points).
    ``seen`` keeps each distribution it caches alive, so no other object can take its ``id`` meanwhile."""
    if dist is None:
        return "", ""
    if id(dist) not in seen:
        meta = dist.metadata
        seen[id(dist)] = (dist, meta["Name"], meta["Version"])
    return seen[id(dist)][1:]


def _index_disabled(sources: list[tuple[Origin, Callable[[], Any]]]) -> dict[tuple[str, str], Origin]:
    """(family, name) -> origin for every component the disabled plugins would register.

    Each source is a loader (``EntryPoint.load`` or a function returning an extra plugin), not an entry point to
    recognise by class: once the ``importlib_metadata`` backport is imported (mlflow does), ``importlib.metadata``
    hands out the backport's ``EntryPoint`` objects. A plugin that cannot be indexed is logged at debug level."""
    index: dict[tuple[str, str], Origin] = {}
    for origin, load in sources:
        try:
            plugin = load()
            pm = pluggy.PluginManager("shl")
            pm.add_hookspecs(hookspecs)
            pm.register(plugin, name=origin.plugin)
            for hook_name in REGISTRATION_HOOKS:
                for impl in getattr(pm.hook, hook_name).get_hookimpls():
                    def register(cls: type[Component], _origin: Origin = origin) -> None:
                        family, name = getattr(cls, "family", ""), getattr(cls, "name", "")
                        if isinstance(family, str) and isinstance(name, str) and name:
                            index.setdefault((family, name), _origin)

                    try:
                        impl.function(register=register)
                    except Exception as exc:
                        log.debug("disabled shl plugin '%s': %s failed while indexing it: %s: %s",
                                  origin.plugin, hook_name, type(exc).__name__, exc)
        except Exception as exc:  # a disabled plugin may well be broken: it only fails to explain
            log.debug("disabled shl plugin '%s' could not be indexed (so errors cannot name it): %s: %s",
                      origin.plugin, type(exc).__name__, exc)
    return index


def record_failure(host: PluginHost, origin: Origin, message: str) -> None:
    """Record that a plugin failed (``shl plugins`` lists it) and log a warning; the host carries on without it."""
    host.failures.append({"plugin": origin.plugin, "distribution": origin.distribution, "error": message})
    log.warning("shl plugin '%s' %s", origin.plugin, message)


def _check_unknown_hooks(host: PluginHost) -> None:
    """Report hook implementations that match no shl hook (a typo would otherwise register nothing, silently)."""
    known = sorted(n for n in vars(hookspecs) if n.startswith("shl_"))
    for hook_name, caller in list(vars(host.pm.hook).items()):
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            origin = host.origins.get(impl.plugin_name, Origin(impl.plugin_name))
            close = difflib.get_close_matches(hook_name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known hooks: {', '.join(known)}"
            record_failure(host, origin, f"implements unknown hook '{hook_name}'{hint}")


def _build_registry(host: PluginHost) -> None:
    _check_unknown_hooks(host)
    for hook_name in REGISTRATION_HOOKS:
        for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
            origin = host.origins.get(impl.plugin_name, Origin(impl.plugin_name))

            def register(cls: type[Component], _origin: Origin = origin) -> None:
                host.registry.add(cls, _origin)

            try:
                impl.function(register=register)
            except Exception as exc:
                record_failure(host, origin, f"failed in {hook_name}: {type(exc).__name__}: {exc}")


_default_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host over the installed plugins (built on first use)."""
    global _default_host
    if _default_host is None:
        _default_host = make_host()
    return _default_host


def reset_host() -> None:
    global _default_host
    _default_host = None
