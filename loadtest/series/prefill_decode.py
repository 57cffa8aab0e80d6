"""``loadtest tokens``: prompt-processing and text-generation speed at fixed lengths, as llama-bench's
pp/tg tables, over the OpenAI API for any engine. A thin driver: each scenario is an ordinary
``single`` run (its own directory, one request at a time, ``--repeat`` requests) over synthetic
prompts of exact length.

Prompt processing (ppN): prompt tokens / TTFT of a 1-token generation. Text generation (tgN): the
decode rate of N forced tokens after a 16-token prompt. Each scenario's per-request timeout is its
size at the expected minimum speed below (times ``--timeout-scale``), plus the model's load time at
250 MB/s when this command launched the server. If the smallest size fails, the sweep stops; when a
measured speed cannot finish the next size within its timeout, the larger sizes are skipped, and
the table says why. Lengths beyond the server's context are skipped with a note.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from loadtest.client.auth import build_auth
from loadtest.client.tokenize import context_limit
from loadtest.config import RunConfig
from loadtest.errors import ConfigError, RunAborted
from loadtest.redact import redact_tree
from loadtest.run.console import render_rows
from loadtest.run.execute import NothingMeasured, Signals, command_signals, execute
from loadtest.run.output import prepare_output_dir, writable_dir
from loadtest.run.postrun import annotate_prompts

# Expected minimum speeds (tokens/s) by size, from the Spare Cores LLM benchmark.
EXPECTED_PP = {16: 2, 128: 10, 512: 25, 1024: 50, 4096: 250, 16384: 1000}
EXPECTED_TG = {16: 1, 128: 5, 512: 25, 1024: 50, 4096: 250}
TG_PROMPT_TOKENS = 16
LOAD_BYTES_PER_S = 250e6
SCHEMA_VERSION = 1


def expected_speed(size: int, table: dict[int, int]) -> float:
    """The table's speed for the largest size <= ``size`` (the smallest entry below the table)."""
    keys = [k for k in sorted(table) if k <= size]
    return float(table[keys[-1]] if keys else table[min(table)])


def scenario_timeout(size: int, table: dict[int, int], scale: float, load_s: float) -> float:
    return size / expected_speed(size, table) * scale + load_s


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def rates(kind: str, rows: list[dict[str, Any]], prompt_tokens: int) -> tuple[list[float], list[float]]:
    """Per measured request: our tokens/s and the engine's own (llama.cpp's timings) where present."""
    ours, engine = [], []
    for r in rows:
        if not r.get("ok") or r.get("warmup"):
            continue
        timings = r.get("engine_timings") or {}
        if kind == "pp":
            t = r.get("ttft_s") or r.get("e2e_s")
            if t:
                ours.append((r.get("prompt_tokens") or prompt_tokens) / t)
            own = timings.get("prompt_per_second")
        else:
            if r.get("decode_tokens_per_s"):
                ours.append(r["decode_tokens_per_s"])
            own = timings.get("predicted_per_second")
        if isinstance(own, (int, float)):
            engine.append(float(own))
    return ours, engine


@dataclass(frozen=True)
class TokensConfig:
    """The prefill/decode sweep: the run's config (its output_dir is the sweep's root), the sizes,
    and how each scenario runs."""

    base: RunConfig
    prompt_tokens: tuple[int, ...]
    gen_tokens: tuple[int, ...]
    repeat: int = 5
    timeout_scale: float = 1.0
    warmup: int = 1
    launch: Any = None           # LaunchSpec | None
    overwrite: bool = False
    quiet: bool = False          # the progress lines (each scenario's run is quiet anyway)


