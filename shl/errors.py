"""User-facing errors: the CLI prints them on one line and exits with code 2, without a traceback."""


class ShlError(Exception):
    """A problem with the user's input (config, plugin, file, model) that the user can fix."""


class ShlFault(Exception):
    """A fault of the environment (disk full, read-only filesystem) that shl can name in one line: exit code 1."""


class ConfigError(ShlError):
    """An invalid config value; the message names the YAML path (and the plugin, where one is involved)."""


class PluginError(ShlError):
    """A plugin problem: unknown name, duplicate name, broken plugin."""


class RunError(ShlError):
    """A run ended without results for a reason the engine could name (starvation, NaN loss...)."""

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.status = status
