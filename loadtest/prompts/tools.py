"""Tool definitions for agentic tool loops (``--tools FILE|synthetic``): part of the prompt stage,
because the tools a request offers shape what the server generates as much as its messages do.

A tools file is what the OpenAI API takes as ``tools``: a JSON list of
``{"type": "function", "function": {"name", "description", "parameters"}}``, or the same objects
one per line (JSONL). It is checked before anything starts, so a typo costs one line (DatasetError,
naming the file and the entry), not a run of 400s: a server rejects a malformed tool on every
request, and some accept one silently and never call it. ``synthetic`` offers two small tools
(a document search and a code runner), enough for a server with a tool parser to call something.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from loadtest.errors import DatasetError

SYNTHETIC_TOOLS_NAME = "synthetic"
# OpenAI's rule for function names (a-z, A-Z, 0-9, underscores and dashes, at most 64).
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

SYNTHETIC_TOOLS: tuple[dict[str, Any], ...] = (
    {"type": "function", "function": {
        "name": "search_documents",
        "description": "Search the document store and return the passages that best match the query.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "what to search for"}},
            "required": ["query"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "run_python",
        "description": "Run a short Python program and return what it printed.",
        "parameters": {"type": "object", "properties": {
            "code": {"type": "string", "description": "the program's source"}},
            "required": ["code"], "additionalProperties": False}}},
)


def tool_names(tools: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
    """The function names, in order: what a summary writes instead of the whole definitions."""
    return [t["function"]["name"] for t in tools]


def check_tool(entry: Any, where: str) -> dict[str, Any]:
    """One tool definition, or DatasetError saying what is wrong with it (``where``: file and entry)."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: a tool must be a JSON object "
                           '{"type": "function", "function": {"name": ..., "parameters": ...}}')
    if entry.get("type") != "function":
        raise DatasetError(f"{where}: \"type\" must be \"function\" (got {entry.get('type')!r})")
    fn = entry.get("function")
    if not isinstance(fn, dict):
        raise DatasetError(f"{where}: \"function\" must be an object with \"name\" and \"parameters\"")
    name = fn.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DatasetError(f"{where}: function \"name\" must be 1-64 letters, digits, '_' or '-' (got {name!r})")
    if "description" in fn and not isinstance(fn["description"], str):
        raise DatasetError(f"{where}: function {name!r}: \"description\" must be a string")
    params = fn.get("parameters")
    if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
        raise DatasetError(f"{where}: function {name!r}: \"parameters\" must be a JSON Schema object "
                           '({"type": "object", "properties": {...}})')
    if params is not None and not isinstance(params.get("properties", {}), dict):
        raise DatasetError(f"{where}: function {name!r}: \"parameters.properties\" must be an object")
    unknown = set(fn) - {"name", "description", "parameters", "strict"}
    if unknown:
        raise DatasetError(f"{where}: function {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
    return entry


def _entries(path: Path) -> list[tuple[str, Any]]:
    """(where, entry) of a JSON list or a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"tools file {path}: cannot be read ({exc.__class__.__name__}: {exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"tools file {path}: invalid JSON ({exc})") from None
        return [(f"tools file {path}: tool {i}", row) for i, row in enumerate(rows)]
    out: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"tools file {path}: line {n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"tools file {path}: line {n} is not JSON ({exc.msg}); give a JSON list of "
                               "tools, or one tool per line") from None
    return out


def load_tools(source: str) -> tuple[dict[str, Any], ...]:
    """The tools of ``source`` ("synthetic" or a file), checked; DatasetError (one line) when unusable."""
    if source == SYNTHETIC_TOOLS_NAME:
        return SYNTHETIC_TOOLS
    path = Path(source).expanduser()
    if not path.is_file():
        raise DatasetError(f"tools file not found: {source!r} (give a JSON/JSONL file of OpenAI tools, or 'synthetic')")
    tools = tuple(check_tool(entry, where) for where, entry in _entries(path))
    if not tools:
        raise DatasetError(f"tools file {path}: no tools in it")
    names = tool_names(tools)
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise DatasetError(f"tools file {path}: function name {dup!r} is defined twice")
    return tools
