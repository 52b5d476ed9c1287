"""Does ``--profile`` change the timed figures? (It must not: the profile runs after the timed window.)

Runs the same model with and without ``--profile``, alternating (A B, B A, ...) so drift falls on
both, each in its own worker as ``workbench bench`` would. The timed p50s are compared with the
run-to-run band measured here (the largest deviation of a configuration's p50 from its own median,
never below ``results.stats.RUN_TO_RUN_NOISE``) and with an exact permutation test on the p50s.
The profile phase's own time is reported beside.

    python benchmarks/profile_overhead.py [--rounds 5] [--model demo:digits-transformer] [--out DIR]
    python benchmarks/profile_overhead.py --smoke [--out DIR]
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SMOKE_DEMO, SMOKE_DURATION_S, SMOKE_ITERS, SMOKE_THREADS, SMOKE_WARMUP,  # noqa: E402
                     add_smoke_arguments, load_json, output_dir, positive_number, print_table, smoke_passed,
                     smoke_require, write_results)


def permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided exact permutation test of a difference in medians (fine for a handful of runs)."""
    observed = abs(statistics.median(b) - statistics.median(a))
    pooled = a + b
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        left = [pooled[i] for i in chosen]
        right = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += abs(statistics.median(right) - statistics.median(left)) >= observed - 1e-12
        total += 1
    return hits / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="demo:digits-transformer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=float, default=2.0)
    add_smoke_arguments(parser)
    args = parser.parse_args()
    out_folder = output_dir(args, "profile_overhead")

    from workbench.engine.session import Session
    from workbench.results.stats import RUN_TO_RUN_NOISE
    from workbench.results.store import ResultsStore
    from workbench.spec import RunSpec

    settings = {"threads": args.threads, "iters": 300, "duration_s": args.duration}
    if args.smoke:
        args.rounds, args.model = 1, f"demo:{SMOKE_DEMO}"
        settings = {"threads": SMOKE_THREADS, "iters": SMOKE_ITERS, "duration_s": SMOKE_DURATION_S, **SMOKE_WARMUP}
    workdir = tempfile.TemporaryDirectory(prefix="wb-profile-")
    store = ResultsStore(Path(workdir.name) / "runs.sqlite")
    session = Session(store)
    runs = []
    for index in range(args.rounds):
        for profile in ((False, True) if index % 2 == 0 else (True, False)):
            record = session.run(RunSpec(model=args.model, profile=profile, **settings))
            if record.status != "done":
                raise SystemExit(f"a run failed: {record.error}")
            phase = (record.result.get("profile") or {})
            runs.append({"round": index + 1, "profile": profile, "p50_ms": record.latency["median_ms"],
                         "iqr_ms": record.latency.get("iqr_ms"), "n": record.latency["n"],
                         "profile_s": phase.get("seconds"), "profile_error": phase.get("error")})
            print(f"round {index + 1} {'--profile' if profile else 'plain    '}: p50 {record.latency['median_ms']:.4f} ms",
                  flush=True)
    store.close()
    plain = [r["p50_ms"] for r in runs if not r["profile"]]
    profiled = [r["p50_ms"] for r in runs if r["profile"]]
    center = {"plain": statistics.median(plain), "profile": statistics.median(profiled)}
    spread = max(abs(v / center[k] - 1) for k, values in (("plain", plain), ("profile", profiled)) for v in values)
    band = max(RUN_TO_RUN_NOISE, spread)
    ratio = center["profile"] / center["plain"]
    payload = {"model": args.model, "rounds": args.rounds, "threads": args.threads, "settings": settings,
               "load_average_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
               "median_p50_ms": center, "ratio": round(ratio, 4), "band": round(band, 4),
               "measured_spread": round(spread, 4), "noise_floor": RUN_TO_RUN_NOISE,
               "within_band": abs(ratio - 1) <= band,
               "permutation_p": round(permutation_p(plain, profiled), 4) if args.rounds > 1 else None,
               "profile_phase_s": statistics.median(r["profile_s"] for r in runs if r["profile"]), "runs": runs}
    path = write_results("profile_overhead", payload, out_folder)
    print_table(["round", "profile", "p50 ms", "IQR ms", "profile phase s"],
                [[r["round"], r["profile"], f"{r['p50_ms']:.4f}", f"{r['iqr_ms'] or 0:.4f}", r["profile_s"] or ""]
                 for r in runs])
    print(f"p50 with --profile / without: {ratio:.4f} (band ±{band:.1%}: "
          f"{'within' if payload['within_band'] else 'OUTSIDE'}), permutation p = {payload['permutation_p']}; "
          f"wrote {path}")
    if args.smoke:
        data = load_json(path, ["machine", "runs", "ratio", "band", "within_band", "profile_phase_s"])
        smoke_require(len(data["runs"]) == 2 and all(positive_number(r["p50_ms"]) for r in data["runs"]), "no runs")
        smoke_require(positive_number(data["profile_phase_s"]), "the profiled run has no profile phase time")
        smoke_require(not any(r["profile_error"] for r in data["runs"]), "the profiler failed")
        smoke_passed(f"p50 ratio {data['ratio']:.3f}, profile phase {data['profile_phase_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
