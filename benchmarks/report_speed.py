"""How long a 50-run report takes to render, per format (the target: under 5 s on a 2-core machine).

    python benchmarks/report_speed.py [--runs 50] [--repeat 3] [--out FILE.json | DIR]
    python benchmarks/report_speed.py --smoke [--out DIR]

Builds a results store of ``--runs`` real-looking runs (the test suite's generator: 1000
latencies each from a seeded log-normal, 10 Hz telemetry, GPU power on a third of them, two
failed runs), then times ``write_report`` for every format twice over:

* cold: a fresh ``python`` process doing ``write_report`` once, so imports (matplotlib,
  reportlab) and font loading count, as in ``workbench report`` from the shell;
* warm: in this process, median of ``--repeat`` calls, as in the GUI's second export.

Prints a table and writes ``benchmarks/results/report_speed.json``.

``--smoke``: 4 runs, one warm call, every format; the reports, the store and ``report_speed.json``
go to ``--out DIR`` (else a temporary folder), are read back and checked. The exit status then says
whether the outputs are sane, not whether the (wall-clock) target was met.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0
SMOKE_RUNS = 4      # two baselines, two variants

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (add_smoke_arguments, load_json, output_dir, positive_number, smoke_passed,  # noqa: E402
                     smoke_require)


def _generator():
    """``add_run`` from the report tests (tests/test_report.py, or wherever the tests keep it now)."""
    tests = ROOT / "tests"
    found = sorted(tests.rglob("test_report.py"), key=lambda p: len(p.parts))
    if not found:
        raise SystemExit(f"no test_report.py under {tests}: its add_run generates the runs this benchmark reports")
    sys.path.insert(0, str(tests))   # the tests' shared helpers (pytest's pythonpath = ["tests"])
    spec = importlib.util.spec_from_file_location("report_test_data", found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.add_run


def build_store(path: Path, runs: int) -> list[int]:
    from workbench.results.store import ResultsStore
    add_run = _generator()
    store = ResultsStore(path)
    ids: list[int] = []
    plugin_choices = ["prune:method=structured,amount=0.{a}", "fuse:method=conv_bn",
                      "quantize:method=dynamic_int8", "prune:method=unstructured,amount=0.{a}",
                      "distill:student=width,width=0.{a}", "quantize:method=fp16"]
    models = ["demo:digits-cnn", "demo:digits-transformer"]
    for m, model in enumerate(models):
        ids.append(add_run(store, model=model, median_ms=2.0 + m, n=1000, seed=100 + m, gpu=False))
    i = 0
    while len(ids) < runs:
        model = models[i % 2]
        plugin = plugin_choices[i % len(plugin_choices)].format(a=1 + i % 8)
        if i in (7, 23):
            ids.append(add_run(store, model=model, plugins=[plugin], status="failed", seed=i,
                               error="PluginError: plugin quantize failed: RuntimeError: out of memory"))
        else:
            ids.append(add_run(store, model=model, plugins=[plugin], median_ms=(2.0 + i % 2) * (0.4 + 0.03 * (i % 20)),
                               sigma=0.03 + 0.01 * (i % 5), n=1000, seed=i, size_bytes=200_000 + 30_000 * (i % 40),
                               top1=1.0 - 0.002 * (i % 12), gpu=i % 3 == 0, label=None))
        i += 1
    store.close()
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    add_smoke_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.repeat = SMOKE_RUNS, 1
    if args.out and args.out.endswith(".json"):   # a file, as before: its folder holds it
        out_path = Path(args.out)
        args.out = str(out_path.parent)
        output_dir(args, "report_speed")   # refuses benchmarks/results under --smoke
    else:
        out_path = output_dir(args, "report_speed") / "report_speed.json"

    from workbench.report import FORMATS, build_report, write_report
    from workbench.results.store import ResultsStore

    # --smoke keeps the reports beside report_speed.json, to be checked.
    work = out_path.parent if args.smoke else Path(tempfile.mkdtemp(prefix="report-speed-"))
    db = work / "runs.sqlite"
    t = time.perf_counter()
    ids = build_store(db, args.runs)
    print(f"store with {len(ids)} runs built in {time.perf_counter() - t:.1f} s ({db})")
    suffixes = [s for s in FORMATS if s != ".htm"]

    results = []
    for suffix in suffixes:
        out = work / f"report{suffix}"
        code = ("import sys, time; t = time.perf_counter(); from workbench.results.store import ResultsStore; "
                "from workbench.report import write_report; "
                f"write_report(ResultsStore({str(db)!r}), {ids!r}, {str(out)!r}); "
                "print(time.perf_counter() - t)")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        process_s = time.perf_counter() - t
        cold_s = float(proc.stdout.strip().splitlines()[-1])
        store = ResultsStore(db)
        warm = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            write_report(store, ids, out)
            warm.append(time.perf_counter() - t)
        store.close()
        results.append({"format": suffix.lstrip("."), "cold_s": cold_s, "cold_process_s": process_s,
                        "warm_median_s": statistics.median(warm), "warm_all_s": warm, "bytes": out.stat().st_size,
                        "under_target": cold_s < TARGET_S and statistics.median(warm) < TARGET_S})

    store = ResultsStore(db)
    t = time.perf_counter()
    build_report(store, ids)
    model_s = time.perf_counter() - t
    store.close()

    load = os.getloadavg()
    print(f"\nreport of {len(ids)} runs ({os.cpu_count()} CPU cores, load average {load[0]:.1f}, "
          f"target < {TARGET_S:g} s)\n")
    header = f"{'format':<7}{'cold (s)':>10}{'process (s)':>13}{'warm (s)':>10}{'size':>12}  ok"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['format']:<7}{r['cold_s']:>10.2f}{r['cold_process_s']:>13.2f}{r['warm_median_s']:>10.2f}"
              f"{r['bytes'] / 1024:>10.0f} K  {'yes' if r['under_target'] else 'NO'}")
    print(f"\ndata model alone (build_report): {model_s:.2f} s")
    print("cold = write_report in a fresh interpreter, imports included; process = that interpreter's whole "
          "life (python start-up too); warm = median of repeated calls in one process")

    payload = {
        "runs": len(ids), "target_s": TARGET_S, "build_report_s": model_s, "results": results,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": _cpu_model(), "load_average_1_5_15min": list(os.getloadavg())},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out_path}")
    if args.smoke:
        check_smoke(out_path, work, suffixes, len(ids))
        return 0
    return 0 if all(r["under_target"] for r in results) else 1


def check_smoke(path: Path, work: Path, suffixes: list[str], runs: int) -> None:
    """report_speed.json parses, has a timing per format; each report exists and holds every run."""
    data = load_json(path, ["runs", "target_s", "build_report_s", "results", "machine", "when"])
    smoke_require(data["runs"] == runs, f"{path}: runs = {data['runs']}, expected {runs}")
    formats = [r.get("format") for r in data["results"]]
    smoke_require(formats == [s.lstrip(".") for s in suffixes], f"{path}: formats {formats}")
    for r in data["results"]:
        for key in ("cold_s", "cold_process_s", "warm_median_s", "bytes"):
            smoke_require(positive_number(r.get(key)), f"{path}: {r['format']} {key} = {r.get(key)!r}")
    report = load_json(work / "report.json", ["format", "version", "run_ids", "summary", "runs"])
    smoke_require(len(report["runs"]) == runs, f"report.json lists {len(report['runs'])} runs, expected {runs}")
    with open(work / "report.csv", newline="", encoding="utf-8") as handle:
        csv_rows = list(csv.reader(handle))
    smoke_require(len(csv_rows) == runs + 1 and csv_rows[0][:2] == ["id", "label"],
                  f"report.csv: {len(csv_rows)} rows, expected a header and {runs}")
    html = (work / "report.html").read_text(encoding="utf-8")
    smoke_require("<html" in html[:500].lower() and "</html>" in html[-200:].lower(), "report.html is not a page")
    smoke_require((work / "report.pdf").read_bytes()[:5] == b"%PDF-", "report.pdf is not a PDF")
    smoke_passed(f"{path}: {len(formats)} formats timed; reports of {runs} runs in {work}")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


if __name__ == "__main__":
    sys.exit(main())
