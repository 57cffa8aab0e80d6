"""``loadtest compare``: baseline vs candidate, per metric a change, its interval, a test and a
verdict; ``--fail-if`` rules make it a CI gate (exit 3). The work is in loadtest/compare/."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadtest.cli import argtypes, options
from loadtest.errors import ConfigError

FORMATS = ("table", "markdown", "json", "junit")  # compare/render.py's, kept here so --help imports nothing heavy


def fail_rule(text: str) -> Any:
    from loadtest.compare.gate import parse_rule

    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("compare", help="A/B two runs: better, worse or no significant difference, per metric",
                       description="Compare a candidate run with a baseline run (run directories, or repeat groups "
                                   "of rep-1..N runs, or another tool's result: a vllm bench serve --save-detailed JSON file or AIPerf's "
                                   "profile_export.jsonl records): per metric the change in percent, its 95% interval, a "
                                   "significance test (adjusted for testing many metrics at once) and a verdict. "
                                   "--fail-if turns it into a CI gate: exit 3 when a significant change is beyond "
                                   "a threshold.")
    p.add_argument("baseline", type=argtypes.input_path, metavar="BASELINE", help="the reference: a run directory, a repeat group, a vllm bench serve result or AIPerf records")
    p.add_argument("candidate", type=argtypes.input_path, metavar="CANDIDATE", help="the run (group, or other tool's result) to judge against it")
    p.add_argument("--fail-if", dest="fail_if", action="append", type=fail_rule, default=[], metavar="RULE",
                   help="exit 3 when this change is significant and beyond the threshold, e.g. 'ttft:p99>+5%%' "
                        "or 'output_tokens_per_s<-3%%' (repeatable; error_rate in points: 'error_rate>+1pp')")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), markdown (a pull-request comment), json, or junit (XML for CI systems)")
    p.add_argument("--output", type=argtypes.output_file, metavar="FILE", help="write to this file instead of stdout")
    p.add_argument("--allow-different", action="store_true",
                   help="compare even when the two sides' settings differ (dataset, max tokens, load, API, "
                        "streaming, seed, loadtest version)")
    p.add_argument("--alpha", type=argtypes.fraction, default=0.05,
                   help="false discovery rate for the verdicts (default 0.05)")
    p.add_argument("--resamples", type=argtypes.positive_int, default=2000, metavar="N",
                   help="bootstrap resamples (default 2000; at least 100)")
    p.add_argument("--bootstrap-seed", type=argtypes.non_negative_int, default=0, metavar="N",
                   help="seed of the bootstrap (default 0: the same inputs give the same output)")
    options.debug(p)
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.compare.make import make_comparison
    from loadtest.run.output import writable_file

    if ns.output is not None:
        writable_file(ns.output)
    if ns.alpha >= 0.5:
        raise ConfigError(f"--alpha must be below 0.5, got {ns.alpha:g}")
    if ns.resamples < 100:
        raise ConfigError(f"--resamples must be at least 100, got {ns.resamples}")
    made = make_comparison(ns.baseline, ns.candidate, fmt=ns.format, rules=ns.fail_if,
                           allow_different=ns.allow_different, alpha=ns.alpha, resamples=ns.resamples,
                           seed=ns.bootstrap_seed)
    if ns.output is None:
        sys.stdout.write(made.text)
    else:
        ns.output.parent.mkdir(parents=True, exist_ok=True)
        ns.output.write_text(made.text)
        print(f"compare: {ns.output}", file=sys.stderr)
    for o in made.gate:
        print(f"compare: {o.line}", file=sys.stderr)
    print(made.summary_line(), file=sys.stderr)
    return made.exit_code
