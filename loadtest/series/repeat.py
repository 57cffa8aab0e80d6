"""``--repeat N`` (single, throughput, each level of a sweep): N identical runs and one summary
that says how sure each number is.

    DIR/rep-1/ ... DIR/rep-N/   complete run directories (summary.json, requests.jsonl, config.json)
    DIR/summary.json            the group: a run summary's shape (so report and compare read it as
                                a run) with per-request statistics pooled over every rep's requests,
                                rates the mean over reps, and a ``repeat`` block: per metric the mean
                                over reps, its 95% interval (Student's t), the CV

The reps are identical (same prompts, order, schedule and seed) unless ``--vary-seed``: rep k then
runs with seed + k - 1 (a new sample of prompts and arrivals each time), recorded per rep. With
``--until-ci PCT`` the group stops as soon as the interval of ``--ci-metric`` is narrower than PCT
percent of its mean (after MIN_RUNS reps at least), and says whether it got there.

Every rep runs through run/execute.py under the command's one ``Signals``: a signal during rep k
stops that rep (its directory is kept, marked interrupted, and left out of the statistics) and the
group, whose summary is written all the same: it holds the reps completed before k (none when k is
1), says ``repeat.interrupted`` and names rep k in ``repeat.stopped``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.measure.repeats import CONFIDENCE, converged, interval, intervals, lookup, pooled
from loadtest.run.execute import Interrupted, NothingMeasured, Signals, remove_unmeasured
from loadtest.run.outcome import EXIT_FAILED, EXIT_INTERRUPTED, RunOutcome
from loadtest.run.output import build_summary, prepare_output_dir, write_summary

MIN_RUNS = 3
"""--until-ci judges no interval of fewer runs: with 2 the t factor is 12.7 and one lucky pair of
equal runs would 'converge'."""
DEFAULT_CI_METRIC = "output_tokens_per_s"


@dataclass(frozen=True)
class RepeatSettings:
    """How many times to run, and when to stop early."""

    n: int
    vary_seed: bool = False
    until_ci_pct: float | None = None
    ci_metric: str = DEFAULT_CI_METRIC
    min_runs: int = MIN_RUNS

    @classmethod
    def of(cls, block: dict[str, Any]) -> RepeatSettings:
        """The settings a group's summary.json recorded (``loadtest rerun`` of a group)."""
        return cls(n=int(block.get("n") or block.get("runs") or 1), vary_seed=bool(block.get("vary_seed")),
                   until_ci_pct=block.get("until_ci_pct"), ci_metric=block.get("ci_metric") or DEFAULT_CI_METRIC)


@dataclass
class GroupOutcome:
    summary: dict[str, Any]
    directory: Path
    exit_code: int
    message: str | None
    runs: list[RunOutcome] = field(default_factory=list)


def rep_name(k: int) -> str:
    return f"rep-{k}"


def rep_config(base: RunConfig, settings: RepeatSettings, k: int) -> RunConfig:
    """Rep ``k`` (1-based): the group's config in DIR/rep-k, with seed + k - 1 under --vary-seed."""
    assert base.output_dir is not None
    return replace(base, output_dir=base.output_dir / rep_name(k),
                   seed=base.seed + (k - 1 if settings.vary_seed else 0))


def _say(text: str) -> None:
    print(f"repeat: {text}", file=sys.stderr, flush=True)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.1f} ms"


def rep_line(k: int, n: int, outcome: RunOutcome) -> str:
    """One console line per rep: what it measured, where it is."""
    m, c = outcome.summary.get("metrics") or {}, outcome.summary.get("counts") or {}
    parts = []
    for name, label in (("output_tokens_per_s", "out tok/s"), ("requests_per_min", "req/min")):
        if m.get(name) is not None:
            parts.append(f"{m[name]:,.1f} {label}")
    if lookup(m, "ttft_s.p50") is not None:
        parts.append(f"TTFT p50 {_ms(lookup(m, 'ttft_s.p50'))}")
    parts.append(f"{c.get('failed', 0)} failed")
    return f"{k}/{n}: {', '.join(parts)} ({outcome.directory})"


