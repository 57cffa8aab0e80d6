"""loadtest: benchmark OpenAI-compatible LLM inference servers with numbers you can trust.

The root of the command line: the parser of every command (each command module adds its own,
picking option groups from options.py), and the one place errors become one line on stderr: a
user's error exits 2, a bug or an OS failure 1 (``--debug`` shows the traceback), a signal 130/143.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from loadtest import __version__
from loadtest.errors import LoadtestError

DESCRIPTION = ("loadtest benchmarks OpenAI-compatible LLM inference servers (vLLM, SGLang, TGI, llama.cpp, "
               "Transformers) and hosted APIs: per-request tokens/s, TTFT, TPOT and ITL, requests/min and output "
               "tokens/s under a closed or open loop, sweeps and capacity against SLOs. Completion tokens come from "
               "the server's usage, every chunk is stamped on arrival, and every run says whether its numbers can "
               "be trusted.")
EPILOG = "Run `loadtest COMMAND --help` for a command's options; the manual is in docs/ (docs/cli.md lists them all)."
COMMANDS = ("run", "sweep", "capacity", "tokens", "report", "compare", "matrix", "memory", "models", "serve", "engine",
            "rerun", "scenario", "convert")
"""The command modules (loadtest.cli.NAME), in the order --help lists them; each has
``add_parsers(sub)``. Imported when the parser is built, after main() took the signals: a Ctrl-C
during the imports is then one line too."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line that matters plus where to look, not a screen
    of usage first."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(2, f"loadtest: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="loadtest", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"loadtest {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"loadtest.cli.{name}").add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from loadtest.run.execute import command

    with command() as signals:  # one signal policy for the whole command (run/execute.py), from its start
        try:
            ns = build_parser().parse_args(argv)
        except LoadtestError as exc:  # a signal while the commands are imported: Interrupted
            print(f"loadtest: {exc}", file=sys.stderr)
            return exc.exit_code
        if getattr(ns, "own_signals", False):  # the servers (`serve`): Ctrl-C is how they stop
            signals.uninstall()
            return _main(ns)
        code = _main(ns)
    # a signal stopped the command, whatever its own code would have said (0, or 2 for a level
    # the signal cut short): 130/143
    return signals.exit_code if signals.exit_code is not None else code


def _main(ns: argparse.Namespace) -> int:
    debug = getattr(ns, "debug", False)
    try:
        return int(ns.run(ns))
    except LoadtestError as exc:
        if debug:
            raise
        from loadtest.redact import redact
        from loadtest.run.execute import Interrupted

        prefix = "" if isinstance(exc, Interrupted) else "error: "
        print(f"loadtest: {prefix}{redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # QuitNow (run/execute.py): a second signal
        print(f"loadtest: {exc or 'interrupted'}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except OSError as exc:  # the OS refused (disk full, a file gone) where nothing above expected it
        if debug:
            raise
        from loadtest.redact import redact

        where = f": {exc.filename}" if exc.filename else ""
        text = exc.strerror or str(exc) or type(exc).__name__
        print(f"loadtest: error: {redact(text)}{where} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, saying so; each bad input is refused where it is read
        if debug:
            raise
        from loadtest.redact import redact

        text = " ".join(str(exc).split())
        print(f"loadtest: error: internal error, a bug in loadtest ({type(exc).__name__}: {redact(text)[:300]}); "
              "run again with --debug for the traceback and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
