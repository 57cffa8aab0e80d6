"""What `compare` compares, which way is better, and how each is tested.

kinds:
- ``request``: one value per completed request (TTFT, TPOT, e2e, tokens/s per request); the
  median is tested with Mann-Whitney U, the tails (p90, p99) with the bootstrap of the percentile
  difference; the interval is the bootstrap's in both cases.
- ``token``: ITL, one value per token, clustered by request: the bootstrap resamples requests
  whole (a request's tokens are not independent draws), so it is the test too.
- ``errors``: the share of failed requests: Fisher's exact test; the change is in percentage points.
- ``rate``: one value per run (output tokens/s, requests/min, goodput; inputs/s, documents/s and
  prompt tokens/s of embeddings and rerank; images/s; audio seconds/s and the run's RTFx mean of
  transcriptions): Welch's t over repeats;
  with one run on a side there is no run-to-run variance, so no test.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER, HIGHER = "lower", "higher"
TAIL_MIN_BEYOND = 5
"""A tail percentile pNN is tested only when each side has at least this many values beyond it
(p99: 500 values): the bootstrap of an extreme order statistic is not to be trusted below."""


@dataclass(frozen=True)
class Metric:
    name: str            # summary/record field, or "error_rate"
    stat: str | None     # p50/p90/p99 for request and token metrics; None otherwise
    kind: str            # request, token, errors, rate
    better: str          # LOWER or HIGHER
    label: str
    unit: str
    scale: float = 1.0   # display = value * scale

    @property
    def key(self) -> str:
        return f"{self.name}:{self.stat}" if self.stat else self.name

    @property
    def points(self) -> bool:
        """The change is in percentage points (a share that may start at 0), not in percent."""
        return self.kind == "errors"


def _latency(name: str, label: str, kind: str = "request") -> list[Metric]:
    return [Metric(name, stat, kind, LOWER, f"{label} {stat}", "ms", 1e3) for stat in ("p50", "p90", "p99")]


METRICS: tuple[Metric, ...] = (
    Metric("output_tokens_per_s", None, "rate", HIGHER, "output tokens/s", "tok/s"),
    Metric("requests_per_min", None, "rate", HIGHER, "requests/min", "req/min"),
    Metric("goodput_requests_per_min", None, "rate", HIGHER, "goodput", "req/min"),
    Metric("tokens_per_s", "p50", "request", HIGHER, "tokens/s per request p50", "tok/s"),
    *_latency("ttft_s", "TTFT"),
    *_latency("tpot_s", "TPOT"),
    *_latency("itl_s", "ITL", kind="token"),
    *_latency("e2e_s", "e2e"),
    Metric("error_rate", None, "errors", LOWER, "error rate", "%", 100.0),
    # embeddings and rerank, images, transcriptions: a run without them has none, and is not compared on them
    Metric("inputs_per_s", None, "rate", HIGHER, "inputs/s", "inputs/s"),
    Metric("documents_per_s", None, "rate", HIGHER, "documents/s", "docs/s"),
    Metric("prompt_tokens_per_s", None, "rate", HIGHER, "prompt tokens/s", "tok/s"),
    Metric("images_per_s", None, "rate", HIGHER, "images/s", "images/s"),
    Metric("audio_seconds_per_s", None, "rate", HIGHER, "audio seconds/s", "audio s/s"),
    Metric("rtfx", "mean", "rate", HIGHER, "RTFx mean (per run)", "x"),
    Metric("rtfx", "p50", "request", HIGHER, "RTFx per request p50", "x"),
)
RUN_RATES: tuple[Metric, ...] = tuple(m for m in METRICS if m.kind == "rate")
"""The run-level metrics: each run's value from its summary.json (metrics.NAME, or metrics.NAME.STAT;
goodput from its slo block), one value per run."""
BY_KEY = {m.key: m for m in METRICS}
ALIASES = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "itl_s", "e2e": "e2e_s", "errors": "error_rate",
           "goodput": "goodput_requests_per_min", "throughput": "output_tokens_per_s",
           "output_tokens": "output_tokens_per_s", "rpm": "requests_per_min", "inputs": "inputs_per_s",
           "documents": "documents_per_s", "images": "images_per_s", "audio_seconds": "audio_seconds_per_s"}
NAMES = sorted({m.name for m in METRICS})


def find(name: str, stat: str | None) -> Metric:
    """The metric a --fail-if rule names (an alias such as ttft, or the field name), or ValueError
    with the names it could have meant."""
    full = ALIASES.get(name, name)
    stats = [m.stat for m in METRICS if m.name == full]
    if not stats:
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(NAMES)}; or ttft, tpot, itl, e2e, errors, "
                         "goodput, inputs, documents, images, audio_seconds)")
    if stat is None and stats != [None]:
        raise ValueError(f"{name} needs a statistic: " + ", ".join(f"{name}:{s}" for s in stats))
    if stat not in stats:
        raise ValueError(f"{name} has no statistic {stat!r}" + (
            f" (give {', '.join(f'{name}:{s}' for s in stats)})" if stats != [None] else " (it is one number per run)"))
    return BY_KEY[f"{full}:{stat}" if stat else full]
