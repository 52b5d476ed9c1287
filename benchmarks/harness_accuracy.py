"""How close are our latency numbers to torch.utils.benchmark, and what does our loop cost?

For each demo model on the CPU: our median (a real `Session.run` in a worker process) next to
`torch.utils.benchmark.Timer(...).blocked_autorange()`'s median for the same module, input and
thread count, interleaved over several rounds (the machine is shared and noisy; the ratio of the
medians-of-rounds is what we quote). Then the per-iteration overhead of our loop on a no-op
model: our median for `nn.Identity` minus Timer's (both include the module call itself).

This process re-executes itself under the worker's process conditions (``workbench.worker.conditions``:
fixed glibc malloc thresholds), so Timer and the worker measure the same allocator state. The
last column is Timer in a fresh process with glibc's default, history-dependent thresholds: the
difference it shows is what those conditions remove.

    python benchmarks/harness_accuracy.py [--rounds 3] [--threads 2] [--out DIR]
    python benchmarks/harness_accuracy.py --smoke [--out DIR]   # seconds: one round, digits-cnn and
                                                                # the no-op, 0.05 s per measurement
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SMOKE_DEMO, SMOKE_DURATION_S, SMOKE_ITERS, SMOKE_THREADS, SMOKE_WARMUP,  # noqa: E402
                     add_smoke_arguments, load_json, output_dir, positive_number, print_table, smoke_passed,
                     smoke_require, write_results)


def timer_median_ms(module, inputs, threads: int, min_run_time: float) -> float:
    import torch
    from torch.utils.benchmark import Timer
    torch.set_num_threads(threads)
    with torch.no_grad():
        timer = Timer(stmt="module(*inputs)", globals={"module": module, "inputs": inputs}, num_threads=threads)
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median * 1e3


def loop_median_ms(module, inputs, threads: int, duration: float, min_iters: int = 200) -> float:
    """Our timing loop (workbench.worker.measure) in this process: isolates the loop from process effects."""
    import numpy as np
    import torch

    from workbench.worker.measure import MeasureSettings, measure
    torch.set_num_threads(threads)
    with torch.no_grad():
        result = measure(lambda: module(*inputs), "cpu", MeasureSettings(min_iters=min_iters, min_duration_s=duration))
    return float(np.median(result.latencies_ns) / 1e6)


_FRESH_TIMER = """
import json, sys, numpy as np, torch
from torch.utils.benchmark import Timer
from workbench.models import demos
from workbench.models.loaders import DEMO_DEFAULT_BATCH
name, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)
module = demos.build_demo_module(name)
data = demos.load_eval_data(demos.assets_dir() / "digits.npz")
x = torch.from_numpy(np.ascontiguousarray(data["x_test"][:DEMO_DEFAULT_BATCH]))
with torch.no_grad():
    m = Timer(stmt="module(x)", globals={"module": module, "x": x}, num_threads=threads).blocked_autorange(
        min_run_time=seconds)
print(json.dumps(m.median * 1e3))
"""


def fresh_timer_ms(demo: str, threads: int, seconds: float, worker_conditions: bool) -> float:
    """Timer in a new process: under the worker's conditions, or with glibc malloc's default
    (dynamic, history-dependent) thresholds."""
    import json
    import os
    import subprocess

    from workbench.worker.conditions import WORKER_CONDITIONS, worker_environment
    env = (worker_environment() if worker_conditions
           else {k: v for k, v in os.environ.items() if k not in WORKER_CONDITIONS})
    out = subprocess.run([sys.executable, "-c", _FRESH_TIMER, demo, str(threads), str(seconds)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def ensure_worker_conditions() -> None:
    """Re-execute under the worker's process conditions (glibc reads them at process start)."""
    import os

    from workbench.worker.conditions import worker_conditions, worker_environment
    if worker_conditions() != worker_conditions(worker_environment()):
        os.execve(sys.executable, [sys.executable, *sys.argv], worker_environment())


