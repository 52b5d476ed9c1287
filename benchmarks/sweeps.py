"""What a sweep costs, and what ``--repeat`` measures.

1. Overhead: the same points run as one ``workbench sweep`` command and as separate
   ``workbench bench`` commands (one per point; each a fresh CLI process, as a user would type them),
   alternating which goes first in each round. Both start one worker process per point; the
   difference per point is the sweep's cost (planning, its tables, the analysis) net of the CLI
   start-ups it saves. Goal: <= 5 % extra wall time per point.
2. Noise: ``--repeat N`` (N worker processes per point, interleaved): the between-process spread of
   each point's p50, next to the constant ±2 % band the single-run comparisons assume, and for a
   plugin point the speed-up's interval by both rules.

    python benchmarks/sweeps.py [--rounds 3] [--repeat 5] [--out DIR]
    python benchmarks/sweeps.py --smoke [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SMOKE_DURATION_S, SMOKE_ITERS, add_smoke_arguments, load_json, output_dir,  # noqa: E402
                     positive_number, print_table, smoke_passed, smoke_require, write_results)

MODEL = "demo:digits-cnn"


def cli(args: list[str], db: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "WORKBENCH_DB": str(db)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench", *args, "-q"], capture_output=True, text=True, env=env,
                          timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"`workbench {' '.join(args)}` failed:\n{done.stderr[-2000:]}")
    return elapsed, done


def overhead(batches: list[int], rounds: int, settings: list[str], folder: Path) -> dict:
    sweep_s, bench_s = [], []
    for index in range(rounds):
        db = folder / f"overhead-{index}.sqlite"
        order = ("sweep", "bench") if index % 2 == 0 else ("bench", "sweep")
        for which in order:
            if which == "sweep":
                elapsed, _ = cli(["sweep", MODEL, "--grid", "batch=" + ",".join(map(str, batches)), *settings], db)
                sweep_s.append(elapsed)
            else:
                elapsed = sum(cli(["bench", MODEL, "--batch", str(b), *settings], db)[0] for b in batches)
                bench_s.append(elapsed)
            print(f"round {index + 1} {which:5s}: {elapsed:.2f} s for {len(batches)} point(s)", flush=True)
    return {**summarize(sweep_s, bench_s, len(batches)),
            "in_process": own_cost(batches, folder / f"overhead-{rounds - 1}.sqlite")}


def summarize(sweep_s: list[float], bench_s: list[float], points: int) -> dict:
    """Per point, and the overhead as the median of the rounds' paired ratios (each round runs both
    back to back, so slow drift of a shared machine cancels within a round)."""
    ratios = [a / b for a, b in zip(sweep_s, bench_s)]
    return {"points": points, "rounds": len(ratios), "sweep_wall_s": sweep_s, "bench_wall_s": bench_s,
            "per_point_sweep_s": statistics.median(sweep_s) / points,
            "per_point_bench_s": statistics.median(bench_s) / points,
            "round_ratios": ratios, "overhead_pct_per_point": 100 * (statistics.median(ratios) - 1),
            "overhead_pct_range": [100 * (min(ratios) - 1), 100 * (max(ratios) - 1)], "goal_pct": 5.0}


def own_cost(batches: list[int], db: Path) -> dict:
    """What the sweep itself adds per point, timed in this process (the wall times above also hold the
    workers' noise): planning and validation, and the analysis of the stored sweep."""
    from workbench.engine.sweep import plan_sweep
    from workbench.results.store import ResultsStore
    from workbench.results.sweep_analysis import analyze_sweep
    from workbench.results.sweeps import list_sweeps
    from workbench.spec import RunSpec
    store = ResultsStore(db)
    started = time.perf_counter()
    plan_sweep(store, RunSpec(model=MODEL, threads=1), ["batch=" + ",".join(map(str, batches))])
    plan_s = time.perf_counter() - started
    started = time.perf_counter()
    analyze_sweep(store, list_sweeps(store, limit=1)[0])
    analysis_s = time.perf_counter() - started
    store.close()
    return {"plan_ms_per_point": 1e3 * plan_s / len(batches), "analysis_ms_per_point": 1e3 * analysis_s / len(batches)}


def noise(repeat: int, grid: list[str], settings: list[str], folder: Path) -> dict:
    from workbench.results.stats import RUN_TO_RUN_NOISE, ratio_with_ci
    db = folder / "noise.sqlite"
    _, done = cli(["sweep", MODEL, *sum((["--grid", g] for g in grid), []), "--repeat", str(repeat), *settings,
                   "--json", "-"], db)
    analysis = json.loads(done.stdout)
    points = []
    for p in analysis["points"]:
        entry = {"point": p["index"], "role": p["role"], "values": p["values"], "processes": len(p["run_ids"]),
                 "p50_ms": p.get("p50_ms"), "p50_ci_ms": p.get("p50_ci_ms"),
                 "spread_pct": None if p.get("spread") is None else 100 * p["spread"]}
        if p.get("speedup") is not None:
            entry.update(speedup=p["speedup"], speedup_ci_measured=p["speedup_ci"], rule=p["rule"])
            # the same comparison as a single pair of runs would have shown it: the first of each side
            from workbench.results.store import ResultsStore
            store = ResultsStore(db, read_only=True)
            base = store.get_run(p["baseline_run_ids"][0]).latency
            var = store.get_run(p["run_ids"][0]).latency
            one = ratio_with_ci(base, var)
            entry.update(speedup_single_pair=one["speedup"], speedup_ci_constant_band=list(one["speedup_ci"]))
            store.close()
        points.append(entry)
    spreads = [p["spread_pct"] for p in points if p["spread_pct"] is not None]
    return {"repeat": repeat, "grid": grid, "rule": analysis["noise"]["rule"], "points": points,
            "spread_pct_median": statistics.median(spreads) if spreads else None,
            "spread_pct_max": max(spreads) if spreads else None, "constant_band_pct": 100 * RUN_TO_RUN_NOISE}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    add_smoke_arguments(parser)
    args = parser.parse_args()
    out_folder = output_dir(args, "sweeps")
    settings = ["--threads", str(args.threads), "--iters", "200", "--duration", "1"]
    batches, grid = [1, 8, 32], ["fuse.method=conv_bn"]
    if args.smoke:
        args.rounds, args.repeat, batches, grid = 1, 3, [1], ["batch=1"]
        settings = ["--threads", "1", "--iters", str(SMOKE_ITERS), "--duration", str(SMOKE_DURATION_S)]
    with tempfile.TemporaryDirectory(prefix="wb-sweeps-") as work:
        result = {"settings": settings, "overhead": overhead(batches, args.rounds, settings, Path(work)),
                  "noise": noise(args.repeat, grid, settings, Path(work))}
    path = write_results("sweeps", result, out_folder)
    o, n = result["overhead"], result["noise"]
    print_table(["", "per point", "rounds"], [
        ["workbench sweep", f"{o['per_point_sweep_s']:.2f} s", o["rounds"]],
        ["separate workbench bench", f"{o['per_point_bench_s']:.2f} s", o["rounds"]],
        ["sweep overhead (median of paired rounds)", f"{o['overhead_pct_per_point']:+.1f} % (rounds "
         f"{o['overhead_pct_range'][0]:+.1f} to {o['overhead_pct_range'][1]:+.1f} %; goal <= +5 %)", ""],
        ["  of which planning + analysis", f"{o['in_process']['plan_ms_per_point'] + o['in_process']['analysis_ms_per_point']:.1f} ms", ""]])
    print_table(["point", "processes", "p50", "between-process spread", "speed-up (measured CI)",
                 "speed-up of one pair (±2 % band CI)"],
                [[f"{p['point']} {p['role']} {p['values']}", p["processes"], f"{p['p50_ms']:.4f} ms",
                  "—" if p["spread_pct"] is None else f"{p['spread_pct']:.2f} %",
                  f"{p['speedup']:.3f}× [{p['speedup_ci_measured'][0]:.3f}, {p['speedup_ci_measured'][1]:.3f}]"
                  if p.get("speedup") else "—",
                  f"{p['speedup_single_pair']:.3f}× [{p['speedup_ci_constant_band'][0]:.3f}, "
                  f"{p['speedup_ci_constant_band'][1]:.3f}]" if p.get("speedup") else "—"] for p in n["points"]])
    print(f"between-process spread: median {n['spread_pct_median']:.2f} %, max {n['spread_pct_max']:.2f} % "
          f"(the constant band: ±{n['constant_band_pct']:g} %)")
    print(f"wrote {path}")
    if args.smoke:
        data = load_json(path, ["machine", "settings", "overhead", "noise"])
        smoke_require(all(positive_number(v) for v in data["overhead"]["sweep_wall_s"] + data["overhead"]["bench_wall_s"]),
                      "every wall time is positive")
        smoke_require(data["noise"]["rule"] == "between-process", "--repeat 3 uses the between-process rule")
        smoke_require(all(p["processes"] == 3 and p["spread_pct"] is not None for p in data["noise"]["points"]),
                      "every point ran in 3 worker processes with a measured spread")
        smoke_passed("sweep vs bench timed, between-process spread measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
