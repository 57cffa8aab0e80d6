"""The one line a failed run ends with: why the run stopped, in the user's terms."""

from __future__ import annotations

from pathlib import Path

from loadtest.client.auth import auth_hint, open_transport
from loadtest.client.discovery import list_models
from loadtest.client.payloads import request_path
from loadtest.client.pooling import unserved_line
from loadtest.config import RunConfig
from loadtest.measure.record import AUTH, NOT_FOUND, RATE_LIMITED, RequestRecord
from loadtest.transport.base import CONNECT, TIMEOUT


async def abort_message(cfg: RunConfig, rec: RequestRecord, *, reason: str | None, ok_count: int,
                        model: str | None, directory: Path, failures: int) -> str:
    url = cfg.base_url + request_path(cfg)
    tail = f" (partial results in {directory})"
    if reason == "server_gone":
        return f"server at {cfg.base_url} stopped accepting connections after {ok_count} completed requests: {rec.error}{tail}"
    if rec.error_kind == CONNECT:
        return f"cannot connect to {cfg.base_url}: {rec.error}"
    if rec.error_kind == TIMEOUT:
        return f"requests to {url} timed out: {rec.error}; raise --timeout if the server is just slow"
    if rec.error_kind == AUTH:
        return f"{url} refused the request ({rec.error}); {auth_hint(cfg)}"
    if rec.error_kind == NOT_FOUND or rec.status == 405:  # no such model, or no such endpoint
        transport = open_transport(cfg, 1)
        try:
            models = await list_models(transport)
        finally:
            await transport.aclose()
        if models and model not in models:
            return f"model {model!r} not found; the server offers: {', '.join(models)} (pass one with --model)"
        offers = f"; its /models lists {', '.join(models)}" if models else ""
        return (unserved_line(cfg, url, rec.status, rec.error)
                or f"{url} answered {rec.status} ({rec.error}){offers}; check --endpoint and --api")
    if (line := unserved_line(cfg, url, rec.status, rec.error)) is not None:  # 501: no embeddings here
        return line
    if rec.error_kind == RATE_LIMITED:
        tries = f"{rec.attempts} attempt{'s' if rec.attempts != 1 else ''}"
        return (f"the first {failures} requests were all rate limited ({rec.error}; after {tries}); lower "
                "--concurrency, or set --rpm-limit / --tpm-limit under the provider's limits")
    return f"the first {failures} requests all failed with {rec.error_kind}: {rec.error}"
