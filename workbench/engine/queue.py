"""The run queue: jobs run one at a time, in order, on one runner thread, each with its own cancel
``threading.Event`` (``Session.run`` polls it every 0.1 s and stops the worker process).

Qt-free. Whoever drives it (the GUI's bridge turns every notification into a Qt signal) passes
callbacks; they are called from the thread that saw the change (the runner thread, or the caller
of ``enqueue``/``cancel_all``/``remove``), so they must be quick and thread-safe.
"""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import WorkbenchError
from ..spec import RunSpec

__all__ = ["CANCELLED", "DONE", "FAILED", "FINISHED", "QUEUED", "RUNNING", "Job", "JobQueue"]

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
REMOVED = "removed from the queue"


@dataclass
class Job:
    """One queued run. ``run_id`` is known once the session has created the store row."""

    id: int
    spec: RunSpec
    label: str
    group: str = ""
    status: str = QUEUED
    run_id: int | None = None
    message: str | None = None
    detail: str | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    phase: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _ignore(*args: Any) -> None:
    pass


class JobQueue:
    """Callbacks: ``on_event(event)`` for every core event dict (with ``job_id`` added),
    ``on_started(job)``, ``on_finished(job)`` (status and message set), ``on_changed()`` when the
    list of jobs or their state changed, ``on_busy(busy)`` once per change of "anything queued or
    running".

    ``session`` is created in the runner thread on first use (its own store connection, as sqlite
    wants); set it before the first job to run jobs on something else (tests do)."""

    def __init__(self, db_path: str | Path, *, on_event: Callable[[dict], Any] = _ignore,
                 on_started: Callable[[Job], Any] = _ignore, on_finished: Callable[[Job], Any] = _ignore,
                 on_changed: Callable[[], Any] = _ignore, on_busy: Callable[[bool], Any] = _ignore) -> None:
        self.db_path = Path(db_path)
        self.session = None
        self._on_event, self._on_started, self._on_finished = on_event, on_started, on_finished
        self._on_changed, self._on_busy = on_changed, on_busy
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._current: Job | None = None
        self._busy = False
        self._stopping = False
        self._runner = threading.Thread(target=self._run_loop, name="workbench-runner", daemon=True)
        self._runner.start()

    # -- the queue ---------------------------------------------------------------------------------
    def enqueue(self, specs: list[RunSpec], labels: list[str] | None = None, group: str = "") -> list[Job]:
        labels = labels or [s.label or s.describe_chain() for s in specs]
        jobs = [Job(next(self._ids), spec, label, group) for spec, label in zip(specs, labels)]
        with self._wake:
            if self._stopping:
                raise WorkbenchError("the run queue is shut down")
            self._jobs.extend(jobs)
            self._wake.notify_all()
        self._on_changed()
        self._update_busy()
        return jobs

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def current(self) -> Job | None:
        return self._current

    def pending(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs if j.status == QUEUED]

    def is_busy(self) -> bool:
        with self._lock:
            return self._busy_locked()

    def _busy_locked(self) -> bool:
        return self._current is not None or any(j.status == QUEUED for j in self._jobs)

    def cancel_current(self) -> bool:
        """Stop the running job (the worker is asked, then terminated, then killed)."""
        job = self._current
        if job is None:
            return False
        job.cancel.set()
        return True

    def cancel_all(self) -> int:
        """Drop every queued job and stop the running one. Returns how many were affected."""
        removed = []
        with self._lock:
            for job in self._jobs:
                if job.status == QUEUED:
                    job.status, job.message, job.finished_at = CANCELLED, REMOVED, time.monotonic()
                    removed.append(job)
        for job in removed:
            self._on_finished(job)
        stopped = self.cancel_current()
        self._on_changed()
        self._update_busy()
        return len(removed) + int(stopped)

    def remove(self, job_id: int) -> bool:
        """Take a queued (not yet started) job off the queue; a running one is cancelled instead."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id and j.status == QUEUED), None)
            if job is None:
                return False
            job.status, job.message, job.finished_at = CANCELLED, REMOVED, time.monotonic()
        self._on_finished(job)
        self._on_changed()
        self._update_busy()
        return True

    def clear_finished(self) -> None:
        with self._lock:
            self._jobs = [j for j in self._jobs if not j.finished]
        self._on_changed()

    def _update_busy(self) -> None:
        """Call ``on_busy`` once per change of state (from whichever thread saw the change)."""
        with self._lock:
            busy = self._busy_locked()
            changed = busy != self._busy
            self._busy = busy
        if changed:
            self._on_busy(busy)

    # -- the runner thread -------------------------------------------------------------------------
    def _run_loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not any(j.status == QUEUED for j in self._jobs):
                    self._wake.wait()
                if self._stopping:
                    return
                job = next(j for j in self._jobs if j.status == QUEUED)
                job.status, job.started_at = RUNNING, time.monotonic()
                self._current = job
            self._on_changed()
            self._on_started(job)
            self._run_job(job)
            with self._lock:
                self._current = None
            self._on_changed()
            self._on_finished(job)
            self._update_busy()

    def _session(self):
        if self.session is None:
            # imported here: the GUI starts without loading the engine's session machinery
            from ..results.store import ResultsStore
            from .session import Session
            self.session = Session(ResultsStore(self.db_path))
        return self.session

    def _run_job(self, job: Job) -> None:
        def on_event(event: dict) -> None:
            event["job_id"] = job.id
            kind = event.get("type")
            if kind == "run_created":
                job.run_id = event.get("run_id")
            elif kind == "phase":
                job.phase = event.get("phase")
            self._on_event(event)

        if job.cancel.is_set():
            job.status, job.message = CANCELLED, "cancelled before it started"
            job.finished_at = time.monotonic()
            return
        try:
            record = self._session().run(job.spec, on_event=on_event, cancel=job.cancel)
            job.run_id = record.id
            job.status, job.message, job.detail = record.status, record.error, record.error_detail
        except WorkbenchError as exc:
            job.status, job.message = FAILED, str(exc)
        except Exception as exc:  # a bug in the core: keep the queue (and the GUI) alive, keep the traceback
            job.status, job.message = FAILED, f"{type(exc).__name__}: {exc}"
            job.detail = traceback.format_exc()
        job.finished_at = time.monotonic()

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 8.0) -> bool:
        """Cancel everything, stop the runner thread and close the session's store (bounded wait).
        Returns True when the runner stopped in time."""
        self.cancel_all()
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._runner.join(max(0.0, timeout_s))
        if self._runner.is_alive():
            return False
        if self.session is not None:
            try:
                self.session.store.close()
            except Exception:   # closing must never block quitting
                pass
        return True
