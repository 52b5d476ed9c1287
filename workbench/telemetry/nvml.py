"""NVML access for one GPU.

pynvml is imported lazily (only when a GPU is actually selected) so that importing the telemetry
package works on machines without the NVIDIA driver and costs nothing there.

Every metric is read independently: a metric that raises NVMLError_NotSupported (or whose function
the driver/bindings lack) becomes None and is never queried again; any other failure makes that
metric None for that one sample only. One broken metric never stops the others.

`index` is the NVML index (PCI bus order). NVML ignores CUDA_VISIBLE_DEVICES, and CUDA's default
order may differ, so callers mapping a CUDA device should compare `static_info()["uuid"]`.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from .host import process_name, process_relation

#: The keys `NvmlGpu.read()` returns besides "other_processes" (same names as TelemetrySample).
GPU_FIELDS = (
    "gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes", "gpu_mem_total_bytes",
    "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct", "sm_clock_mhz", "temperature_c",
    "clock_event_reasons",
)

#: Read at the slow rate only (``read(slow=False)`` repeats their last values): they change slowly or
#: are averages already (power_avg over 1 s, utilization over the driver's own period), while each
#: NVML query costs ~0.4 ms of CPU on an H100 (a GSP call: 4 % of a core at 10 Hz with all of them,
#: benchmarks/results/telemetry_overhead_nvml.json). Energy, instant power and memory stay at full rate.
SLOW_FIELDS = ("gpu_power_avg_w", "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct", "sm_clock_mhz",
               "temperature_c", "clock_event_reasons")

POWER_SOURCE_INSTANT = "instant (NVML_FI_DEV_POWER_INSTANT)"
POWER_SOURCE_AVERAGE = "nvmlDeviceGetPowerUsage (1 s average on Ampere and newer)"

# nvmlClocksEventReason* bits (stable NVML ABI values; hard-coded so older bindings work too).
CLOCK_EVENT_NAMES = {
    0x1: "GPU idle",
    0x2: "applications clocks setting",
    0x4: "SW power cap",
    0x8: "HW slowdown",
    0x10: "sync boost",
    0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown",
    0x80: "HW power brake slowdown",
    0x100: "display clock setting",
}
#: Reasons that mean the hardware slowed itself down (thermal/power emergencies) and so make a
#: benchmark result unrepresentative. SW power cap is left out: it is normal under full load.
DISTURBING_CLOCK_EVENTS = 0x8 | 0x20 | 0x40 | 0x80

_NVML_SUCCESS = 0
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_FUNCTION_NOT_FOUND = 13


def describe_clock_events(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [name for bit, name in CLOCK_EVENT_NAMES.items() if mask & bit]


class NvmlUnavailable(Exception):
    """NVML cannot be used (no bindings, no driver, bad index); the message is meant for users."""


def _load(nvml_module: Any = None) -> Any:
    if nvml_module is not None:
        return nvml_module
    try:
        import pynvml  # noqa: PLC0415 - lazy on purpose
    except Exception as e:  # ImportError, or a broken install raising something else
        raise NvmlUnavailable(f"pynvml cannot be imported: {e}") from e
    return pynvml


def _err_text(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:  # real NVMLError.__str__ calls into the library, which may itself fail
        text = ""
    return text or type(e).__name__


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # older pynvml returned bytes
        return value.decode(errors="replace")
    return str(value)


def _is_missing_function(e: BaseException) -> bool:
    # FunctionNotFound: the driver is older than the bindings. NVMLLibraryMismatchError is what
    # pynvml raises for an unversioned call (e.g. ComputeRunningProcesses -> _v3) on such drivers.
    return (getattr(e, "value", None) == _NVML_ERROR_FUNCTION_NOT_FOUND
            or type(e).__name__ == "NVMLLibraryMismatchError")


def _is_not_supported(nv: Any, e: BaseException) -> bool:
    cls = getattr(nv, "NVMLError_NotSupported", None)
    if cls is not None and isinstance(e, cls):
        return True
    return getattr(e, "value", None) == getattr(nv, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED)


def cuda_version_string(v: int | None) -> str | None:
    """NVML encodes the CUDA driver API version as 1000*major + 10*minor (12040 -> "12.4")."""
    if not v:
        return None
    return f"{v // 1000}.{(v % 1000) // 10}"


def _field_value(nv: Any, fv: Any) -> float | None:
    """Decode a c_nvmlFieldValue_t union according to its valueType."""
    attr = {
        getattr(nv, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(nv, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(nv, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }.get(fv.valueType)
    if attr is None:
        return None
    return float(getattr(fv.value, attr))


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception:
        return None


def _static_info(nv: Any, handle: Any, index: int) -> dict:
    mem = _try(nv.nvmlDeviceGetMemoryInfo, handle)
    limit_mw = _try(nv.nvmlDeviceGetPowerManagementLimit, handle)
    return {
        "index": index,
        "name": _text(_try(nv.nvmlDeviceGetName, handle)),
        "uuid": _text(_try(nv.nvmlDeviceGetUUID, handle)),
        "driver_version": _text(_try(nv.nvmlSystemGetDriverVersion)),
        "cuda_driver_version": cuda_version_string(_try(nv.nvmlSystemGetCudaDriverVersion)),
        "memory_total_bytes": int(mem.total) if mem is not None else None,
        "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
        "max_sm_clock_mhz": _try(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_SM),
        "max_mem_clock_mhz": _try(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_MEM),
    }


class NvmlGpu:
    """One GPU opened through NVML; the handle is obtained once and cached."""

    # metric -> candidate function names, newest first (fall back when the driver lacks one).
    _FUNCS = {
        "energy": ("nvmlDeviceGetTotalEnergyConsumption",),
        "power_avg": ("nvmlDeviceGetPowerUsage",),
        "memory": ("nvmlDeviceGetMemoryInfo",),
        "utilization": ("nvmlDeviceGetUtilizationRates",),
        "sm_clock": ("nvmlDeviceGetClockInfo",),
        "temperature": ("nvmlDeviceGetTemperature", "nvmlDeviceGetTemperatureV"),
        "clock_events": ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
        "processes": ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2"),
        "power_instant": ("nvmlDeviceGetFieldValues",),
    }

    def __init__(self, index: int, nvml_module: Any = None):
        nv = _load(nvml_module)
        self._nv = nv
        self.index = index
        self._open = False
        try:
            nv.nvmlInit()
        except Exception as e:
            raise NvmlUnavailable(f"nvmlInit failed: {_err_text(e)}") from e
        self._open = True
        try:
            count = nv.nvmlDeviceGetCount()
            if not 0 <= index < count:
                raise NvmlUnavailable(f"GPU index {index} out of range: NVML sees {count} GPU(s)")
            self._handle = nv.nvmlDeviceGetHandleByIndex(index)
        except NvmlUnavailable:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise NvmlUnavailable(f"cannot open GPU {index}: {_err_text(e)}") from e

        self.unsupported: set[str] = set()   # metrics never queried again
        self.errors: dict[str, str] = {}     # last transient error per metric
        self._fn_index: dict[str, int] = {}  # which candidate of _FUNCS is in use
        self._relation_cache: dict[tuple[int, int], bool | None] = {}
        self._last_slow: dict[str, Any] | None = None
        self._fi_power = getattr(nv, "NVML_FI_DEV_POWER_INSTANT", None)
        if self._fi_power is None:  # bindings older than the field
            self.unsupported.add("power_instant")

        # Pick the power source once. A source that does not work now is not retried 10x/s.
        if self._read_instant_power() is not None:
            self.power_source: str | None = POWER_SOURCE_INSTANT
        else:
            self.unsupported.add("power_instant")
            self.errors.pop("power_instant", None)
            self.power_source = POWER_SOURCE_AVERAGE if self._q("power_avg", self._handle) is not None else None

    # -- low-level -------------------------------------------------------------------------------
    def _q(self, metric: str, *args):
        """Call the NVML function for `metric`; None on failure (NotSupported -> never again)."""
        if metric in self.unsupported:
            return None
        names = self._FUNCS[metric]
        i = self._fn_index.get(metric, 0)
        while i < len(names):
            fn = getattr(self._nv, names[i], None)
            if fn is None:  # bindings too old for this function: try the next candidate
                i += 1
                continue
            try:
                result = fn(*args)
            except Exception as e:
                if _is_missing_function(e):
                    i += 1
                    continue
                if _is_not_supported(self._nv, e):
                    self.unsupported.add(metric)
                else:
                    self.errors[metric] = _err_text(e)
                return None
            self._fn_index[metric] = i
            return result
        self.unsupported.add(metric)
        return None

    def _read_instant_power(self) -> float | None:
        values = self._q("power_instant", self._handle, [self._fi_power])
        if not values:
            return None
        fv = values[0]
        ret = getattr(fv, "nvmlReturn", _NVML_SUCCESS)
        if ret != _NVML_SUCCESS:  # field errors are reported per entry, not raised
            if ret == getattr(self._nv, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED):
                self.unsupported.add("power_instant")
            else:
                self.errors["power_instant"] = f"field value error code {ret}"
            return None
        mw = _field_value(self._nv, fv)
        return mw / 1000.0 if mw is not None else None  # the field is in milliwatts

    def _is_own(self, pid: int, watch_pid: int) -> bool | None:
        # Cached: a pid is classified when first seen; re-walking parents at 10 Hz is wasted work.
        key = (pid, watch_pid)
        if key not in self._relation_cache:
            self._relation_cache[key] = process_relation(pid, watch_pid)
        return self._relation_cache[key]

    # -- public ----------------------------------------------------------------------------------
    def read(self, watch_pid: int | None, slow: bool = True) -> dict:
        """One sample. ``slow=False`` queries only the fast metrics and repeats the last values of
        ``SLOW_FIELDS`` (``other_processes`` is then empty: its news came with the last slow read)."""
        nv, h = self._nv, self._handle
        out: dict[str, Any] = dict.fromkeys(GPU_FIELDS)
        # Energy and power first: the caller time-stamps the sample just before read(), and these
        # are the values that are integrated over time.
        e = self._q("energy", h)
        if e is not None:
            out["gpu_energy_mj"] = float(e)
        if "power_instant" not in self.unsupported:
            out["gpu_power_w"] = self._read_instant_power()
        # Without instant power, the 1 s average is the power figure: then it is read every sample.
        average_is_the_power = "power_instant" in self.unsupported
        if slow or average_is_the_power:
            p = self._q("power_avg", h)
            if p is not None:
                out["gpu_power_avg_w"] = p / 1000.0
        mem = self._q("memory", h)
        if mem is not None:
            out["gpu_mem_used_bytes"] = int(mem.used)
            out["gpu_mem_total_bytes"] = int(mem.total)
        if not slow and self._last_slow is not None:
            out.update({key: value for key, value in self._last_slow.items()
                        if not (average_is_the_power and key == "gpu_power_avg_w")})
            out["other_processes"] = []
            return out
        util = self._q("utilization", h)
        if util is not None:
            out["gpu_util_pct"] = float(util.gpu)
            out["gpu_mem_util_pct"] = float(util.memory)
        clk = self._q("sm_clock", h, nv.NVML_CLOCK_SM)
        if clk is not None:
            out["sm_clock_mhz"] = float(clk)
        temp = self._q("temperature", h, nv.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out["temperature_c"] = float(temp)
        reasons = self._q("clock_events", h)
        if reasons is not None:
            out["clock_event_reasons"] = int(reasons)

        others: list[dict] = []
        procs = self._q("processes", h) if watch_pid is not None else None
        if procs is not None:
            own_bytes = None
            for pr in procs:
                pid = int(pr.pid)
                used = pr.usedGpuMemory  # None when the driver cannot tell (e.g. WDDM)
                if pid == watch_pid:
                    if used is not None:
                        own_bytes = (own_bytes or 0) + int(used)
                    continue
                rel = self._is_own(pid, watch_pid)
                if rel:  # a child of the worker: not a disturbance
                    continue
                others.append({"pid": pid, "used_bytes": int(used) if used is not None else None,
                               # not visible -> probably a host PID seen from inside a container
                               "visible": rel is not None,
                               "name": process_name(pid) if rel is not None else None})
            out["gpu_proc_mem_bytes"] = own_bytes
        out["other_processes"] = others
        self._last_slow = {key: out[key] for key in SLOW_FIELDS}
        return out

    def static_info(self) -> dict:
        return _static_info(self._nv, self._handle, self.index)

    def name(self) -> str | None:
        return _text(_try(self._nv.nvmlDeviceGetName, self._handle))

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nv.nvmlShutdown()
            except Exception:  # nothing useful to do if shutdown fails
                pass


def nvml_index_for_cuda(cuda_index: int, visible: str | None, gpus: Iterable[dict] = ()) -> int | None:
    """The NVML index of CUDA device ``cuda_index``, or None when it cannot be told.

    Workbench starts its workers with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (``workbench.worker.conditions``),
    so CUDA numbers GPUs in NVML's PCI order; ``CUDA_VISIBLE_DEVICES`` (``visible``) then picks and
    renumbers them, by index or by UUID (``GPU-…``, or a unique prefix of it). ``gpus``: the
    ``gpu_environment()["gpus"]`` entries, needed to resolve UUIDs.
    """
    if visible is None:
        return cuda_index
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    if cuda_index >= len(entries):
        return None
    entry = entries[cuda_index]
    if entry.isdigit():
        return int(entry)
    prefix = entry if entry.startswith("GPU-") else f"GPU-{entry}"
    matches = [g.get("index") for g in gpus if str(g.get("uuid") or "").startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def gpu_environment(nvml_module: Any = None) -> dict:
    """Driver/CUDA versions and static info of every GPU NVML sees. Never raises."""
    env: dict[str, Any] = {"nvml": None, "driver_version": None, "cuda_driver_version": None,
                           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpus": []}
    try:
        nv = _load(nvml_module)
    except NvmlUnavailable as e:
        env["nvml"] = f"unavailable: {e}"
        return env
    try:
        nv.nvmlInit()
    except Exception as e:
        env["nvml"] = f"unavailable: nvmlInit failed: {_err_text(e)}"
        return env
    try:
        env["driver_version"] = _text(_try(nv.nvmlSystemGetDriverVersion))
        env["cuda_driver_version"] = cuda_version_string(_try(nv.nvmlSystemGetCudaDriverVersion))
        count = nv.nvmlDeviceGetCount()
        for i in range(count):
            try:
                env["gpus"].append(_static_info(nv, nv.nvmlDeviceGetHandleByIndex(i), i))
            except Exception as e:  # e.g. one GPU fallen off the bus: report it, keep the rest
                env["gpus"].append({"index": i, "error": _err_text(e)})
        env["nvml"] = "ok"
    except Exception as e:
        env["nvml"] = f"unavailable: {_err_text(e)}"
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass
    return env


def gpu_devices(env: dict) -> tuple[list[tuple[str, str]], str | None]:
    """The GPUs a run can pick: ``[(label, CUDA device)]`` from ``gpu_environment()``, plus a note
    saying why the list is empty.

    Workers number GPUs in PCI order like NVML; ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) picks
    and renumbers them cuda:0.. in its order (``nvml_index_for_cuda``)."""
    gpus = [g for g in env.get("gpus") or [] if "error" not in g]
    if env.get("nvml") != "ok":
        return [], f"No NVIDIA GPU: NVML {env.get('nvml') or 'unavailable'}"
    if not gpus:
        return [], "No NVIDIA GPU found by NVML"
    visible = env.get("cuda_visible_devices")
    count = len(gpus) if visible is None else len([v for v in visible.split(",") if v.strip()])
    by_index = {g.get("index", i): g for i, g in enumerate(gpus)}
    devices = []
    for cuda_index in range(count):
        nvml_index = nvml_index_for_cuda(cuda_index, visible, gpus)
        gpu = by_index.get(nvml_index) if nvml_index is not None else None
        if gpu is None:
            continue
        memory = gpu.get("memory_total_bytes") or gpu.get("mem_total_bytes")
        extra = f", {memory / 2**30:.0f} GiB" if memory else ""
        devices.append((f"GPU {cuda_index}: {gpu.get('name', 'NVIDIA GPU')}{extra}", f"cuda:{cuda_index}"))
    return devices, None
