"""A spare worker process started ahead, so a run does not wait for a fresh Python to import torch.

A spare is ``python -m workbench.worker --prewarm``: it imports torch, numpy and the worker's own
modules, then blocks reading its job line. It does nothing else before its job arrives, so it
measures under the same conditions as a worker started for the job (``worker.conditions``).
``WorkerProcess`` takes the spare when it was started with exactly the environment the job needs
(else the spare is discarded and a fresh worker spawned); the job's log starts when it is taken.
Once asked (``prewarm``), the pool replaces every spare taken, until ``close``.

A spare never outlives the app: ``close()`` kills it (the GUI calls it at shutdown, ``atexit`` as
well), and it exits by itself when its stdin closes, i.e. when the parent is gone.

No spare starts while a run is in progress: importing torch takes seconds of a core, and on a
small machine that would disturb the latencies being measured. The replacement for a spare a run
took starts when that run ends.

``WORKBENCH_PREWARM=0`` turns spares off (each costs ~300 MB of memory while it waits).
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

DISABLE_ENV = "WORKBENCH_PREWARM"
DISCARD_WAIT_S = 2.0        # a killed spare is reaped within this (it is only importing or waiting)


def job_environment() -> dict[str, str]:
    """The environment a worker gets: this process's, plus the worker conditions it lacks."""
    from ..worker.conditions import worker_environment
    return worker_environment(dict(os.environ, PYTHONUNBUFFERED="1"))


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:     # the folder was deleted under us: no spare can be known to match
        return None


def worker_command(prewarm: bool) -> list[str]:
    return [sys.executable, "-m", "workbench.worker", *(["--prewarm"] if prewarm else [])]


def spawn_worker(env: dict[str, str], prewarm: bool = False) -> subprocess.Popen:
    """A worker process with the event pipe on stdout, its log on stderr, in a session of its own
    (Ctrl-C in a terminal reaches the parent only; the parent ends the whole group)."""
    return subprocess.Popen(worker_command(prewarm), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)


@dataclass
class Spare:
    proc: subprocess.Popen
    env: dict[str, str] = field(repr=False)
    cwd: str | None
    spawned_at: float        # time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def discard(self) -> None:
        """Kill the spare and its group, and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=DISCARD_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


class WarmWorkers:
    """At most one spare worker. After ``prewarm()`` the pool keeps one: each spare taken (or
    discarded) is replaced, once no run is in progress, until ``close()``."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = os.environ.get(DISABLE_ENV, "1").lower() not in ("0", "no", "off", "false") \
            if enabled is None else enabled
        self._lock = threading.RLock()
        self._spare: Spare | None = None
        self._keep = False          # prewarm() was asked: replace every spare taken
        self._runs_active = 0
        self._wanted = False        # a replacement waits for the runs in progress to end
        self._atexit_registered = False
        self.spawned = 0            # spares started, for tests and benchmarks
        self.discarded = 0          # spares killed unused (stale environment, died, closed)

    @property
    def spare(self) -> Spare | None:
        return self._spare

    def prewarm(self, now: bool = True) -> bool:
        """Keep a spare ready from now on: start one now, or when the runs in progress have ended
        (``now=False``: when the next run ends, for a caller whose run is about to start). Returns
        whether one is there or coming (False when spares are turned off)."""
        with self._lock:
            if not self.enabled:
                return False
            self._keep = True
            if self._spare is not None and not self._spare.alive():
                self._drop_spare()
            if now:
                self.replenish()
            elif self._spare is None:
                self._wanted = True
            return True

    def take(self, env: dict[str, str]) -> Spare | None:
        """The spare, handed over for a job that needs ``env`` (and this working directory); None
        when there is none, it died, or it was started with another environment (then it is killed).
        The taker calls ``replenish()`` once its job is handed over."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is None:
            return None
        if spare.alive() and spare.env == env and spare.cwd is not None and spare.cwd == _cwd():
            return spare
        self.discarded += 1
        spare.discard()     # stale (e.g. CUDA_VISIBLE_DEVICES or a MALLOC_ variable changed), or dead
        return None

    def replenish(self) -> None:
        """Start the next spare if one is kept and missing: now, or when the runs in progress end."""
        with self._lock:
            if not self._keep or self._spare is not None:
                return
            if self._runs_active:
                self._wanted = True
            else:
                self._spawn()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around a run: no spare starts during it; one wanted meanwhile starts at its end."""
        with self._lock:
            self._runs_active += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs_active -= 1
                if not self._runs_active and self._wanted:
                    self._wanted = False
                    self.replenish()

    def close(self) -> None:
        """Kill the spare and keep none until ``prewarm()`` is asked again (the app is quitting)."""
        with self._lock:
            self._keep = False
            self._wanted = False
            self._drop_spare()

    # -- internals (called with the lock held) -------------------------------------------------------
    def _spawn(self) -> None:
        env = job_environment()
        self._spare = Spare(spawn_worker(env, prewarm=True), env, _cwd(), time.monotonic())
        self.spawned += 1
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            self.discarded += 1
            spare.discard()


# The process's spares: every Session takes from here; the GUI asks for them, the CLI never does.
warm_workers = WarmWorkers()


def prewarm() -> bool:
    """Start a spare worker for the next run (``WarmWorkers.prewarm`` of this process's pool)."""
    return warm_workers.prewarm()
