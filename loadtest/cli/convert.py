"""``loadtest convert COMMAND...``: another tool's command line (``vllm bench serve``, ``guidellm
benchmark``, ``aiperf profile``) as a loadtest scenario file (cli/foreign.py translates), with one
comment line per thing that does not translate or is measured differently. The file it writes is
checked by ``loadtest validate``'s own rules before it is written, so it always runs."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

from loadtest.cli import options
from loadtest.errors import ConfigError

_PREFIXES = ("python", "python3", "uv", "run", "-m", "exec")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("convert", help="turn a vllm bench serve, GuideLLM or AIPerf command line into a scenario file",
                       description="Translate another benchmark client's command line into a loadtest scenario file "
                                   "(TOML), saying line by line what does not translate: arrival defaults, how each "
                                   "counts input length, warm-up. Give the command as words after `--`, as one "
                                   "quoted string, or `-` to read it from stdin.")
    options.scenario_output(p)
    options.debug(p)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="e.g. -- vllm bench serve --model M --dataset-name random --random-input-len 512")
    p.set_defaults(run=main, parsers=sub.choices)


def split_words(words: list[str]) -> list[str]:
    """The command's words: given as words, as one shell string, or read from stdin (``-``)."""
    if words[:1] == ["--"]:
        words = words[1:]
    if words == ["-"]:
        words = [sys.stdin.read()]
    if len(words) == 1 and any(c.isspace() for c in words[0]):
        try:
            words = shlex.split(words[0].replace("\\\n", " "))
        except ValueError as exc:
            raise ConfigError(f"convert: cannot split the command line: {exc}") from None
    return words


def detect(words: list[str]) -> tuple[str, list[str]]:
    """(the tool, its options' words)."""
    i = 0
    while i < len(words) and ("=" in words[i] and not words[i].startswith("-") or words[i] in _PREFIXES):
        i += 1  # environment assignments, python -m, uv run
    rest = words[i:]
    head = [w.rsplit("/", 1)[-1] for w in rest[:3]]
    if head[:3] == ["vllm", "bench", "serve"]:
        return "vllm", rest[3:]
    if head and (head[0] in ("benchmark_serving.py", "vllm.benchmarks.serve", "vllm.entrypoints.cli.main")):
        return "vllm", [w for w in rest[1:] if w not in ("bench", "serve")]
    if head[:1] == ["guidellm"]:
        skip = 1 + (head[1:2] == ["benchmark"]) + (head[1:3] == ["benchmark", "run"])
        return "guidellm", rest[skip:]
    if head[:1] in (["aiperf"], ["genai-perf"]):
        return "aiperf", rest[1 + (head[1:2] == ["profile"]):]
    shown = " ".join(words[:3]) or "nothing"
    raise ConfigError(f"convert reads a `vllm bench serve`, `guidellm benchmark` or `aiperf profile` command line; "
                      f"got {shown!r}")


def _tools() -> dict[str, tuple[Callable[..., Any], set[str], dict[str, str]]]:
    """Per tool: its translator, the options that take no value, its short options."""
    from loadtest.cli import foreign_aiperf, foreign_guidellm, foreign_vllm

    return {"vllm": (foreign_vllm.vllm, foreign_vllm.VLLM_FLAGS, {}),
            "guidellm": (foreign_guidellm.guidellm, foreign_guidellm.GUIDELLM_FLAGS, {"-c": "--scenario"}),
            "aiperf": (foreign_aiperf.aiperf, foreign_aiperf.AIPERF_FLAGS, foreign_aiperf.AIPERF_SHORT)}


def convert(words: list[str]) -> Any:
    from loadtest.cli.foreign import parse

    tool, rest = detect(words)
    translate, flags, short = _tools()[tool]
    opts, stray = parse(rest, flags, short)
    try:
        conversion = translate(opts)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"convert: a value of that {tool} command line is not usable: {exc}") from None
    for word in stray:
        conversion.note(f"{word!r}: not an option; left out")
    return conversion


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string (JSON's escapes are TOML's)


def render(conversion: Any, source: list[str]) -> str:
    """The scenario file: what it came from, the notes as comments, then the keys."""
    shown = " ".join(shlex.quote(w) for w in source)
    lines = [f"# converted by `loadtest convert` from {conversion.tool}:", f"#   {shown}", "#"]
    lines += [f"# note: {note}" for note in conversion.notes]
    lines += ["", f"command = {_toml(conversion.command)}"]
    lines += [f"{key} = {_toml(value)}" for key, value in conversion.keys.items()]
    return "\n".join(lines) + "\n"


def main(ns: argparse.Namespace) -> int:
    from loadtest.cli.scenariofile import plan
    from loadtest.redact import redact

    words = split_words(list(ns.words))
    if not words:
        raise ConfigError("convert needs a command line, e.g. loadtest convert -- vllm bench serve --model M")
    conversion = convert(words)
    _, problems = plan({"command": conversion.command, **conversion.keys}, [], ns.parsers)
    for problem in problems:  # what the command line left out (an endpoint...): to fill in before it runs
        conversion.note(f"to fill in before it runs: {problem}")
    text = redact(render(conversion, words))
    if ns.output is None:
        sys.stdout.write(text)
        return 0
    if ns.output.exists() and not ns.overwrite:
        raise ConfigError(f"--output {ns.output} exists; pass --overwrite to replace it")
    from loadtest.run.output import writable_file

    writable_file(ns.output)
    ns.output.write_text(text)
    for note in conversion.notes:
        print(f"convert: note: {redact(note)}", file=sys.stderr)
    print(f"convert: wrote {ns.output} ({conversion.command}; check it with loadtest validate {ns.output})",
          file=sys.stderr)
    return 0
