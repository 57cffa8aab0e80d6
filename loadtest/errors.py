"""User-facing errors: each carries one line that the CLI prints instead of a traceback.

A failed *request* is data (see ``record.ErrorKind``); a failed *run* raises one of these.
"""

from __future__ import annotations


class LoadtestError(Exception):
    """An error whose message is meant for the user as one line; the CLI exits with ``exit_code``."""

    exit_code = 2


class ConfigError(LoadtestError):
    """Bad command-line input or an unusable option combination."""


class DatasetError(LoadtestError):
    """A prompt source that cannot be read, or has no usable prompts."""


class RunAborted(LoadtestError):
    """No request can succeed (unreachable endpoint, bad key, unknown model...)."""


class LaunchError(LoadtestError):
    """An engine could not be installed, started, or made ready."""


class OutputError(LoadtestError):
    """Results that could not be written (the disk is full, a file size limit): what was kept is said."""
