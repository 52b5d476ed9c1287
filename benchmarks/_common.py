"""Shared helpers for the benchmark scripts: run a spec headless and write a results table."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    from workbench.telemetry.host import host_environment
    host = host_environment()
    return {"cpu": host.get("cpu_model"), "cores": host.get("cpu_usable_cores"), "python": sys.version.split()[0],
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    from workbench.format import table
    print(table(headers, [[str(c) for c in r] for r in rows]))
