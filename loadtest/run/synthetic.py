"""Synthetic prompts in a command: build them for a run's configuration once the server is known
(they are counted with its tokenizer), and after the run add to summary.json how exact they were.
A driver-level helper, so the prompt stage itself never reaches down to the output stage."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import orjson

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.run.output import write_summary
from loadtest.client.auth import build_auth
from loadtest.prompts.synthetic import DATASET, SyntheticPlan, SyntheticSpec, check_records, prepare, warnings

DEFAULT_DURATION_PROMPTS = 1000
PROBE_TIMEOUT_S = 120.0  # the overhead probe (8 prompt tokens, 1 generated), apart from --timeout


def add_arguments(p: Any) -> None:
    """The synthetic-prompt options, shared by single, throughput and tokens."""
    g = p.add_argument_group("synthetic prompts (--dataset synthetic)")
    g.add_argument("--prompt-tokens", type=int, help="prompt length in tokens of the served model's tokenizer")
    g.add_argument("--prompt-tokens-stddev", type=float, default=0.0,
                   help="vary the length per prompt (normal, seeded; default 0: every prompt exactly --prompt-tokens)")
    g.add_argument("--shared-prefix-tokens", type=int, default=0,
                   help="K leading tokens shared by every prompt (default 0: each prompt starts differently)")


def configure(cfg: RunConfig, ns: Any) -> RunConfig:
    """Check the options against the dataset and write them into the run's configuration."""
    given = getattr(ns, "prompt_tokens", None)
    if cfg.dataset != DATASET:
        if given is not None or getattr(ns, "shared_prefix_tokens", 0) or getattr(ns, "prompt_tokens_stddev", 0.0):
            raise ConfigError("--prompt-tokens, --prompt-tokens-stddev and --shared-prefix-tokens need --dataset synthetic")
        return cfg
    if given is None or given < 1:
        raise ConfigError("--dataset synthetic needs --prompt-tokens N (N >= 1)")
    if ns.prompt_tokens_stddev < 0 or not 0 <= ns.shared_prefix_tokens < given:
        raise ConfigError("--prompt-tokens-stddev must be >= 0 and --shared-prefix-tokens between 0 and --prompt-tokens - 1")
    return replace(cfg, prompt_tokens=given, prompt_tokens_stddev=ns.prompt_tokens_stddev,
                   shared_prefix_tokens=ns.shared_prefix_tokens)


def launched_tokenizer(server: Any) -> str | None:
    """The launched model's own tokenizer, for engines without /tokenize (transformers serves an
    exported Hugging Face directory): used when the `tokenizers` package is installed."""
    served = ((getattr(server, "info", None) or {}).get("model") or {}).get("served_path")
    if served and (Path(served) / "tokenizer.json").is_file() and importlib.util.find_spec("tokenizers"):
        return str(served)
    return None


def plan_for(cfg: RunConfig, server: Any = None) -> SyntheticPlan:
    """The run's prompts (one per request, so none repeats) counted with the server's tokenizer."""
    assert cfg.prompt_tokens is not None
    count = (cfg.num_prompts or DEFAULT_DURATION_PROMPTS) + cfg.warmup
    spec = SyntheticSpec(cfg.prompt_tokens, cfg.prompt_tokens_stddev, cfg.shared_prefix_tokens, cfg.seed)
    return prepare(spec, count, base_url=cfg.base_url, model=cfg.model, api=cfg.api, headers=build_auth(cfg).headers,
                   tokenizer=cfg.tokenizer or launched_tokenizer(server), timeout_s=PROBE_TIMEOUT_S)


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    """requests.jsonl one line at a time (a long run's file is never held in memory)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def annotate(directory: Path, summary: dict[str, Any], plan: SyntheticPlan | None, cfg: RunConfig,
             *, quiet: bool = False) -> dict[str, Any]:
    """Add ``prompts`` (how the prompts were made and how exactly the server saw them) to the
    summary, in memory and in summary.json; say what did not match on stderr."""
    check = check_records(_rows(directory / "requests.jsonl"), plan.expected if plan else None, max_tokens=cfg.max_tokens)
    summary["prompts"] = {**(plan.info if plan else {}), **check}
    write_summary(directory, summary)
    if not quiet:
        for line in warnings(check, cfg.max_tokens):
            print(f"loadtest: warning: {line}", file=sys.stderr)
    return summary["prompts"]
