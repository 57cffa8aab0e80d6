"""``loadtest models --endpoint URL``: what a provider serves (its /models list), with the same
credentials, headers, Azure handling and TLS options as a run. A thin driver over discovery.py."""

from __future__ import annotations

import argparse
import asyncio
import os

import orjson

from loadtest.client.auth import add_arguments as add_hosted_arguments
from loadtest.client.auth import auth_hint, hosted_options, open_transport
from loadtest.measure.chunks import error_message
from loadtest.config import RunConfig
from loadtest.errors import RunAborted
from loadtest.run.output import render_rows
from loadtest.transport import normalize_base_url


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", required=True, help="OpenAI base URL (as for a run)")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="bearer token (default: $OPENAI_API_KEY)")
    p.add_argument("--model", help=argparse.SUPPRESS)  # an Azure resource URL needs none to list
    p.add_argument("--transport", choices=("fast", "httpx"), default="fast", help="HTTP client (default fast)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default 30)")
    p.add_argument("--json", action="store_true", help="print the raw /models answer")
    add_hosted_arguments(p, limits=False)


async def _fetch(cfg: RunConfig, timeout_s: float) -> tuple[list[dict[str, object]], bytes]:
    transport = open_transport(cfg, 1)
    try:
        ex = await transport.get("/models", timeout_s)
    finally:
        await transport.aclose()
    if ex.error_kind:
        raise RunAborted(f"cannot reach {cfg.base_url}: {ex.error}")
    if ex.status in (401, 403):
        raise RunAborted(f"{cfg.base_url}/models refused the key (HTTP {ex.status}: {error_message(ex.body())}); "
                         f"{auth_hint(cfg)}")
    if ex.status != 200:
        raise RunAborted(f"{cfg.base_url}/models answered HTTP {ex.status}: {error_message(ex.body())}")
    try:
        data = orjson.loads(ex.body()).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        data = None
    if not isinstance(data, list):
        raise RunAborted(f"{cfg.base_url}/models did not answer an OpenAI model list")
    return [m for m in data if isinstance(m, dict) and "id" in m], ex.body()


def run(ns: argparse.Namespace) -> int:
    base = normalize_base_url(ns.endpoint)
    fields = {"command": "single", "base_url": base, "model": ns.model, "api_key": ns.api_key,
              "transport": ns.transport}
    options = hosted_options(ns)
    if options.get("azure") and "base_url" not in options:
        options["base_url"] = base
    cfg = RunConfig(**{**fields, **options})  # type: ignore[arg-type]
    models, raw = asyncio.run(_fetch(cfg, ns.timeout))
    if ns.json:
        print(raw.decode("utf-8", "replace"))
        return 0
    rows = [[str(m["id"]), str(m.get("owned_by") or "-")] for m in models]
    print(render_rows(rows, ["model", "owned by"]) if rows else f"{cfg.base_url}/models lists no model")
    return 0
