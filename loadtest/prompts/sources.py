"""The prompt stage: turn a prompt source into a list of :class:`Prompt` and sample from it.

Only the first user turn of each conversation is sent, unless ``--multi-turn`` runs each
conversation as a session (prompts/sessions.py): later turns need the model's own earlier answers
to be meaningful (the session loop sends them), and replaying a dataset's recorded assistant turns
(``--history recorded``) measures a conversation the server never had, said so in the config.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from loadtest.errors import DatasetError
from loadtest.prompts.media import Media, row_media

#: The builtin set, read through importlib.resources so it is found in a wheel as in a checkout:
#: ``datasets/builtin.jsonl`` is kept (and documented) in the repository, ``loadtest/_data`` links
#: to it, and a built wheel carries a copy.
BUILTIN_PATH = Path(str(resources.files("loadtest.prompts") / "builtin.jsonl"))

LIMA_REPO = "GAIR/lima"
_LIMA_JSONL = f"hf://datasets/{LIMA_REPO}/train.jsonl"

_USER_ROLES = frozenset({"human", "user"})
_SCHEMA_HINT = "each row needs a first user turn in 'conversations', 'items', 'messages', 'prompt' or 'text'"


@dataclass(frozen=True)
class Prompt:
    """One prompt to send.

    ``id`` is stable across runs so per-request records from two runs (or two engines)
    can be joined on it: ``b001`` for builtin, ``lima-<row>`` for LIMA, and for files the
    row's own ``id`` field if it has one, else ``<file stem>-<row>`` (``row`` is the
    0-based position among the file's rows, blank JSONL lines not counted).
    """

    id: str
    text: str
    max_tokens: int | None = None
    """The output length this prompt asks for, over the run's --max-tokens (a trace row's own)."""
    messages: tuple[dict[str, Any], ...] | None = None
    """Chat messages sent as they are, instead of ``text`` as one user turn (a trace row's own; for a
    session, the system messages that come before its first user turn)."""
    turns: tuple[str, ...] | None = None
    """A multi-turn session's user turns in order (the first is ``text``); None: one request."""
    replies: tuple[str | None, ...] | None = None
    """A dataset session's recorded assistant reply after each user turn (None where it has none)."""
    turn_max_tokens: tuple[int, ...] | None = None
    """A trace session's output length per turn (each row's own); None: ``max_tokens`` for every turn."""
    turn_offsets_s: tuple[float, ...] | None = None
    """A trace session's replayed turn offsets, seconds after its first turn's: a later turn whose
    previous reply came earlier is held until its own (prompts/tracesessions.py)."""
    inputs: tuple[str, ...] | None = None
    """--api embeddings: the texts the request embeds (``text`` is the first); --api rerank: the
    documents scored against the query, which is ``text`` (prompts/batches.py)."""
    media: Media | None = None
    """Images and audio the request carries (prompts/media.py); None: text only."""


def load_prompts(source: str = "builtin", *, builtin_path: Path | None = None) -> list[Prompt]:
    """Load every usable prompt from ``source``: ``"builtin"``, ``"lima"``, or a file path.

    Files may be ``.jsonl``, ``.json`` (a list of rows, or ``{"data": [...]}``) or
    ``.parquet``. Rows may follow the LIMA, ShareGPT, OpenAI-``messages``, ``prompt`` or
    ``text`` schema; rows without a usable user turn are skipped rather than failing the
    run, because real-world dumps routinely contain a few empty or assistant-first rows.

    Raises DatasetError (one line, meant for the user) when the source cannot be read or
    yields no prompt at all.
    """
    if source == "builtin":
        path = builtin_path if builtin_path is not None else BUILTIN_PATH
        if not path.is_file():
            raise DatasetError(
                f"builtin prompt set not found at {path}: this loadtest installation is incomplete "
                "(reinstall it), or pass a prompt file with --dataset"
            )
        return _prompts_from_rows(_read_jsonl(path), str(path), default_prefix="builtin")
    if source == "lima":
        return _prompts_from_rows(_load_lima_rows(), "LIMA", default_prefix="lima", use_row_ids=False)

    rows, path = read_rows(source)
    return _prompts_from_rows(rows, str(path), default_prefix=path.stem)


