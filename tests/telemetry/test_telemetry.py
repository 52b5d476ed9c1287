"""Telemetry tests: real psutil readings, a scripted fake NVML (tests/fake_pynvml.py), energy maths.

No GPU needed. Run from the repo root: python -m pytest tests/telemetry -q
"""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the package may not be installed yet
    sys.path.insert(0, str(ROOT))

from workbench.telemetry import (
    SAMPLE_FIELDS, NvmlGpu, NvmlUnavailable, TelemetrySample, TelemetrySampler, energy_per_inference,
    gpu_environment, host_environment)
from workbench.telemetry.nvml import POWER_SOURCE_AVERAGE, POWER_SOURCE_INSTANT, nvml_index_for_cuda

# Loaded by path so it works whatever pytest's import mode / tests package layout is.
_spec = importlib.util.spec_from_file_location("fake_pynvml", Path(__file__).parents[1] / "fake_pynvml.py")
fake_pynvml = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_pynvml)
FakeNvml = fake_pynvml.FakeNvml
GIB = 2**30


def run_for(sampler: TelemetrySampler, seconds: float) -> float:
    t0 = time.monotonic()
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    return time.monotonic() - t0


def effective_rate(samples) -> float:
    return (len(samples) - 1) / (samples[-1].t - samples[0].t)


def make_sample(t, **kw) -> TelemetrySample:
    d = dict.fromkeys(SAMPLE_FIELDS)
    d.update(t=t, **kw)
    return TelemetrySample(**d)


def unused_pid() -> int:
    return next(p for p in range(4_000_000, 4_001_000) if not psutil.pid_exists(p))


# ---------------------------------------------------------------------------------------------
# Sampler with real psutil
# ---------------------------------------------------------------------------------------------
def test_rss_of_real_child_then_none_after_exit():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50_000_000); time.sleep(1.0)"])
    try:
        s = TelemetrySampler(child.pid, rate_hz=20, gpu_index=None)
        s.start()
        # Wait for the child to exit without reaping it: it stays a zombie, which must read as gone.
        proc = psutil.Process(child.pid)
        deadline = time.monotonic() + 10
        while proc.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        t_exit = time.monotonic()
        time.sleep(0.4)
        s.stop()
    finally:
        child.kill()
        child.wait()
    rss = [x.rss_bytes for x in s.samples if x.rss_bytes is not None]
    assert max(rss) >= 50_000_000
    assert any(x.cpu_percent is not None for x in s.samples)
    after = [x for x in s.samples if x.t > t_exit + 0.06]
    assert len(after) >= 4, "sampler must keep going after the watched process exits"
    assert all(x.rss_bytes is None and x.cpu_percent is None for x in after)
    assert s.status["nvml"] == "disabled (no GPU selected)"
    assert all(x.gpu_energy_mj is None and x.gpu_power_w is None for x in s.samples)


def test_rate_50hz_and_monotonic_timestamps():
    s = TelemetrySampler(os.getpid(), rate_hz=50.0)
    wall = run_for(s, 1.0)
    ts = [x.t for x in s.samples]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert abs(effective_rate(s.samples) - 50) <= 0.2 * 50
    assert abs(len(s.samples) - 50 * wall) <= 0.2 * 50 * wall  # no drift: count matches wall time


def test_rate_10hz_and_own_cpu_time_accounted_with_fake_nvml():
    # What that CPU time is as a share of a core is a speed claim: benchmarks/telemetry_overhead.py.
    fake = FakeNvml(processes=[(os.getpid(), GIB)])
    s = TelemetrySampler(os.getpid(), rate_hz=10.0, gpu_index=0, nvml_module=fake)
    wall = run_for(s, 2.0)
    assert s.status["nvml"] == "ok"
    ts = [x.t for x in s.samples]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert abs(effective_rate(s.samples) - 10) <= 0.2 * 10
    assert abs(len(s.samples) - 10 * wall) <= 0.2 * 10 * wall
    assert s.samples[-1].gpu_power_w is not None
    assert 0 < s.cpu_seconds < wall, f"sampler used {s.cpu_seconds:.4f} CPU s in {wall:.2f} s"


