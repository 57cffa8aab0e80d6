"""Who the run says it is, and to which deployment: the API key (``--api-key``, ``$OPENAI_API_KEY``
or ``--api-key-env NAME``), extra headers (``--header 'K: V'``), Azure OpenAI (``api-key`` header,
``api-version`` query, the deployment in the URL), Anthropic's Messages API (``x-api-key`` and
``anthropic-version`` headers, the key from ``$ANTHROPIC_API_KEY``) and TLS verification
(``--insecure``).

Every secret found here is registered with :mod:`loadtest.redact`, the one redaction boundary, so
no key reaches a result file, an error line or the console.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from loadtest.client import AZURE_API_VERSION
from loadtest.client import messages as anthropic
from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.redact import add_secret, is_secret_name
from loadtest.transport import Transport, make_transport

AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
_DEPLOYMENT = re.compile(r"/openai/deployments/([^/?#]+)")


@dataclass(frozen=True)
class Auth:
    headers: dict[str, str]
    query: str
    ssl_context: ssl.SSLContext | None


def is_azure_url(url: str) -> bool:
    host = (urlsplit(url if "://" in url else "https://" + url).hostname or "").lower()
    return host.endswith(AZURE_HOSTS)


def azure_deployment(base_url: str) -> str | None:
    """The deployment name of an Azure deployment URL (``.../openai/deployments/NAME``)."""
    m = _DEPLOYMENT.search(base_url)
    return m.group(1) if m else None


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but tab, and DEL


def hosted_fields(*, api_key: str | None, api_key_env: str | None, headers: list[tuple[str, str]], azure: bool,
                  api_version: str | None, insecure: bool, max_retries: int, rpm_limit: float | None,
                  tpm_limit: float | None, endpoint: str, model: str | None, api: str = "chat") -> dict[str, Any]:
    """RunConfig fields of the hosted-API options: the key resolved (--api-key, else
    --api-key-env's variable, else $OPENAI_API_KEY, for --api messages $ANTHROPIC_API_KEY: an
    OpenAI key is never sent to another provider) and registered as a secret, Azure detected, the
    api-version taken from the URL when it carries one."""
    key = api_key if api_key is not None else os.environ.get(
        anthropic.KEY_ENV if api == "messages" else "OPENAI_API_KEY")
    if api == "messages" and azure:
        raise ConfigError("--azure is Azure OpenAI's API; --api messages speaks Anthropic's (leave out --azure)")
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set")
    add_secret(key)
    if key and _CONTROL.search(key):  # it goes into a header: CR or LF would start another one
        where = ("--api-key" if api_key is not None and not api_key_env else
                 f"${api_key_env}" if api_key_env else "the API key's environment variable")
        raise ConfigError(f"a control character (CR, LF, NUL...) in the key of {where}: it goes into a header, "
                          "where CR or LF would start another one")
    if max_retries < 0:
        raise ConfigError("--max-retries must be >= 0")
    for flag, value in (("--rpm-limit", rpm_limit), ("--tpm-limit", tpm_limit)):
        if value is not None and not (value > 0 and value < float("inf")):
            raise ConfigError(f"{flag} must be a positive number, got {value}")
    azure = bool(azure or (endpoint and is_azure_url(endpoint) and api != "messages"))
    query = parse_qs(urlsplit(endpoint).query) if "?" in endpoint else {}
    api_version = api_version or (query.get("api-version") or [None])[0]
    out: dict[str, Any] = {"api_key": key, "headers": tuple(headers), "azure": azure, "insecure": insecure,
                           "max_retries": max_retries, "rpm_limit": rpm_limit, "tpm_limit": tpm_limit}
    if azure and endpoint:
        base = azure_base_url(endpoint, model)
        out["base_url"] = base
        deployment = azure_deployment(base)
        if deployment and api_version is None:
            api_version = AZURE_API_VERSION
        if deployment and not model:
            out["model"] = deployment
    out["api_version"] = api_version
    return out


def azure_base_url(endpoint: str, model: str | None) -> str:
    """An Azure endpoint as a base URL: a bare resource host with --model becomes that deployment's
    URL; a deployment or /openai/v1 URL is kept (a trailing /chat/completions is dropped)."""
    parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
    path = re.sub(r"/(chat/)?completions/?$|/responses/?$", "", parts.path.rstrip("/"))
    if not path:
        if not model:
            raise ConfigError("an Azure resource URL needs --model DEPLOYMENT (or give the deployment URL: "
                              "https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT)")
        path = f"/openai/deployments/{model}"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def build_auth(cfg: RunConfig) -> Auth:
    headers: dict[str, str] = {}
    if cfg.api == "messages":
        add_secret(cfg.api_key)
        headers.update(anthropic.auth_headers(cfg.api_key, cfg.headers))
    elif cfg.api_key:
        add_secret(cfg.api_key)
        if cfg.azure:
            headers["api-key"] = cfg.api_key
        else:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
    for name, value in cfg.headers:
        if is_secret_name(name):
            add_secret(value)
        headers[name] = value
    context = None
    if cfg.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    query = f"api-version={cfg.api_version}" if cfg.api_version else ""
    return Auth(headers=headers, query=query, ssl_context=context)


def open_transport(cfg: RunConfig, max_connections: int) -> Transport:
    """The run's transport, with its credentials, query and TLS settings."""
    auth = build_auth(cfg)
    return make_transport(cfg.transport, cfg.base_url, max_connections=max_connections,  # type: ignore[arg-type]
                          headers=auth.headers, query=auth.query, ssl_context=auth.ssl_context)


def auth_hint(cfg: RunConfig) -> str:
    """What to try after a 401/403, in the terms of this run's auth."""
    if cfg.azure:
        return "pass the Azure key with --api-key or --api-key-env NAME (sent as the api-key header)"
    if cfg.api == "messages":
        return f"pass --api-key, --api-key-env NAME or set {anthropic.KEY_ENV} (sent as the x-api-key header)"
    return "pass --api-key, --api-key-env NAME or set OPENAI_API_KEY"
