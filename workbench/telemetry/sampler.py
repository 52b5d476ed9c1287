"""Background sampling of a worker process (psutil) and optionally one GPU (NVML)."""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, Callable

from .host import HostProcessProbe
from .nvml import DISTURBING_CLOCK_EVENTS, GPU_FIELDS, NvmlGpu, NvmlUnavailable, describe_clock_events

#: How often the slowly changing GPU metrics (``nvml.SLOW_FIELDS``) are queried; the rest follow rate_hz.
SLOW_METRICS_HZ = 2.0


@dataclass(slots=True)
class TelemetrySample:
    t: float                         # time.monotonic() when read
    rss_bytes: int | None            # worker process RSS (psutil)
    cpu_percent: float | None        # worker process CPU % (may exceed 100 on multi-core)
    gpu_power_w: float | None        # instant power (NVML_FI_DEV_POWER_INSTANT) when supported
    gpu_power_avg_w: float | None    # nvmlDeviceGetPowerUsage (1 s average on Ampere+)
    gpu_energy_mj: float | None      # nvmlDeviceGetTotalEnergyConsumption (mJ, monotonic counter)
    gpu_mem_used_bytes: int | None   # device memory used (all processes)
    gpu_mem_total_bytes: int | None
    gpu_proc_mem_bytes: int | None   # memory of the worker pid, None if not listed
    gpu_util_pct: float | None
    gpu_mem_util_pct: float | None
    sm_clock_mhz: float | None
    temperature_c: float | None
    clock_event_reasons: int | None  # nvmlClocksEventReason* bitmask
    host_cpu_percent: float | None = None  # CPU use of everyone on the worker's CPUs, unit as cpu_percent

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in SAMPLE_FIELDS}


SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TelemetrySample))
_GPU_NONE = dict.fromkeys(GPU_FIELDS)


