"""Multi-turn sessions as prompts: a session is one :class:`Prompt` whose ``turns`` are its user
turns in order (``text`` is the first) and whose ``replies`` are the dataset's recorded assistant
turns (for ``--history recorded``). The run's session loop (run/sessions.py) sends the turns one
after another, each with the whole history; this module only reads and builds them.

Dataset rows: OpenAI ``messages`` (role/content) or ShareGPT ``conversations`` (from/value). Each
user turn is a turn; the assistant turns between two user turns are its recorded reply; system
messages before the first user turn lead every turn's history. Synthetic sessions join two
synthetic plans (prompts/synthetic.py): the first turns, and the later turns, which are exact
token counts of their own (no template overhead: a request has one template, counted in turn 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadtest.errors import DatasetError
from loadtest.prompts.sources import Prompt, _content_text, _usable, read_rows

_USER = frozenset({"human", "user"})
_ASSISTANT = frozenset({"assistant", "gpt", "model", "bot", "chatgpt"})


def session_of_row(row: Any) -> tuple[list[dict[str, str]], list[str], list[str | None]] | None:
    """(leading system messages, user turns, recorded replies) of one row, or None without a user turn."""
    if not isinstance(row, dict):
        return None
    turns = next((row[k] for k in ("messages", "conversations") if isinstance(row.get(k), list)), None)
    if not turns:
        return None
    system: list[dict[str, str]] = []
    users: list[str] = []
    replies: list[str | None] = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = turn.get("role", turn.get("from"))
        text = _usable(_content_text(turn.get("content", turn.get("value"))))
        if not isinstance(role, str) or text is None:
            continue
        role = role.lower()
        if role in _USER:
            users.append(text)
            replies.append(None)
        elif role in _ASSISTANT and users:
            replies[-1] = text if replies[-1] is None else replies[-1] + "\n" + text
        elif role == "system" and not users:
            system.append({"role": "system", "content": text})
    return (system, users, replies) if users else None


def sessions_from_rows(rows: Iterable[Any], where: str, *, prefix: str, recorded: bool) -> list[Prompt]:
    """One session per usable row; with ``recorded`` every user turn but the last needs its reply."""
    out: list[Prompt] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        parts = session_of_row(row)
        if parts is None:
            continue
        system, users, replies = parts
        raw = row.get("id")
        pid = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).strip() \
            else f"{prefix}-{index}"
        while pid in seen:
            pid = f"{pid}-{index}"
        seen.add(pid)
        if recorded and any(r is None for r in replies[:-1]):
            raise DatasetError(f"{where}: row {index} ({pid}) has a user turn without a recorded assistant reply "
                               "after it: --history recorded needs one between every two user turns")
        out.append(Prompt(id=pid, text=users[0], messages=tuple(system) or None, turns=tuple(users),
                          replies=tuple(replies)))
    if not out:
        raise DatasetError(f"{where}: no conversation with a user turn ('messages' with role/content, or "
                           "'conversations' with from/value)")
    return out


def load_sessions(source: str, *, recorded: bool) -> list[Prompt]:
    """The sessions of a prompt file (--multi-turn); DatasetError (one line) when it has none."""
    if source in ("builtin", "lima"):
        raise DatasetError(f"--multi-turn needs a file of conversations (--dataset FILE), not {source!r}")
    rows, path = read_rows(source)
    return sessions_from_rows(rows, str(path), prefix=path.stem, recorded=recorded)


def join_synthetic(first: list[Prompt], later: list[Prompt], turns: int) -> list[Prompt]:
    """Session i: first[i], then later[i*(turns-1) : (i+1)*(turns-1)]; the first turn's id (so the
    synthetic length check of the first turns keys on it)."""
    n = turns - 1
    return [Prompt(id=p.id, text=p.text, turns=(p.text, *(q.text for q in later[i * n:(i + 1) * n])))
            for i, p in enumerate(first)]
