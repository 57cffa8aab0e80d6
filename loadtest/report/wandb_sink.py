"""Optional sink: each saved run logged to Weights & Biases (summary numbers, config, and the
per-request table). Only when asked (``--wandb PROJECT``) and when `wandb` is installed; the local
files stay the record. ``WANDB_MODE=offline`` keeps everything on disk for a later `wandb sync`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from loadtest.errors import ConfigError
from loadtest.report.load import SavedRun

REQUEST_COLUMNS = ("id", "ok", "error_kind", "start_s", "end_s", "ttft_s", "e2e_s", "tpot_s", "tokens_per_s",
                   "decode_tokens_per_s", "completion_tokens", "prompt_tokens", "finish_reason")


def flat_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """metrics.ttft_s.p50 -> "ttft_s/p50"; scalar metrics and counts as they are."""
    out: dict[str, Any] = {}
    for name, value in (summary.get("metrics") or {}).items():
        if isinstance(value, dict):
            out.update({f"{name}/{k}": v for k, v in value.items() if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)):
            out[name] = value
    out.update({f"counts/{k}": v for k, v in (summary.get("counts") or {}).items() if isinstance(v, int)})
    return out


def log_runs(runs: Sequence[SavedRun], project: str) -> list[str]:
    """One W&B run per saved run; returns their local directories."""
    try:
        import wandb
    except ImportError:
        raise ConfigError("--wandb needs the wandb package: pip install wandb") from None
    dirs = []
    for r in runs:
        server = r.summary.get("server") if isinstance(r.summary.get("server"), dict) else {}
        config = {"command": r.command, "engine": r.engine, "model": r.model, "variant": r.variant,
                  **{f"config/{k}": v for k, v in (r.summary.get("config") or {}).items()},
                  **{f"server/{k}": server.get(k) for k in ("engine_version", "quantisation", "dtype", "threads",
                                                              "slots", "ctx_size", "compile") if k in server}}
        # dir and mode read from the environment on every call: wandb caches its settings per
        # process, so a second call with another WANDB_DIR would otherwise write to the first one.
        try:
            run = wandb.init(project=project, name=r.label, config=config, job_type=r.command,
                             dir=os.environ.get("WANDB_DIR") or None, mode=os.environ.get("WANDB_MODE") or None,
                             tags=[t for t in (r.engine, r.model, r.command) if t != "-"])
        except Exception as exc:  # wandb's own (no API key, offline, refused): the local files stand
            if not type(exc).__module__.startswith("wandb"):
                raise
            line = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"--wandb {project}: W&B refused to start a run ({line}); the results are saved in "
                              f"{r.path}: log them later with loadtest report {r.path} --wandb {project}") from None
        try:
            run.summary.update(flat_summary(r.summary))
            rows = [[rec.get(c) for c in REQUEST_COLUMNS] for rec in r.records]
            if rows:
                run.log({"requests": wandb.Table(columns=list(REQUEST_COLUMNS), data=rows)})
            dirs.append(str(run.dir))
        finally:
            run.finish()
    return dirs
