"""CPU contention during a run's timed window: did other processes take cores the run needed?

A run whose threads wait for a CPU measures the machine's load, not the model: on a busy 2-core
machine the default thread count measured 147.9 ms where one thread measured 14.4 ms, with a
tight confidence interval and no sign that anything was wrong.

The rule, from the samples inside the window (worker CPU and the CPU use of everyone on the
worker's CPUs, both in "100 = one core"):

* the run could use ``needed = min(threads, usable cores)`` cores and got ``worker``;
* a shortfall that idle CPUs could have covered is the model's own doing (a small op runs on one
  thread, a GPU run waits), not contention;
* what the idle CPUs cannot explain, ``needed - worker - idle``, was taken by other processes.
  A quarter or more of the cores the run needed marks it as contended.

Without whole-machine samples (window too short, platform without per-CPU times) the 1-minute
load average stands in: contended when the load beyond the run's own threads exceeds the cores
the run leaves free. It is a coarse, lagging signal (it still remembers the last minute), so it
is only the fallback.
"""
from __future__ import annotations

from typing import Any, Iterable

MIN_STOLEN_SHARE = 0.25         # of the cores the run needed; less is within sampling noise
MIN_EXCESS_LOAD = 0.5           # runnable threads beyond the cores the run leaves free


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def assess_cpu_contention(samples: Iterable[Any], t_start: float, t_end: float, threads: int | None,
                          usable_cores: int | None, load_avg: float | None = None) -> dict | None:
    """The CPU use of a timed window and whether other processes crowded the run out.

    ``samples`` have ``t``, ``cpu_percent`` and ``host_cpu_percent`` (``TelemetrySample``);
    ``usable_cores`` is how many CPUs ``host_cpu_percent`` covers. None when there is nothing to judge.
    """
    if not threads or not usable_cores or t_start is None or t_end is None:
        return None
    inside = [s for s in samples if t_start <= s.t <= t_end]
    worker = _mean([s.cpu_percent / 100 for s in inside if s.cpu_percent is not None])
    host = _mean([s.host_cpu_percent / 100 for s in inside if getattr(s, "host_cpu_percent", None) is not None])
    needed = min(threads, usable_cores)
    report = {
        "contended": False, "threads": threads, "usable_cores": usable_cores, "needed_cores": needed,
        "worker_cores": worker, "cpu_share": None if worker is None else min(1.0, worker / needed),
        "other_cores": None, "idle_cores": None, "load_avg": load_avg, "basis": None, "message": None,
    }
    if worker is not None and host is not None:
        idle = max(0.0, usable_cores - host)
        others = max(0.0, host - worker)
        stolen = needed - worker - idle
        report.update(other_cores=others, idle_cores=idle, basis="window samples",
                      contended=stolen >= MIN_STOLEN_SHARE * needed)
    elif load_avg is not None:
        own = worker if worker is not None else needed
        excess = (load_avg - own) - (usable_cores - needed)
        report.update(basis="load average", contended=excess >= MIN_EXCESS_LOAD)
    else:
        return None
    if report["contended"]:
        report["message"] = contention_message(report)
    return report


def contention_message(report: dict) -> str:
    """One line for the run's flags: what the worker got, who had the rest, what to do."""
    threads = f"{report['threads']} thread{'s' if report['threads'] != 1 else ''}"
    needed = f"{report['needed_cores']} core{'s' if report['needed_cores'] != 1 else ''}"
    got = (f"the worker got {report['worker_cores']:.1f} of the {needed} its {threads} could use"
           if report["worker_cores"] is not None else f"the run's {threads} shared {report['usable_cores']} cores")
    others = []
    if report["other_cores"] is not None:
        others.append(f"other processes used {report['other_cores']:.1f} cores")
    if report["load_avg"] is not None:
        others.append(f"load average {report['load_avg']:.1f}")
    return (f"CPU contention: {got} ({', '.join(others)}); latencies are inflated: rerun on a quiet "
            "machine or with fewer --threads")