class TelemetrySampler:
    """Samples `pid` (and GPU `gpu_index`, an NVML index) at a fixed rate in a daemon thread.

    `on_samples` is called from the sampler thread (a GUI must hand the batch over to its own
    thread, e.g. with a queued signal); its CPU time counts in `cpu_seconds`.
    """

    def __init__(self, pid: int, rate_hz: float = 10.0, gpu_index: int | None = None,
                 on_samples: Callable[[list[TelemetrySample]], None] | None = None,
                 flush_interval_s: float = 0.5, nvml_module: Any = None):
        if not rate_hz > 0 or not math.isfinite(rate_hz):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz}")
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self.pid = pid
        self.rate_hz = float(rate_hz)
        self.gpu_index = gpu_index
        self.flush_interval_s = float(flush_interval_s)
        self._on_samples = on_samples
        self._nvml_module = nvml_module
        self.samples: list[TelemetrySample] = []
        self.cpu_seconds = 0.0
        self.status: dict[str, Any] = {
            "nvml": "disabled (no GPU selected)" if gpu_index is None else "not started",
            "power_source": None,
            "gpu_name": None,
            "other_gpu_processes": [],
            "warnings": [],
            "unsupported_metrics": [],
        }
        self._gpu: NvmlGpu | None = None
        self._host: HostProcessProbe | None = None
        self._pending: list[TelemetrySample] = []
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._others: dict[int, dict] = {}
        self._warned: set[str] = set()
        self._clock_events_seen = 0
        self._samples_taken = 0
        self.slow_every = max(1, round(self.rate_hz / SLOW_METRICS_HZ))   # samples per slow-metric read

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None or self._stopped:
            raise RuntimeError("TelemetrySampler can only be started once")
        self._host = HostProcessProbe(self.pid)
        if self._host.error:
            self._warn(f"host telemetry: {self._host.error}")
        if self.gpu_index is not None:
            # Opened here, not in the thread, so `status` is final when start() returns.
            try:
                self._gpu = NvmlGpu(self.gpu_index, self._nvml_module)
            except NvmlUnavailable as e:
                self.status["nvml"] = f"unavailable: {e}"
            else:
                self.status["nvml"] = "ok"
                self.status["power_source"] = self._gpu.power_source
                self.status["gpu_name"] = self._gpu.name()
                if self._gpu.power_source is None:
                    self._warn("no GPU power telemetry: neither NVML_FI_DEV_POWER_INSTANT nor "
                               "nvmlDeviceGetPowerUsage is supported on this GPU")
                cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
                if cvd:
                    self._warn(f"CUDA_VISIBLE_DEVICES={cvd}: gpu_index {self.gpu_index} is an NVML index "
                               f"(PCI order); check that '{self.status['gpu_name']}' is the GPU being measured")
        self._thread = threading.Thread(target=self._run, name=f"workbench-telemetry-{self.pid}", daemon=True)
        self._thread.start()

    @property
    def usable_cores(self) -> int | None:
        """How many CPUs the worker may run on (what ``host_cpu_percent`` covers); None before start."""
        return self._host.usable_cores if self._host is not None else None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        if self._thread is not None:
            # Bounded so a hung driver call cannot freeze the caller (e.g. the GUI) forever.
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():
                self._warn("telemetry thread did not stop within 10 s (NVML call hung?)")

    # -- thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        cpu0 = time.thread_time()
        period = 1.0 / self.rate_hz
        deadline = time.monotonic()
        last_flush = deadline
        try:
            while True:
                self._sample_once()
                now = time.monotonic()
                if self._on_samples is not None and now - last_flush >= self.flush_interval_s:
                    self._flush()
                    last_flush = now
                self.cpu_seconds = time.thread_time() - cpu0
                # Absolute deadlines: the period does not accumulate the cost of each sample.
                deadline += period
                if deadline <= now:
                    # Overran (slow driver call, stalled machine): skip the missed slots instead of
                    # firing a burst of back-to-back samples to catch up.
                    deadline += (math.floor((now - deadline) / period) + 1) * period
                if self._stop_event.wait(deadline - now):
                    break
        finally:
            self._flush()
            if self._gpu is not None:
                self._gpu.close()  # nvmlShutdown, in the thread that used it last
            self.cpu_seconds = time.thread_time() - cpu0

    def _sample_once(self) -> None:
        t = time.monotonic()  # stamped just before the reads; the energy counter is read first
        gpu = _GPU_NONE
        if self._gpu is not None:
            gpu = self._gpu.read(self.pid, slow=self._samples_taken % self.slow_every == 0)
            self._check_gpu(gpu)
        host = self._host.read() if self._host is not None else {}
        sample = TelemetrySample(
            t=t, rss_bytes=host.get("rss_bytes"), cpu_percent=host.get("cpu_percent"),
            host_cpu_percent=host.get("host_cpu_percent"), **{k: gpu[k] for k in GPU_FIELDS},
        )
        self.samples.append(sample)
        self._pending.append(sample)
        self._samples_taken += 1

    def _check_gpu(self, gpu: dict) -> None:
        for proc in gpu.get("other_processes") or ():
            pid = proc["pid"]
            known = self._others.get(pid)
            if known is None:
                self._others[pid] = dict(proc)
                self.status["other_gpu_processes"] = list(self._others.values())
                used = proc["used_bytes"]
                size = f"{used / 2**20:.0f} MiB" if used is not None else "unknown memory"
                who = f"pid {pid}" + (f" ({proc['name']})" if proc.get("name") else "")
                note = "" if proc.get("visible", True) else \
                    " — not visible from here (another container or PID namespace; it may be this run's worker)"
                self._warn(f"another process is using the GPU: {who}, {size}{note}; "
                           "results may be disturbed")
            elif proc["used_bytes"] is not None and (known["used_bytes"] or 0) < proc["used_bytes"]:
                known["used_bytes"] = proc["used_bytes"]  # keep the peak
        reasons = gpu.get("clock_event_reasons")
        if reasons and reasons & DISTURBING_CLOCK_EVENTS & ~self._clock_events_seen:
            new = reasons & DISTURBING_CLOCK_EVENTS & ~self._clock_events_seen
            self._clock_events_seen |= new
            self._warn("GPU clocks slowed down by: " + ", ".join(describe_clock_events(new)))
        unsupported = self._gpu.unsupported
        if len(unsupported) != len(self.status["unsupported_metrics"]):
            self.status["unsupported_metrics"] = sorted(unsupported)
        for metric, err in self._gpu.errors.items():
            self._warn(f"NVML {metric} read failed: {err}", key=f"nvml-error:{metric}")

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self._on_samples is None:
            return
        try:
            self._on_samples(batch)
        except Exception as e:  # a broken consumer must not kill the sampling
            self._warn(f"on_samples callback raised {type(e).__name__}: {e}", key="callback")

    def _warn(self, text: str, key: str | None = None) -> None:
        key = key or text
        if key not in self._warned:  # each warning once, not 10 times a second
            self._warned.add(key)
            self.status["warnings"].append(text)