def check_group_dir(root: Path, *, overwrite: bool) -> None:
    """A directory that holds reps of an earlier group is never mixed into a new one silently."""
    held = sorted(p.name for p in root.glob("rep-*")
                  if (p / "requests.jsonl").exists() or (p / "summary.json").exists())
    if held and not overwrite:
        raise ConfigError(f"--output {root} already holds repeats ({', '.join(held[:3])}"
                          f"{', ...' if len(held) > 3 else ''}); pass --overwrite to replace them")


def run_group(base: RunConfig, settings: RepeatSettings, run_one: Callable[[RunConfig], RunOutcome],
              signals: Signals, *, overwrite: bool = False) -> GroupOutcome:
    """Run the reps one after another (``run_one`` runs and judges one, under ``signals``), stop on
    a signal, a failed rep or convergence, and write the group's summary.json.

    A signal (first or second) during rep k: rep k is kept in its directory, marked interrupted,
    and never pooled; no later rep starts; the group's summary is written all the same, with the
    reps completed before k (none, when k is 1: then it measures nothing), ``repeat.interrupted``
    true and ``repeat.stopped`` naming rep k, so that report and compare read a group, never a lone
    partial rep. Only when nothing at all is on disk (rep k stopped before it measured anything and
    left no directory) is there no group either."""
    root = base.output_dir
    assert root is not None
    check_group_dir(root, overwrite=overwrite)
    done: list[RunOutcome] = []
    last: RunOutcome | None = None
    ended, message, converged_after = "done", None, None
    stopped: str | None = None  # the rep a signal stopped (kept on disk, outside the statistics)
    try:
        for k in range(1, settings.n + 1):
            if signals.received is not None:
                ended = "interrupted"
                break
            cfg = rep_config(base, settings, k)
            assert cfg.output_dir is not None
            prepare_output_dir(cfg.output_dir, overwrite=True)  # the group's directory was checked first
            try:
                last = run_one(cfg)
            except NothingMeasured:  # stopped before its first request: its directory is gone
                if not done:  # nor was anything measured before it: no group either
                    remove_unmeasured(root)
                    raise
                ended = "interrupted"
                _say(f"{k}/{settings.n}: interrupted before it sent a request")
                break
            except Interrupted:
                stopped = rep_name(k)
                raise
            if last.summary.get("run", {}).get("ended") == "interrupted" or signals.received is not None:
                ended, stopped = "interrupted", rep_name(k)
                _say(f"{k}/{settings.n}: interrupted; its partial results stay in {last.directory}, outside the "
                     "statistics")
                break
            if last.exit_code != 0:
                ended, message = "failed", f"repeat {k} failed: {last.message or 'exit ' + str(last.exit_code)}"
                _say(message)
                break
            done.append(last)
            _say(rep_line(k, settings.n, last))
            if k == 1 and settings.until_ci_pct is not None and \
                    lookup(last.summary.get("metrics") or {}, settings.ci_metric) is None:
                _say(f"warning: the run measured no {settings.ci_metric}: --until-ci cannot converge on it "
                     "(--ci-metric takes a name of summary.json's metrics, e.g. requests_per_min, ttft_s.p99)")
            if settings.until_ci_pct is not None and k >= settings.min_runs:
                block = interval([lookup(o.summary.get("metrics") or {}, settings.ci_metric) for o in done])
                if converged(block, settings.until_ci_pct):
                    converged_after = k
                    _say(f"converged after {k} runs: {settings.ci_metric} +/- {block['half_width_pct']:.2f}% "
                         f"< {settings.until_ci_pct:g}%")
                    break
    except Interrupted:  # the second signal: the group still gets its summary of the reps done so far
        if done or _on_disk(root, stopped):
            write_summary(root, group_summary(base, settings, done, "interrupted", None, converged_after,
                                              stopped=stopped, context=last))
        raise
    if ended == "interrupted":
        code = signals.exit_code or EXIT_INTERRUPTED
        if not done and not _on_disk(root, stopped):  # stopped before anything was measured: no group
            return GroupOutcome({"run": {"ended": "interrupted"}, "counts": {"requests": 0, "failed": 0}},
                                root, code, None, [])
        summary = group_summary(base, settings, done, ended, None, converged_after, stopped=stopped, context=last)
        write_summary(root, summary)
        return GroupOutcome(summary, root, code, None, done)
    if not done:  # a failed first rep: nothing to pool, the rep's own outcome says what happened
        assert last is not None
        return GroupOutcome(last.summary, root, EXIT_FAILED, message, [])
    summary = group_summary(base, settings, done, ended, message, converged_after)
    write_summary(root, summary)
    return GroupOutcome(summary, root, 0 if ended == "done" else EXIT_FAILED, message, done)


