#!/usr/bin/env python3
"""llama.cpp's own HTTP server (OpenAI API) run from the `xllamacpp` wheel, for machines without a
`llama-server` binary.

xllamacpp runs the C++ server on its own threads for as long as the `Server` object lives, so this
program's only jobs are to translate llama-server-like flags into `CommonParams` and to stay alive
until SIGTERM/SIGINT. Run it with the llama.cpp venv's python:

    .venvs/llamacpp/bin/python loadtest/launch/scripts/xllamacpp_server.py --model M.gguf --port 8080 --slots 4

`--ctx-size` is per slot, as in the launcher; llama.cpp's `n_ctx` is the total, split among slots.
`--set NAME=VALUE` sets any other CommonParams field (VALUE parsed as a Python literal when it can
be), so engine options need no change here.
"""

from __future__ import annotations

import argparse
import ast
import os
import signal
import sys
import threading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", "-m", required=True, help="GGUF file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", "-t", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--slots", "-np", type=int, default=4, help="parallel sequences (llama.cpp -np)")
    ap.add_argument("--ctx-size", "-c", type=int, default=2048, help="context per slot")
    ap.add_argument("--n-gpu-layers", "-ngl", type=int, default=None)
    ap.add_argument("--alias", "-a", default=None, help="model name clients send (default: file stem)")
    ap.add_argument("--metrics", action="store_true", help="serve Prometheus /metrics (llama-server --metrics)")
    ap.add_argument("--embeddings", action="store_true", help="serve /v1/embeddings and /v1/rerank (llama-server "
                                                                 "--embeddings)")
    ap.add_argument("--pooling", choices=("none", "mean", "cls", "last", "rank"), default=None,
                    help="pooling of the embeddings (rank: a reranker's scores); default: the model's own")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="any other xllamacpp.CommonParams field (dots for nested: sampling.temp=0)")
    return ap.parse_args(argv)


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_params(args: argparse.Namespace):  # -> xllamacpp.CommonParams
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.hostnames = [args.host]
    p.port = args.port
    p.n_parallel = args.slots
    p.n_ctx = args.ctx_size * args.slots
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    if args.n_gpu_layers is not None:
        p.n_gpu_layers = args.n_gpu_layers
    alias = args.alias or os.path.splitext(os.path.basename(args.model))[0]
    p.model_alias = {alias}
    p.endpoint_metrics = args.metrics
    if args.embeddings:
        p.embedding = True
    if args.pooling is not None:
        p.pooling_type = getattr(xllamacpp.llama_pooling_type, f"LLAMA_POOLING_TYPE_{args.pooling.upper()}")
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got {item!r}")
        *parents, leaf = name.split(".")
        obj = p
        for part in parents:
            obj = getattr(obj, part)
        if not hasattr(obj, leaf):
            raise SystemExit(f"xllamacpp.CommonParams has no field {name!r}")
        setattr(obj, leaf, _literal(value))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    # Handlers first: a SIGTERM during model load must still end the process cleanly.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    import xllamacpp

    server = xllamacpp.Server(build_params(args))
    print(f"xllamacpp_server: serving {args.model} on http://{args.host}:{args.port}/v1", flush=True)
    while not stop.wait(1.0):
        pass
    del server
    print("xllamacpp_server: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
