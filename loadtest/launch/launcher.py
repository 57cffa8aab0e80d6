"""Start an inference engine behind an OpenAI-style endpoint for a benchmark, and always stop it.

    with launch(LaunchSpec("llamacpp")) as server:
        run_benchmark(server.base_url, server.model_name)
        results["server"] = {**server.info, "resources": server.resources()}

A benchmark result is only reproducible if it says exactly how the server was started, on what
weights and machine, and what it cost in memory and CPU: `RunningServer.info` is that record.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

from loadtest.errors import LaunchError
from loadtest.launch.engines import EngineCommand, get_engine
from loadtest.launch.envs import find_env
from loadtest.launch.hostinfo import host_info
from loadtest.launch.models import ResolvedModel, dir_size, resolve_model
from loadtest.launch.monitor import ResourceMonitor
from loadtest.launch.pins import PinCheck
from loadtest.launch.process import ManagedProcess, free_port, http_ready, probe_host, shell_command
from loadtest.launch.spec import LaunchSpec

__all__ = ["LaunchSpec", "RunningServer", "launch", "ensure_engine", "LaunchError"]


def ready_timeout(spec: LaunchSpec, cmd: EngineCommand, model_bytes: int | None) -> float:
    """60 s plus 30 s per GB of weights, at least the engine's own floor (vLLM compiles: 300 s)."""
    if spec.ready_timeout_s is not None:
        return spec.ready_timeout_s
    gb = (model_bytes or 0) / 1e9
    return max(cmd.min_ready_timeout_s, 60.0 + 30.0 * math.ceil(gb * 10) / 10)


class RunningServer:
    """A ready engine: where to send requests, what to call the model, and the record of its start."""

    def __init__(self, *, base_url: str, model_name: str, accepted_fields: frozenset[str], info: dict,
                 process: ManagedProcess, monitor: ResourceMonitor | None) -> None:
        self.base_url = base_url
        self.model_name = model_name
        self.accepted_fields = accepted_fields
        self.info = info
        self._process = process
        self._monitor = monitor

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def resources(self) -> dict:
        """The resource monitor's summary so far, with a fresh sample while the engine runs (also
        valid after stop)."""
        if self._monitor is None:
            return {}
        if self._process.alive():
            self._monitor.sample_quietly()
        return self._monitor.summary()

    def alive(self) -> bool:
        return self._process.alive()

    def log_tail(self, lines: int = 20) -> str:
        return self._process.log_tail(lines)

    def stop(self) -> None:
        """Stop the engine and its whole process tree; safe to call more than once."""
        if self._monitor:
            self._monitor.stop()
        self._process.stop()


def ensure_engine(engine: str) -> Path:
    """The program that runs `engine`: its venv's python (llama-server or docker where those are used).

    Raises LaunchError naming the `make` target when the engine is not installed.
    """
    return get_engine(engine).ensure()


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while an engine runs, so `finally` blocks stop it.

    Only where SIGTERM still has its default action (which would kill us without cleanup) and in
    the main thread (the only place Python can set handlers).
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) \
            is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _quantisation(model: ResolvedModel, cmd: EngineCommand) -> str | None:
    if cmd.served_path is not None and model.quantisation:
        # the engine loads a dequantised export: say so rather than claim it ran the quantised file
        return f"{cmd.settings.get('dtype') or 'float32'} (dequantised from {model.quantisation})"
    return model.quantisation


def pin_check(engine: str, cmd: EngineCommand) -> PinCheck | None:
    """The engine environment about to run against its pins (None where loadtest did not build
    it: a llama-server binary, a Docker image)."""
    from loadtest.launch.install import pin_check as check

    if cmd.variant in ("llama-server",) or engine == "tgi":
        return None
    env = find_env(engine)
    return check(env) if env is not None else None


@contextlib.contextmanager
def launch(spec: LaunchSpec) -> Iterator[RunningServer]:
    """Start the engine, wait until it serves, yield it, and stop it whatever happens."""
    engine = get_engine(spec.engine)
    engine.ensure()
    model = resolve_model(spec.model, pythons=engine.pythons())
    port = spec.port or free_port(spec.host)
    cmd = engine.command(spec, model, port)
    weights = max(model.file_size_bytes or 0,
                  dir_size(cmd.served_path) if cmd.served_path and cmd.served_path.is_dir() else 0)
    timeout = ready_timeout(spec, cmd, weights)
    pinned = pin_check(spec.engine, cmd)
    if pinned is not None and not pinned.matches:
        print(f"loadtest: warning: engine {spec.engine} differs from its pins ({pinned.file}): {pinned.describe()}; "
              f"its results may not match another machine's (`loadtest engine install {spec.engine} --force` "
              "installs the pinned versions)", file=sys.stderr, flush=True)
    log_dir = Path(spec.log_dir)
    log_path = (log_dir / f"server-{spec.engine}-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log").resolve()
    proc = ManagedProcess(cmd.argv, env=cmd.env, log_path=log_path, cwd=Path.cwd(), grace_s=spec.stop_grace_s,
                          name=f"engine {spec.engine}", cleanup_argv=cmd.cleanup_argv)
    monitor: ResourceMonitor | None = None
    with _sigterm_as_exit():
        try:
            proc.start()
            assert proc.pid is not None
            monitor = ResourceMonitor(proc.pid).start()
            host = probe_host(spec.host)
            ready_s = proc.wait_ready(lambda: http_ready(host, port, cmd.ready_path), timeout)
            url_host = f"[{host}]" if ":" in host else host
            info = {
                "engine": spec.engine,
                "engine_version": engine.version(cmd),
                "engine_pins": pinned.record() if pinned is not None else None,
                "engine_variant": cmd.variant,
                "launch_command": {"argv": cmd.argv, "env": cmd.env, "shell": shell_command(cmd.argv, cmd.env),
                                   "cwd": str(Path.cwd())},
                "base_url": f"http://{url_host}:{port}/v1",
                "model_name": cmd.model_name,
                "model": {**model.record(),
                          **({"served_path": str(cmd.served_path)} if cmd.served_path else {})},
                "quantisation": _quantisation(model, cmd),
                "threads": cmd.settings.get("threads"),
                "slots": cmd.settings.get("slots"),
                "ctx_size": cmd.settings.get("ctx_size"),
                "dtype": cmd.settings.get("dtype"),
                "attn_implementation": cmd.settings.get("attn_implementation"),
                "compile": cmd.settings.get("compile", False),
                "settings": cmd.settings,
                "host": host_info(),
                "log_path": str(log_path),
                "ready_timeout_s": timeout,
                "ready_s": round(ready_s, 3),
                "pid": proc.pid,
            }
            server = RunningServer(base_url=info["base_url"], model_name=cmd.model_name,
                                   accepted_fields=cmd.accepted_fields, info=info, process=proc, monitor=monitor)
            yield server
        finally:
            if monitor is not None:
                monitor.stop()
            proc.stop()