def _on_disk(root: Path, rep: str | None) -> bool:
    """The stopped rep left a run directory behind (a rep stopped before it measured anything
    leaves none: run/runner.py removes it)."""
    return rep is not None and (root / rep / "requests.jsonl").is_file()


def group_summary(base: RunConfig, settings: RepeatSettings, done: list[RunOutcome], ended: str,
                  message: str | None, converged_after: int | None, *, stopped: str | None = None,
                  context: RunOutcome | None = None) -> dict[str, Any]:
    """The group's summary.json: a run summary's blocks over the completed reps (``done``), and the
    ``repeat`` block. ``stopped``: the rep a signal stopped, named but never pooled. With no rep
    completed (a signal during rep 1), ``context`` (the stopped rep) gives the model, the client
    and the server, and the statistics are empty (None: not measured)."""
    runs = [o.summary for o in done]
    first = runs[0] if runs else (context.summary if context is not None else {})
    config = {**(first.get("config") or base.to_json()), "output_dir": str(base.output_dir), "seed": base.seed}
    run = {"started_at": (first.get("run") or {}).get("started_at"), "ended": ended,
           "model": (first.get("run") or {}).get("model"), "error": message,
           "repeats": [o.directory.name for o in done]}
    summary = build_summary(command=first.get("command") or base.command, config=config,
                            client=first.get("client") or {}, result=pooled([o.directory for o in done], runs),
                            run=run, server=first.get("server"))
    metrics = intervals(runs)
    ci_block = metrics.get(settings.ci_metric)
    summary["repeat"] = {
        "n": settings.n, "runs": len(done), "dirs": [o.directory.name for o in done],
        "seeds": [(o.summary.get("config") or {}).get("seed") for o in done], "vary_seed": settings.vary_seed,
        "confidence": CONFIDENCE, "until_ci_pct": settings.until_ci_pct,
        "ci_metric": settings.ci_metric if settings.until_ci_pct is not None else None,
        "min_runs": settings.min_runs if settings.until_ci_pct is not None else None,
        "converged": None if settings.until_ci_pct is None else converged_after is not None,
        "converged_after": converged_after,
        "ci_half_width_pct": (ci_block or {}).get("half_width_pct"),
        "interrupted": ended == "interrupted", "stopped": stopped, "failed": message,
        "metrics": metrics,
    }
    verdict = merged_verdict(done)
    if verdict is not None:
        summary["verdict"] = verdict
    slo = merged_slo(done)
    if slo is not None:
        summary["slo"] = slo
    return summary


def merged_verdict(done: list[RunOutcome]) -> dict[str, Any] | None:
    """The group's verdict: a label any rep got (client-bound, disturbed, server-saturated) is the
    group's, with that rep named in the reason; valid only when every rep was (null when none was
    flagged but one could not be judged)."""
    found = [(o.directory.name, o.summary["verdict"]) for o in done if o.summary.get("verdict")]
    if not found:
        return None
    labels: list[str] = []
    for _, v in found:
        labels += [x for x in v.get("labels") or [] if x not in labels]
    disturbed = [v.get("disturbed") for _, v in found]
    notes: list[str] = []
    for name, v in found:
        notes += [f"{name}: {n}" for n in v.get("notes") or []]
    valid = [v.get("valid", True) for _, v in found]  # null: a rep too short to judge
    return {"valid": False if False in valid else None if None in valid else True, "labels": labels,
            "client_bound": any(v.get("client_bound") for _, v in found),
            "disturbed": True if any(disturbed) else None if all(d is None for d in disturbed) else False,
            "server_saturated": any(v.get("server_saturated") for _, v in found),
            "schedule_missed": any(v.get("schedule_missed") for _, v in found),
            "reasons": [f"{name}: {r}" for name, v in found for r in v.get("reasons") or []], "notes": notes,
            "by_repeat": {name: v.get("labels") or [] for name, v in found}}


def _mean(values: list[Any]) -> float | None:
    present = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(present) / len(present) if present else None


