"""``loadtest matrix``: every engine x model, launched in turn, measured with single and
throughput, stopped, and compared in one report (series/matrix.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import argtypes, configs, options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("matrix", help="every engine x model: launch, single + throughput, report",
                       description="Every engine (and variant) x every model: launched in turn, measured with "
                                   "single and throughput, stopped, and compared in one report. Resumable.")
    p.add_argument("--engines", required=True,
                   help="comma-separated: llamacpp, transformers, transformers:compile, vllm, tgi "
                        "(variants: :compile, :dtype=X, :attn=X)")
    p.add_argument("--models", default="smollm2", help="comma-separated: smollm2 (embedded) or model paths/ids")
    p.add_argument("--single", type=argtypes.non_negative_int, default=20, metavar="N",
                   help="single: N prompts (default 20; 0 skips)")
    p.add_argument("--throughput", type=argtypes.non_negative_int, default=4, metavar="C",
                   help="throughput: C requests in flight (default 4; 0 skips)")
    p.add_argument("--num-prompts", type=argtypes.positive_int, help="throughput: measured requests (default 4 x C)")
    options.prompt_source(p)
    options.sampling(p, max_tokens=128)
    options.warmup(p, default=1, timed=False)
    options.timeout(p, 600.0)
    options.launch(p, engine_option=False, port=False)
    options.output(p, what="matrix directory (resumable)", required=True, overwrite=False, wandb=True)
    options.debug(p)
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.config import RunConfig
    from loadtest.series.matrix import MatrixConfig, parse_engine, run_matrix

    base = RunConfig(command="single", base_url="", model=None, dataset=ns.dataset, seed=ns.seed,
                     tokenizer=ns.tokenizer, max_tokens=ns.max_tokens, temperature=ns.temperature, top_p=ns.top_p,
                     extra_body=configs.extra_body(ns.extra_body), warmup=ns.warmup, timeout_s=ns.timeout,
                     quiet=ns.quiet)
    launch = configs.launch_spec(ns, "llamacpp")  # the engine options; each pair sets its engine and model
    return run_matrix(MatrixConfig(
        base=base, variants=tuple(parse_engine(e) for e in ns.engines.split(",") if e.strip()),
        models=tuple(m.strip() for m in ns.models.split(",") if m.strip()), launch=launch, output=ns.output,
        single=ns.single, throughput=ns.throughput, num_prompts=ns.num_prompts, wandb=ns.wandb))
