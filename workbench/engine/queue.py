"""The run queue: jobs run one at a time, in order, on one runner thread, each with its own cancel
``threading.Event`` (``Session.run`` polls it every 0.1 s and stops the worker process).

A group queued with ``preflight`` (baseline + variant, all combinations: ``engine.plan``'s plans)
runs like ``engine.runner.run_planned``: its first job, the plain model, checks the later jobs'
chains on the loaded model before timing anything (``Session.run(check_variants=...)``); a refused
variant is not started but finishes as ``refused`` with the reason, and when the one the user asked
for (or every one) is refused, the baseline itself finishes as ``refused`` (nothing timed, nothing
kept) and the rest of its group is not started.

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

from ..errors import VariantsRefused, WorkbenchError
from ..spec import RunSpec

__all__ = ["CANCELLED", "DONE", "FAILED", "FINISHED", "QUEUED", "REFUSED", "RUNNING", "Job", "JobQueue"]

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
REFUSED = "refused"     # not timed: its chain cannot run on the loaded model (or its variant cannot)
FINISHED = (DONE, FAILED, CANCELLED, REFUSED)
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
    # A preflight group's baseline: the later jobs whose chains its worker checks, and the one the
    # user asked for (its refusal refuses the whole group).
    checks: list["Job"] = field(default_factory=list, repr=False)
    required: "Job | None" = field(default=None, repr=False)

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
    def enqueue(self, specs: list[RunSpec], labels: list[str] | None = None, group: str = "",
                preflight: bool = False, require_last: bool = True,
                checks: list[list[int]] | None = None) -> list[Job]:
        """Queue ``specs`` in order. With ``preflight`` (a plan whose first spec is the plain model)
        the first job checks the later ones before it times anything; ``require_last``: the last spec
        is the one the user asked for (baseline + variant), so its refusal refuses the group; without
        it (all combinations) refused variants are skipped and only a group with none left is refused.
        ``checks`` (a sweep's baselines): for each spec, the indices of the later specs it checks."""
        labels = labels or [s.label or s.describe_chain() for s in specs]
        jobs = [Job(next(self._ids), spec, label, group) for spec, label in zip(specs, labels)]
        if preflight and jobs and not jobs[0].spec.plugins:
            jobs[0].checks = [j for j in jobs[1:] if j.spec.plugins]
            jobs[0].required = jobs[-1] if require_last and jobs[-1] in jobs[0].checks else None
        for position, indices in enumerate(checks or []):
            jobs[position].checks = [jobs[i] for i in indices if position < i < len(jobs)]
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
            refused = self._run_job(job)
            with self._lock:
                self._current = None
            self._on_changed()
            self._on_finished(job)
            for other in refused:        # after their baseline: it says why they did not run
                self._on_finished(other)
            self._update_busy()

    def _session(self):
        if self.session is None:
            # imported here: the GUI starts without loading the engine's session machinery
            from ..results.store import ResultsStore
            from .session import Session
            self.session = Session(ResultsStore(self.db_path))
        return self.session

    def _run_job(self, job: Job) -> list[Job]:
        """Run ``job``; returns the queued jobs its preflight refused (finished, not yet announced)."""
        refusals: list = []

        def on_event(event: dict) -> None:
            event["job_id"] = job.id
            kind = event.get("type")
            if kind == "run_created":
                job.run_id = event.get("run_id")
            elif kind == "phase":
                job.phase = event.get("phase")
            elif kind == "variants_checked":
                refusals[:] = list(event.get("refusals") or [])
            self._on_event(event)

        if job.cancel.is_set():
            job.status, job.message = CANCELLED, "cancelled before it started"
            job.finished_at = time.monotonic()
            return []
        with self._lock:
            checks = [j for j in job.checks if j.status == QUEUED]
        preflight = {}
        if checks:      # only then: a session stand-in without preflight still runs plain jobs
            required = job.required if job.required in checks else None
            preflight = {"check_variants": [j.spec for j in checks],
                         "required": required.spec if required is not None else None}
        refused: list[Job] = []
        try:
            record = self._session().run(job.spec, on_event=on_event, cancel=job.cancel, **preflight)
            job.run_id = record.id
            job.status, job.message, job.detail = record.status, record.error, record.error_detail
            if checks:
                refused = self._refuse(checks, list(getattr(record, "variant_refusals", None) or []))
        except VariantsRefused as exc:
            # Nothing was timed and the run was not kept: the refusal is the answer, for the group too.
            job.status, job.message, job.run_id = REFUSED, str(exc), None
            refused = self._refuse(checks, refusals, f"not started: {job.label} was refused ({exc})")
        except WorkbenchError as exc:
            job.status, job.message = FAILED, str(exc)
        except Exception as exc:  # a bug in the core: keep the queue (and the GUI) alive, keep the traceback
            job.status, job.message = FAILED, f"{type(exc).__name__}: {exc}"
            job.detail = traceback.format_exc()
        job.finished_at = time.monotonic()
        return refused

    def _refuse(self, checks: list[Job], refusals: list, rest: str | None = None) -> list[Job]:
        """Finish the still-queued ``checks`` that ``refusals`` (aligned with them) refused as REFUSED
        with the reason; with ``rest``, the others too, as CANCELLED with that message."""
        done: list[Job] = []
        now = time.monotonic()
        with self._lock:
            for index, other in enumerate(checks):
                reason = refusals[index] if index < len(refusals) else None
                if other.status != QUEUED or not (reason or rest):
                    continue
                other.status, other.message = (REFUSED, str(reason)) if reason else (CANCELLED, rest)
                other.finished_at = now
                done.append(other)
        return done

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
