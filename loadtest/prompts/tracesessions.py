"""A trace's sessions (``session_id``, in our JSONL and in Mooncake rows): rows that share an id are
one conversation, replayed as a multi-turn session (run/sessions.py) rather than as independent
requests. Pure: rows in, jobs and prompts out; the replay's timing stays in scheduler/replay.py.

The rules, each chosen so a replay cannot measure a conversation the server never had:

- A session's rows are its turns in offset order (rows of one instant in the file's order); the
  session starts at its first row's offset, a job of the open loop like any loose row.
- A window (--trace-window) keeps or drops a session whole, by its first row's offset: cutting it
  would send later turns whose history never happened.
- A turn is the row's new user message. A row with ``messages`` gives its *last* user message's
  text; the first row's messages before that one lead the conversation (system prompt, earlier
  context), a later row's are ignored (the history is the one this replay had: the earlier turns
  and the server's actual replies). A row with ``prompt_tokens`` (Mooncake ``input_length``) has
  its turn synthesised at exactly that many tokens; the first turn has the chat template's tokens
  taken off as any row has, a later one not (a request has one template, counted in turn 0).
- Each turn asks its own row's output length, and is sent no earlier than its own replayed offset
  (``turn_offsets_s``, seconds after the first turn's), never before the previous reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.errors import DatasetError
from loadtest.prompts.sources import Prompt, _content_text, _usable
from loadtest.prompts.trace import TraceRow


@dataclass(frozen=True)
class Job:
    """What the open loop starts: a loose row, or a session's rows in turn order (``rows``:
    positions into the replayed rows; ``session_id``: the trace's id, None for a loose row)."""

    rows: tuple[int, ...]
    session_id: str | None = None


def window_keys(rows: Sequence[TraceRow]) -> list[float]:
    """The offset each row is windowed by: its own, or its session's first row's (rows sorted by
    offset, so the first row seen of a session is its first)."""
    first: dict[str, float] = {}
    return [r.offset_s if r.session_id is None else first.setdefault(r.session_id, r.offset_s) for r in rows]


def group_jobs(rows: Sequence[TraceRow]) -> list[Job]:
    """The replay's jobs in start order: each loose row its own, each session one (at its first row)."""
    order: list[list[int]] = []
    ids: list[str | None] = []
    where: dict[str, int] = {}
    for i, r in enumerate(rows):
        if r.session_id is not None and r.session_id in where:
            order[where[r.session_id]].append(i)
            continue
        if r.session_id is not None:
            where[r.session_id] = len(order)
        order.append([i])
        ids.append(r.session_id)
    return [Job(tuple(members), sid) for members, sid in zip(order, ids)]


def later_turns(jobs: Sequence[Job]) -> frozenset[int]:
    """Rows replayed as a later turn of a session (after its first): chained to the previous reply."""
    return frozenset(i for j in jobs if j.session_id is not None for i in j.rows[1:])


def turn_of(row: TraceRow, where: str) -> tuple[tuple[dict[str, Any], ...], str]:
    """(the messages before the row's last user message, that message's text): a session row's turn.
    DatasetError ``FILE:LINE: ...`` when it has no user message with text."""
    messages = row.messages or ()
    for k in range(len(messages) - 1, -1, -1):
        if str(messages[k].get("role", "")).lower() == "user":
            text = _usable(_content_text(messages[k].get("content")))
            if text is None:
                break
            return tuple(messages[:k]), text
    raise DatasetError(f"{where}:{row.line}: a row of session {row.session_id!r} needs a last user message with "
                       "text (it is the turn)")


def job_prompts(rows: Sequence[TraceRow], prompts: Sequence[Prompt], jobs: Sequence[Job], times: Sequence[float],
                where: str) -> list[Prompt]:
    """One prompt per job: a loose row's own (``prompts[i]``, one per row), or a session whose
    ``turns`` are its rows' turns, ``turn_max_tokens`` their output lengths and ``turn_offsets_s``
    their replayed ``times`` after the first. The session's id is its first row's prompt id."""
    out: list[Prompt] = []
    for job in jobs:
        first = job.rows[0]
        if job.session_id is None:
            out.append(prompts[first])
            continue
        lead: tuple[dict[str, Any], ...] = ()
        texts: list[str] = []
        for i in job.rows:
            if rows[i].messages is None:
                texts.append(prompts[i].text)
                continue
            before, text = turn_of(rows[i], where)
            if i == first:
                lead = before
            texts.append(text)
        out.append(Prompt(id=prompts[first].id, text=texts[0], max_tokens=rows[first].output_tokens,
                          messages=lead or None, turns=tuple(texts),
                          turn_max_tokens=tuple(rows[i].output_tokens for i in job.rows),
                          turn_offsets_s=tuple(times[i] - times[first] for i in job.rows)))
    return out
