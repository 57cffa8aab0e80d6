"""Where a run meets what is around it: where its records go, where the chunk texts for the
post-run count go, how its requests are scheduled, and the barriers it waits at.

A run on its own (the default, ``Hooks``) writes its own requests.jsonl, keeps its own side file,
runs the whole load shape and waits for nobody. A scale-out worker (scaleout/worker.py) overrides
each: it listens to the coordinator, records and chunk texts stream to it, the worker runs only its share of the
shape, and the start and the measured phase wait at the coordinator's barriers. The runner asks
these questions and nothing else, so it holds no scale-out branch of its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadtest.config import RunConfig
from loadtest.measure import retokenize
from loadtest.run.output import RecordWriter
from loadtest.scheduler import phases

START, MEASURED = "start", "measured"
"""The barriers: before the first request (after connections are open), and between a counted
warm-up and the measured requests."""


class Hooks:
    """A run on its own."""

    samples_server = True
    """Whether this process samples the server's /metrics (a scale-out worker leaves it to its
    coordinator: one scraper per run, not per worker)."""

    async def open(self) -> None:
        """The run's event loop is up (the first thing the run does): a worker starts listening to
        its coordinator here. Alone: nothing to do."""

    def record_writer(self, directory: Path) -> RecordWriter:
        return RecordWriter(directory)

    def text_log(self, directory: Path, cfg: RunConfig, tokenizer_given: bool) -> retokenize.TextLog | None:
        return retokenize.text_log(directory, cfg.stream, tokenizer_given)

    async def barrier(self, point: str) -> None:
        """Wait at ``point`` (START or MEASURED) until the run may go on: at once when alone."""

    async def run_shape(self, cfg: RunConfig, job: phases.Job, *, count: int | None, deadline_ns: int | None,
                        stop: asyncio.Event, first_index: int = 0, origin_ns: int, with_warmup: bool = False,
                        held: phases.Backlog | None = None) -> str:
        """The whole load shape (scheduler/phases.py)."""
        return await phases.run_shape(cfg, job, count=count, deadline_ns=deadline_ns, stop=stop,
                                      first_index=first_index, origin_ns=origin_ns, with_warmup=with_warmup, held=held)
