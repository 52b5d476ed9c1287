"""How long a layer scan of the demo transformer takes on this CPU (target: under a minute).

It measures the demo transformer once (a quick baseline run), then runs what
``workbench layers RUN --scan quantize:method=dynamic_int8`` runs: a worker that loads the model,
applies dynamic int8 to the whole model, then to each of its 14 Linear layers alone (the plugin's
``skip`` parameter names the 13 others), compares each variant's outputs on the 360 held-out digits,
and checks the suggested skip. Wall time includes the worker's start and the model's load.

    python benchmarks/layer_scan.py [--rounds 3] [--threads 1 2] [--out DIR]
    python benchmarks/layer_scan.py --smoke [--out DIR]

``--smoke``: one round with the smallest measurement settings (the scan itself is the same), then the
JSON is read back.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SMOKE_DURATION_S, SMOKE_ITERS, SMOKE_THREADS, SMOKE_WARMUP, add_smoke_arguments,  # noqa: E402
                     load_json, output_dir, positive_number, print_table, smoke_passed, smoke_require,
                     write_results)

MODEL = "demo:digits-transformer"
PLUGIN = {"name": "quantize", "params": {"method": "dynamic_int8"}}
TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="scans to time (the median is reported)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="intra-op threads of the scanned run (each count is timed; default 1 and 2)")
    add_smoke_arguments(parser)
    args = parser.parse_args()
    out_folder = output_dir(args, "layer_scan")

    from workbench.engine.session import Session
    from workbench.results.store import ResultsStore
    from workbench.spec import RunSpec

    settings = {"iters": 50, "duration_s": 0.5}
    if args.smoke:
        args.rounds, args.threads = 1, [SMOKE_THREADS]
        settings = {"iters": SMOKE_ITERS, "duration_s": SMOKE_DURATION_S, **SMOKE_WARMUP}
    workdir = tempfile.TemporaryDirectory(prefix="wb-scan-")
    store = ResultsStore(Path(workdir.name) / "runs.sqlite")
    session = Session(store)
    rounds = []
    load_before = os.getloadavg()[0]
    for threads, index in ((t, i) for t in args.threads for i in range(args.rounds)):
        run = session.run(RunSpec(model=MODEL, threads=threads, **settings)) if index == 0 else run
        if run.status != "done":
            raise SystemExit(f"the baseline run failed: {run.error}")
        started = time.perf_counter()
        scan = session.explain("scan", run.id, run.spec, {"plugin": PLUGIN})["scan"]
        wall = time.perf_counter() - started
        per_layer = [layer["seconds"] for layer in scan["layers"]]
        rounds.append({"round": index + 1, "threads": threads, "wall_s": round(wall, 3), "scan_s": scan["seconds"],
                       "layers": len(scan["layers"]), "per_layer_median_s": round(statistics.median(per_layer), 4),
                       "ranking": scan["ranking"][:5], "suggestion": scan["suggestion"], "how": scan["how"]})
        print(f"{threads} thread(s), round {index + 1}: {wall:.1f} s wall "
              f"({scan['seconds']:.1f} s scanning {len(per_layer)} layers)",
              flush=True)
    store.close()
    medians = {str(t): round(statistics.median(r["wall_s"] for r in rounds if r["threads"] == t), 3)
               for t in args.threads}
    median_wall = min(medians.values())
    # A loaded machine (other processes on the cores) slows the scan several-fold: say how loaded it was.
    payload = {"model": MODEL, "plugin": PLUGIN, "threads": args.threads, "target_s": TARGET_S,
               "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
               "median_wall_s_by_threads": medians, "median_wall_s": median_wall,
               "under_target": median_wall < TARGET_S, "rounds": rounds}
    path = write_results("layer_scan", payload, out_folder)
    print_table(["threads", "round", "wall s", "scan s", "layers", "s per layer", "most sensitive"],
                [[r["threads"], r["round"], r["wall_s"], r["scan_s"], r["layers"], r["per_layer_median_s"],
                  r["ranking"][0]] for r in rounds])
    print(f"median by threads {medians} s (target < {TARGET_S:.0f} s): "
          f"{'met' if median_wall < TARGET_S else 'MISSED'}; load average {payload['load_average']}; wrote {path}")
    if args.smoke:
        data = load_json(path, ["machine", "model", "rounds", "median_wall_s", "under_target"])
        smoke_require(len(data["rounds"]) == 1 and positive_number(data["median_wall_s"]), "no timed round")
        first = data["rounds"][0]
        smoke_require(first["layers"] == 14 and first["how"] == "skip", f"scanned {first['layers']} layers")
        smoke_require(first["suggestion"] and first["suggestion"]["skip"], "no skip suggestion")
        smoke_passed(f"scanned {first['layers']} layers in {first['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
