"""The worker's side of the event channel: a private pipe for JSON-line events, a watcher for the
parent's ``cancel`` on stdin, and an exit that does not wait for what the model left running.

The pipe the worker got as stdout is moved to a random high descriptor that child processes do
not inherit, and fd 1 is pointed at stderr: what the model or a library prints, or writes to
fd 1, 3, ..., goes to the log, not into the event stream.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

EVENT_FD_MIN = 200      # the event channel lives at a random descriptor at or above this


class EventWriter:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, type_: str, **payload: Any) -> None:
        payload["type"] = type_
        payload.setdefault("t", time.monotonic())
        # Each event starts on a fresh line: whatever reached the channel unterminated stays on
        # its own (malformed, ignored) line instead of spoiling this event.
        line = "\n" + json.dumps(payload, default=_json_default) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            try:
                self._file.close()
            except OSError:
                pass


def private_event_channel() -> int:
    """Move the event pipe (fd 1 as started) to a random high descriptor, closed on exec, and point
    fd 1 at stderr. Returns the channel's descriptor."""
    import fcntl
    import random
    import resource
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = 4096 if soft == resource.RLIM_INFINITY else min(soft, 4096)
    span = top - EVENT_FD_MIN - 64
    lowest = EVENT_FD_MIN + random.SystemRandom().randrange(span) if span > 0 else 10
    channel = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.dup2(2, 1)
    return channel


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


class CancelWatcher:
    """Reads stdin after the job line; the parent writes 'cancel' to ask for a clean stop."""

    def __init__(self, stream) -> None:
        self.flag = threading.Event()
        threading.Thread(target=self._watch, args=(stream,), daemon=True).start()

    def _watch(self, stream) -> None:
        for line in stream:
            if line.strip() == "cancel":
                self.flag.set()
                return
        # stdin closed: the parent is gone, so stop working for nobody.
        self.flag.set()

    def __call__(self) -> bool:
        return self.flag.is_set()


# What every run imports, slowest first; a spare imports them before its job arrives. torch._dynamo
# is imported lazily by the first model call under the FLOP counter (1.5 s on a small machine).
PREWARM_MODULES = (
    "torch", "torch._dynamo", "torch.utils.flop_counter",
    "workbench.worker.fidelity", "workbench.worker.inputs", "workbench.worker.measure",
    "workbench.worker.runtimes.torch_eager", "workbench.models.describe", "workbench.models.loaders",
    "workbench.models.save", "workbench.plugin_api", "workbench.results.stats",
)


def prewarm_imports(modules: tuple[str, ...] = PREWARM_MODULES) -> float:
    """Import ``modules`` and return the seconds it took. One that fails is skipped: the job imports
    it again and reports the failure in its own terms."""
    import importlib
    started = time.monotonic()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:   # noqa: BLE001 - see above; ImportError is not the only way an import fails
            pass
    return round(time.monotonic() - started, 3)


def read_job_line(stream) -> tuple[str, float]:
    """The job line from the parent ('' when stdin closed first) and the seconds spent waiting for
    it (0 when it was already there)."""
    import select
    started = time.monotonic()
    try:
        waiting = bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):
        waiting = False
    line = stream.readline()
    return line, 0.0 if waiting else round(time.monotonic() - started, 3)


def exit_now(code: int) -> None:
    """End the process once the events are out: no waiting for threads the model left running,
    nor for the interpreter's slow teardown of torch."""
    for stream in (sys.stderr, sys.__stdout__):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
