"""Scenario files: a command's options in a TOML (or, with PyYAML, YAML) file, one run or a suite.

    command = "throughput"                 # any command; every other key is one of its long options
    endpoint = "http://127.0.0.1:8000/v1"  # (max-tokens or max_tokens; true/false for a switch such as
    max-tokens = 128                       # no-stream, or stream = false by the option's destination)
    output = "results/suite"               # with a suite: results/suite/<name> per run

    [[runs]]                               # a suite: each run inherits every top-level key
    name = "c8"
    concurrency = 8

The file is turned into the command line it stands for and parsed by the command's own argparse
parser (cli/options.py defines each option once; this module defines none): each key is checked
alone first (unknown keys and bad values: one line each, with the key's path, e.g.
``runs[2].concurrency: must be >= 1, got 0``), then the run's whole command line, then the
combination the command would refuse before starting (ConfigError). Options on the command line
override the file's: they come last, and a file option they replace (the same destination, or one
of a mutually exclusive group, such as --num-prompts against --duration) is left out.
"""

from __future__ import annotations

import argparse
import difflib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.errors import ConfigError, LoadtestError

RESERVED = ("command", "runs", "name")
NOT_IN_SCENARIOS = ("run", "validate")


@dataclass
class ScenarioRun:
    where: str          # "runs[2]" in a suite, "" for a file of one run
    name: str | None
    command: str
    argv: list[str]     # the command's options: the file's, then the overrides

    @property
    def label(self) -> str:
        return self.where + (f" ({self.name})" if self.name else "") if self.where else self.name or self.command


class _ParseProblem(Exception):
    pass


class BadValue(Exception):
    """A key's value that cannot be its option's (the message says why)."""


MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000
MAX_DEPTH = 32
MAX_TEXT_CHARS = 100_000
"""A scenario file holds options, not data: past these it is refused before it is turned into a
command line (a 10 MB value passed validate and then could not be given to a child process,
"Argument list too long"; a YAML alias bomb expanded without end; 100,000 nested brackets were
an internal error, RecursionError)."""


def read(path: Path) -> dict[str, Any]:
    """The file's top-level table; ConfigError (one line) when it cannot be read."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: over {MAX_FILE_BYTES:,} bytes: a scenario file holds options, not data")
    try:
        data = _load(path, raw)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to read (at most {MAX_DEPTH} levels)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of options")
    _check_shape(path, data)
    return data


def _load(path: Path, raw: bytes) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or write it as TOML") from None
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    """Walk the values as they would be expanded (YAML aliases count each time they are used),
    without recursion, stopping at the first value past a bound: keys are names, no null (YAML's
    ``endpoint: null`` became ``--endpoint None``), texts fit on a command line."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    seen = 0
    while stack:
        where, value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"{path}: expands to more than {MAX_VALUES:,} values (a YAML alias bomb?): "
                              "a scenario file holds options, not data")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{path}: {where}: nested more than {MAX_DEPTH} levels deep")
        if value is None:
            raise ConfigError(f"{path}: {where or 'the file'}: null is not a value (leave the key out)")
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ConfigError(f"{path}: {where}: a text of {len(value):,} characters (at most {MAX_TEXT_CHARS:,})")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ConfigError(f"{path}: {where + '.' if where else ''}{key!r}: a key must be a name, "
                                      f"not {type(key).__name__}")
                stack.append((f"{where}.{key}" if where else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))


def parse(parser: argparse.ArgumentParser, command: str, argv: list[str]) -> argparse.Namespace:
    """A command's options parsed by its own parser, as the root parser would have done it."""
    return parser.parse_args(argv, namespace=argparse.Namespace(command=command))


def _action(parser: argparse.ArgumentParser, key: str) -> tuple[argparse.Action | None, bool]:
    """(the option a key names, whether by its flag): its long option (max-tokens, max_tokens,
    no-stream), else its destination (stream for --no-stream), else a positional by destination
    or metavar."""
    option = "--" + key.replace("_", "-")
    if option in parser._option_string_actions:
        return parser._option_string_actions[option], True
    dest = key.replace("-", "_")
    found = [a for a in parser._actions if a.dest == dest and not isinstance(a, argparse._HelpAction)]
    found += [a for a in parser._actions if not a.option_strings and str(a.metavar or "").lower() == dest]
    return (found[0] if found else None), False


