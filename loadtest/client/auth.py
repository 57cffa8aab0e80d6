"""Who the run says it is, and to which deployment: the API key (``--api-key``, ``$OPENAI_API_KEY``
or ``--api-key-env NAME``), extra headers (``--header 'K: V'``), Azure OpenAI (``api-key`` header,
``api-version`` query, the deployment in the URL) and TLS verification (``--insecure``).

Every secret found here is registered with :mod:`loadtest.redact`, the one redaction boundary, so
no key reaches a result file, an error line or the console.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.redact import add_secret, is_secret_name
from loadtest.transport import Transport, make_transport

AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
AZURE_API_VERSION = "2024-10-21"
"""The api-version sent to an Azure deployment URL when neither the URL nor --api-version gives one
(the current GA version of the data-plane API)."""
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


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` (or ``Name=value``) as a (name, value) pair; argparse type of --header."""
    sep = ":" if ":" in text else "=" if "=" in text else None
    name, value = (text.split(sep, 1) if sep else (text, ""))
    name, value = name.strip(), value.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {'a header' if is_secret_name(text) else repr(text)}")
    if is_secret_name(name):
        add_secret(value)
    return name, value


def add_arguments(p: argparse.ArgumentParser, *, limits: bool = True) -> None:
    """The hosted-API options of a run command, in one group (``limits``: with the retry and
    budget options, which only a run has)."""
    g = p.add_argument_group("hosted APIs (auth, Azure" + (", rate limits, retries)" if limits else ")"))
    g.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    g.add_argument("--header", dest="headers", action="append", type=parse_header, default=[], metavar="'K: V'",
                   help="extra request header (repeatable); values of auth-like names are redacted")
    g.add_argument("--azure", action="store_true",
                   help="Azure OpenAI: api-key header and api-version query (detected from *.openai.azure.com)")
    g.add_argument("--api-version", help=f"Azure api-version query (default: the URL's, else {AZURE_API_VERSION} "
                                         "for a deployment URL)")
    g.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (self-signed gateways)")
    if not limits:
        p.set_defaults(max_retries=0, rpm_limit=None, tpm_limit=None)
        return
    g.add_argument("--max-retries", type=int, default=5, metavar="N",
                   help="retries of a rate-limited request (429, or 503 with Retry-After); default 5")
    g.add_argument("--no-retry", dest="max_retries", action="store_const", const=0,
                   help="record a 429 as a failed request (same as --max-retries 0)")
    g.add_argument("--rpm-limit", type=float, metavar="N", help="send at most N requests per minute (client-side)")
    g.add_argument("--tpm-limit", type=float, metavar="N",
                   help="send at most N tokens per minute, estimated as prompt tokens + max tokens (client-side)")


def hosted_options(ns: argparse.Namespace) -> dict[str, Any]:
    """RunConfig fields from the parsed options: the key resolved and registered as a secret,
    Azure detected, the api-version taken from the URL when it carries one."""
    key = ns.api_key
    if ns.api_key_env:
        key = os.environ.get(ns.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {ns.api_key_env}: that environment variable is not set")
    add_secret(key)
    if ns.max_retries < 0:
        raise ConfigError("--max-retries must be >= 0")
    for name in ("rpm_limit", "tpm_limit"):
        value = getattr(ns, name)
        if value is not None and not (value > 0 and value < float("inf")):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    endpoint = ns.endpoint or ""
    azure = bool(ns.azure or (endpoint and is_azure_url(endpoint)))
    query = parse_qs(urlsplit(endpoint).query) if "?" in endpoint else {}
    api_version = ns.api_version or (query.get("api-version") or [None])[0]
    out: dict[str, Any] = {"api_key": key, "headers": tuple(ns.headers), "azure": azure, "insecure": ns.insecure,
                           "max_retries": ns.max_retries, "rpm_limit": ns.rpm_limit, "tpm_limit": ns.tpm_limit}
    if azure and endpoint:
        base = azure_base_url(endpoint, ns.model)
        out["base_url"] = base
        deployment = azure_deployment(base)
        if deployment and api_version is None:
            api_version = AZURE_API_VERSION
        if deployment and not ns.model:
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
    if cfg.api_key:
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
    return "pass --api-key, --api-key-env NAME or set OPENAI_API_KEY"
