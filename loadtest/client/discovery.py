"""What a server offers: its /models list, and the model a run uses when --model is not given.
Kept apart from the runner so that commands other than a run (model listing, abort messages)
ask the same question the same way."""

from __future__ import annotations

import orjson

from loadtest.config import RunConfig
from loadtest.errors import RunAborted
from loadtest.measure.chunks import error_message
from loadtest.transport import Exchange, Transport


def models_in(ex: Exchange) -> list[str] | None:
    """The model ids of a /models answer; None when it is not a usable list."""
    if ex.error_kind or ex.status != 200:
        return None
    try:
        data = orjson.loads(ex.body()).get("data") or []
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return [m["id"] for m in _entries(data)] if isinstance(data, list) else None


def _entries(data: list[object]) -> list[dict[str, object]]:
    """The entries of a model list that name a model: an object whose ``id`` is a non-empty
    string of at most 1,024 characters with no control character, each id once. Others (a number,
    null, a list as the id; an id missing; a 5 MB id; an escape sequence that would redraw the
    terminal) are left out, so an id is never sent as a model or joined into a message as
    something that is not a name; a duplicate was listed twice."""
    seen: set[str] = set()
    entries = []
    for m in data:
        if isinstance(m, dict) and _is_name(m.get("id")) and m["id"] not in seen:
            seen.add(m["id"])
            entries.append(m)
    return entries


def _is_name(value: object) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and bool(value.strip())
            and value.isprintable())


MAX_ID_CHARS = 1024


async def list_models(transport: Transport, timeout_s: float = 10.0) -> list[str] | None:
    return models_in(await transport.get("/models", timeout_s))


async def discover_model(transport: Transport, base_url: str, timeout_s: float = 10.0,
                         hint: str = "pass --api-key, --api-key-env NAME or set OPENAI_API_KEY") -> str:
    """The first model the server lists; one clear error when it cannot be asked or lists none
    (``hint``: what to try after a refused key, in the terms of the run's auth)."""
    ex = await transport.get("/models", timeout_s)
    if ex.error_kind:
        raise RunAborted(f"cannot reach {base_url}: {ex.error}")
    if ex.status in (401, 403):
        raise RunAborted(f"{base_url} refused the API key (HTTP {ex.status}): {error_message(ex.body())}; {hint}")
    models = models_in(ex)
    if not models:
        raise RunAborted(f"--model not given and {base_url}/models lists no model (HTTP {ex.status}); pass --model")
    return models[0]


async def model_list(cfg: RunConfig, timeout_s: float) -> tuple[list[dict[str, object]], bytes]:
    """The provider's /models answer, checked: (the model entries, the raw body); one clear
    RunAborted when it cannot be asked or does not answer a model list."""
    from loadtest.client.auth import auth_hint, open_transport

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
    return _entries(data), ex.body()
