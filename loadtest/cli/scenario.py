"""``loadtest run FILE`` and ``loadtest validate FILE``: scenario files (cli/scenariofile.py), one
run or a suite, with options on the command line overriding the file's. ``validate`` checks the
whole file without running anything; ``run`` checks it the same way first, so a suite never stops
half-way on a typo in its last run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadtest.cli import argtypes, options
from loadtest.errors import LoadtestError

EXIT_INVALID = 2


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("run", help="run a scenario file (TOML, or YAML with PyYAML): one run or a suite",
                       description="Run the command(s) a scenario file describes: each key a long option of its "
                                   "command (command = \"throughput\", concurrency = 32...), [[runs]] for a suite "
                                   "whose runs inherit the top-level keys. Options after FILE override the file's "
                                   "in every run (docs/repeats.md).")
    _common(p)
    p.set_defaults(run=main, parsers=sub.choices)  # every command's parser (all added by the time it runs)
    v = sub.add_parser("validate", help="check a scenario file without running it",
                       description="Check a scenario file as `loadtest run` would, without running anything: "
                                   "unknown keys and bad values one line each, with the key's path "
                                   "(runs[2].concurrency: must be >= 1, got 0).")
    _common(v)
    v.set_defaults(run=validate, parsers=sub.choices)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", type=argtypes.input_path, metavar="FILE", help="the scenario file (.toml, or .yaml/.yml)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="OPTION",
                   help="options that override the file's in every run (e.g. --endpoint URL --concurrency 8)")
    options.debug(p)


def _planned(ns: argparse.Namespace) -> Any:
    """(the runs, problems): problems are printed one line each."""
    from loadtest.cli.scenariofile import plan, read

    runs, problems = plan(read(ns.scenario), list(ns.overrides), ns.parsers)
    for problem in problems:
        print(f"loadtest: error: {ns.scenario}: {problem}", file=sys.stderr)
    return runs, problems


def validate(ns: argparse.Namespace) -> int:
    runs, problems = _planned(ns)
    if problems:
        return EXIT_INVALID
    what = ", ".join(r.name or r.command for r in runs)
    print(f"{ns.scenario}: valid: {len(runs)} run{'s' if len(runs) != 1 else ''} ({what})")
    return 0


def main(ns: argparse.Namespace) -> int:
    from loadtest.cli.scenariofile import parse
    from loadtest.redact import redact, redact_tree
    from loadtest.run.execute import Interrupted, command_signals

    runs, problems = _planned(ns)
    if problems:
        return EXIT_INVALID
    signals = command_signals()  # the suite's one, for all its runs: no signal between two is lost
    codes = []
    for i, run in enumerate(runs, 1):
        if signals.received is not None:  # signalled after the last run ended: start no other
            print(f"scenario: stopped ({signals.received.name}) before {run.label}", file=sys.stderr)
            return signals.exit_code or 130
        words = " ".join(redact_tree([run.command, *run.argv]))
        print(f"scenario: {i}/{len(runs)} {run.label}: loadtest {words}", file=sys.stderr, flush=True)
        args = parse(ns.parsers[run.command], run.command, run.argv)
        try:
            code = int(args.run(args))
        except Interrupted:
            raise
        except LoadtestError as exc:  # this run could not start (its --output is taken...): the suite goes on
            print(f"loadtest: error: {run.label}: {redact(str(exc))}", file=sys.stderr)
            code = exc.exit_code
        codes.append(code)
        if code in (130, 143) or signals.exit_code is not None:  # a signal: the suite starts no further run
            code = signals.exit_code or code
            print(f"scenario: stopped after {run.label}", file=sys.stderr)
            return code
    failed = [c for c in codes if c]
    if len(runs) > 1:
        print(f"scenario: {len(runs) - len(failed)} of {len(runs)} runs succeeded", file=sys.stderr)
    return failed[0] if failed else 0
