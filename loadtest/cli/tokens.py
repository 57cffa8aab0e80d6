"""``loadtest tokens``: prompt processing and text generation tokens/s by length, as llama-bench's
pp/tg tables, over the OpenAI API (series/prefill_decode.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import argtypes, configs, options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("tokens", help="prefill/decode sweep: prompt processing and generation tokens/s by length",
                       description="Prompt processing (ppN: prompt tokens / TTFT of a 1-token generation) and text "
                                   "generation (tgN: decode rate of N forced tokens) at exact lengths, each "
                                   "scenario an ordinary single run in its own directory.")
    options.endpoint(p, timeout_s=None)
    options.api(p, choices=("chat", "completions"), default="completions")
    p.add_argument("--prompt-tokens", type=argtypes.sizes, default=argtypes.sizes("16,128,512,1024,4096,16384"),
                   help="prompt processing sizes (default 16,128,512,1024,4096,16384)")
    p.add_argument("--gen-tokens", type=argtypes.sizes, default=argtypes.sizes("16,128,512,1024,4096"),
                   help="text generation sizes (default 16,128,512,1024,4096)")
    p.add_argument("--repeat", type=argtypes.positive_int, default=5, help="requests per scenario: mean +- sd over them (default 5)")
    p.add_argument("--timeout-scale", type=argtypes.positive_float, default=1.0, help="stretch every scenario's timeout (default 1)")
    options.warmup(p, default=1, timed=False)
    options.ignore_eos(p, default=True)
    options.prompt_source(p, dataset=False)
    options.output(p)
    options.debug(p)
    options.launch(p, ctx_size=None)
    p.set_defaults(run=main, slots=1)  # one request at a time; the context fits the longest scenario


def main(ns: argparse.Namespace) -> int:
    from loadtest.client.auth import hosted_fields
    from loadtest.config import RunConfig
    from loadtest.series.prefill_decode import TokensConfig, run_tokens

    configs.require_endpoint(ns)
    cfg = RunConfig(command="single", base_url=configs.normalized(ns.endpoint), model=ns.model, api=ns.api,
                    dataset=options.SYNTHETIC, ignore_eos=ns.ignore_eos, seed=ns.seed, tokenizer=ns.tokenizer,
                    transport=ns.transport, output_dir=configs.output_dir(ns, "tokens"), quiet=True, prompt_tokens=1,
                    **hosted_fields(api_key=ns.api_key, api_key_env=ns.api_key_env, headers=ns.headers, azure=ns.azure,
                                    api_version=ns.api_version, insecure=ns.insecure, max_retries=ns.max_retries,
                                    rpm_limit=ns.rpm_limit, tpm_limit=ns.tpm_limit, endpoint=ns.endpoint or "",
                                    model=ns.model))
    return run_tokens(TokensConfig(base=cfg, prompt_tokens=tuple(ns.prompt_tokens), gen_tokens=tuple(ns.gen_tokens),
                                   repeat=ns.repeat, timeout_scale=ns.timeout_scale, warmup=ns.warmup,
                                   launch=configs.launch_spec(ns), overwrite=ns.overwrite, quiet=ns.quiet))
