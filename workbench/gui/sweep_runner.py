"""A sweep's points through the GUI's run queue: the executor ``engine.sweep.run_sweep`` drives when
the sweep starts from the GUI. Each point is queued as an ordinary job (so the Run dock's queue,
the Live dock's progress and Cancel work for it as for any run), and its outcome is handed back to
the core, which records it with the sweep exactly as the CLI's local executor does. A baseline checks
the points compared with it on the loaded model first (``PointTask.check``; ``engine.queue``).

Qt-free: the bridge runs it in a thread of its own and turns its callbacks into signals.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from ..engine.executors import DoneCallback, PointOutcome, PointTask, StartCallback
from ..engine.queue import CANCELLED, DONE, QUEUED, REMOVED, Job, JobQueue
from ..errors import SpecError
from ..spec import RunSpec

POLL_S = 0.05


class QueueExecutor:
    """Points run as jobs of ``queue``, in the plan's order (baselines first, round by round)."""

    name = "local"

    def __init__(self, queue: JobQueue, group: str, on_queued: Callable[[list[Job]], Any] | None = None) -> None:
        self.queue = queue
        self.group = group
        self.on_queued = on_queued or (lambda jobs: None)

    def describe(self) -> str:
        return "in the GUI's run queue"

    def check(self, tasks: list[PointTask]) -> None:
        """GPU clock / power axes need the CLI (they are applied around each run through NVML)."""
        for task in tasks:
            if task.gpu:
                raise SpecError(f"{', '.join(task.gpu)} axes run from the command line only: "
                                "workbench sweep … --grid power_limit=… --device cuda")

    def run(self, tasks: list[PointTask], on_start: StartCallback, on_done: DoneCallback,
            cancel: threading.Event) -> None:
        if not tasks:
            return
        specs = []
        for task in tasks:
            spec = RunSpec.from_dict(task.spec)
            spec.label = task.label
            specs.append(spec)
        jobs = self.queue.enqueue(specs, [t.label for t in tasks], group=self.group, checks=checked_points(tasks))
        self.on_queued(jobs)
        waiting = list(zip(tasks, jobs))
        started: set[int] = set()
        cancel_rest = False
        while waiting:
            if cancel.is_set():
                self._cancel([job for _task, job in waiting])
            for task, job in list(waiting):
                if job.status != QUEUED and job.id not in started:
                    started.add(job.id)
                    on_start(task)
                if job.finished:
                    waiting.remove((task, job))
                    outcome = outcome_of_job(job)
                    on_done(task, outcome)
                    if outcome.status == "cancelled" and job.message != REMOVED:
                        cancel_rest = True      # the run in flight was stopped: so is the sweep (resumable)
            if cancel_rest:
                self._cancel([job for _task, job in waiting])
            if waiting:
                time.sleep(POLL_S)

    def _cancel(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.status == QUEUED:
                self.queue.remove(job.id)
            elif not job.finished:
                job.cancel.set()


def checked_points(tasks: list[PointTask]) -> list[list[int]]:
    """For each task, the later tasks of the same round its baseline checks on the loaded model before it
    is timed (``PointTask.check``, as the CLI's executors pass it): a refused point is not started and is
    recorded as failed with the reason; when every one is refused, the baseline times nothing either."""
    return [[k for k, other in enumerate(tasks) if k > i and other.repeat == task.repeat and other.spec in task.check]
            if task.check else [] for i, task in enumerate(tasks)]


def outcome_of_job(job: Job) -> PointOutcome:
    """The sweep's view of a finished job: done, cancelled (removed, or Cancel), or failed with why."""
    if job.status == DONE:
        return PointOutcome("done", job.run_id, None, socket.gethostname())
    if job.status == CANCELLED:
        return PointOutcome("cancelled", job.run_id, job.message or "cancelled", socket.gethostname())
    return PointOutcome("failed", job.run_id, job.message or "failed", socket.gethostname())
