"""Shared helpers for the benchmark scripts: run a spec headless, write a results table, smoke mode.

Smoke mode (``--smoke``): the script's own code path with the smallest settings, writing into
``--out DIR`` (else ``$WORKBENCH_BENCH_OUT``, else a fresh temporary folder), never into the
committed ``benchmarks/results/``; it then reads back what it wrote and exits 1 if it is not sane.
``$WORKBENCH_BENCH_OUT`` also redirects ``write_results`` for scripts without ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OUT_ENV = "WORKBENCH_BENCH_OUT"

# The smallest settings every smoke run uses (a fraction of a second per measurement).
SMOKE_THREADS = 1
SMOKE_DURATION_S = 0.05
SMOKE_ITERS = 20
SMOKE_WARMUP = {"warmup_min_iters": 2, "warmup_max_s": 0.2}
SMOKE_DEMO = "digits-cnn"        # the smallest bundled demo (0.37 M parameters; the transformer has 1.2 M)


def machine() -> dict:
    from workbench.telemetry.host import host_environment
    host = host_environment()
    return {"cpu": host.get("cpu_model"), "cores": host.get("cpu_usable_cores"), "python": sys.version.split()[0],
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def add_smoke_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="quick check that the script still works: smallest settings, output to --out or a "
                             "temporary folder, then the output is read back and checked")
    parser.add_argument("--out", help=f"folder for the results (default: {RESULTS_DIR}; with --smoke: "
                                      f"${OUT_ENV} or a new temporary folder)")


def output_dir(args: argparse.Namespace, name: str) -> Path:
    """Where this run writes: ``--out``, else (smoke) ``$WORKBENCH_BENCH_OUT`` or a temporary folder,
    else ``benchmarks/results``. A smoke run refuses the committed results folder."""
    chosen = args.out or os.environ.get(OUT_ENV)
    if getattr(args, "smoke", False):
        folder = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix=f"wb-smoke-{name}-"))
        if folder.resolve() == RESULTS_DIR.resolve():
            raise SystemExit(f"--smoke never writes into {RESULTS_DIR} (the committed results): pass another --out")
    else:
        folder = Path(chosen) if chosen else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_results(name: str, payload: dict, folder: Path | None = None) -> Path:
    """Write ``<folder>/<name>.json`` (default ``$WORKBENCH_BENCH_OUT`` or ``benchmarks/results``)."""
    folder = Path(folder or os.environ.get(OUT_ENV) or RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    from workbench.format import table
    print(table(headers, [[str(c) for c in r] for r in rows]))


# -- smoke checks: read back what a run wrote; any problem ends the script with exit status 1 --
class SmokeFailure(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"smoke check FAILED: {message}")


def smoke_require(condition: object, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def load_json(path: Path, keys: list[str]) -> dict:
    """``path`` parsed as a JSON object that has every key in ``keys``."""
    smoke_require(path.is_file() and path.stat().st_size > 0, f"{path} missing or empty")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SmokeFailure(f"{path} is not JSON: {exc}") from None
    smoke_require(isinstance(data, dict), f"{path}: expected a JSON object")
    missing = [k for k in keys if k not in data]
    smoke_require(not missing, f"{path}: missing keys {missing}")
    return data


def smoke_passed(what: str) -> None:
    print(f"smoke check passed: {what}", flush=True)