def test_slow_reads_do_not_make_the_rate_drift():
    # 15 ms per read at 20 Hz: sleeping a full period after each read would give ~15 Hz.
    fake = FakeNvml(read_delay_s=0.015)
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    wall = run_for(s, 1.0)
    assert abs(effective_rate(s.samples) - 20) <= 0.1 * 20
    assert abs(len(s.samples) - 20 * wall) <= 0.15 * 20 * wall


def test_batches_delivered_while_running_and_all_on_stop():
    batches, when = [], []

    def on_samples(batch):
        batches.append(batch)
        when.append(time.monotonic())

    s = TelemetrySampler(os.getpid(), rate_hz=20, on_samples=on_samples, flush_interval_s=0.2)
    s.start()
    time.sleep(1.1)
    delivered_while_running = len(batches)
    t_stop = time.monotonic()
    s.stop()
    assert delivered_while_running >= 3
    assert all(batches), "no empty batches"
    # every sample delivered exactly once, in order (the remainder included)
    flat = [x for b in batches for x in b]
    assert len(flat) == len(s.samples) and all(a is b for a, b in zip(flat, s.samples))
    gaps = [b - a for a, b in zip(when, when[1:]) if b < t_stop]
    assert all(g > 0.1 for g in gaps), "batches come about every flush_interval_s, not per sample"


def test_remainder_delivered_on_stop():
    batches = []
    s = TelemetrySampler(os.getpid(), rate_hz=20, on_samples=batches.append, flush_interval_s=100)
    s.start()
    time.sleep(0.4)
    assert batches == []
    s.stop()
    assert len(batches) == 1 and batches[0] == s.samples and len(s.samples) >= 5
    s.stop()  # idempotent
    assert len(batches) == 1


def test_broken_callback_does_not_stop_sampling():
    def boom(batch):
        raise RuntimeError("consumer bug")

    s = TelemetrySampler(os.getpid(), rate_hz=20, on_samples=boom, flush_interval_s=0.1)
    run_for(s, 0.5)
    assert len(s.samples) >= 7
    assert sum("consumer bug" in w for w in s.status["warnings"]) == 1


def test_stop_without_start_and_single_start():
    s = TelemetrySampler(os.getpid())
    s.stop()
    s.stop()
    assert s.samples == []
    with pytest.raises(ValueError):
        TelemetrySampler(os.getpid(), rate_hz=0)


