"""``loadtest models --endpoint URL``: what a provider serves (its /models list), with the same
credentials, headers, Azure handling and TLS options as a run (client/discovery.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import configs, options


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("models", help="list the models an endpoint serves (its /models)",
                       description="List the models an endpoint serves (its /models), with a run's credentials, "
                                   "headers, Azure handling and TLS options.")
    options.endpoint(p, required=True, timeout_s=30.0, limits=False)
    options.api(p, choices=("chat", "messages"))  # messages: Anthropic's auth (x-api-key, $ANTHROPIC_API_KEY)
    p.add_argument("--json", action="store_true", help="print the raw /models answer")
    options.debug(p)
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.client.auth import hosted_fields
    from loadtest.client.discovery import model_list
    from loadtest.config import RunConfig
    from loadtest.run.console import render_rows
    from loadtest.run.execute import run_async

    base = configs.normalized(ns.endpoint)
    fields = hosted_fields(api_key=ns.api_key, api_key_env=ns.api_key_env, headers=ns.headers, azure=ns.azure,
                           api_version=ns.api_version, insecure=ns.insecure, max_retries=0, rpm_limit=None,
                           tpm_limit=None, endpoint=ns.endpoint, model=ns.model, api=ns.api)
    cfg = RunConfig(**{"command": "single", "base_url": base, "model": ns.model, "transport": ns.transport,
                       "api": ns.api, **fields})
    models, raw = run_async(model_list(cfg, ns.timeout))
    if ns.json:
        print(raw.decode("utf-8", "replace"))
        return 0
    rows = [[str(m["id"]), _owner(m.get("owned_by"))] for m in models[:MAX_ROWS]]
    print(render_rows(rows, ["model", "owned by"]) if rows else f"{cfg.base_url}/models lists no model")
    if len(models) > MAX_ROWS:
        print(f"... and {len(models) - MAX_ROWS:,} more models ({len(models):,} in all; --json prints the whole answer)")
    return 0


MAX_ROWS = 1000
"""Models shown in the table: a list of 3,000,000 took 37 s to lay out (--json prints all)."""


def _owner(value: object) -> str:
    """``owned_by`` when it is a short printable string: a nested object 1,000 deep was an
    internal error (RecursionError) when shown, a list was shown as Python's repr."""
    if isinstance(value, str) and value.strip() and len(value) <= 200 and value.isprintable():
        return value
    return "-"
