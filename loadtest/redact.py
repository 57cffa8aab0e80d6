"""Secrets never leave the process: credentials in URLs (``scheme://user:KEY@host``) are replaced
by ``***`` wherever a URL or a message that may quote one is written (summary.json, requests.jsonl
error texts, the console). One function, applied at those output boundaries."""

from __future__ import annotations

import re

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")


def redact(text: str) -> str:
    """``text`` with the user-info part of every URL in it replaced by ``***``."""
    return _URL_CREDENTIALS.sub(r"\1***@", text) if "@" in text else text
