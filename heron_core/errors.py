"""Errors Heron reports to users: one clear message each, never a traceback."""


class HeronError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class ConfigError(HeronError):
    """Bad user input (unknown plugin, bad value, impossible shape): exit status 2."""

    exit_code = 2


class PluginError(HeronError):
    """A plugin is broken or two plugins clash (duplicate names)."""


class TargetUnavailable(HeronError):
    """The target cannot run on this machine (e.g. the CPU lacks AVX-512 VNNI)."""

    exit_code = 2
