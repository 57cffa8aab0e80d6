"""The server a command runs against: the endpoint as given, or an engine started for it
(``--launch ENGINE``), pointed at and stopped afterwards whatever happens. Every run command
(single, throughput, sweep, capacity, tokens) goes through here."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from loadtest.config import RunConfig
from loadtest.launch.spec import LaunchSpec


@contextlib.contextmanager
def launched(spec: LaunchSpec | None, cfg: RunConfig) -> Iterator[tuple[RunConfig, Any]]:
    """(the config pointed at the server, the running engine or None). The engine gets the run's
    --model and logs into the run's directory; ignore_eos is sent only where the engine accepts it."""
    if spec is None:
        yield cfg, None
        return
    from loadtest.launch.launcher import launch
    from loadtest.run.execute import command_signals

    assert cfg.output_dir is not None
    with contextlib.ExitStack() as stack:
        with command_signals().abortable():  # a signal while the engine starts: it is stopped, no wait
            server = stack.enter_context(launch(replace(spec, model=cfg.model, log_dir=cfg.output_dir)))
        ignore_eos = cfg.ignore_eos and "ignore_eos" in server.accepted_fields
        if cfg.ignore_eos and not ignore_eos:
            print(f"loadtest: {spec.engine} does not accept ignore_eos; not sending it", file=sys.stderr)
        yield replace(cfg, base_url=server.base_url, model=server.model_name, ignore_eos=ignore_eos), server


def server_info(server: Any) -> Callable[[], dict[str, Any]] | None:
    """What summary.json's ``server`` block holds for a launched engine, sampled when asked."""
    if server is None:
        return None
    return lambda: {**server.info, "resources": server.resources()}