def read_rows(source: str) -> tuple[Iterable[Any], Path]:
    """The rows of a prompt file (.jsonl, .json, .parquet) and its path; DatasetError (one line)
    when it cannot be read. (Multi-turn sessions read their conversations through it too.)"""
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"prompt source not found: {source!r} (expected 'builtin', 'lima', or a .jsonl/.json/.parquet file)"
        )
    if not path.is_file():
        raise DatasetError(f"prompt source is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows: Iterable[Any] = _read_jsonl(path)
    elif suffix == ".json":
        rows = _read_json(path)
    elif suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        kind = path.suffix or "(none)"
        raise DatasetError(f"unsupported prompt file type {kind!r} for {path}; use .jsonl, .json or .parquet")
    return rows, path


def sample_prompts(prompts: Sequence[Prompt], n: int, seed: int) -> list[Prompt]:
    """Pick ``n`` prompts, reproducibly.

    Rule: the prompts are shuffled with ``random.Random(seed)``. If n <= the number of
    prompts, the result is the first n of that one permutation, so no prompt repeats.
    If n is larger, further permutations are drawn from the same generator and appended
    (each pass uses every prompt exactly once, in its own independently shuffled order),
    and the concatenation is cut at n.

    Consequences worth relying on: the same prompts (in the same order), n and seed always
    give the same list; a smaller n is a prefix of a larger one with the same seed; and a
    prompt repeats only after every other prompt has been used as often, which keeps
    servers' prefix caches from being fed easy repeats early.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return []
    if not prompts:
        raise DatasetError("no prompts to sample from")
    rng = random.Random(seed)
    out: list[Prompt] = []
    while len(out) < n:
        permutation = list(prompts)
        rng.shuffle(permutation)
        out.extend(permutation)
    return out[:n]


# --- readers -------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[Any]:
    """Yield one row per non-blank line; a bad line is fatal because the file is not what the user thinks it is."""
    with _reading(path), path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}: line {lineno}: invalid JSON ({e.msg} at column {e.colno})") from None


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """File-level failures of any text reader, as one line for the user."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None


def _read_json(path: Path) -> list[Any]:
    """Accept both a bare list and the ``{"data": [...]}`` wrapper that many exporters write."""
    with _reading(path):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return doc["data"]
    if isinstance(doc, list):
        return doc
    raise DatasetError(f"{path}: expected a JSON list of rows or an object with a \"data\" list")


def _read_parquet(path: Path) -> list[Any]:
    """Read via pyarrow (a dependency of ``datasets``), imported here so other sources never pay for it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading .parquet prompt files needs pyarrow (pip install datasets)") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise DatasetError(f"{path}: cannot read Parquet ({type(e).__name__}: {_first_line(e)})") from None


def _load_lima_rows() -> list[Any]:
    """Fetch LIMA's train split; every failure becomes one actionable line.

    The hub repository has carried a loading script, which ``datasets`` >= 4 refuses to
    run (and 3.x runs only with ``trust_remote_code``), so when the canonical call fails
    for that reason we read the same ``train.jsonl`` as plain JSON instead.
    """
    # The hub client logs each retry ("Retrying in 8s...") before failing; the one line below says
    # what matters, so its chatter is silenced for the duration of the load.
    quiet: list[logging.Logger] = []
    levels: list[int] = []
    try:
        import datasets  # imports huggingface_hub, which sets its loggers' levels on import

        quiet = [logging.getLogger(name) for name in ("huggingface_hub", "datasets", "fsspec")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            ds = datasets.load_dataset(LIMA_REPO, split="train")
        except Exception as e:
            text = str(e).lower()
            if "script" not in text and "remote_code" not in text and "custom code" not in text:
                raise
            ds = datasets.load_dataset("json", data_files=_LIMA_JSONL, split="train")
        return list(ds)
    except Exception as e:
        raise DatasetError(
            f"cannot load LIMA ({type(e).__name__}: {_first_line(e)}). {LIMA_REPO} is gated on the Hugging Face "
            f"hub (CC-BY-NC-SA): accept its terms at https://huggingface.co/datasets/{LIMA_REPO}, then run "
            "`huggingface-cli login` or set HF_TOKEN; `--dataset builtin` works offline"
        ) from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


# --- row parsing -----------------------------------------------------------------------------


def _prompts_from_rows(
    rows: Iterable[Any], where: str, *, default_prefix: str, use_row_ids: bool = True
) -> list[Prompt]:
    """Build prompts with unique ids; duplicate row ids get ``-<row>`` appended so records stay joinable."""
    prompts: list[Prompt] = []
    seen: set[str] = set()
    total = 0
    for row_index, row in enumerate(rows):
        total += 1
        if not isinstance(row, dict):
            continue
        text = first_user_turn(row)
        media = row_media(row, Path(where).parent, where, row_index)  # image/audio fields, read now
        if text is None and media is None:
            continue
        raw_id = row.get("id") if use_row_ids else None
        if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
            pid = str(raw_id)
        else:
            pid = f"{default_prefix}-{row_index}"
        while pid in seen:
            pid = f"{pid}-{row_index}"
        seen.add(pid)
        prompts.append(Prompt(id=pid, text=text or "", media=media))
    if not prompts:
        raise DatasetError(f"{where}: no usable prompts in {total} rows ({_SCHEMA_HINT})")
    if len(prompts) < total:  # said once, so a dump with many unusable rows is not sampled unknowingly
        print(f"loadtest: {where}: skipped {total - len(prompts)} of {total} rows without a usable first user turn",
              file=sys.stderr)
    return prompts


def first_user_turn(row: dict[str, Any]) -> str | None:
    """Return the first user message of a row in any accepted schema, or None if it has none.

    Schemas are tried in a fixed order (conversations, items, messages, prompt, text) so a
    row that carries several fields is always read the same way.
    """
    for key in ("conversations", "items"):
        turns = row.get(key)
        if isinstance(turns, list) and turns:
            if isinstance(turns[0], str):  # LIMA: plain strings, user first
                return _usable(turns[0])
            text = _first_user_in_turns(turns)
            if text is not None:
                return text
    messages = row.get("messages")
    if isinstance(messages, list):
        text = _first_user_in_turns(messages)
        if text is not None:
            return text
    for key in ("prompt", "text"):
        text = _usable(row.get(key))
        if text is not None:
            return text
    return None


def _first_user_in_turns(turns: list[Any]) -> str | None:
    """ShareGPT uses from/value, OpenAI uses role/content; accept either spelling in either list."""
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = turn.get("from", turn.get("role"))
        if not isinstance(role, str) or role.lower() not in _USER_ROLES:
            continue
        return _usable(_content_text(turn.get("value", turn.get("content"))))
    return None


def _content_text(content: Any) -> Any:
    """OpenAI content may be a list of parts; only text parts can be sent to a text model."""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return content


def _usable(text: Any) -> str | None:
    """Blank prompts would measure the chat template, not the engine, so they count as missing."""
    return text if isinstance(text, str) and text.strip() else None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else "no message"