class Sweep:
    def __init__(self, tc: TokensConfig, cfg: RunConfig, directory: Path, server: Any, signals: Signals) -> None:
        self.tc, self.cfg, self.directory, self.server, self.signals = tc, cfg, directory, server, signals
        size = ((server.info.get("model") or {}).get("file_size_bytes") or 0) if server else 0
        self.load_s = size / LOAD_BYTES_PER_S
        self.n_ctx = context_limit(cfg.base_url, build_auth(cfg).headers)
        self.results: list[dict[str, Any]] = []
        self.warmup_left = max(0, tc.warmup)

    def _server_info(self) -> dict[str, Any] | None:
        return {**self.server.info, "resources": self.server.resources()} if self.server else None

    def _scenario(self, kind: str, size: int) -> dict[str, Any]:
        prompt, gen = (size, 1) if kind == "pp" else (TG_PROMPT_TOKENS, size)
        table = EXPECTED_PP if kind == "pp" else EXPECTED_TG
        return {"test": f"{kind}{size}", "kind": kind, "prompt_tokens": prompt, "gen_tokens": gen, "size": size,
                "expected_tokens_per_s": expected_speed(size, table),
                "timeout_s": scenario_timeout(size, table, self.tc.timeout_scale, self.load_s),
                "status": None, "reason": None, "tokens_per_s_mean": None, "tokens_per_s_sd": None,
                "engine_tokens_per_s_mean": None, "engine_tokens_per_s_sd": None, "requests": 0, "directory": None}

    def _measure(self, sc: dict[str, Any]) -> None:
        """One scenario as an ordinary single run in its own directory; stops at its first failure."""
        from loadtest.client.synthetic import plan_for
        from loadtest.run.runner import Run  # the run stages, imported when a sweep runs (not for --help)

        out = self.directory / sc["test"]
        warmup, self.warmup_left = self.warmup_left, 0
        extra = dict(self.cfg.extra_body)
        if self.cfg.ignore_eos and self.server is not None and "min_tokens" in self.server.accepted_fields:
            extra["min_tokens"] = sc["gen_tokens"]  # vLLM: the length forced a second way
        cfg = replace(self.cfg, num_prompts=self.tc.repeat, warmup=warmup, max_tokens=sc["gen_tokens"], extra_body=extra,
                      prompt_tokens=sc["prompt_tokens"], timeout_s=sc["timeout_s"], output_dir=out,
                      seed=self.cfg.seed + len(self.results) - 1)  # scenario i: --seed + i
        prepare_output_dir(out, overwrite=True)
        try:
            plan = plan_for(cfg, self.server)
        except RunAborted as exc:
            sc.update(status="failed", reason=str(exc))
            return
        # a scenario that fails once has failed: do not wait out the rest
        run = Run(cfg, plan.prompts, directory=out, server_info=self._server_info, stop_on_failure=True)
        try:
            outcome = execute(run, self.signals)
        except RunAborted as exc:
            sc.update(status="failed", reason=str(exc))
            return
        except NothingMeasured:  # stopped before its first request: no directory, nothing to say of it
            sc.update(status="interrupted", reason=f"{self.signals.received.name if self.signals.received else 'a signal'}"
                      ": stopped before it sent a request")
            return
        if self.signals.received is not None:
            sc.update(status="interrupted", reason=f"{self.signals.received.name}: what completed is in {out}",
                      directory=str(out))
            return
        prompts = annotate_prompts(out, outcome.summary, plan, cfg.max_tokens, quiet=True)
        rows = [orjson.loads(line) for line in (out / "requests.jsonl").read_bytes().splitlines() if line.strip()]
        ours, engine = rates(sc["kind"], rows, sc["prompt_tokens"])
        counts = outcome.summary["counts"]
        sc["directory"] = str(out)
        sc["requests"] = counts["completed"]
        sc["usage_prompt_mismatched"] = prompts.get("usage_mismatched")
        sc["completions_short"] = prompts.get("completions_short")
        sc["tokens_per_s_mean"], sc["tokens_per_s_sd"] = _mean_sd(ours)
        sc["engine_tokens_per_s_mean"], sc["engine_tokens_per_s_sd"] = _mean_sd(engine)
        if counts["completed"] < self.tc.repeat or not ours:
            kinds = ", ".join(f"{k} x{v['count']}" for k, v in outcome.summary["errors"].items()) or "nothing measured"
            hint = ("; the server may refuse ignore_eos: try --no-ignore-eos"
                    if "bad_request" in outcome.summary["errors"] and cfg.ignore_eos else "")
            sc.update(status="failed", reason=f"{counts['completed']}/{self.tc.repeat} completed ({kinds}; "
                                              f"timeout {sc['timeout_s']:.1f} s{hint})")
        else:
            sc["status"] = "ok"

    def run_kind(self, kind: str, sizes: list[int]) -> bool:
        """Measure one kind smallest first; False when its smallest size failed (the sweep stops)."""
        skip_reason: str | None = None
        attempted = False
        for size in sizes:
            sc = self._scenario(kind, size)
            self.results.append(sc)
            need = sc["prompt_tokens"] + sc["gen_tokens"]
            if skip_reason:
                sc.update(status="skipped", reason=skip_reason)
                continue
            if self.n_ctx is not None and need > self.n_ctx:
                sc.update(status="skipped", reason=f"beyond the server's context ({need} > n_ctx {self.n_ctx} tokens)")
                continue
            if not self.tc.quiet:
                print(f"loadtest tokens: {sc['test']} (timeout {sc['timeout_s']:.1f} s per request)",
                      file=sys.stderr, flush=True)
            first, attempted = not attempted, True
            self._measure(sc)
            if sc["status"] == "interrupted":
                return True  # the command stops here (execute sees the signal)
            if not self.tc.quiet:
                said = f"{sc['tokens_per_s_mean']:,.1f} tokens/s" if sc["status"] == "ok" else f"failed: {sc['reason']}"
                print(f"loadtest tokens: {sc['test']}: {said}", file=sys.stderr, flush=True)
            if sc["status"] != "ok":
                if first:
                    return False
                skip_reason = f"{sc['test']} failed"
                continue
            skip_reason = self._too_slow(kind, sc, sizes)
        return True

    def _too_slow(self, kind: str, sc: dict[str, Any], sizes: list[int]) -> str | None:
        larger = [s for s in sizes if s > sc["size"]]
        if not larger:
            return None
        nxt = self._scenario(kind, larger[0])
        rate = sc["tokens_per_s_mean"]
        predicted = larger[0] / rate
        if predicted <= nxt["timeout_s"]:
            return None
        return (f"too slow: {rate:.3g} tokens/s at {sc['test']} would take ~{predicted:.0f} s for "
                f"{nxt['test']}, beyond its {nxt['timeout_s']:.0f} s timeout")

    def execute(self) -> int:
        ok = self.run_kind("pp", list(self.tc.prompt_tokens))
        if ok and self.signals.received is None:
            ok = self.run_kind("tg", list(self.tc.gen_tokens))
        if not ok or self.signals.received is not None:  # what was not reached is listed, and why
            failed = next((r for r in self.results if r["status"] == "failed"), None)
            why = (f"stopped: {self.signals.received.name}" if self.signals.received is not None or failed is None
                   else f"stopped: the smallest size {failed['test']} failed")
            for kind, sizes in (("pp", self.tc.prompt_tokens), ("tg", self.tc.gen_tokens)):
                for size in sizes:
                    if not any(r["test"] == f"{kind}{size}" for r in self.results):
                        self.results.append({**self._scenario(kind, size), "status": "skipped", "reason": why})
        if self.signals.exit_code is not None:
            return self.signals.exit_code
        return 0 if ok else 2


