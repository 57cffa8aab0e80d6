"""``loadtest memory``: the memory serving a model takes, per precision, before anyone starts it
(launch/memory.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import argtypes, options
from loadtest.launch.memory import KV_BYTES


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("memory", help="memory needed to serve a model, per precision",
                       description="Memory needed to serve a model, per precision (parameters x bytes x 1.2), "
                                   "optionally with the KV cache for a context and batch.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a parameter count (7b, 70b, 135m), a config.json or model directory, a GGUF file, or smollm2")
    p.add_argument("--context", type=argtypes.positive_int,
                   help="add the KV cache for this many tokens of context per sequence")
    p.add_argument("--batch", type=argtypes.positive_int, default=1,
                   help="sequences held at once, for the KV cache (default 1)")
    p.add_argument("--kv-dtype", choices=sorted(KV_BYTES), default="fp16", help="KV cache element type (default fp16)")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    options.debug(p)
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.launch.memory import memory_rows, render_memory, resolve

    rows = memory_rows([resolve(m) for m in ns.models], context=ns.context, batch=ns.batch, kv_dtype=ns.kv_dtype)
    print(render_memory(rows, ns.format))
    return 0
