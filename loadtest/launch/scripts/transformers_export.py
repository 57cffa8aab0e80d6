#!/usr/bin/env python3
"""Export a GGUF file to a plain float32 Hugging Face directory (config, tokenizer, safetensors).

Why: `transformers serve` crashes when given the GGUF directly, and vLLM's CPU build serves HF
directories best; both can then load the very weights llama.cpp serves (dequantised), so engines
are compared on the same model. Works offline: transformers reads config, tokenizer and weights
from the GGUF itself (needs `gguf`).

    .venvs/transformers/bin/python loadtest/launch/scripts/transformers_export.py MODEL.gguf OUT_DIR [SHA256]

The export is skipped when OUT_DIR already holds a finished export of the same file, so callers
can run it unconditionally: same sha256 when the caller passes one (copies of one GGUF in several
venvs then share an export), else same path, size and mtime (recorded in
OUT_DIR/loadtest-export.json).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

STAMP = "loadtest-export.json"


def _source_key(gguf: Path, sha256: str | None = None) -> dict:
    st = gguf.stat()
    key = {"source": str(gguf.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {**key, "sha256": sha256} if sha256 else key


def is_current(gguf: Path, out_dir: Path, sha256: str | None = None) -> bool:
    try:
        stamp = json.loads((out_dir / STAMP).read_text())
    except (OSError, ValueError):
        return False
    key = _source_key(gguf)
    if sha256 and stamp.get("sha256"):
        return stamp["sha256"] == sha256 and stamp.get("size") == key["size"]
    return all(stamp.get(k) == v for k, v in key.items())


def export(gguf: Path, out_dir: Path, sha256: str | None = None) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model counts as "quantized with gguf" and refuses save_pretrained, although its
    # weights are already dequantised float32 tensors: drop the quantizer marks to save it plainly.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / STAMP).write_text(json.dumps({**_source_key(gguf, sha256), "seconds": round(time.monotonic() - t0, 1)}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)  # atomic: a half-written export never looks finished
    return out_dir


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    gguf, out_dir = Path(argv[0]), Path(argv[1])
    sha256 = argv[2] if len(argv) == 3 else None
    if not gguf.is_file():
        print(f"no such GGUF file: {gguf}", file=sys.stderr)
        return 2
    if is_current(gguf, out_dir, sha256):
        print(f"up to date: {out_dir}")
        return 0
    t0 = time.monotonic()
    export(gguf, out_dir, sha256)
    print(f"exported {gguf} -> {out_dir} in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
