"""GPU power and energy through NVML, on a machine with an NVIDIA GPU (skipped elsewhere, with the
reason NVML gives). The test server stands in for the engine: the GPU draws at least its idle
power, so its energy counter moves over any run, and joules per output token follow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.cli.main import main

pytestmark = [pytest.mark.engine, pytest.mark.timeout(120)]


def _gpu_or_skip() -> int:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as e:
        pytest.skip(f"no GPU: NVML says {e}")
    if not count:
        pytest.skip("no GPU: NVML sees 0 devices")
    return int(count)


def test_nvml_energy_and_power_per_gpu(sim, tmp_path: Path) -> None:
    gpus = _gpu_or_skip()
    s = sim(metrics=("vllm",), output_tokens=50, tpot_ms=10)
    out = tmp_path / "out"
    code = main(["throughput", "--endpoint", s.base_url, "--model", "sim-model", "--concurrency", "4",
                 "--duration", "4", "--server-metrics-interval", "0.5", "--output", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    block = summary["server_metrics"]
    nvml = next(x for x in block["sources"] if x["url"] == "nvml")
    assert nvml["status"] == "ok" and nvml["samples"] >= 6
    lines = [json.loads(x) for x in (out / "server_metrics.jsonl").read_text().splitlines()]
    first = next(ln for ln in lines if ln["source"] == "nvml" and ln.get("ok"))
    assert len([k for k in first["gauges"] if k.startswith("nvml:power_watts")]) == gpus
    gpu = block["gpu"]
    assert gpu["sampled"] is True
    assert gpu["power_w"]["mean"] > 0  # every GPU draws its idle power at least
    if gpu["energy_j"] is not None:  # Volta and newer count energy
        span = nvml["span_s"][1] - nvml["span_s"][0]
        assert gpu["energy_j"] == pytest.approx(gpu["power_w"]["mean"] * span, rel=0.5)
        assert gpu["joules_per_output_token"] == pytest.approx(
            gpu["energy_j"] / block["known"]["generation_tokens"])
