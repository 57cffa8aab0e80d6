"""Secrets never leave the process: credentials in URLs (``scheme://user:KEY@host``), the values
of secret-looking command-line flags (``--api-key X``, ``--hf-token=X``) and every secret the run
was given (the API key, wherever it came from, and the values of secret-looking ``--header``s,
registered with :func:`add_secret`) are replaced by ``***`` wherever they are written
(summary.json, requests.jsonl error texts, the console). Applied at those output boundaries only:
the one redaction module."""

from __future__ import annotations

import re
from typing import Any

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_FLAG = r"--?[\w-]*(?:api[-_]?key|token|secret|password|passwd)"
_SECRET_FLAG = re.compile(rf"(?i)^{_FLAG}$")
_FLAG_VALUE = re.compile(rf"(?i)(?<!\S)({_FLAG})([= ])(?!\*\*\*)('[^']*'|\"[^\"]*\"|\S+)")


_SECRET_NAME = re.compile(r"(?i)(authorization|api[-_]?key|token|secret|password|passwd|cookie)")
_SECRETS: list[str] = []  # longest first, so "Bearer KEY" is masked whole before KEY alone
_MIN_SECRET = 4  # shorter values would mask ordinary words


def is_secret_name(name: str) -> bool:
    """A header or flag name whose value is a credential (Authorization, api-key, X-Api-Key...)."""
    return bool(_SECRET_NAME.search(name))


def add_secret(value: str | None) -> None:
    """Register a secret value (and, for ``Bearer X``, X alone): every later redact() masks it.
    A provider may echo part of a key in its error text, so the value is masked wherever it occurs."""
    if not value:
        return
    value = value.strip()
    for v in (value, value.split(" ", 1)[-1].strip()):
        if len(v) >= _MIN_SECRET and v not in _SECRETS:
            _SECRETS.append(v)
    _SECRETS.sort(key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with registered secrets, URL credentials and secret flag values replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    if "@" in text:
        text = _URL_CREDENTIALS.sub(r"\1***@", text)
    if "-" in text:
        text = _FLAG_VALUE.sub(r"\1\2***", text)
    return text


def redact_tree(obj: Any) -> Any:
    """``redact`` over every string of a JSON-like value; in a list (an argv), the item after a
    secret flag is masked too."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = []
        for i, v in enumerate(obj):
            prev = obj[i - 1] if i else None
            secret = isinstance(prev, str) and isinstance(v, str) and _SECRET_FLAG.match(prev)
            out.append("***" if secret else redact_tree(v))
        return out
    return obj
