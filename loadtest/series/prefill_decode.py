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

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from loadtest.config import RunConfig
from loadtest.errors import ConfigError, RunAborted
from loadtest.run.output import default_output_dir, prepare_output_dir, render_rows
from loadtest.client.auth import build_auth
from loadtest.redact import redact_tree
from loadtest.prompts.synthetic import root_url
from loadtest.transport import normalize_base_url
from loadtest.eventloop import loop_factory

# Expected minimum speeds (tokens/s) by size, from the Spare Cores LLM benchmark.
EXPECTED_PP = {16: 2, 128: 10, 512: 25, 1024: 50, 4096: 250, 16384: 1000}
EXPECTED_TG = {16: 1, 128: 5, 512: 25, 1024: 50, 4096: 250}
TG_PROMPT_TOKENS = 16
LOAD_BYTES_PER_S = 250e6
SCHEMA_VERSION = 1


def _sizes(text: str) -> list[int]:
    """argparse type: '16,128,512' -> [16, 128, 512] (sorted, unique)."""
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts, got {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"token counts must be >= 1, got {text!r}")
    return sizes


def add_arguments(p: Any) -> None:
    p.add_argument("--endpoint", help="OpenAI base URL (or --launch ENGINE)")
    p.add_argument("--model", help="model name to send (default: the first one /v1/models lists)")
    p.add_argument("--api", choices=("chat", "completions"), default="completions",
                   help="completions (default: the raw prompt, no chat template) or chat")
    p.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY)")
    p.add_argument("--prompt-tokens", type=_sizes, default=_sizes("16,128,512,1024,4096,16384"),
                   help="prompt processing sizes (default 16,128,512,1024,4096,16384)")
    p.add_argument("--gen-tokens", type=_sizes, default=_sizes("16,128,512,1024,4096"),
                   help="text generation sizes (default 16,128,512,1024,4096)")
    p.add_argument("--repeat", type=int, default=5, help="requests per scenario: mean +- sd over them (default 5)")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="stretch every scenario's timeout (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="requests before the first scenario, not measured (default 1)")
    p.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="do not send ignore_eos (for servers that refuse it; generation may then stop early)")
    p.add_argument("--seed", type=int, default=0, help="prompt seed (default 0)")
    p.add_argument("--tokenizer", help="count prompt tokens with this tokenizer when the server has no /tokenize")
    p.add_argument("--transport", choices=("fast", "httpx"), default="fast")
    p.add_argument("--output", type=Path, help="results directory (default results/<time>-tokens/)")
    p.add_argument("--overwrite", action="store_true", help="replace the sweep already in --output")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def expected_speed(size: int, table: dict[int, int]) -> float:
    """The table's speed for the largest size <= ``size`` (the smallest entry below the table)."""
    keys = [k for k in sorted(table) if k <= size]
    return float(table[keys[-1]] if keys else table[min(table)])


def scenario_timeout(size: int, table: dict[int, int], scale: float, load_s: float) -> float:
    return size / expected_speed(size, table) * scale + load_s


def context_limit(base_url: str, headers: dict[str, str]) -> int | None:
    """The server's context in tokens: llama.cpp's /props n_ctx (per slot), vLLM's max_model_len."""
    with httpx.Client(headers=headers, timeout=10.0) as client:
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError, TypeError):
            r = client.get(root_url(base_url) + "/props")
            if r.status_code == 200:
                doc = r.json()
                n = (doc.get("default_generation_settings") or {}).get("n_ctx") or doc.get("n_ctx")
                if isinstance(n, int) and n > 0:
                    return n
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError, TypeError, IndexError):
            r = client.get(base_url.rstrip("/") + "/models")
            n = (r.json().get("data") or [{}])[0].get("max_model_len")
            if isinstance(n, int) and n > 0:
                return n
    return None


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


