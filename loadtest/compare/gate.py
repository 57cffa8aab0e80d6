"""``--fail-if`` rules: a CI gate on a comparison.

A rule is ``METRIC[:STAT] > +N%`` or ``METRIC[:STAT] < -N%`` (e.g. ``ttft:p99>+5%``,
``output_tokens_per_s<-3%``; error_rate's change is in percentage points: ``error_rate>+1pp``).
It is breached when the change is significant (the comparison's verdict is better or worse) and
beyond the threshold. A rule whose metric could not be tested, or was not measured, cannot be
breached: it is reported as such so that a gate is never silently empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadtest.compare.analyze import Comparison, Result
from loadtest.compare.metrics import Metric, find

_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z0-9]+))?\s*([<>])\s*([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*(%|pp)?\s*$")


@dataclass(frozen=True)
class Rule:
    text: str
    metric: Metric
    op: str            # ">" or "<"
    threshold: float   # percent (points for error_rate)

    def beyond(self, change: float) -> bool:
        return change > self.threshold if self.op == ">" else change < self.threshold


def parse_rule(text: str) -> Rule:
    """A rule, or ValueError with one line saying what is wrong with it."""
    m = _RULE.match(text)
    if not m:
        raise ValueError(f"expected METRIC[:STAT]>+N% or METRIC[:STAT]<-N% (e.g. 'ttft:p99>+5%'), got {text!r}")
    name, stat, op, number, unit = m.groups()
    metric = find(name.lower(), stat.lower() if stat else None)
    if unit is None:
        raise ValueError(f"{text!r}: give the threshold with its unit, e.g. {name}{':' + stat if stat else ''}{op}"
                         f"{number}{'pp' if metric.points else '%'}")
    if unit == "pp" and not metric.points:
        raise ValueError(f"{text!r}: pp (percentage points) is for error_rate; {name} changes in %")
    return Rule(text.strip(), metric, op, float(number))


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    result: Result | None
    breached: bool
    line: str


def evaluate(rules: list[Rule], comparison: Comparison) -> list[Outcome]:
    by_key = {r.metric.key: r for r in comparison.results}
    out = []
    for rule in rules:
        r = by_key.get(rule.metric.key)
        unit = "pp" if rule.metric.points else "%"
        if r is None:
            out.append(Outcome(rule, None, False, f"{rule.text}: not measured on both sides, cannot be checked"))
        elif r.p_adjusted is None:
            out.append(Outcome(rule, r, False, f"{rule.text}: not tested ({r.why}), cannot be checked"))
        else:
            change = r.change if r.change is not None else 0.0
            breached = r.significant and rule.beyond(change)
            state = "FAILED" if breached else "passed"
            what = "significant" if r.significant else "not significant"
            out.append(Outcome(rule, r, breached, f"{rule.text}: {state}: {change:+.1f}{unit}, {what} "
                                                   f"(p adjusted {r.p_adjusted:.3g})"))
    return out
