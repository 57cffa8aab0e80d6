"""A comparison as a console table, Markdown (a pull-request comment), JSON or JUnit XML (one
test case per metric, a failure per breached --fail-if rule, skipped when not tested)."""

from __future__ import annotations

import json
import math
from typing import Any
from xml.etree import ElementTree as ET

from tabulate import tabulate

from loadtest.compare.analyze import BETTER, SAME, UNTESTED, WORSE, Comparison, Result
from loadtest.compare.gate import Outcome
from loadtest.compare.sides import Side

FORMATS = ("table", "markdown", "json", "junit")
VERDICT_KEYS = {BETTER: "better", WORSE: "worse", SAME: "no_difference", UNTESTED: "untested"}


def _value(r: Result, v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    x = v * r.metric.scale
    digits = 2 if r.metric.unit in ("ms", "%") and abs(x) < 100 else 1
    return f"{x:,.{digits}f}"


def _unit(r: Result) -> str:
    return "pp" if r.metric.points else "%"


def _change(r: Result) -> str:
    return "-" if r.change is None else f"{r.change:+.{2 if r.metric.points else 1}f}{_unit(r)}"


def _ci(r: Result) -> str:
    if r.ci is None or not all(math.isfinite(x) for x in r.ci):
        return "-"
    d = 2 if r.metric.points else 1
    return f"[{r.ci[0]:+.{d}f}, {r.ci[1]:+.{d}f}]{_unit(r)}"


def _p(p: float | None) -> str:
    return "-" if p is None else "<0.001" if p < 0.001 else f"{p:.3g}"


def _rows(c: Comparison, bold: bool = False) -> list[list[str]]:
    rows = []
    for r in c.results:
        verdict = f"**{r.verdict}**" if bold and r.significant else r.verdict
        rows.append([f"{r.metric.label} ({r.metric.unit})", _value(r, r.baseline), _value(r, r.candidate),
                     _change(r), _ci(r), r.test or "-", _p(r.p_adjusted), verdict])
    return rows


HEADERS = ["metric", "baseline", "candidate", "change", "95% interval", "test", "p (adj.)", "verdict"]
ALIGN = ["left", "right", "right", "right", "right", "left", "right", "left"]


def _tally(c: Comparison) -> str:
    counts = c.counts()
    return ", ".join(f"{v}: {counts[v]}" for v in (BETTER, WORSE, SAME, UNTESTED))


def _warnings(c: Comparison) -> list[str]:
    out = [f"CONTAMINATED {role}: {why}" for role, whys in c.contaminated.items() for why in whys]
    if c.differ:
        out.append("settings differ (compared anyway, --allow-different): "
                   + "; ".join(f"{n} {b} vs {v}" for n, b, v in c.differ))
    return out


def definitions(c: Comparison) -> list[str]:
    """Each metric another tool's side defines differently from loadtest, one line each."""
    return [f"{s.tool} ({s.role}): {line}" for s in (c.baseline, c.candidate) for line in s.definitions]


def _gate_lines(gate: list[Outcome]) -> list[str]:
    if not gate:
        return []
    state = "FAILED" if any(o.breached for o in gate) else "passed"
    return [f"gate {state}"] + [f"  {o.line}" for o in gate]


def render_table(c: Comparison, gate: list[Outcome]) -> str:
    head = f"compare: baseline {c.baseline.describe()}\n      vs candidate {c.candidate.describe()}"
    grid = tabulate(_rows(c), headers=HEADERS, tablefmt="simple", disable_numparse=True, colalign=ALIGN)
    parts = [head, grid, _tally(c)]
    if warnings := _warnings(c):
        parts.append("\n".join(warnings))
    if defined := definitions(c):
        parts.append("defined differently\n" + "\n".join(f"- {d}" for d in defined))
    parts.append("notes\n" + "\n".join(f"- {n}" for n in c.notes))
    if gate:
        parts.append("\n".join(_gate_lines(gate)))
    return "\n\n".join(parts) + "\n"


def render_markdown(c: Comparison, gate: list[Outcome]) -> str:
    lines = ["### loadtest compare", "",
             f"**baseline** `{c.baseline.describe()}`  ", f"**candidate** `{c.candidate.describe()}`", ""]
    if gate:
        failed = [o for o in gate if o.breached]
        lines += [f"**Gate: {'FAILED' if failed else 'passed'}**", ""] + [f"- `{o.line}`" for o in gate] + [""]
    if warnings := _warnings(c):
        lines += ["**Warnings**", ""] + [f"- {w}" for w in warnings] + [""]
    lines.append(tabulate(_rows(c, bold=True), headers=HEADERS, tablefmt="github", disable_numparse=True,
                          colalign=ALIGN))
    lines += ["", _tally(c), ""]
    if defined := definitions(c):
        lines += ["**Defined differently**", ""] + [f"- {d}" for d in defined] + [""]
    lines += ["<details><summary>method</summary>", ""]
    lines += [f"- {n}" for n in c.notes] + ["", "</details>"]
    return "\n".join(lines) + "\n"


def _side_json(s: Side, c: Comparison) -> dict[str, Any]:
    return {"path": str(s.path), "tool": s.tool, "group": s.group, "runs": [r.label for r in s.runs],
            "requests": sum(len(r.records) for r in s.runs), "left_out": s.left_out,
            "contaminated": c.contaminated.get(s.role, [])}


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def to_json(c: Comparison, gate: list[Outcome]) -> dict[str, Any]:
    results = [{"key": r.metric.key, "metric": r.metric.name, "stat": r.metric.stat, "label": r.metric.label,
                "kind": r.metric.kind, "better": r.metric.better, "baseline": _finite(r.baseline),
                "candidate": _finite(r.candidate), "n_baseline": r.n[0], "n_candidate": r.n[1],
                "change": _finite(r.change), "change_unit": "points" if r.metric.points else "percent",
                "ci": [_finite(x) for x in r.ci] if r.ci else None, "test": r.test, "p": r.p,
                "p_adjusted": r.p_adjusted, "verdict": VERDICT_KEYS[r.verdict], "why_untested": r.why or None}
               for r in c.results]
    return {"baseline": _side_json(c.baseline, c), "candidate": _side_json(c.candidate, c), "alpha": c.alpha,
            "confidence": 0.95, "resamples": c.resamples, "bootstrap_seed": c.seed,
            "settings_differ": [{"setting": n, "baseline": b, "candidate": v} for n, b, v in c.differ],
            "counts": {VERDICT_KEYS[k]: v for k, v in c.counts().items()}, "results": results,
            "defined_differently": definitions(c), "notes": c.notes,
            "gate": [{"rule": o.rule.text, "metric": o.rule.metric.key, "breached": o.breached, "line": o.line}
                     for o in gate],
            "gate_failed": any(o.breached for o in gate)}


def render_junit(c: Comparison, gate: list[Outcome]) -> str:
    by_metric: dict[str, list[Outcome]] = {}
    for o in gate:
        by_metric.setdefault(o.rule.metric.key, []).append(o)
    failures = sum(1 for r in c.results if any(o.breached for o in by_metric.get(r.metric.key, [])))
    skipped = sum(1 for r in c.results if r.verdict == UNTESTED)
    root = ET.Element("testsuites", name="loadtest compare", tests=str(len(c.results)), failures=str(failures))
    suite = ET.SubElement(root, "testsuite", name="loadtest compare", tests=str(len(c.results)),
                          failures=str(failures), errors="0", skipped=str(skipped))
    props = ET.SubElement(suite, "properties")
    for k, v in (("baseline", str(c.baseline.path)), ("candidate", str(c.candidate.path)), ("alpha", f"{c.alpha:g}")):
        ET.SubElement(props, "property", name=k, value=v)
    for d in definitions(c):
        ET.SubElement(props, "property", name="defined_differently", value=d)
    for r in c.results:
        case = ET.SubElement(suite, "testcase", classname="loadtest.compare", name=r.metric.key, time="0")
        summary = (f"{r.metric.label}: {_value(r, r.baseline)} -> {_value(r, r.candidate)} {r.metric.unit}, "
                   f"change {_change(r)} {_ci(r)}, {r.test or 'no test'}, p adjusted {_p(r.p_adjusted)}: {r.verdict}")
        for o in by_metric.get(r.metric.key, []):
            if o.breached:
                ET.SubElement(case, "failure", message=o.line, type="fail-if").text = summary
        if r.verdict == UNTESTED and not any(o.breached for o in by_metric.get(r.metric.key, [])):
            ET.SubElement(case, "skipped", message=r.why or "not tested")
        ET.SubElement(case, "system-out").text = summary
    ET.SubElement(suite, "system-out").text = "\n".join(_warnings(c) + c.notes + [o.line for o in gate])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(c: Comparison, gate: list[Outcome], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(c, gate), indent=2) + "\n"
    if fmt == "junit":
        return render_junit(c, gate)
    if fmt == "markdown":
        return render_markdown(c, gate)
    return render_table(c, gate)
