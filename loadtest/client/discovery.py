"""What a server offers: its /models list, and the model a run uses when --model is not given.
Kept apart from the runner so that commands other than a run (model listing, abort messages)
ask the same question the same way."""

from __future__ import annotations

import orjson

from loadtest.measure.chunks import error_message
from loadtest.errors import RunAborted
from loadtest.transport import Exchange, Transport


def models_in(ex: Exchange) -> list[str] | None:
    """The model ids of a /models answer; None when it is not a usable list."""
    if ex.error_kind or ex.status != 200:
        return None
    try:
        data = orjson.loads(ex.body()).get("data") or []
        return [m["id"] for m in data if isinstance(m, dict) and "id" in m]
    except (orjson.JSONDecodeError, AttributeError):
        return None


async def list_models(transport: Transport, timeout_s: float = 10.0) -> list[str] | None:
    return models_in(await transport.get("/models", timeout_s))


async def discover_model(transport: Transport, base_url: str, timeout_s: float = 10.0) -> str:
    """The first model the server lists; one clear error when it cannot be asked or lists none."""
    ex = await transport.get("/models", timeout_s)
    if ex.error_kind:
        raise RunAborted(f"cannot reach {base_url}: {ex.error}")
    if ex.status in (401, 403):
        raise RunAborted(f"{base_url} refused the API key (HTTP {ex.status}): {error_message(ex.body())}; "
                         "pass --api-key, --api-key-env NAME or set OPENAI_API_KEY")
    models = models_in(ex)
    if not models:
        raise RunAborted(f"--model not given and {base_url}/models lists no model (HTTP {ex.status}); pass --model")
    return models[0]
