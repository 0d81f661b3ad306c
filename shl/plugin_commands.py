"""Subcommands that plugins add to the ``shl`` command line, through the ``shl_register_commands`` hook.

A plugin's entry module implements the hook and calls ``register`` once per command, either with a
``Command`` or with its fields: ``register(name, help, add_arguments, handler)``. The command is then listed in
``shl --help`` like the built-ins and dispatched the same way: ``shl.errors.ShlError`` (``ConfigError``...)
raised by the handler is one ``error:`` line and exit code 2.

A command registration that is not a valid command, or whose ``add_arguments`` raises, makes the plugin a
broken plugin (``shl plugins`` lists it; the rest of the CLI keeps working). A name taken by a built-in command
or by another plugin's command is a clash, an error naming the plugin: ``shl plugins`` lists it, and ``shl
--help`` and every plugin command refuse to start (the built-in commands, which never load plugin commands,
keep working). This module imports nothing heavy: it runs for ``shl --help``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Optional

from .registry import Origin

HOOK = "shl_register_commands"


@dataclass(frozen=True)
class Command:
    """One subcommand of ``shl``.

    ``name``: the word after ``shl``. ``help``: its one-line description in ``shl --help``'s list of commands.
    ``add_arguments(parser)``: adds the command's arguments (and subcommands) to its ``argparse.ArgumentParser``;
    it runs on every invocation of ``shl``, so it must be cheap (no torch). ``handler(args)``: runs the command
    with the parsed ``argparse.Namespace`` and returns its exit code (None counts as 0); import anything heavy
    inside it. ``usage`` and ``summary``: the command's line in the overview at the end of ``shl --help``
    (default: the name, and ``help``).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], Optional[int]]
    usage: str = ""
    summary: str = ""

    def check(self) -> None:
        """Raise ``ValueError`` naming what is wrong with this registration."""
        if not isinstance(self.name, str) or not self.name or self.name.startswith("-") or \
                any(c.isspace() for c in self.name):
            raise ValueError(f"command name {self.name!r} is not one word")
        for attr in ("help", "usage", "summary"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"command '{self.name}': {attr} must be a string")
        for attr in ("add_arguments", "handler"):
            if not callable(getattr(self, attr)):
                raise ValueError(f"command '{self.name}': {attr} must be callable")


@dataclass(frozen=True)
class PluginCommand:
    """A command and the plugin that registered it."""

    command: Command
    origin: Origin


@dataclass
class PluginCommands:
    """What the plugins of a host contribute to the CLI: the usable commands (sorted by name) and the clashes."""

    commands: list[PluginCommand] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _as_command(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Command:
    if len(args) == 1 and not kwargs and isinstance(args[0], Command):
        command = args[0]
    else:
        try:
            command = Command(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"register(...) takes a Command or (name, help, add_arguments, handler): {exc}") from None
    command.check()
    return command


def _probe(command: Command) -> None:
    """Run ``add_arguments`` on a throwaway parser, so a broken one is found before the real parser has it."""
    command.add_arguments(argparse.ArgumentParser(prog=f"shl {command.name}", add_help=True))


def collect_commands(host, builtin: Collection[str]) -> PluginCommands:
    """The commands every plugin of ``host`` registers (plugins visited in name order), checked against the
    ``builtin`` command names and each other; a plugin whose registration fails is recorded in
    ``host.failures``. Computed once per host."""
    global _cached
    if _cached is not None and _cached[0] is host:
        return _cached[1]
    from .manager import record_failure

    found = PluginCommands()
    owner: dict[str, Origin] = {}
    impls = sorted(getattr(host.pm.hook, HOOK).get_hookimpls(), key=lambda impl: impl.plugin_name)
    for impl in impls:
        origin = host.origins.get(impl.plugin_name, Origin(impl.plugin_name))
        mine: list[Command] = []

        def register(*args: Any, _mine: list[Command] = mine, **kwargs: Any) -> None:
            _mine.append(_as_command(args, kwargs))

        try:
            impl.function(register=register)
            for command in mine:
                _probe(command)
        except Exception as exc:  # a broken plugin must not take the CLI down
            record_failure(host, origin, f"failed in {HOOK}: {type(exc).__name__}: {exc}")
            continue
        for command in mine:
            if command.name in builtin:
                found.conflicts.append(f"{origin.describe()} registers the command '{command.name}', which is a "
                                       f"built-in shl command; rename it (SHL_DISABLE_PLUGINS={origin.plugin} "
                                       f"skips the plugin)")
            elif command.name in owner:
                found.conflicts.append(f"duplicate command '{command.name}': registered by "
                                       f"{owner[command.name].describe()} and by {origin.describe()}")
            else:
                owner[command.name] = origin
                found.commands.append(PluginCommand(command, origin))
    found.commands.sort(key=lambda c: c.command.name)
    _cached = (host, found)
    return found


_cached: tuple[Any, PluginCommands] | None = None
