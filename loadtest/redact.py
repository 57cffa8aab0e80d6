"""Secrets never leave the process: credentials in URLs (``scheme://user:KEY@host``) and the values
of secret-looking command-line flags (``--api-key X``, ``--hf-token=X``) are replaced by ``***``
wherever they are written (summary.json, requests.jsonl error texts, the console). Applied at
those output boundaries only."""

from __future__ import annotations

import re
from typing import Any

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_FLAG = r"--?[\w-]*(?:api[-_]?key|token|secret|password|passwd)"
_SECRET_FLAG = re.compile(rf"(?i)^{_FLAG}$")
_FLAG_VALUE = re.compile(rf"(?i)(?<!\S)({_FLAG})([= ])(?!\*\*\*)('[^']*'|\"[^\"]*\"|\S+)")


def redact(text: str) -> str:
    """``text`` with URL credentials and secret flag values replaced by ``***``."""
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
