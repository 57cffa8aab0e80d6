"""``python -m loadtest.sim``: run the simulated server in the foreground.

The one stdout line is a contract: ``SimProcess`` (and any other parent) reads the port from it.
"""

from __future__ import annotations

import argparse
import sys

from loadtest.errors import ConfigError
from loadtest.sim.config import add_arguments, config_from_args

LISTENING_PREFIX = "loadtest-sim listening on "


def announce(host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    print(f"{LISTENING_PREFIX}http://{shown}:{port}/v1", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.sim",
        description="Deterministic OpenAI-compatible streaming server for checking a load-testing client.")
    add_arguments(parser)
    # Internal: set by SimProcess so the server dies with its parent even if the parent is killed.
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
    except ConfigError as exc:
        parser.error(str(exc))
    from loadtest.sim.server import run  # imported late so --help works without httptools

    try:
        run(config, announce=announce, exit_on_stdin_eof=ns.exit_on_stdin_eof)
    except OSError as exc:  # typically the port is taken
        print(f"loadtest-sim: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
