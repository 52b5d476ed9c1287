"""A fake `pynvml` for tests: the names workbench.telemetry uses, driving a scripted GPU.

Use `FakeNvml(...)` (a module-like object) as `nvml_module=`. The GPU draws
P(t) = base_w + amp_w * sin(2*pi*(t - t0)/period_s) watts (t = time.monotonic()), and its energy
counter is the exact integral of P, so energy estimates can be checked against ground truth.
Every call is counted in `calls` so tests can prove what was (not) queried.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from types import SimpleNamespace

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_UNKNOWN = 999

NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG = 2
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4
NVML_VALUE_TYPE_SIGNED_INT = 5
NVML_VALUE_TYPE_UNSIGNED_SHORT = 6

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):  # like pynvml: the message, not the code
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _err_class(name, code):
    return type(name, (NVMLError,), {"__init__": lambda self, *a: NVMLError.__init__(self, code)})


NVMLError_Uninitialized = _err_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _err_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _err_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_DriverNotLoaded = _err_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_FunctionNotFound = _err_class("NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_Unknown = _err_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)

GIB = 2**30


class FakeNvml:
    """Module-like fake. `unsupported`: names of functions that raise NVMLError_NotSupported."""

    def __init__(self, *, base_w=300.0, amp_w=100.0, period_s=2.0, t0=None, energy0_mj=1_000_000,
                 instant_supported=True, unsupported=(), init_error=None, processes=(),
                 device_count=1, mem_total=80 * GIB, mem_used=10 * GIB, name="NVIDIA H100 80GB HBM3",
                 clock_event_reasons=0x4, read_delay_s=0.0):
        # Copy the module's constants and error classes so the instance looks like the module.
        for k, v in globals().items():
            if k.startswith(("NVML_", "NVMLError")):
                setattr(self, k, v)
        self.base_w, self.amp_w, self.period_s = base_w, amp_w, period_s
        self.t0 = time.monotonic() if t0 is None else t0
        self.energy0_mj = energy0_mj
        self.instant_supported = instant_supported
        self.unsupported = set(unsupported)
        self.init_error = init_error
        self.processes = list(processes)  # [(pid, used_bytes or None)]
        self.device_count = device_count
        self.mem_total, self.mem_used = mem_total, mem_used
        self.name = name
        self.clock_event_reasons = clock_event_reasons
        self.read_delay_s = read_delay_s  # a slow driver: added to every energy-counter read
        self.calls: Counter = Counter()
        self.initialized = 0

    # -- ground truth ------------------------------------------------------------------------
    def power_w(self, t):
        return self.base_w + self.amp_w * math.sin(2 * math.pi * (t - self.t0) / self.period_s)

    def energy_j(self, t):
        """Exact integral of power_w from t0 to t."""
        w = 2 * math.pi / self.period_s
        x = t - self.t0
        return self.base_w * x + self.amp_w / w * (1 - math.cos(w * x))

    # -- helpers -----------------------------------------------------------------------------
    def _enter(self, fn, handle=None):
        self.calls[fn] += 1
        if not self.initialized:
            raise NVMLError_Uninitialized()
        if fn in self.unsupported:
            raise NVMLError_NotSupported()
        if handle is not None and not (isinstance(handle, tuple) and handle[0] == "gpu"):
            raise NVMLError_InvalidArgument()

    # -- pynvml API --------------------------------------------------------------------------
    def nvmlInit(self):
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise self.init_error
        self.initialized += 1

    def nvmlShutdown(self):
        self.calls["nvmlShutdown"] += 1
        if not self.initialized:
            raise NVMLError_Uninitialized()
        self.initialized -= 1

    def nvmlDeviceGetCount(self):
        self._enter("nvmlDeviceGetCount")
        return self.device_count

    def nvmlDeviceGetHandleByIndex(self, index):
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < self.device_count:
            raise NVMLError_InvalidArgument()
        return ("gpu", index)

    def nvmlSystemGetDriverVersion(self):
        self._enter("nvmlSystemGetDriverVersion")
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):
        self._enter("nvmlSystemGetCudaDriverVersion")
        return 12040

    def nvmlDeviceGetName(self, h):
        self._enter("nvmlDeviceGetName", h)
        return self.name

    def nvmlDeviceGetUUID(self, h):
        self._enter("nvmlDeviceGetUUID", h)
        return f"GPU-00000000-0000-0000-0000-00000000000{h[1]}"

    def nvmlDeviceGetPowerManagementLimit(self, h):
        self._enter("nvmlDeviceGetPowerManagementLimit", h)
        return 700_000

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        self._enter("nvmlDeviceGetMaxClockInfo", h)
        return {NVML_CLOCK_SM: 1980, NVML_CLOCK_MEM: 2619}[clock]

    def nvmlDeviceGetFieldValues(self, h, field_ids):
        self._enter("nvmlDeviceGetFieldValues", h)
        now = time.monotonic()
        out = []
        for fid in field_ids:
            ok = fid == NVML_FI_DEV_POWER_INSTANT and self.instant_supported
            out.append(SimpleNamespace(
                fieldId=fid, scopeId=0, timestamp=int(now * 1e6), latencyUsec=0,
                valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                # like the real call: per-field errors are in nvmlReturn, the call itself succeeds
                nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED,
                value=SimpleNamespace(uiVal=int(round(self.power_w(now) * 1000)) if ok else 0,
                                      dVal=0.0, ulVal=0, ullVal=0, sllVal=0, siVal=0, usVal=0)))
        return out

    def nvmlDeviceGetPowerUsage(self, h):
        self._enter("nvmlDeviceGetPowerUsage", h)
        t = time.monotonic()
        return int(round((self.energy_j(t) - self.energy_j(t - 1.0)) * 1000))  # trailing 1 s mean, mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self._enter("nvmlDeviceGetTotalEnergyConsumption", h)
        if self.read_delay_s:
            time.sleep(self.read_delay_s)
        return self.energy0_mj + int(self.energy_j(time.monotonic()) * 1000)

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        self._enter("nvmlDeviceGetMemoryInfo", h)
        return SimpleNamespace(total=self.mem_total, used=self.mem_used, free=self.mem_total - self.mem_used)

    def nvmlDeviceGetUtilizationRates(self, h):
        self._enter("nvmlDeviceGetUtilizationRates", h)
        return SimpleNamespace(gpu=87, memory=42)

    def nvmlDeviceGetClockInfo(self, h, clock):
        self._enter("nvmlDeviceGetClockInfo", h)
        return {NVML_CLOCK_SM: 1755, NVML_CLOCK_MEM: 2619}[clock]

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._enter("nvmlDeviceGetTemperature", h)
        return 61

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self._enter("nvmlDeviceGetCurrentClocksEventReasons", h)
        return self.clock_event_reasons

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        self._enter("nvmlDeviceGetComputeRunningProcesses", h)
        return [SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF,
                                computeInstanceId=0xFFFFFFFF) for pid, used in self.processes]


class Tripwire:
    """A 'module' that records any attribute access: proves NVML was never touched."""

    def __init__(self):
        self.touched: list[str] = []

    def __getattr__(self, name):
        self.touched.append(name)
        raise AssertionError(f"NVML was touched: {name}")
