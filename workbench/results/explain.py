"""Where a run's explanations are stored, and reading them back (torch-free; the CLI, the reports
and the GUI's Profile and Layers tabs read through here, so an old run can be explained later).

* ``result["profile"]``: the per-op profile of a ``--profile`` run (``worker.profile``); its Chrome
  trace is the file ``profile["trace_path"]`` in the run's artifact folder.
* ``result["layers"]``: the per-layer comparison of a ``--profile`` run (``worker.layers``), or
  ``{"unavailable": why}``; one computed later by ``workbench layers`` is the file
  ``<artifacts>/run-N/explain/layers.json`` (same format).
* sensitivity scans (``worker.scan``): ``<artifacts>/run-N/explain/scan-<plugin step>.json``, one per
  plugin step scanned, each ``{"step": "quantize:method=dynamic_int8", "created_at": ..., "scan": {...}}``.

Deleting a run deletes its artifact folder, and these files with it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ..errors import StoreError

LAYERS_FILE = "layers.json"
SCAN_PREFIX = "scan-"


def explain_dir(store: Any, run_id: int) -> Path:
    return Path(store.artifacts_root) / f"run-{run_id}" / "explain"


def stored_profile(run: Any) -> dict | None:
    profile = (run.result or {}).get("profile")
    return profile if isinstance(profile, dict) else None


def stored_layers(store: Any, run: Any) -> dict | None:
    """The run's per-layer comparison: from its result, else the file a later ``layers`` wrote."""
    layers = (run.result or {}).get("layers")
    if isinstance(layers, dict) and "rows" in layers:
        return layers
    saved = _read(explain_dir(store, run.id) / LAYERS_FILE)
    return saved if saved and "rows" in saved else (layers if isinstance(layers, dict) else None)


def save_layers(store: Any, run_id: int, report: dict) -> Path:
    return _write(explain_dir(store, run_id) / LAYERS_FILE, report)


def scan_file(store: Any, run_id: int, step_text: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", step_text).strip("_")[:120] or "plugin"
    return explain_dir(store, run_id) / f"{SCAN_PREFIX}{slug}.json"


def save_scan(store: Any, run_id: int, step_text: str, scan: dict) -> Path:
    return _write(scan_file(store, run_id, step_text), {"step": step_text, "created_at": time.time(), "scan": scan})


def stored_scans(store: Any, run_id: int) -> list[dict]:
    """Every scan stored for the run, newest first."""
    folder = explain_dir(store, run_id)
    found = [_read(path) for path in sorted(folder.glob(f"{SCAN_PREFIX}*.json"))] if folder.is_dir() else []
    return sorted((f for f in found if f and "scan" in f), key=lambda f: -(f.get("created_at") or 0))


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, payload: dict) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(payload, default=str), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise StoreError(f"could not write {path}: {exc.strerror or exc}") from None
    return path
