"""The columns of the Results table: what each shows, how it sorts, its tooltip. No Qt here: the
table model (``table.py``) reads these."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ... import format as fmt
from ...results.store import RunRecord


def _energy(joules: float | None) -> str:
    if joules is None:
        return "—"
    if joules < 1e-3:
        return f"{joules * 1e6:.3g} µJ"
    if joules < 1:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules:.3g} J"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def model_name(model: str | None) -> str:
    if not model:
        return "—"
    return model if model.startswith("demo:") else os.path.basename(model.rstrip("/")) or model


def _throughput(value: float | None) -> str:
    return "—" if value is None else f"{fmt.count(value)}/s"


@dataclass
class Column:
    key: str
    header: str
    text: Callable[[dict, RunRecord], str]
    sort: Callable[[dict, RunRecord], Any]
    numeric: bool = False
    tip: str = ""


def _c(key: str, header: str, text: Callable, sort: Callable, numeric: bool = False, tip: str = "") -> Column:
    return Column(key, header, text, sort, numeric, tip)


COLUMNS: list[Column] = [
    _c("id", "ID", lambda r, run: str(r["id"]), lambda r, run: r["id"], True),
    _c("name", "Name", lambda r, run: r["name"] or "", lambda r, run: (r["name"] or "").lower(),
       tip="Double-click or F2 to rename"),
    _c("model", "Model", lambda r, run: model_name(r["model"]), lambda r, run: model_name(r["model"]).lower()),
    _c("chain", "Chain", lambda r, run: r["chain"], lambda r, run: r["chain"]),
    _c("status", "Status", lambda r, run: r["status"], lambda r, run: r["status"]),
    _c("device", "Device", lambda r, run: r["device"] or "—", lambda r, run: r["device"] or ""),
    _c("runtime", "Runtime", lambda r, run: r["runtime"] or "—", lambda r, run: r["runtime"] or ""),
    _c("duration", "Duration",
       lambda r, run: _duration(run.finished_at - run.created_at if run.finished_at else None),
       lambda r, run: (run.finished_at - run.created_at) if run.finished_at else None, True,
       "Wall-clock time of the whole run (load, optimize, measure)"),
    _c("p50", "p50", lambda r, run: fmt.ms(r["p50_ms"]), lambda r, run: r["p50_ms"], True,
       "Median latency per iteration (one batch)"),
    _c("p99", "p99", lambda r, run: fmt.ms(r["p99_ms"]), lambda r, run: r["p99_ms"], True,
       "99th percentile latency (reported only with ≥ 662 iterations)"),
    _c("throughput", "Throughput", lambda r, run: _throughput(r["throughput"]), lambda r, run: r["throughput"], True,
       "Samples per second: batch / median latency"),
    _c("speedup", "Speed-up", lambda r, run: fmt.ratio(r["speedup"]), lambda r, run: r["speedup"], True,
       "Baseline median / this run's median, with a 95 % interval; coloured only outside the noise"),
    _c("rss", "Peak RSS", lambda r, run: fmt.nbytes(r["peak_rss_bytes"]), lambda r, run: r["peak_rss_bytes"], True,
       "Peak resident memory of the worker process"),
    _c("gpu_mem", "GPU memory", lambda r, run: fmt.nbytes(r["gpu_mem_peak_bytes"]),
       lambda r, run: r["gpu_mem_peak_bytes"], True, "Peak GPU memory of the worker (device-wide if not listed)"),
    _c("power", "Power", lambda r, run: fmt.num(r["power_w"], ".3g", " W"), lambda r, run: r["power_w"], True,
       "Mean GPU power during the timed window"),
    _c("energy", "Energy/inference", lambda r, run: _energy(r["energy_j_per_inference"]),
       lambda r, run: r["energy_j_per_inference"], True, "GPU energy per iteration (one batch)"),
    _c("size", "Size", lambda r, run: fmt.nbytes(r["size_bytes"])
       + (f" ({fmt.ratio(r['size_ratio'])})" if r.get("size_ratio") is not None and r["chain"] != "baseline" else ""),
       lambda r, run: r["size_bytes"], True, "Serialized weights (ratio vs the unoptimized model)"),
    _c("top1", "Top-1 agreement", lambda r, run: fmt.pct(r["top1_agreement"]), lambda r, run: r["top1_agreement"],
       True, "Fraction of samples whose predicted class matches the unoptimized model"),
    _c("accuracy", "Accuracy", lambda r, run: fmt.pct(r["accuracy"]), lambda r, run: r["accuracy"], True,
       "Accuracy on the labelled evaluation data, when the data has labels"),
    _c("tags", "Tags", lambda r, run: ", ".join(r["tags"] or ()), lambda r, run: ", ".join(r["tags"] or ())),
]
# What a user compares first (latency, speed-up, fidelity) comes first; context columns follow.
_ORDER = ("id", "name", "chain", "status", "p50", "p99", "throughput", "speedup", "top1", "accuracy", "size",
          "rss", "gpu_mem", "power", "energy", "model", "device", "runtime", "duration", "tags")
COLUMNS.sort(key=lambda c: _ORDER.index(c.key) if c.key in _ORDER else len(_ORDER))
COLUMN_INDEX = {c.key: i for i, c in enumerate(COLUMNS)}
