"""The launcher against real `transformers serve` on the embedded SmolLM2 (exported from its GGUF).

Needs `make engine-transformers`; skipped otherwise. The first run exports the GGUF (~20-30 s,
cached in .models/); loading takes ~5 s and ~1 GB.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from engine_checks import alive, require_engine
from loadtest.launch.launcher import LaunchSpec, launch
from loadtest.launch.process import process_tree

pytestmark = [pytest.mark.engine, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    require_engine("transformers")


def test_transformers_streams_and_stops_clean(tmp_path: Path) -> None:
    with launch(LaunchSpec("transformers", log_dir=tmp_path)) as server:
        tree = process_tree(server.pid, server.pid)
        served = server.info["model"]["served_path"]
        assert server.model_name == served                  # the exact served path
        assert server.accepted_fields == frozenset()
        assert Path(served, "config.json").is_file()
        assert "quantization_config" not in json.loads(Path(served, "config.json").read_text())

        # Asked as the client asks (stream_options.include_usage): usage must come on the last chunk.
        # Whether it also comes unasked differs between releases (<= 5.23 always, 5.25 only when
        # asked); the client copes with both (tests/test_client_sim.py plays each) and counts from
        # usage through the real engine in test_transformers.py.
        body = {"model": server.model_name, "stream": True, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hello."}], "stream_options": {"include_usage": True}}
        chunks, usage = [], None
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    d = json.loads(line[6:])
                    if d.get("choices") and d["choices"][0]["delta"].get("content"):
                        chunks.append(d["choices"][0]["delta"]["content"])
                    usage = d.get("usage") or usage
        assert chunks and usage and usage["completion_tokens"] <= 8

        # unknown fields are rejected: the reason accepted_fields is empty
        bad = httpx.post(server.base_url + "/chat/completions",
                         json={**{k: v for k, v in body.items() if k != "stream_options"}, "stream": False,
                               "ignore_eos": True},
                         timeout=60)
        assert bad.status_code == 422

        info = server.info
        assert info["engine_version"].startswith("transformers ")
        assert info["engine_pins"]["file"] == "transformers.txt"  # compared with its pins (make test builds it pinned)
        assert info["dtype"] == "float32" and "dequantised from Q4_1" in info["quantisation"]
        assert info["model"]["sha256"]
    assert tree and alive(tree) == []