class Sweep:
    def __init__(self, ns: Any, cfg: RunConfig, directory: Path, server: Any) -> None:
        self.ns, self.cfg, self.directory, self.server = ns, cfg, directory, server
        size = ((server.info.get("model") or {}).get("file_size_bytes") or 0) if server else 0
        self.load_s = size / LOAD_BYTES_PER_S
        self.n_ctx = context_limit(cfg.base_url, build_auth(cfg).headers)
        self.results: list[dict[str, Any]] = []
        self.warmup_left = max(0, ns.warmup)

    def _server_info(self) -> dict[str, Any] | None:
        return {**self.server.info, "resources": self.server.resources()} if self.server else None

    def _scenario(self, kind: str, size: int) -> dict[str, Any]:
        prompt, gen = (size, 1) if kind == "pp" else (TG_PROMPT_TOKENS, size)
        table = EXPECTED_PP if kind == "pp" else EXPECTED_TG
        return {"test": f"{kind}{size}", "kind": kind, "prompt_tokens": prompt, "gen_tokens": gen, "size": size,
                "expected_tokens_per_s": expected_speed(size, table),
                "timeout_s": scenario_timeout(size, table, self.ns.timeout_scale, self.load_s),
                "status": None, "reason": None, "tokens_per_s_mean": None, "tokens_per_s_sd": None,
                "engine_tokens_per_s_mean": None, "engine_tokens_per_s_sd": None, "requests": 0, "directory": None}

    def _measure(self, sc: dict[str, Any]) -> None:
        """One scenario as an ordinary single run in its own directory; stops at its first failure."""
        from dataclasses import replace

        from loadtest.run.runner import Run  # the run stages, imported when a sweep runs (not for --help)
        from loadtest.run.synthetic import annotate, plan_for

        out = self.directory / sc["test"]
        warmup, self.warmup_left = self.warmup_left, 0
        extra = dict(self.cfg.extra_body)
        if self.cfg.ignore_eos and self.server is not None and "min_tokens" in self.server.accepted_fields:
            extra["min_tokens"] = sc["gen_tokens"]  # vLLM: the length forced a second way
        cfg = replace(self.cfg, num_prompts=self.ns.repeat, warmup=warmup, max_tokens=sc["gen_tokens"], extra_body=extra,
                      prompt_tokens=sc["prompt_tokens"], timeout_s=sc["timeout_s"], output_dir=out,
                      seed=self.cfg.seed + len(self.results) - 1)  # scenario i: --seed + i
        prepare_output_dir(out, overwrite=True)
        try:
            plan = plan_for(cfg, self.server)
        except RunAborted as exc:
            sc.update(status="failed", reason=str(exc))
            return
        run = Run(cfg, plan.prompts, directory=out, server_info=self._server_info)

        async def main() -> Any:
            async def watch() -> None:  # a scenario that fails once has failed: do not wait out the rest
                while not run.stop.is_set():
                    if run._measured_failed:  # noqa: SLF001 - the runner's own count, read only
                        run.stop.set()
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            try:
                return await run.execute()
            finally:
                watcher.cancel()

        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                outcome = runner.run(main())
        except RunAborted as exc:
            sc.update(status="failed", reason=str(exc))
            return
        prompts = annotate(out, outcome.summary, plan, cfg, quiet=True)
        rows = [orjson.loads(line) for line in (out / "requests.jsonl").read_bytes().splitlines() if line.strip()]
        ours, engine = rates(sc["kind"], rows, sc["prompt_tokens"])
        counts = outcome.summary["counts"]
        sc["directory"] = str(out)
        sc["requests"] = counts["completed"]
        sc["usage_prompt_mismatched"] = prompts.get("usage_mismatched")
        sc["completions_short"] = prompts.get("completions_short")
        sc["tokens_per_s_mean"], sc["tokens_per_s_sd"] = _mean_sd(ours)
        sc["engine_tokens_per_s_mean"], sc["engine_tokens_per_s_sd"] = _mean_sd(engine)
        if counts["completed"] < self.ns.repeat or not ours:
            kinds = ", ".join(f"{k} x{v['count']}" for k, v in outcome.summary["errors"].items()) or "nothing measured"
            hint = ("; the server may refuse ignore_eos: try --no-ignore-eos"
                    if "bad_request" in outcome.summary["errors"] and cfg.ignore_eos else "")
            sc.update(status="failed", reason=f"{counts['completed']}/{self.ns.repeat} completed ({kinds}; "
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
            if not self.ns.quiet:
                print(f"loadtest tokens: {sc['test']} (timeout {sc['timeout_s']:.1f} s per request)",
                      file=sys.stderr, flush=True)
            first, attempted = not attempted, True
            self._measure(sc)
            if not self.ns.quiet:
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
        ok = self.run_kind("pp", self.ns.prompt_tokens)
        if ok:
            ok = self.run_kind("tg", self.ns.gen_tokens)
        if not ok:  # what was not reached is listed, and why
            failed = next(r for r in self.results if r["status"] == "failed")
            for kind, sizes in (("pp", self.ns.prompt_tokens), ("tg", self.ns.gen_tokens)):
                for size in sizes:
                    if not any(r["test"] == f"{kind}{size}" for r in self.results):
                        self.results.append({**self._scenario(kind, size), "status": "skipped",
                                             "reason": f"stopped: the smallest size {failed['test']} failed"})
        return 0 if ok else 2


def table(results: list[dict[str, Any]]) -> str:
    def rate(mean: float | None, sd: float | None) -> str:
        return "-" if mean is None else f"{mean:,.1f} ± {sd or 0:,.1f}"

    rows = [[r["test"], rate(r["tokens_per_s_mean"], r["tokens_per_s_sd"]),
             rate(r["engine_tokens_per_s_mean"], r["engine_tokens_per_s_sd"]), f"{r['timeout_s']:.1f}",
             r["status"] + (f": {r['reason']}" if r["reason"] else "")] for r in results]
    return render_rows(rows, ["test", "tokens/s", "engine tokens/s", "timeout s", "status"])


def run(ns: Any, launcher: Callable[[Any, RunConfig], contextlib.AbstractContextManager[tuple[RunConfig, Any]]]) -> int:
    """The command: configuration, optional launch, the sweep, tokens.json and the table."""
    import os

    if not ns.endpoint and not getattr(ns, "launch", None):
        raise ConfigError("--endpoint is required (or --launch ENGINE to start one)")
    if ns.repeat < 1 or not ns.timeout_scale > 0 or ns.warmup < 0:
        raise ConfigError("--repeat must be >= 1, --timeout-scale > 0 and --warmup >= 0")
    directory = ns.output or default_output_dir("tokens")
    if (directory / "tokens.json").exists() and not ns.overwrite:
        raise ConfigError(f"--output {directory} already holds a sweep (tokens.json); pass --overwrite to replace it")
    if ns.overwrite and directory.exists():
        import shutil

        for child in directory.iterdir():  # only what a sweep writes: its scenario directories and tokens.json
            if child.name == "tokens.json" or (child.is_dir() and (child / "summary.json").exists()):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    if ns.launch and ns.ctx_size is None:  # room for the longest scenario (and a template's tokens)
        ns.ctx_size = max(max(ns.prompt_tokens) + 1, TG_PROMPT_TOKENS + max(ns.gen_tokens)) + 64
    cfg = RunConfig(command="single", base_url=normalize_base_url(ns.endpoint) if ns.endpoint else "",
                    model=ns.model, api=ns.api, api_key=ns.api_key or os.environ.get("OPENAI_API_KEY"),
                    dataset="synthetic", ignore_eos=ns.ignore_eos, tokenizer=ns.tokenizer, transport=ns.transport,
                    output_dir=directory, quiet=True, prompt_tokens=1)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with launcher(ns, cfg) as (cfg, server):
        sweep = Sweep(ns, cfg, directory, server)
        try:
            code = sweep.execute()
        except KeyboardInterrupt:  # what was measured is kept, and tokens.json says where it stopped
            code = 130
            for r in sweep.results:
                if r["status"] is None:
                    r.update(status="interrupted", reason="Ctrl-C")
        doc = {"schema_version": SCHEMA_VERSION, "command": "tokens", "started_at": started,
               "config": {**cfg.to_json(), "prompt_tokens": ns.prompt_tokens, "gen_tokens": ns.gen_tokens,
                          "repeat": ns.repeat, "timeout_scale": ns.timeout_scale, "warmup": ns.warmup,
                          "tg_prompt_tokens": TG_PROMPT_TOKENS},
               "expected_tokens_per_s": {"pp": EXPECTED_PP, "tg": EXPECTED_TG},
               "model_load_s": sweep.load_s, "context_tokens": sweep.n_ctx,
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


@contextlib.contextmanager
def no_launch(ns: Any, cfg: RunConfig) -> Iterator[tuple[RunConfig, Any]]:
    yield cfg, None
