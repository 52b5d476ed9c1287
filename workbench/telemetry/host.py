"""Host-side readings (psutil) of the worker process, and a description of the host machine."""
from __future__ import annotations

import os
import platform
import sys

import psutil

_NONE = {"rss_bytes": None, "cpu_percent": None, "host_cpu_percent": None}


class CpuBusyMeter:
    """How busy a set of CPUs was between two reads, in the unit of psutil's process ``cpu_percent``
    (100 = one core fully busy), so the worker's share and everyone else's can be subtracted.

    Keeps its own previous reading: ``psutil.cpu_percent(None)`` shares one with every caller.
    """

    def __init__(self, cpus: list[int] | None = None):
        self.cpus = cpus
        self._last = self._busy_and_total()

    @property
    def cpu_count(self) -> int:
        return self._last[2]

    def _busy_and_total(self) -> tuple[float, float, int]:
        per_cpu = psutil.cpu_times(percpu=True)
        chosen = per_cpu if self.cpus is None else [per_cpu[i] for i in self.cpus if i < len(per_cpu)]
        busy = total = 0.0
        for times in chosen:
            # guest time is already counted in user time; iowait is idle (the CPU could run others).
            all_time = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
            busy += all_time - times.idle - getattr(times, "iowait", 0.0)
            total += all_time
        return busy, total, len(chosen)

    def read(self) -> float | None:
        busy, total, count = self._busy_and_total()
        busy0, total0, _ = self._last
        self._last = (busy, total, count)
        if total <= total0:
            return None
        return 100.0 * count * max(0.0, busy - busy0) / (total - total0)


def usable_cpus(pid: int | None = None) -> list[int] | None:
    """The CPUs a process may run on (taskset / cgroup cpuset), None where the OS does not say."""
    try:
        return sorted(psutil.Process(pid).cpu_affinity())
    except (AttributeError, psutil.Error, OSError):
        return None


def current_load_average() -> float | None:
    """The 1-minute load average (runnable threads, all processes), None where there is none."""
    try:
        return float(psutil.getloadavg()[0])
    except (AttributeError, OSError):
        return None


class HostProcessProbe:
    """Reads RSS and CPU % of one pid (the pid only, not its children), and how busy the CPUs it
    may run on were (``host_cpu_percent``, everyone included) over the same interval.

    The psutil.Process is created once: it remembers the process creation time, so once the pid is
    gone we stop reading instead of silently reporting a recycled pid.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.error: str | None = None
        self._cpus: CpuBusyMeter | None = None
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
            # psutil's cpu_percent(None) is relative to the previous call; the first call always
            # returns 0.0, so prime it here so the first real sample is meaningful.
            self._proc.cpu_percent(None)
            self._cpus = CpuBusyMeter(usable_cpus(pid))
        except psutil.NoSuchProcess:
            self._proc = None
            self.error = f"process {pid} not found"
        except psutil.AccessDenied:
            self._proc = None
            self.error = f"access denied to process {pid}"

    @property
    def usable_cores(self) -> int | None:
        """How many CPUs ``host_cpu_percent`` covers (those the process may run on)."""
        return self._cpus.cpu_count if self._cpus is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def read(self) -> dict:
        proc = self._proc
        if proc is None:
            return dict(_NONE)
        try:
            with proc.oneshot():  # one /proc/<pid>/stat parse for status and cpu times
                # An exited-but-unreaped child is a zombie: its memory is gone (statm reads 0),
                # so report it as exited rather than as 0 bytes.
                if proc.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.ZombieProcess(proc.pid)
                rss = proc.memory_info().rss
                cpu = proc.cpu_percent(None)
            host_cpu = self._cpus.read() if self._cpus is not None else None
        except psutil.NoSuchProcess:  # includes ZombieProcess
            self._proc = None
            return dict(_NONE)
        except (psutil.AccessDenied, OSError):
            return dict(_NONE)
        return {"rss_bytes": int(rss), "cpu_percent": float(cpu), "host_cpu_percent": host_cpu}


def process_relation(pid: int, ancestor: int) -> bool | None:
    """True if `pid` is `ancestor` or one of its descendants, False if not, None if `pid` is not
    visible from here (e.g. NVML reports host PIDs while we run in a container's PID namespace)."""
    if pid == ancestor:
        return True
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return False


def process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    # x86 says "model name"; some ARM kernels (e.g. Grace) only have "Model"/"Hardware".
                    key, _, value = line.partition(":")
                    if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                        return value.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown"


def host_environment() -> dict:
    """Static description of the host, for reports. Never raises for missing pieces (they become None)."""
    freq_current = freq_max = None
    try:
        freq = psutil.cpu_freq()
        if freq is not None:
            freq_current = float(freq.current) or None
            freq_max = float(freq.max) or None  # 0.0 means "unknown" in psutil
    except (OSError, NotImplementedError, RuntimeError):
        pass
    try:
        physical = psutil.cpu_count(logical=False)
    except (OSError, NotImplementedError, RuntimeError):
        physical = None
    try:
        affinity = len(os.sched_getaffinity(0))  # cores this process may actually use (cgroups/taskset)
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu_model": _cpu_model(),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "cpu_physical_cores": physical,
        "cpu_usable_cores": affinity,
        "cpu_freq_current_mhz": freq_current,
        "cpu_freq_max_mhz": freq_max,
        "memory_total_bytes": int(psutil.virtual_memory().total),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