def _names(parser: argparse.ArgumentParser) -> list[str]:
    return [s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def tokens(action: argparse.Action, value: Any, *, by_flag: bool = True) -> list[str]:
    """The command-line words of one key's value; BadValue(message) when the value cannot be one.
    A switch named by its flag (no-stream = true) is given when true; named by its destination
    (stream = false), when the value is the one the flag sets."""
    flag = next((s for s in action.option_strings if s.startswith("--")), None)
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise BadValue(f"must be true or false, got {value!r}")
        const = action.const
        given = value if by_flag or not isinstance(const, bool) else value == const
        return [flag] if flag and given else []
    if isinstance(value, bool):
        raise BadValue(f"takes a value, not {str(value).lower()}")
    if flag is None:  # a positional
        items = value if isinstance(value, list) else [value]
        words = [_text(v) for v in items]
    elif isinstance(action, argparse._AppendAction):
        items = ([f"{k}: {v}" for k, v in value.items()] if isinstance(value, dict) else
                 value if isinstance(value, list) else [value])
        words = [_text(v) for v in items]
    else:
        words = [_text(value)]
    for word in words:
        _check(action, word)
    return [w for word in words for w in ([flag, word] if flag else [word])]


def _check(action: argparse.Action, word: str) -> None:
    value: Any = word
    if callable(action.type):
        try:
            value = action.type(word)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise BadValue(str(exc) or f"invalid value {word!r}") from None
    if action.choices is not None and value not in action.choices:
        raise BadValue(f"must be one of {', '.join(map(str, action.choices))}, got {word!r}")


def _replaced(parser: argparse.ArgumentParser, overrides: list[str]) -> set[str]:
    """The destinations the overrides set, and those of options exclusive with them."""
    actions = [parser._option_string_actions[w.split("=", 1)[0]] for w in overrides
               if w.startswith("--") and w.split("=", 1)[0] in parser._option_string_actions]
    dests = {a.dest for a in actions}
    for group in parser._mutually_exclusive_groups:
        if any(a in group._group_actions for a in actions):
            dests |= {a.dest for a in group._group_actions}
    return dests


Keys = tuple[str, dict[str, Any], dict[str, str]]


def _runs(data: dict[str, Any], overrides: list[str]) -> tuple[list[Keys], list[str]]:
    """(where, merged keys, where each key came from) per run; problems with the file's shape."""
    top = {k: v for k, v in data.items() if k != "runs"}
    runs = data.get("runs")
    if runs is None:
        return [("", top, {k: k for k in top})], []
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        return [], ["runs: must be a non-empty list of tables ([[runs]] in TOML)"]
    out_dir = top.get("output")
    if "--output" in overrides and len(runs) > 1:  # a suite's --output holds a directory per run
        i = overrides.index("--output")
        out_dir = overrides[i + 1] if i + 1 < len(overrides) else out_dir
        del overrides[i:i + 2]
    out = []
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        merged = {**top, **run}
        paths = {k: f"{where}.{k}" if k in run else k for k in merged}
        if "output" not in run and out_dir is not None and len(runs) > 1:
            merged["output"] = str(Path(str(out_dir)) / str(run.get("name") or f"{i + 1}-{merged.get('command')}"))
            paths["output"] = "output"
        out.append((where, merged, paths))
    return out, []


def plan(data: dict[str, Any], overrides: list[str],
         parsers: dict[str, argparse.ArgumentParser]) -> tuple[list[ScenarioRun], list[str]]:
    """The runs of a scenario, each with its command line, and every problem found (one line
    each: the key's path and what is wrong). ``parsers``: every command's parser, by name. Nothing
    runs here."""
    overrides = list(overrides)
    commands = {name: p for name, p in parsers.items() if name not in NOT_IN_SCENARIOS}
    runs, problems = _runs(data, overrides)
    planned: list[ScenarioRun] = []
    for where, keys, paths in runs:
        found: list[str] = []
        command = keys.get("command")
        if command not in commands:
            found.append(f"{paths.get('command', (where + '.' if where else '') + 'command')}: " + (
                "missing" if command is None else f"{command!r} is not a command") + f" (one of {', '.join(commands)})")
            problems += [p for p in found if p not in problems]
            continue
        parser = commands[command]
        replaced = _replaced(parser, overrides)
        argv: list[str] = []
        name = keys.get("name")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            found.append(f"{paths['name']}: must be a short text without '/' (the run's directory name)")
        for key, value in keys.items():
            if key in RESERVED:
                continue
            action, by_flag = _action(parser, key)
            if action is None:
                near = difflib.get_close_matches(key.replace("_", "-"), _names(parser), n=1)
                found.append(f"{paths[key]}: unknown option of `loadtest {command}`"
                             + (f" (did you mean {near[0]}?)" if near else ""))
                continue
            if action.dest in replaced:
                continue
            try:
                argv += tokens(action, value, by_flag=by_flag)
            except BadValue as exc:
                found.append(f"{paths[key]}: {exc}")
        if not found:
            found += _parse_problems(parser, command, [*argv, *overrides], where)
        problems += [p for p in found if p not in problems]
        if not found:
            planned.append(ScenarioRun(where, name, command, [*argv, *overrides]))
    return planned, problems


def _parse_problems(parser: argparse.ArgumentParser, command: str, argv: list[str], where: str) -> list[str]:
    """The whole command line parsed by the command's parser, then checked as the command would
    before it starts; the problem (if any) as one line."""
    def fail(message: str) -> Any:
        raise _ParseProblem(message)

    prefix = f"{where}: " if where else ""
    saved = parser.error
    parser.error = fail  # type: ignore[method-assign]
    try:
        ns = parse(parser, command, argv)
    except _ParseProblem as exc:
        return [f"{prefix}{exc}"]
    finally:
        parser.error = saved  # type: ignore[method-assign]
    check = getattr(ns, "check", None)
    if check is not None:
        try:
            check(ns)
        except LoadtestError as exc:
            return [f"{prefix}{exc}"]
    return []