def table(results: list[dict[str, Any]]) -> str:
    def rate(mean: float | None, sd: float | None) -> str:
        return "-" if mean is None else f"{mean:,.1f} ± {sd or 0:,.1f}"

    rows = [[r["test"], rate(r["tokens_per_s_mean"], r["tokens_per_s_sd"]),
             rate(r["engine_tokens_per_s_mean"], r["engine_tokens_per_s_sd"]), f"{r['timeout_s']:.1f}",
             r["status"] + (f": {r['reason']}" if r["reason"] else "")] for r in results]
    return render_rows(rows, ["test", "tokens/s", "engine tokens/s", "timeout s", "status"])


def run_tokens(tc: TokensConfig) -> int:
    """The command: optional launch, the scenarios, tokens.json and the table."""
    from loadtest.run.launched import launched

    directory = tc.base.output_dir
    assert directory is not None
    if tc.repeat < 1 or not tc.timeout_scale > 0 or tc.warmup < 0:
        raise ConfigError("--repeat must be >= 1, --timeout-scale > 0 and --warmup >= 0")
    if (directory / "tokens.json").exists() and not tc.overwrite:
        raise ConfigError(f"--output {directory} already holds a sweep (tokens.json); pass --overwrite to replace it")
    if tc.overwrite and directory.exists():
        for child in directory.iterdir():  # only what a sweep writes: its scenario directories and tokens.json
            if child.name == "tokens.json" or (child.is_dir() and (child / "summary.json").exists()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    writable_dir(directory)  # checked before anything runs, not when the last file is written
    launch = tc.launch
    if launch is not None and launch.ctx_size is None:  # room for the longest scenario (and a template's tokens)
        launch = replace(launch, ctx_size=context_needed(tc))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    signals = command_signals()
    with launched(launch, tc.base) as (cfg, server):
        sweep = Sweep(tc, cfg, directory, server, signals)
        code = sweep.execute()
        doc = {"schema_version": SCHEMA_VERSION, "command": "tokens", "started_at": started,
               "config": {**cfg.to_json(), "prompt_tokens": list(tc.prompt_tokens), "gen_tokens": list(tc.gen_tokens),
                          "repeat": tc.repeat, "timeout_scale": tc.timeout_scale, "warmup": tc.warmup,
                          "tg_prompt_tokens": TG_PROMPT_TOKENS},
               "expected_tokens_per_s": {"pp": EXPECTED_PP, "tg": EXPECTED_TG},
               "model_load_s": sweep.load_s, "context_tokens": sweep.n_ctx, "interrupted": signals.received is not None,
               "server": redact_tree(sweep._server_info()), "scenarios": sweep.results}
    tmp = directory / "tokens.json.tmp"
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    tmp.replace(directory / "tokens.json")
    print(table(sweep.results))
    print(f"\nresults: {directory}/tokens.json (one run directory per scenario)")
    if code == 2:
        failed = next(r for r in sweep.results if r["status"] == "failed")
        print(f"loadtest: error: the smallest size {failed['test']} failed: {failed['reason']}", file=sys.stderr)
    return code


def context_needed(tc: TokensConfig) -> int:
    """The context a launched engine needs for the longest scenario, plus room for a template."""
    return max(max(tc.prompt_tokens) + 1, TG_PROMPT_TOKENS + max(tc.gen_tokens)) + 64
