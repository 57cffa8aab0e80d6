"""Every run directory is a recipe (``loadtest rerun DIR``): its summary.json's ``config`` holds
every option the run measured with (config.json the same, less the endpoint, for a run that crashed
before writing a summary), so the run can be repeated exactly: the same prompts in the same seeded
order, the same load shape and schedule, the same request bodies byte for byte. What a result file
never holds is given again: the API key (only whether one was sent) and the values of auth-like
headers.

Result files of other versions are read defensively: an option this version does not know is named
in a note and left out, one it knows but the file lacks keeps its default.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from loadtest.config import RunConfig
from loadtest.errors import ConfigError
from loadtest.judge import slo

RERUNNABLE = ("single", "throughput")
_MASKED = "***"
_OBJECTIVE = re.compile(r"^(?:(?P<stat>mean|max|p\d\d) )?(?P<label>[a-z0-9]+) <= "
                        r"(?P<value>[0-9.eE+-]+) (?P<unit>ms|s)$")


@dataclass
class Recipe:
    """What a run directory says about how to run it again."""

    directory: Path
    cfg: RunConfig
    model: str | None = None
    """The model the run sent (when it was discovered from /v1/models: the name found then)."""
    objectives: list[slo.Objective] = field(default_factory=list)
    attainment: float = slo.DEFAULT_ATTAINMENT
    repeat: dict[str, Any] | None = None
    """A --repeat group's repeat block (the group is run again with the same settings)."""
    engine: str | None = None
    """The engine loadtest launched for the run (its endpoint is gone with it)."""
    workers: int = 1
    key_sent: bool = False
    masked_headers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError:
        return None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else None


def load_recipe(directory: Path) -> Recipe:
    """The recipe of a run directory or a --repeat group; ConfigError (one line) when it is not one."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such run directory")
    summary = _read(directory / "summary.json") or {}
    saved = summary.get("config") if isinstance(summary.get("config"), dict) else _read(directory / "config.json")
    if not saved:
        if (directory / "sweep.json").is_file():
            raise ConfigError(f"{directory} is a sweep: rerun one of its levels (e.g. {directory}/concurrency-4), "
                              "or run the sweep again")
        raise ConfigError(f"{directory}: no summary.json or config.json (not a loadtest run directory)")
    command = saved.get("command") or summary.get("command")
    if command not in RERUNNABLE:
        raise ConfigError(f"{directory} is a {command or 'unknown'} run: rerun repeats single and throughput runs "
                          "(a sweep's or capacity's levels are throughput runs) and --repeat groups")
    cfg, notes, masked = config_from_json({**saved, "command": command})
    run = summary.get("run") if isinstance(summary.get("run"), dict) else {}
    server = summary.get("server") if isinstance(summary.get("server"), dict) else {}
    objectives, attainment = objectives_of(summary.get("slo"))
    workers = run.get("workers")
    return Recipe(directory=directory, cfg=cfg, model=cfg.model or run.get("model"), objectives=objectives,
                  attainment=attainment, repeat=summary.get("repeat") if isinstance(summary.get("repeat"), dict)
                  else None, engine=server.get("engine"), workers=len(workers) if isinstance(workers, list) and
                  workers else 1, key_sent=saved.get("api_key") not in (None, ""), masked_headers=masked, notes=notes)


def config_from_json(saved: dict[str, Any]) -> tuple[RunConfig, list[str], list[str]]:
    """(the RunConfig, notes on options left out, names of headers whose values were masked) from
    RunConfig.to_json's output: the conversions it made undone."""
    known = {f.name for f in fields(RunConfig)}
    notes = [f"option {k!r} of the saved run is unknown to this version of loadtest; left out"
             for k in saved if k not in known]
    d = {k: v for k, v in saved.items() if k in known}
    d["api_key"] = None  # never saved; given again (rerun --api-key, --api-key-env, $OPENAI_API_KEY)
    d["output_dir"] = None
    masked: list[str] = []
    headers = []
    for pair in d.get("headers") or ():
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            if pair[1] == _MASKED:
                masked.append(str(pair[0]))
            headers.append((str(pair[0]), str(pair[1])))
    d["headers"] = tuple(headers)
    for name in ("server_metrics", "trace_window"):
        if isinstance(d.get(name), list):
            d[name] = tuple(d[name])
    if isinstance(d.get("image_size"), str):  # written as --image-size takes it, WxH
        w, _, h = d["image_size"].partition("x")
        d["image_size"] = (int(w), int(h)) if w.isdigit() and h.isdigit() else (512, 512)
    if d.get("request_rate") == "inf":
        d["request_rate"] = math.inf
    if d.get("tools") is not None:  # the names only were saved: the definitions come from their source
        from loadtest.prompts.tools import load_tools

        if not d.get("tools_source"):
            raise ConfigError("the saved run offered tools but did not record where they came from")
        d["tools"] = load_tools(d["tools_source"])
    if not isinstance(d.get("extra_body"), dict):
        d["extra_body"] = {}
    for f in fields(RunConfig):
        if f.name in d and not _fits(d[f.name], str(f.type)):
            raise ConfigError(f"the saved run's option {f.name} is {d[f.name]!r}, not {f.type}: "
                              "the recipe was changed or is corrupt")
    if d.get("num_prompts", 100) is None and d.get("duration_s") is None:
        raise ConfigError("the saved run has neither num_prompts nor duration_s: a recipe must describe a bounded "
                          "run (the recipe was changed or is corrupt)")
    try:
        return RunConfig(**d), notes, masked
    except (TypeError, ValueError) as exc:  # TypeError: a field of a richer type that does not fit
        raise ConfigError(f"the saved run's options cannot be read back: {exc}") from None


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _fits(value: Any, annotation: str) -> bool:
    """Whether a saved value has its field's type, for the plain annotations (``int``,
    ``float | None``...; others are left to RunConfig): a string num_prompts or max_tokens was an
    internal error (TypeError) deep in the run, a null num_prompts a run without end."""
    parts = [p.strip() for p in annotation.split("|")]
    if not all(p in _SCALARS or p == "None" for p in parts):
        return True
    if value is None:
        return "None" in parts
    if isinstance(value, bool):
        return "bool" in parts
    return any(isinstance(value, _SCALARS[p]) for p in parts if p != "None")


def objectives_of(block: Any) -> tuple[list[slo.Objective], float]:
    """The --slo objectives (in their order) and --slo-attainment a run was judged against, read
    back from its slo block's texts (Objective.text: ``ttft <= 500 ms``, ``p99 ttft <= 1.5 s``)."""
    if not isinstance(block, dict):
        return [], slo.DEFAULT_ATTAINMENT
    out = []
    for text in block.get("objectives") or []:
        m = _OBJECTIVE.match(str(text))
        metric = slo.METRICS.get(m["label"]) if m else None
        if m and metric:
            out.append(slo.Objective(metric, float(m["value"]) * (1e-3 if m["unit"] == "ms" else 1.0), m["stat"]))
    return out, float(block.get("attainment_target") or slo.DEFAULT_ATTAINMENT)
