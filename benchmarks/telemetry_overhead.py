"""What the telemetry sampler costs: its own CPU time as a share of the wall time it sampled, at the
rates a run uses (NVML through the fake at the ``pynvml`` boundary on a machine without a GPU, the
real library where there is one). The goal: under 1 % of one core at 10 Hz. It also times each
NVML query a sample makes (``--real-nvml`` writes ``telemetry_overhead_nvml.json``).

    python benchmarks/telemetry_overhead.py [--seconds 5]
    python benchmarks/telemetry_overhead.py --smoke [--out DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (add_smoke_arguments, load_json, output_dir, positive_number, print_table,  # noqa: E402
                     smoke_passed, smoke_require, write_results)

RATES_HZ = (10.0, 50.0)
GOAL_SHARE = 0.01
GIB = 1 << 30


def fake_nvml():
    """The test suite's NVML fake (one GPU, this process on it), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "tests" / "fake_pynvml.py"
    spec = importlib.util.spec_from_file_location("fake_pynvml", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeNvml(processes=[(os.getpid(), GIB)])


def measure(rate_hz: float, seconds: float, nvml) -> dict:
    from workbench.telemetry import TelemetrySampler
    sampler = TelemetrySampler(os.getpid(), rate_hz=rate_hz, gpu_index=0, nvml_module=nvml)
    started = time.monotonic()
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    wall = time.monotonic() - started
    return {"rate_hz": rate_hz, "wall_s": wall, "samples": len(sampler.samples), "cpu_s": sampler.cpu_seconds,
            "cpu_share": sampler.cpu_seconds / wall, "nvml": sampler.status.get("nvml")}


def call_costs(nvml, repeats: int) -> list[dict]:
    """CPU and wall microseconds per call of each NVML query a sample makes (and of the psutil
    probe), so that the expensive ones can be told apart: on an H100 each NVML call is a GSP call."""
    from workbench.telemetry.host import HostProcessProbe
    nv = nvml
    if nv is None:
        import pynvml as nv
    nv.nvmlInit()
    try:
        h = nv.nvmlDeviceGetHandleByIndex(0)
        queries = {
            "nvmlDeviceGetTotalEnergyConsumption": lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h),
            "nvmlDeviceGetFieldValues (instant power)":
                lambda: nv.nvmlDeviceGetFieldValues(h, [getattr(nv, "NVML_FI_DEV_POWER_INSTANT", 186)]),
            "nvmlDeviceGetPowerUsage": lambda: nv.nvmlDeviceGetPowerUsage(h),
            "nvmlDeviceGetMemoryInfo": lambda: nv.nvmlDeviceGetMemoryInfo(h),
            "nvmlDeviceGetUtilizationRates": lambda: nv.nvmlDeviceGetUtilizationRates(h),
            "nvmlDeviceGetClockInfo (SM)": lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "nvmlDeviceGetTemperature": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
            "nvmlDeviceGetCurrentClocksEventReasons": lambda: nv.nvmlDeviceGetCurrentClocksEventReasons(h),
            "nvmlDeviceGetComputeRunningProcesses": lambda: nv.nvmlDeviceGetComputeRunningProcesses(h),
            "psutil probe of the worker (HostProcessProbe.read)": HostProcessProbe(os.getpid()).read,
        }
        rows = []
        for name, query in queries.items():
            try:
                query()
                cpu0, wall0 = time.thread_time(), time.perf_counter()
                for _ in range(repeats):
                    query()
                cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
                rows.append({"call": name, "cpu_us": 1e6 * cpu / repeats, "wall_us": 1e6 * wall / repeats})
            except Exception as exc:    # noqa: BLE001 - a query this driver lacks is a row, not a failure
                rows.append({"call": name, "error": f"{type(exc).__name__}: {exc}"[:120]})
        return rows
    finally:
        nv.nvmlShutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="sampling time per rate")
    parser.add_argument("--real-nvml", action="store_true", help="use pynvml itself (a machine with a GPU)")
    add_smoke_arguments(parser)
    args = parser.parse_args()
    out = output_dir(args, "telemetry_overhead")
    seconds = 0.5 if args.smoke else args.seconds
    rows = []
    for rate in RATES_HZ:
        rows.append(measure(rate, seconds, None if args.real_nvml else fake_nvml()))
    print_table(["rate", "samples", "wall s", "sampler CPU s", "share of one core", "NVML"],
                [[f"{r['rate_hz']:g} Hz", r["samples"], f"{r['wall_s']:.2f}", f"{r['cpu_s']:.4f}",
                  f"{100 * r['cpu_share']:.2f} %", r["nvml"]] for r in rows])
    print(f"goal: under {100 * GOAL_SHARE:g} % of one core at 10 Hz")
    costs = call_costs(None if args.real_nvml else fake_nvml(), 5 if args.smoke else 50)
    print_table(["call", "CPU µs", "wall µs"],
                [[c["call"], f"{c['cpu_us']:.0f}" if "cpu_us" in c else c["error"],
                  f"{c['wall_us']:.0f}" if "wall_us" in c else ""] for c in costs])
    name = "telemetry_overhead_nvml" if args.real_nvml else "telemetry_overhead"
    path = write_results(name, {"seconds": seconds, "nvml": "real" if args.real_nvml else "fake",
                                "goal_share": GOAL_SHARE, "rows": rows, "call_costs": costs}, out)
    print(f"wrote {path}")
    if args.smoke:
        data = load_json(path, ["rows"])
        smoke_require(all(positive_number(r["cpu_s"]) and r["samples"] > 1 for r in data["rows"]),
                      f"sampler rows: {data['rows']}")
        smoke_require(all("wall_us" in c for c in data["call_costs"]), f"call costs: {data['call_costs']}")
        smoke_passed(f"{path}: {len(data['rows'])} rates measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
