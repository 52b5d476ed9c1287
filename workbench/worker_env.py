"""The process conditions a measuring worker starts with, fixed so a latency does not depend on
what the process happened to do before it measured.

* ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: CUDA numbers GPUs in NVML's (PCI) order, so ``cuda:N`` and
  the GPU whose power is read are the same device (``telemetry.nvml.nvml_index_for_cuda``).
* glibc malloc thresholds fixed at the top of their dynamic range (mmap 32 MiB, trim 64 MiB).
  glibc raises both thresholds the first time a large mmapped block is freed, and until then
  every tensor over 128 KiB is a fresh ``mmap`` and page-faults on every iteration. Whether that
  has happened depends on the process's history: serializing a 1.5 MB state_dict before timing
  made the demo transformer 10 % faster (``benchmarks/harness_accuracy.py``). Fixed thresholds
  measure the steady state of a long-running process, every time.

A variable the user has already set wins (``setdefault``), so either condition can be changed
by exporting it before starting Workbench.
"""
from __future__ import annotations

import os

MIB = 1 << 20
WORKER_CONDITIONS = {
    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    "MALLOC_MMAP_THRESHOLD_": str(32 * MIB),
    "MALLOC_TRIM_THRESHOLD_": str(64 * MIB),
}


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the worker conditions it lacks."""
    env = dict(os.environ if base is None else base)
    for name, value in WORKER_CONDITIONS.items():
        env.setdefault(name, value)
    return env


def worker_conditions(env: dict[str, str] | None = None) -> dict[str, str | None]:
    """The conditions as a worker sees them (recorded with each run's environment)."""
    env = os.environ if env is None else env
    return {name: env.get(name) for name in WORKER_CONDITIONS}
