"""The machine a benchmark ran on, for the `server.host` record.

Numbers from a 2-core container and a 64-core server are not comparable, and a container's CPU
quota can be far below the core count the OS reports, so the quota is recorded when there is one.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from functools import lru_cache


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup v2 quota (`cpu.max`), None when unlimited or unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        return None


def _gpus() -> list[dict]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2:
            try:
                mem = round(float(parts[1]) / 1024, 1)
            except ValueError:
                mem = None
            gpus.append({"name": parts[0], "memory_gb": mem, "driver": parts[2] if len(parts) > 2 else None})
    return gpus


@lru_cache(maxsize=1)
def host_info() -> dict:
    """CPU model, cores, RAM and GPUs; cached because none of it changes during a run."""
    gpus = _gpus()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "cpu_quota": _cgroup_cpu_limit(),
        "ram_gb": _ram_gb(),
        "gpu_name": gpus[0]["name"] if gpus else None,
        "gpu_memory_gb": gpus[0]["memory_gb"] if gpus else None,
        "gpu_count": len(gpus),
        "gpus": gpus,
    }