def ours_median_ms(session, spec) -> float:
    record = session.run(spec)
    if record.status != "done":
        raise SystemExit(f"run failed: {record.error}")
    return record.result["latency"]["median_ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    add_smoke_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.threads, args.duration = 1, SMOKE_THREADS, SMOKE_DURATION_S
    out_folder = output_dir(args, "harness_accuracy")   # before the re-exec: the same folder after it
    if args.smoke and not args.out:
        sys.argv += ["--out", str(out_folder)]
    ensure_worker_conditions()

    import numpy as np
    import torch

    from workbench.models import demos
    from workbench.models.loaders import DEMO_DEFAULT_BATCH
    from workbench.engine.session import Session
    from workbench.spec import InputSpec, RunSpec
    from workbench.results.store import ResultsStore

    workdir = tempfile.TemporaryDirectory(prefix="wb-harness-")
    tmp = Path(workdir.name)
    session = Session(ResultsStore(tmp / "runs.sqlite"))
    iters = {"demo": SMOKE_ITERS if args.smoke else 200, "noop": SMOKE_ITERS if args.smoke else 1000}
    warmup = SMOKE_WARMUP if args.smoke else {}
    rows, results = [], []
    cases = []
    data = demos.load_eval_data(demos.assets_dir() / "digits.npz")
    x = torch.from_numpy(np.ascontiguousarray(data["x_test"][:DEMO_DEFAULT_BATCH]))
    for name in [SMOKE_DEMO] if args.smoke else demos.demo_names("module"):
        spec = RunSpec(model=f"demo:{name}", threads=args.threads, iters=iters["demo"], duration_s=args.duration,
                       **warmup)
        cases.append((f"demo:{name} (batch {DEMO_DEFAULT_BATCH})", demos.build_demo_module(name), [x], spec, name))
    noop_path = tmp / "noop.pt"
    identity = torch.nn.Identity()
    torch.jit.save(torch.jit.script(identity), str(noop_path))
    noop_input = torch.zeros(1, 1)
    cases.append(("no-op (nn.Identity, TorchScript)", torch.jit.load(str(noop_path)), [noop_input],
                  RunSpec(model=str(noop_path), inputs=[InputSpec([1, 1])], threads=args.threads, iters=iters["noop"],
                          duration_s=args.duration, **warmup), None))

    for label, module, inputs, spec, demo in cases:
        ours, theirs, loop, fresh, fresh_default = [], [], [], [], []
        for _ in range(args.rounds):   # interleave so drift hits both sides alike
            ours.append(ours_median_ms(session, spec))
            theirs.append(timer_median_ms(module, inputs, args.threads, args.duration))
            loop.append(loop_median_ms(module, inputs, args.threads, args.duration, spec.iters))
            if demo is not None:
                fresh.append(fresh_timer_ms(demo, args.threads, args.duration, worker_conditions=True))
                fresh_default.append(fresh_timer_ms(demo, args.threads, args.duration, worker_conditions=False))
        o, t, lp = statistics.median(ours), statistics.median(theirs), statistics.median(loop)
        fr = statistics.median(fresh) if fresh else None
        fd = statistics.median(fresh_default) if fresh_default else None
        results.append({"case": label, "ours_ms": ours, "timer_ms": theirs, "loop_in_process_ms": loop,
                        "timer_fresh_process_ms": fresh, "timer_fresh_default_malloc_ms": fresh_default,
                        "ours_median_ms": o, "timer_median_ms": t, "loop_median_ms": lp,
                        "timer_fresh_process_median_ms": fr, "timer_fresh_default_malloc_median_ms": fd,
                        "ratio": o / t, "loop_ratio": lp / t, "ratio_vs_fresh_timer": o / fr if fr else None,
                        "difference_us": (o - t) * 1e3})
        rows.append([label, f"{o:.4f}", f"{lp:.4f}", f"{t:.4f}", f"{o / t:.3f}", f"{lp / t:.3f}",
                     f"{(o - t) * 1e3:+.2f}", f"{fr:.4f} ({o / fr:.3f})" if fr else "—",
                     f"{fd:.4f} ({fd / fr:.3f}×)" if fd else "—"])
    print_table(["case", "ours p50, worker (ms)", "ours p50, same process (ms)", "Timer p50 (ms)", "ratio worker",
                 "ratio same process", "difference (µs)", "Timer, fresh process (ratio worker)",
                 "Timer, fresh process, default malloc"], rows)
    noop = results[-1]
    print(f"\nper-iteration overhead of our loop vs Timer on a no-op: {noop['difference_us']:+.2f} µs "
          f"(our no-op median {noop['ours_median_ms'] * 1e3:.2f} µs; goal ≤ 10 µs)")
    fresh_within = [abs(r["ratio_vs_fresh_timer"] - 1) <= 0.02 for r in results[:-1]]
    print(f"demo models within ±2 % of Timer in a fresh process under the same conditions: "
          f"{sum(fresh_within)}/{len(fresh_within)}")
    within = [abs(r["ratio"] - 1) <= 0.02 for r in results[:-1]]
    loop_within = [abs(r["loop_ratio"] - 1) <= 0.02 for r in results[:-1]]
    print(f"demo models within ±2 % of Timer: worker {sum(within)}/{len(within)}, "
          f"our loop in Timer's process {sum(loop_within)}/{len(loop_within)}")
    session.store.close()
    workdir.cleanup()
    path = write_results("harness_accuracy", {"threads": args.threads, "rounds": args.rounds,
                                              "duration_s": args.duration, "smoke": args.smoke, "cases": results},
                         out_folder)
    print(f"wrote {path}")
    if args.smoke:
        check_smoke(path, len(cases), args.rounds)
    return 0


def check_smoke(path: Path, n_cases: int, rounds: int) -> None:
    """The JSON just written: every case measured by every method, every median a positive number."""
    data = load_json(path, ["machine", "threads", "rounds", "duration_s", "cases"])
    cases = data["cases"]
    smoke_require(len(cases) == n_cases, f"{len(cases)} cases written, expected {n_cases}")
    for case in cases:
        for key in ("ours_median_ms", "timer_median_ms", "loop_median_ms", "ratio", "loop_ratio"):
            smoke_require(positive_number(case.get(key)), f"{case.get('case')}: {key} = {case.get(key)!r}")
        for key in ("ours_ms", "timer_ms", "loop_in_process_ms"):
            smoke_require(len(case.get(key) or []) == rounds, f"{case.get('case')}: {key} has not {rounds} values")
    for case in cases[:-1]:   # the demo models also ran Timer in fresh processes
        smoke_require(positive_number(case.get("timer_fresh_process_median_ms"))
                      and positive_number(case.get("timer_fresh_default_malloc_median_ms")),
                      f"{case.get('case')}: no fresh-process Timer median")
    smoke_require(cases[-1]["case"].startswith("no-op"), "the last case is not the no-op model")
    smoke_passed(f"{path}: {len(cases)} cases, every median positive")


if __name__ == "__main__":
    sys.exit(main())
