"""User-facing errors: each carries one line that the CLI prints instead of a traceback.

A failed *request* is data (see ``record.ErrorKind``); a failed *run* raises one of these.
"""

from __future__ import annotations


EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 130
"""0: measured; 2: the run failed (nothing measured, aborted, a worker died) or bad input; 130:
stopped by a signal (run/execute.py makes it 143 for SIGTERM)."""


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
