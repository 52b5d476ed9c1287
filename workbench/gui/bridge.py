"""The GUI's only door into the core: runs ``Session.run`` / ``Session.inspect`` off the GUI
thread and re-emits every core event dict as a Qt signal (queued into the GUI thread).

It also owns the run queue: jobs are run one at a time, in order, each with its own cancel
``threading.Event`` (``Session.run`` polls it every 0.1 s and stops the worker process).
"""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..errors import WorkbenchError
from ..spec import RunSpec

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


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


class SessionBridge(QObject):
    """Signals are emitted from worker threads and delivered queued in the GUI thread."""

    eventReceived = Signal(object)          # every core event dict, with "job_id" added
    jobStarted = Signal(object)             # Job
    jobFinished = Signal(object)            # Job (status/message set)
    queueChanged = Signal()
    busyChanged = Signal(bool)
    inspectFinished = Signal(int, object)   # token, ModelInfo dict
    inspectFailed = Signal(int, str, str)   # token, message, details

    def __init__(self, db_path: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db_path = Path(db_path)
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._current: Job | None = None
        self._busy = False
        self._stopping = False
        self._session = None            # created lazily in the runner thread (own store connection)
        self._inspect_cancel: threading.Event | None = None
        self._inspect_threads: list[threading.Thread] = []
        self._runner = threading.Thread(target=self._run_loop, name="workbench-runner", daemon=True)
        self._runner.start()

    # -- queue -------------------------------------------------------------------------------------
    def enqueue(self, specs: list[RunSpec], labels: list[str] | None = None, group: str = "") -> list[Job]:
        labels = labels or [s.label or s.describe_chain() for s in specs]
        jobs = [Job(next(self._ids), spec, label, group) for spec, label in zip(specs, labels)]
        with self._wake:
            if self._stopping:
                raise WorkbenchError("the application is shutting down")
            self._jobs.extend(jobs)
            self._wake.notify_all()
        self._emit("queueChanged")
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
                    job.status, job.message = CANCELLED, "removed from the queue"
                    job.finished_at = time.monotonic()
                    removed.append(job)
        for job in removed:
            self._emit("jobFinished", job)
        stopped = self.cancel_current()
        self._emit("queueChanged")
        self._update_busy()
        return len(removed) + int(stopped)

    def remove(self, job_id: int) -> bool:
        """Take a queued (not yet started) job off the queue."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id and j.status == QUEUED), None)
            if job is None:
                return False
            job.status, job.message, job.finished_at = CANCELLED, "removed from the queue", time.monotonic()
        self._emit("jobFinished", job)
        self._emit("queueChanged")
        self._update_busy()
        return True

    def clear_finished(self) -> None:
        with self._lock:
            self._jobs = [j for j in self._jobs if not j.finished]
        self._emit("queueChanged")

    def _update_busy(self) -> None:
        """Emit busyChanged once per change of state (from whichever thread saw the change)."""
        with self._lock:
            busy = self._busy_locked()
            changed = busy != self._busy
            self._busy = busy
        if changed:
            self._emit("busyChanged", busy)

    # -- runner thread -----------------------------------------------------------------------------
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
            self._emit("queueChanged")
            self._emit("jobStarted", job)
            self._run_job(job)
            with self._lock:
                self._current = None
            self._emit("queueChanged")
            self._emit("jobFinished", job)
            self._update_busy()

    def _session_obj(self):
        if self._session is None:
            from ..engine.session import Session
            from ..results.store import ResultsStore
            self._session = Session(ResultsStore(self.db_path))
        return self._session

    def _run_job(self, job: Job) -> None:
        def on_event(event: dict) -> None:
            event["job_id"] = job.id
            kind = event.get("type")
            if kind == "run_created":
                job.run_id = event.get("run_id")
            elif kind == "phase":
                job.phase = event.get("phase")
            self._emit("eventReceived", event)

        try:
            if job.cancel.is_set():
                raise _CancelledBeforeStart()
            record = self._session_obj().run(job.spec, on_event=on_event, cancel=job.cancel)
            job.run_id = record.id
            job.status, job.message, job.detail = record.status, record.error, record.error_detail
        except _CancelledBeforeStart:
            job.status, job.message = CANCELLED, "cancelled before it started"
        except WorkbenchError as exc:
            job.status, job.message = FAILED, str(exc)
        except Exception as exc:  # a bug in the core: keep the GUI alive, show the traceback
            job.status, job.message = FAILED, f"{type(exc).__name__}: {exc}"
            job.detail = traceback.format_exc()
        job.finished_at = time.monotonic()

    def _emit(self, name: str, *args: Any) -> None:
        """Emit from any thread; a bridge already deleted (window closed) is not an error."""
        try:
            getattr(self, name).emit(*args)
        except RuntimeError:
            pass

    # -- inspect -----------------------------------------------------------------------------------
    def inspect(self, spec: RunSpec, timeout_s: float = 300.0) -> int:
        """Describe the model in a worker process; answers with inspectFinished/inspectFailed
        carrying the returned token. Starting a new inspection cancels the previous one."""
        if self._inspect_cancel is not None:
            self._inspect_cancel.set()
        cancel = threading.Event()
        self._inspect_cancel = cancel
        token = next(self._tokens)

        def work() -> None:
            session = None
            try:
                session = self._session_for_inspect()
                info = session.inspect(spec, timeout_s=timeout_s, cancel=cancel)
            except WorkbenchError as exc:
                if not cancel.is_set():
                    message = str(exc)
                    first, _, rest = message.partition("\n")
                    self._emit("inspectFailed", token, first, rest.strip())
                return
            except Exception as exc:
                if not cancel.is_set():
                    self._emit("inspectFailed", token, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                return
            finally:
                if session is not None:
                    session.store.close()
            if not cancel.is_set():
                self._emit("inspectFinished", token, info)

        thread = threading.Thread(target=work, name=f"workbench-inspect-{token}", daemon=True)
        self._inspect_threads = [t for t in self._inspect_threads if t.is_alive()] + [thread]
        thread.start()
        return token

    def cancel_inspect(self) -> None:
        if self._inspect_cancel is not None:
            self._inspect_cancel.set()

    def _session_for_inspect(self):
        # Inspect runs beside a measurement: its own store connection (only used for the log path).
        from ..engine.session import Session
        from ..results.store import ResultsStore
        return Session(ResultsStore(self.db_path))

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 8.0) -> bool:
        """Cancel everything and wait (bounded) for the worker processes to end.

        Returns True when every thread stopped in time."""
        self.cancel_all()
        self.cancel_inspect()
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        deadline = time.monotonic() + timeout_s
        self._runner.join(max(0.0, deadline - time.monotonic()))
        for thread in self._inspect_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = self._runner.is_alive() or any(t.is_alive() for t in self._inspect_threads)
        if self._session is not None and not self._runner.is_alive():
            try:
                self._session.store.close()
            except Exception:
                pass
        return not alive


class _CancelledBeforeStart(Exception):
    pass