# ---------------------------------------------------------------------------------------------
# Sampler with the fake NVML
# ---------------------------------------------------------------------------------------------
def test_fake_nvml_fields_process_memory_and_other_process_warning():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10)"])
    ghost = unused_pid()
    try:
        fake = FakeNvml(processes=[(os.getpid(), 3 * GIB), (child.pid, 2 * GIB), (1, GIB), (ghost, None)])
        s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
        run_for(s, 0.5)
    finally:
        child.kill()
        child.wait()
    assert s.status["nvml"] == "ok"
    assert s.status["power_source"] == POWER_SOURCE_INSTANT
    assert s.status["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert len(s.samples) >= 7
    for index, x in enumerate(s.samples):
        assert abs(x.gpu_power_w - fake.power_w(x.t)) < 2.0
        if index % s.slow_every == 0:      # read now (else the last slow read's value, repeated)
            assert abs(x.gpu_power_avg_w - (fake.energy_j(x.t) - fake.energy_j(x.t - 1))) < 2.0
        assert x.gpu_energy_mj >= fake.energy0_mj
        assert x.gpu_mem_used_bytes == 10 * GIB and x.gpu_mem_total_bytes == 80 * GIB
        assert x.gpu_proc_mem_bytes == 3 * GIB  # the watched pid's, not the child's or others'
        assert (x.gpu_util_pct, x.gpu_mem_util_pct) == (87.0, 42.0)
        assert (x.sm_clock_mhz, x.temperature_c, x.clock_event_reasons) == (1755.0, 61.0, 0x4)
        assert x.rss_bytes and x.rss_bytes > 0
    es = [x.gpu_energy_mj for x in s.samples]
    assert all(b >= a for a, b in zip(es, es[1:]))
    # Other processes: pid 1 and the invisible ghost; our own child is not "other".
    others = {p["pid"]: p for p in s.status["other_gpu_processes"]}
    assert set(others) == {1, ghost}
    assert others[1]["used_bytes"] == GIB and others[ghost]["used_bytes"] is None
    proc_warnings = [w for w in s.status["warnings"] if "another process" in w]
    assert len(proc_warnings) == 2, s.status["warnings"]  # once per pid, not per sample
    assert any("pid 1" in w for w in proc_warnings) and any("not visible" in w for w in proc_warnings)
    assert not any(f"pid {child.pid}" in w for w in s.status["warnings"])
    # handle cached, NVML shut down on stop
    assert fake.calls["nvmlInit"] == 1 and fake.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert fake.calls["nvmlShutdown"] == 1 and fake.initialized == 0


def test_not_supported_metrics_become_none_and_are_not_requeried():
    fake = FakeNvml(instant_supported=False, processes=[(os.getpid(), GIB)],
                    unsupported={"nvmlDeviceGetTemperature", "nvmlDeviceGetUtilizationRates",
                                 "nvmlDeviceGetComputeRunningProcesses"})
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    run_for(s, 0.5)
    assert len(s.samples) >= 7
    assert s.status["power_source"] == POWER_SOURCE_AVERAGE
    for x in s.samples:
        assert x.gpu_power_w is None and x.temperature_c is None and x.gpu_util_pct is None
        assert x.gpu_mem_util_pct is None and x.gpu_proc_mem_bytes is None
        # the rest still work
        assert x.gpu_power_avg_w is not None and x.gpu_energy_mj is not None
        assert x.gpu_mem_used_bytes == 10 * GIB and x.sm_clock_mhz == 1755.0
    for fn in ("nvmlDeviceGetTemperature", "nvmlDeviceGetUtilizationRates",
               "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetFieldValues"):
        assert fake.calls[fn] == 1, fn
    # the 1 s average is the power figure here, so it follows the sample rate; the clock stays slow
    assert fake.calls["nvmlDeviceGetPowerUsage"] >= len(s.samples)
    assert fake.calls["nvmlDeviceGetClockInfo"] == -(-len(s.samples) // s.slow_every)
    assert {"temperature", "utilization", "processes", "power_instant"} <= set(s.status["unsupported_metrics"])


def test_slow_metrics_are_read_at_two_hz_and_repeated_between():
    """Each NVML query costs ~0.4 ms of CPU on an H100: the slowly changing metrics are read at 2 Hz,
    energy, instant power and memory at the sample rate."""
    fake = FakeNvml(processes=[(os.getpid(), GIB)])
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    assert s.slow_every == 10
    run_for(s, 1.2)
    n, slow_reads = len(s.samples), -(-len(s.samples) // 10)
    assert n >= 15 and slow_reads < n
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == n
    assert fake.calls["nvmlDeviceGetMemoryInfo"] >= n
    for fn in ("nvmlDeviceGetPowerUsage", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetClockInfo",
               "nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksEventReasons",
               "nvmlDeviceGetComputeRunningProcesses"):
        assert fake.calls[fn] == slow_reads, fn
    for index, x in enumerate(s.samples):       # every sample carries every metric
        assert x.gpu_power_w and x.gpu_energy_mj and x.gpu_power_avg_w and x.gpu_proc_mem_bytes == GIB
        assert (x.gpu_util_pct, x.sm_clock_mhz, x.temperature_c) == (87.0, 1755.0, 61.0)
        if index % 10:                          # repeated from the last slow read
            assert x.gpu_power_avg_w == s.samples[index - index % 10].gpu_power_avg_w


def test_older_driver_falls_back_to_throttle_reasons():
    fake = FakeNvml()

    def missing(h):
        fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] += 1
        raise fake_pynvml.NVMLError_FunctionNotFound()

    fake.nvmlDeviceGetCurrentClocksEventReasons = missing
    fake.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x20  # SW thermal slowdown
    gpu = NvmlGpu(0, nvml_module=fake)
    try:
        for _ in range(3):
            assert gpu.read(os.getpid())["clock_event_reasons"] == 0x20
    finally:
        gpu.close()
    assert fake.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1  # fallback remembered


def test_thermal_slowdown_warns_once():
    fake = FakeNvml(clock_event_reasons=0x4 | 0x20)
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    run_for(s, 0.3)
    w = [x for x in s.status["warnings"] if "slowed down" in x]
    assert w == ["GPU clocks slowed down by: SW thermal slowdown"]


def test_nvml_init_failure_gives_unavailable_and_psutil_still_works():
    fake = FakeNvml(init_error=fake_pynvml.NVMLError_DriverNotLoaded())
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    run_for(s, 0.3)
    assert s.status["nvml"] == "unavailable: nvmlInit failed: Driver Not Loaded"
    assert s.status["power_source"] is None
    assert len(s.samples) >= 4
    assert all(x.rss_bytes and x.rss_bytes > 0 for x in s.samples)
    assert all(x.gpu_power_w is None and x.gpu_energy_mj is None for x in s.samples)


def test_bad_gpu_index_is_unavailable_and_shuts_nvml_down():
    fake = FakeNvml(device_count=1)
    with pytest.raises(NvmlUnavailable, match="out of range"):
        NvmlGpu(3, nvml_module=fake)
    assert fake.initialized == 0


def test_no_gpu_selected_never_touches_nvml():
    trip = fake_pynvml.Tripwire()
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=None, nvml_module=trip)
    run_for(s, 0.3)
    assert trip.touched == []
    assert s.status["nvml"] == "disabled (no GPU selected)"
    assert len(s.samples) >= 4 and all(x.gpu_mem_used_bytes is None for x in s.samples)


def test_gpu_environment_fake_and_real():
    fake = FakeNvml()
    env = gpu_environment(fake)
    assert env["nvml"] == "ok" and env["driver_version"] == "550.54.15"
    assert env["cuda_driver_version"] == "12.4"
    (g,) = env["gpus"]
    assert g["name"] == "NVIDIA H100 80GB HBM3" and g["power_limit_w"] == 700.0
    assert g["memory_total_bytes"] == 80 * GIB and g["max_sm_clock_mhz"] == 1980
    assert fake.initialized == 0
    # Whatever this machine has (usually no driver in CI), it must not raise.
    real = gpu_environment()
    assert real["nvml"] == "ok" or real["nvml"].startswith("unavailable: ")
    env = gpu_environment(FakeNvml(init_error=fake_pynvml.NVMLError_DriverNotLoaded()))
    assert env["nvml"].startswith("unavailable: ") and env["gpus"] == []


def test_real_pynvml_wrappers_decode_correctly(monkeypatch):
    """The real pynvml bindings over fake C entry points: checks ctypes struct decoding (field
    values union, v3 process structs with "not available" memory, FunctionNotFound fallback)."""
    pynvml = pytest.importorskip("pynvml")
    if not hasattr(pynvml, "_nvmlGetFunctionPointer") or not hasattr(pynvml, "_LoadNvmlLibrary"):
        pytest.skip("pynvml internals changed")
    pid = os.getpid()

    def setv(ref, v):
        ref._obj.value = v
        return 0

    def field_values(h, n, ref):
        for i in range(n.value):
            fv = ref._obj[i]
            if fv.fieldId == pynvml.NVML_FI_DEV_POWER_INSTANT:
                fv.valueType, fv.value.uiVal, fv.nvmlReturn = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, 412_345, 0
        return 0

    def procs(h, count_ref, arr):
        if arr is None:
            count_ref._obj.value = 2
            return pynvml.NVML_ERROR_INSUFFICIENT_SIZE
        arr[0].pid, arr[0].usedGpuMemory = pid, 3 * GIB
        arr[1].pid, arr[1].usedGpuMemory = 1, 2**64 - 1  # NVML_VALUE_NOT_AVAILABLE
        count_ref._obj.value = 2
        return 0

    def meminfo(h, ref):
        ref._obj.total, ref._obj.used, ref._obj.free = 80 * GIB, 5 * GIB, 75 * GIB
        return 0

    def util(h, ref):
        ref._obj.gpu, ref._obj.memory = 55, 22
        return 0

    def temp_v(h, ref):
        ref._obj.temperature = 48
        return 0

    fns = {
        "nvmlInitWithFlags": lambda flags: 0, "nvmlShutdown": lambda: 0,
        "nvmlDeviceGetCount_v2": lambda ref: setv(ref, 1),
        "nvmlDeviceGetHandleByIndex_v2": lambda i, ref: 0,
        "nvmlDeviceGetFieldValues": field_values,
        "nvmlDeviceGetPowerUsage": lambda h, ref: setv(ref, 398_000),
        "nvmlDeviceGetTotalEnergyConsumption": lambda h, ref: setv(ref, 123_456_789),
        "nvmlDeviceGetMemoryInfo": meminfo, "nvmlDeviceGetUtilizationRates": util,
        "nvmlDeviceGetClockInfo": lambda h, c, ref: setv(ref, 1755),
        # the deprecated call missing from a future driver -> nvmlDeviceGetTemperatureV
        "nvmlDeviceGetTemperature": lambda h, sensor, ref: pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        "nvmlDeviceGetTemperatureV": temp_v,
        "nvmlDeviceGetCurrentClocksEventReasons": lambda h, ref: setv(ref, 0x4),
        "nvmlDeviceGetComputeRunningProcesses_v3": procs,
    }

    def get_fn(name):
        if name not in fns:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return fns[name]

    monkeypatch.setattr(pynvml, "_LoadNvmlLibrary", lambda: None)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer", get_fn)
    gpu = NvmlGpu(0, nvml_module=pynvml)
    try:
        assert gpu.power_source == POWER_SOURCE_INSTANT
        r = gpu.read(pid)
        r2 = gpu.read(pid)
    finally:
        gpu.close()
    assert r == r2
    assert r["gpu_power_w"] == pytest.approx(412.345) and r["gpu_power_avg_w"] == pytest.approx(398.0)
    assert r["gpu_energy_mj"] == 123_456_789.0
    assert (r["gpu_mem_used_bytes"], r["gpu_mem_total_bytes"]) == (5 * GIB, 80 * GIB)
    assert r["gpu_proc_mem_bytes"] == 3 * GIB
    assert (r["gpu_util_pct"], r["gpu_mem_util_pct"], r["sm_clock_mhz"]) == (55.0, 22.0, 1755.0)
    assert (r["temperature_c"], r["clock_event_reasons"]) == (48.0, 0x4)
    assert [(p["pid"], p["used_bytes"]) for p in r["other_processes"]] == [(1, None)]
    assert gpu.unsupported == set() and gpu.errors == {}


def test_host_environment():
    env = host_environment()
    assert env["cpu_model"] and env["cpu_logical_cores"] >= 1
    assert env["memory_total_bytes"] > 0 and env["python_version"].count(".") == 2


# ---------------------------------------------------------------------------------------------
# Energy
# ---------------------------------------------------------------------------------------------
def test_energy_from_counter_matches_fake_within_1_percent():
    fake = FakeNvml(base_w=350, amp_w=150, period_s=0.7)
    s = TelemetrySampler(os.getpid(), rate_hz=20, gpu_index=0, nvml_module=fake)
    run_for(s, 1.6)
    a, b = s.samples[2].t + 0.013, s.samples[-3].t - 0.021  # deliberately between samples
    est = energy_per_inference(s.samples, a, b, inferences=1000)
    exact = fake.energy_j(b) - fake.energy_j(a)
    assert est.method == "energy counter delta"
    assert abs(est.joules - exact) <= 0.01 * exact
    assert est.joules_per_inference == pytest.approx(est.joules / 1000)
    assert est.window_s == pytest.approx(b - a)
    assert est.mean_power_w == pytest.approx(est.joules / (b - a))


def _curve(t):
    return 250 + 150 * math.sin(2 * math.pi * t / 3.0)


def _curve_energy(a, b):
    k = 3.0 / (2 * math.pi)
    return 250 * (b - a) - 150 * k * (math.cos(2 * math.pi * b / 3.0) - math.cos(2 * math.pi * a / 3.0))


def test_trapezoid_fallback_matches_known_power_curve_within_2_percent():
    samples = [make_sample(100 + i * 0.1, gpu_power_w=_curve(100 + i * 0.1)) for i in range(41)]
    a, b = 100.35, 103.62
    est = energy_per_inference(samples, a, b, inferences=500)
    assert est.method.startswith("trapezoid power integration")
    assert abs(est.joules - _curve_energy(a, b)) <= 0.02 * _curve_energy(a, b)
    assert est.joules_per_inference == pytest.approx(est.joules / 500)


def test_averaged_power_used_only_when_nothing_else_and_said_so():
    samples = [make_sample(100 + i * 0.1, gpu_power_avg_w=_curve(100 + i * 0.1)) for i in range(41)]
    est = energy_per_inference(samples, 100.5, 103.5, inferences=10)
    assert est.method.startswith("trapezoid power integration") and "averaged" in est.method
    assert abs(est.joules - _curve_energy(100.5, 103.5)) <= 0.02 * _curve_energy(100.5, 103.5)


def test_counter_preferred_then_reset_falls_back():
    ts = [100 + i * 0.1 for i in range(31)]
    counter = [5_000 + 1000 * 200 * (t - 100) for t in ts]  # constant 200 W in mJ
    both = [make_sample(t, gpu_energy_mj=e, gpu_power_w=999.0) for t, e in zip(ts, counter)]
    est = energy_per_inference(both, 100.25, 102.25, inferences=4)
    assert est.method == "energy counter delta"
    assert est.joules == pytest.approx(400.0) and est.joules_per_inference == pytest.approx(100.0)
    # counter reset mid-window -> do not trust it, integrate power instead
    reset = [make_sample(t, gpu_energy_mj=(e if t < 101 else e - 300_000), gpu_power_w=200.0)
             for t, e in zip(ts, counter)]
    est = energy_per_inference(reset, 100.25, 102.25, inferences=4)
    assert est.method.startswith("trapezoid power integration") and "backwards" in est.method
    assert est.joules == pytest.approx(400.0)


def test_short_window_note_and_no_power():
    samples = [make_sample(100 + i * 0.1, gpu_energy_mj=1000.0 * 300 * i * 0.1) for i in range(10)]
    est = energy_per_inference(samples, 100.2, 100.45, inferences=5)
    assert est.method.startswith("energy counter delta") and "window shorter than 1 s: imprecise" in est.method
    assert est.joules == pytest.approx(300 * 0.25)
    est = energy_per_inference([make_sample(100 + i * 0.1, rss_bytes=1) for i in range(10)], 100.2, 100.8, 5)
    assert est.joules is None and est.joules_per_inference is None
    assert est.method == "unavailable: no GPU power telemetry"


# ---------------------------------------------------------------------------------------------
# Packaging
# ---------------------------------------------------------------------------------------------
def test_sample_fields_and_to_dict():
    assert SAMPLE_FIELDS[0] == "t" and len(SAMPLE_FIELDS) == 15 and SAMPLE_FIELDS[-1] == "host_cpu_percent"
    d = make_sample(1.5, rss_bytes=7).to_dict()
    assert list(d) == list(SAMPLE_FIELDS) and d["t"] == 1.5 and d["rss_bytes"] == 7


def test_import_does_not_pull_torch_qt_or_pynvml():
    code = ("import sys, workbench.telemetry, workbench.telemetry.energy; "
            "bad = [m for m in ('torch', 'PySide6', 'pynvml') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_cuda_devices_map_to_nvml_indices_through_cuda_visible_devices():
    gpus = gpu_environment(FakeNvml(device_count=3))["gpus"]
    uuids = [g["uuid"] for g in gpus]
    assert len(set(uuids)) == 3 and all(u.startswith("GPU-") for u in uuids)
    assert [nvml_index_for_cuda(i, None, gpus) for i in range(3)] == [0, 1, 2]       # all visible, PCI order
    assert [nvml_index_for_cuda(i, "2,0", gpus) for i in range(3)] == [2, 0, None]   # picked and renumbered
    assert nvml_index_for_cuda(0, f"{uuids[1]}", gpus) == 1                            # by UUID
    assert nvml_index_for_cuda(0, uuids[2][len("GPU-"):], gpus) == 2                  # UUID without the prefix
    assert nvml_index_for_cuda(0, "GPU-does-not-exist", gpus) is None                 # cannot tell: None
    assert nvml_index_for_cuda(0, "", gpus) is None                                    # nothing visible
