"""GPU utilisation, memory, power and energy through NVML (nvidia-ml-py), read like one more
Prometheus source so the rest of the package needs no second path: each read returns a Scrape with
the NVML engine's names (engines.NVML), one label set per GPU.

The total-energy counter (millijoules since the driver loaded, Volta and newer) gives joules over a
window exactly; power is an instant reading and only feeds means and plots."""

from __future__ import annotations

import contextlib
from typing import Any

from loadtest.servermetrics.exposition import Scrape, series_key


class NoGPU(Exception):
    """NVML is missing or sees no GPU; the message says which (it goes into the summary)."""


class NVML:
    def __init__(self) -> None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            raise NoGPU("no GPU sampled: nvidia-ml-py is not installed") from None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:  # NVMLError_LibraryNotFound on a machine without the driver
            raise NoGPU(f"no GPU visible (NVML: {e})") from None
        if not count:
            raise NoGPU("no GPU visible (NVML sees 0 devices)")
        self._nv: Any = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.names = [str(pynvml.nvmlDeviceGetName(h)) for h in self.handles]

    def read(self) -> Scrape:
        nv, out = self._nv, Scrape()
        for i, h in enumerate(self.handles):
            labels = {"gpu": str(i)}
            out.gauges[series_key("nvml:utilization_percent", labels)] = self._value(
                nv.nvmlDeviceGetUtilizationRates, h, lambda r: r.gpu)
            out.gauges[series_key("nvml:memory_used_mib", labels)] = self._value(
                nv.nvmlDeviceGetMemoryInfo, h, lambda r: r.used / 2**20)
            out.gauges[series_key("nvml:power_watts", labels)] = self._value(
                nv.nvmlDeviceGetPowerUsage, h, lambda mw: mw / 1000)
            energy = self._value(nv.nvmlDeviceGetTotalEnergyConsumption, h, float)
            if energy is not None:  # pre-Volta GPUs have no energy counter; power means still say something
                out.counters[series_key("nvml:energy_millijoules_total", labels)] = energy
        return out

    def _value(self, fn: Any, handle: Any, convert: Any) -> float | None:
        """One reading; None when this GPU does not report it (NVML_ERROR_NOT_SUPPORTED)."""
        try:
            return float(convert(fn(handle)))
        except self._nv.NVMLError:
            return None

    def close(self) -> None:
        with contextlib.suppress(self._nv.NVMLError):
            self._nv.nvmlShutdown()