def merged_slo(done: list[RunOutcome]) -> dict[str, Any] | None:
    """The group's SLO block: met when every rep met its objectives; each run-level check's value
    is the mean over reps and is met when every rep met it; goodput the mean over reps."""
    blocks = [(o.directory.name, o.summary["slo"]) for o in done if o.summary.get("slo")]
    if not blocks:
        return None
    first = blocks[0][1]
    checks = []
    for i, check in enumerate(first.get("run_level") or []):
        same = [b["run_level"][i] for _, b in blocks if len(b.get("run_level") or []) > i]
        checks.append({**check, "value_s": _mean([c.get("value_s") for c in same]),
                       "met": all(c.get("met") for c in same)})
    good = [b.get("good_requests") for _, b in blocks]
    return {**first, "run_level": checks,
            "good_requests": sum(good) if all(isinstance(g, int) for g in good) else None,
            "good_fraction": _mean([b.get("good_fraction") for _, b in blocks]),
            "goodput_requests_per_s": _mean([b.get("goodput_requests_per_s") for _, b in blocks]),
            "goodput_requests_per_min": _mean([b.get("goodput_requests_per_min") for _, b in blocks]),
            "met": all(b.get("met") for _, b in blocks), "by_repeat": {name: b.get("met") for name, b in blocks}}


_TABLE = (("output_tokens_per_s", "output tokens/s", 1.0, 1), ("requests_per_min", "requests/min", 1.0, 1),
          ("tokens_per_s.mean", "tokens/s per request, mean", 1.0, 1), ("ttft_s.p50", "TTFT p50 (ms)", 1e3, 1),
          ("ttft_s.p99", "TTFT p99 (ms)", 1e3, 1), ("tpot_s.p50", "TPOT p50 (ms)", 1e3, 2),
          ("tpot_s.p99", "TPOT p99 (ms)", 1e3, 2), ("itl_s.p50", "ITL p50 (ms)", 1e3, 2),
          ("e2e_s.p50", "e2e p50 (s)", 1.0, 3), ("e2e_s.p99", "e2e p99 (s)", 1.0, 3))


def render_group(summary: dict[str, Any]) -> str:
    """The group on the console: one line of what ran, then per metric the mean over reps with
    its 95% interval's half width, the CV and the number of reps."""
    from loadtest.judge.verdict import line
    from loadtest.run.console import render_rows

    rep, counts = summary["repeat"], summary.get("counts") or {}
    rows = []
    for name, label, scale, digits in _TABLE:
        b = rep["metrics"].get(name)
        if not b or b.get("mean") is None:
            continue
        half = "-" if b["half_width"] is None else f"{b['half_width'] * scale:,.{digits}f}"
        pct = "" if b["half_width_pct"] is None else f" ({b['half_width_pct']:.1f}%)"
        cv = "-" if b["cv"] is None else f"{b['cv'] * 100:.1f}%"
        rows.append([label, f"{b['mean'] * scale:,.{digits}f}", half + pct, cv, str(b["n"])])
    head = (f"{summary.get('command')} x{rep['runs']}" + (f" of {rep['n']}" if rep["runs"] != rep["n"] else "")
            + f": {counts.get('completed', 0)}/{counts.get('requests', 0)} requests completed over all runs"
            + (", seeds " + ", ".join(map(str, rep["seeds"])) if rep["vary_seed"] else ", identical runs"))
    lines = [head] + ([render_rows(rows, ["metric (mean over runs)", "mean", "+/- 95% CI", "CV", "runs"])]
                      if rows else [])
    if rep["until_ci_pct"] is not None:
        got = rep["ci_half_width_pct"]
        got_text = "-" if got is None else f"+/- {got:.2f}%"
        lines.append(f"until-ci {rep['until_ci_pct']:g}% on {rep['ci_metric']}: " + (
            f"converged after {rep['converged_after']} runs ({got_text})" if rep["converged"]
            else f"NOT converged after {rep['runs']} runs ({got_text})"))
    if rep["interrupted"]:
        stopped = f" ({rep['stopped']}'s partial results are kept outside them)" if rep.get("stopped") else ""
        lines.append(f"interrupted: the statistics hold the {rep['runs']} runs completed before it{stopped}"
                     if rep["runs"] else f"interrupted: no run completed, the group measured nothing{stopped}")
    if summary.get("verdict"):
        lines.append(line(summary["verdict"]))
    return "\n".join(lines)
