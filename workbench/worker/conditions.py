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


def default_threads() -> int:
    """The intra-op thread count of a run that does not set ``--threads``: the physical cores this
    process may run on (CPU affinity, then a cgroup CPU quota), at least 1.

    Why not the library's own default: PyTorch and ONNX Runtime count the machine's cores, not the
    ones a container's cpuset or quota lets the process use, so in a 4-CPU container on a 64-core
    host they start dozens of threads that queue for 4 cores. Why physical cores, not logical: the
    two hyper-threads of a core share its arithmetic units, and a parallel op waits for its slowest
    thread. Why not "cores minus the current load": the thread count is part of what a run measures;
    a default that moved with a momentary load would give the same spec different settings from run
    to run, and a baseline and its variant would not be comparable. Load is measured instead, and a
    run it distorted is flagged (``telemetry.contention``); the fix is a quiet machine or ``--threads``.
    """
    cores = _physical_cores(_usable_cpus())
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota)))
    return max(1, cores)


def _usable_cpus() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _physical_cores(cpus: list[int] | None) -> int:
    """Distinct cores among ``cpus`` (Linux topology: one sibling list per core), else psutil's count."""
    if cpus:
        cores = set()
        for cpu in cpus:
            try:
                with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                    cores.add(f.read().strip())
            except OSError:
                break
        else:
            return len(cores)
    import psutil
    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    if not cpus:
        return physical
    return max(1, round(len(cpus) * physical / logical))   # no topology: assume SMT is even


def _cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup may use (``docker --cpus``), None when unlimited or unknown."""
    candidates = (("/sys/fs/cgroup/cpu.max", None),                                   # cgroup v2
                  ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))   # v1
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as f:
                fields = f.read().split()
            if period_path is not None:
                with open(period_path) as f:
                    fields.append(f.read().strip())
        except OSError:
            continue
        if len(fields) >= 2 and fields[0] not in ("max", "-1"):
            try:
                return int(fields[0]) / int(fields[1])
            except (ValueError, ZeroDivisionError):
                return None
        return None
    return None
