"""The runs table's columns for the non-chat workloads: embeddings and rerank (inputs/s,
documents/s, prompt tokens/s), images (images/s) and transcriptions (RTFx, audio seconds per
second). Each column appears only when some run in the table has it, as the server columns do;
a run without it shows ``-``.

Embeddings and rerank are not generations: they have no TTFT, TPOT or output tokens. When every
run of the table is one of them, the generation columns are left out rather than shown empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loadtest.config import POOLING_APIS
from loadtest.measure.metrics import summarize
from loadtest.report.load import SavedRun, dig

# (key in the runs table's row, label, digits, scale): run-level rates from summary.json's metrics
RATE_COLUMNS: tuple[tuple[str, str, int, float], ...] = (
    ("inputs_per_s", "inputs/s", 1, 1.0),
    ("documents_per_s", "docs/s", 1, 1.0),
    ("prompt_tokens_per_s", "prompt tok/s", 1, 1.0),
    ("images_per_s", "images/s", 2, 1.0),
    ("rtfx_mean", "RTFx mean", 1, 1.0),
    ("audio_seconds_per_s", "audio s/s", 2, 1.0),
)
GENERATION_KEYS = ("tokens_per_s_mean", "tokens_per_s_p50", "output_tokens_per_s", "ttft_p50_s", "ttft_p99_s",
                   "tpot_p50_s", "tpot_p99_s")
"""The columns an embeddings or rerank run never has (left out when every run is one)."""

POOLING_LABELS = {"inputs_per_s": "inputs/s (embeddings)", "documents_per_s": "docs/s (rerank)",
                  "prompt_tokens_per_s": "prompt tok/s (embeddings, rerank)"}
POOLING_NOTE = ": over the measured window; embeddings and rerank have no TTFT, TPOT or output tokens (not a generation)"
IMAGE_NOTE = "images/s: images sent with the completed requests, over the measured window"
AUDIO_NOTE = ("RTFx: audio seconds / end-to-end seconds per request (higher is faster), mean over requests; audio s/s: "
              "audio transcribed per second of the measured window; a transcription's TTFT is its time to first text")


def is_pooling(run: SavedRun) -> bool:
    return dig(run.summary, "config", "api") in POOLING_APIS


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _rtfx_mean(runs: Sequence[SavedRun]) -> float | None:
    """One run: summary.json's rtfx mean; several (pooled, identical settings): the mean over all
    their requests, as the other per-request statistics are pooled."""
    if len(runs) == 1:
        return runs[0].metric("rtfx", "mean")
    values = [v for r in runs for rec in r.ok_records
              if isinstance(v := rec.get("rtfx"), (int, float)) and not isinstance(v, bool)]
    return float(summarize(values)["mean"]) if values else None


def group_rate_stats(runs: Sequence[SavedRun]) -> dict[str, float | None]:
    """The rate columns of one row: per-run rates averaged over the row's runs; prompt tokens/s
    only for embeddings and rerank (a chat run's prompt rate is not what its row is about)."""
    pooling = [r for r in runs if is_pooling(r)]
    return {
        "inputs_per_s": _mean([r.metric("inputs_per_s") for r in runs]),
        "documents_per_s": _mean([r.metric("documents_per_s") for r in runs]),
        "prompt_tokens_per_s": _mean([r.metric("prompt_tokens_per_s") for r in pooling]),
        "images_per_s": _mean([r.metric("images_per_s") for r in runs]),
        "rtfx_mean": _rtfx_mean(runs),
        "audio_seconds_per_s": _mean([r.metric("audio_seconds_per_s") for r in runs]),
    }


def present(stats: Sequence[dict[str, Any]]) -> list[str]:
    """The rate columns some row has a value for, in RATE_COLUMNS' order."""
    return [key for key, *_ in RATE_COLUMNS if any(s.get(key) is not None for s in stats)]


def notes_for(keys: Sequence[str]) -> list[str]:
    out = []
    pooling = [label for key, label in POOLING_LABELS.items() if key in keys]
    if pooling:
        out.append(", ".join(pooling) + POOLING_NOTE)
    if "images_per_s" in keys:
        out.append(IMAGE_NOTE)
    if {"rtfx_mean", "audio_seconds_per_s"} & set(keys):
        out.append(AUDIO_NOTE)
    return out
