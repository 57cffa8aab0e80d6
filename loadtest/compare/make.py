"""The comparison end to end: load both sides, refuse sides that measured different things, test,
gate, render. The command's options are in cli/compare.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtest.compare.analyze import Comparison, compare_sides
from loadtest.compare.gate import Outcome, Rule, evaluate
from loadtest.compare.render import render
from loadtest.compare.sides import differences, load_side
from loadtest.errors import ConfigError

GATE_FAILED_EXIT = 3


@dataclass
class Made:
    comparison: Comparison
    gate: list[Outcome]
    text: str

    @property
    def exit_code(self) -> int:
        return GATE_FAILED_EXIT if any(o.breached for o in self.gate) else 0

    def summary_line(self) -> str:
        c = self.comparison.counts()
        line = ", ".join(f"{n} {k}" for k, n in c.items() if n)
        if self.comparison.contaminated:
            line += "; contaminated: " + ", ".join(self.comparison.contaminated)
        if self.gate:
            line += "; gate " + ("FAILED" if self.exit_code else "passed")
        return f"compare: {line}"


def make_comparison(baseline: Path, candidate: Path, *, fmt: str = "table", rules: list[Rule] | None = None,
                    allow_different: bool = False, alpha: float = 0.05, resamples: int = 2000,
                    seed: int = 0) -> Made:
    """Everything `loadtest compare` does short of printing; ConfigError (one line) when a side is
    not a run or the two sides' settings differ without ``allow_different``."""
    b, c = load_side(baseline, "baseline"), load_side(candidate, "candidate")
    if b.path.resolve() == c.path.resolve():
        raise ConfigError(f"baseline and candidate are the same directory ({b.path})")
    differ, unknown = differences(b, c)
    if differ and not allow_different:
        raise ConfigError("baseline and candidate differ in " + "; ".join(f"{n} ({v1} vs {v2})" for n, v1, v2 in differ)
                          + ": their difference would not be the change you made (--allow-different to compare anyway)")
    comparison = compare_sides(b, c, alpha=alpha, resamples=resamples, seed=seed)
    comparison.differ = differ
    tools = [s.tool for s in (b, c) if s.foreign]
    if unknown and tools:
        comparison.notes.append(f"settings {' and '.join(dict.fromkeys(tools))} did not record (or one side did "
                                "not), not checked: " + ", ".join(unknown))
    elif unknown:
        comparison.notes.append("settings recorded by one side only (an older version), not checked: "
                                + ", ".join(unknown))
    gate = evaluate(rules or [], comparison)
    return Made(comparison, gate, render(comparison, gate, fmt))
