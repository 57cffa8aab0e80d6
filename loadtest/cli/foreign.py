"""Other benchmark clients' command lines, read as data for ``loadtest convert`` (cli/convert.py):
``vllm bench serve`` (and benchmarks/benchmark_serving.py), ``guidellm benchmark`` and ``aiperf
profile`` (and genai-perf). Each translator gives the loadtest options that do the same, and one
note per thing that does not translate or is defined differently, so a user can see line by line
what a comparison with that tool's numbers has to account for.

The defaults assumed are those of the tools' recent versions (vLLM 0.10+, GuideLLM 0.3+, AIPerf
0.1+); an option this module does not know is named in a note and left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Options = dict[str, list[str]]


@dataclass
class Conversion:
    tool: str
    command: str = "throughput"
    keys: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse(words: list[str], flags: set[str], short: dict[str, str]) -> tuple[Options, list[str]]:
    """(options by long name, dashes for underscores, each with its values; stray words). An option
    takes the words after it up to the next option, unless it is one of ``flags``."""
    out: Options = {}
    stray: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or is_number(word) or word == "-":
            stray.append(word)
            continue
        name, eq, value = word.partition("=")
        name = short.get(name, name).lstrip("-").replace("_", "-")
        values = out.setdefault(name, [])
        if eq:
            values.append(value)
            continue
        if name in flags:
            continue
        while i < len(words) and not (words[i].startswith("-") and not is_number(words[i]) and words[i] != "-"):
            values.append(words[i])
            i += 1
    return out, stray


def one(opts: Options, name: str, default: str | None = None) -> str | None:
    values = opts.get(name)
    return values[-1] if values else default


def number(text: str) -> int | float:
    """A number as written: 20 stays an integer (top_k), 0.9 a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def as_float(text: str | None) -> float | None:
    return None if text is None else float(text)


def as_int(text: str | None) -> int | None:
    return None if text is None else int(float(text))


def ms_objectives(pairs: list[str], names: dict[str, str], sep: str, c: Conversion, flag: str) -> None:
    """'ttft:500' (milliseconds) -> slo ['ttft=500ms']."""
    slos = []
    for pair in (p for item in pairs for p in item.split()):
        key, _, value = pair.partition(sep)
        if key in names and is_number(value):
            slos.append(f"{names[key]}={float(value):g}ms")
        else:
            c.note(f"{flag} {pair}: no loadtest objective for it; left out")
    if slos:
        c.keys["slo"] = slos


def leftover(opts: Options, handled: set[str], c: Conversion, why: dict[str, str]) -> None:
    for name in opts:
        if name not in handled:
            c.note(f"--{name}: {why.get(name, 'no loadtest equivalent; left out')}")
