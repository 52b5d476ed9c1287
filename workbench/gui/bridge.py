"""The GUI's only door into the core. It opens the results store, runs the job queue
(``workbench.engine.queue``), model inspection, report writing and the GPU probe off the GUI
thread, and hands every answer back as a Qt signal (queued into the GUI thread).

Signals are emitted from worker threads; Qt delivers them in the thread the bridge lives in.

It asks the engine to keep a spare worker (``engine.warm``) shortly after start, and again when a
run starts, so a Run click does not wait for a fresh Python to import torch; the spare dies with it.
"""
from __future__ import annotations

import itertools
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ..engine.plan import plan_runs
from ..engine.queue import Job, JobQueue
from ..engine.warm import warm_workers
from ..errors import WorkbenchError
from ..results.store import ResultsStore
from ..spec import PluginStep, RunSpec

__all__ = ["Job", "SessionBridge"]

# The first spare starts once the window is up: its imports would compete with the GUI's startup.
PREWARM_AFTER_START_MS = 1500


class SessionBridge(QObject):
    eventReceived = Signal(object)          # every core event dict, with "job_id" added
    jobStarted = Signal(object)             # Job
    jobFinished = Signal(object)            # Job (status/message set)
    queueChanged = Signal()
    busyChanged = Signal(bool)
    inspectFinished = Signal(int, object)   # token, ModelInfo dict
    inspectFailed = Signal(int, str, str)   # token, message, details
    reportDone = Signal(str)                # path written
    reportFailed = Signal(str, str)         # message, details
    gpusFound = Signal(object)              # telemetry.nvml.gpu_environment() dict
    explainEvent = Signal(int, object)      # token, a layers/scan job's event dict (phase, progress)
    explainFinished = Signal(int, object)   # token, {"job", "run_id", "result", "step"} (already stored)
    explainFailed = Signal(int, str, str)   # token, message ("cancelled…" when cancelled), details
    sweepStarted = Signal(int, object)      # sweep id, the queued jobs of its points
    sweepPoint = Signal(int, object)        # sweep id, {"finished", "total", "label", "status", "error"}
    sweepFinished = Signal(int, str, str)   # sweep id, status (done / interrupted), message
    sweepFailed = Signal(str, str)          # message, details (nothing was run, or the core stopped)

    def __init__(self, db: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The GUI thread's connection (table, charts, run records); every thread opens its own.
        self.store = ResultsStore(db)
        self.db_path = self.store.path
        self.queue = JobQueue(self.db_path, on_event=lambda e: self._emit("eventReceived", e),
                              on_started=self._job_started,
                              on_finished=lambda job: self._emit("jobFinished", job),
                              on_changed=lambda: self._emit("queueChanged"),
                              on_busy=lambda busy: self._emit("busyChanged", busy))
        self._tokens = itertools.count(1)
        self._inspect_cancel: threading.Event | None = None
        self._inspect_threads: list[threading.Thread] = []     # joined at shutdown: they run workers
        self._explain_cancel: threading.Event | None = None
        self._explain_thread: threading.Thread | None = None
        self._sweep_cancel: threading.Event | None = None
        self._sweep_thread: threading.Thread | None = None
        self._shut_down = False
        self._prewarm_timer = QTimer(self)      # owned by the bridge: it dies with it
        self._prewarm_timer.setSingleShot(True)
        self._prewarm_timer.timeout.connect(self.prewarm)
        self._prewarm_timer.start(PREWARM_AFTER_START_MS)

    def _emit(self, name: str, *args: Any) -> None:
        """Emit from any thread; a bridge already deleted (window closed) is not an error."""
        try:
            getattr(self, name).emit(*args)
        except RuntimeError:
            pass

    @staticmethod
    def _start(name: str, work) -> threading.Thread:
        thread = threading.Thread(target=work, name=name, daemon=True)
        thread.start()
        return thread

    # -- spare workers (engine.warm) -----------------------------------------------------------------
    def prewarm(self) -> None:
        """Ask the engine to keep a spare worker for the next run (off the GUI thread: a fork takes
        milliseconds; the engine starts it only while no run is in progress)."""
        if not self._shut_down:
            self._start("workbench-prewarm", self._prewarm_now)

    def _prewarm_now(self) -> None:
        try:
            if not self._shut_down:
                warm_workers.prewarm()
        except Exception:   # noqa: BLE001 - a spare is an optimization: the run starts a worker itself
            pass

    def _job_started(self, job: Job) -> None:
        self._emit("jobStarted", job)
        if not self._shut_down:
            # Runner thread, just before the run: no fork here (it would delay the run); the
            # engine starts the next spare when this run ends.
            warm_workers.prewarm(now=False)

    # -- the run queue (engine.queue) --------------------------------------------------------------
    def plan(self, spec: RunSpec) -> list[RunSpec]:
        """The runs a plain Run needs: the plain model first when no baseline is stored (the rule
        the CLI and the API use, ``engine.plan.plan_runs``)."""
        return plan_runs(self.store, spec)

    def enqueue(self, specs: list[RunSpec], labels: list[str] | None = None, group: str = "",
                preflight: bool = False, require_last: bool = True) -> list[Job]:
        """Queue runs (``engine.queue.JobQueue.enqueue``; ``preflight``: the first, plain run checks
        the later variants on the loaded model before timing anything)."""
        return self.queue.enqueue(specs, labels, group, preflight=preflight, require_last=require_last)

    def jobs(self) -> list[Job]:
        return self.queue.jobs()

    def current(self) -> Job | None:
        return self.queue.current()

    def pending(self) -> list[Job]:
        return self.queue.pending()

    def is_busy(self) -> bool:
        return self.queue.is_busy()

    def cancel_current(self) -> bool:
        return self.queue.cancel_current()

    def cancel_all(self) -> int:
        return self.queue.cancel_all()

    def remove(self, job_id: int) -> bool:
        return self.queue.remove(job_id)

    def clear_finished(self) -> None:
        self.queue.clear_finished()

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
                from ..engine.session import Session
                # beside a measurement: its own store connection (only used for the log path)
                session = Session(ResultsStore(self.db_path))
                info = session.inspect(spec, timeout_s=timeout_s, cancel=cancel)
            except WorkbenchError as exc:
                if not cancel.is_set():
                    first, _, rest = str(exc).partition("\n")
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

        thread = self._start(f"workbench-inspect-{token}", work)
        self._inspect_threads = [t for t in self._inspect_threads if t.is_alive()] + [thread]
        self.prewarm()          # e.g. a model restored before the start timer fired
        return token

    def cancel_inspect(self) -> None:
        if self._inspect_cancel is not None:
            self._inspect_cancel.set()

    # -- explain a stored run later: the layers and scan jobs (issue 15) ----------------------------
    def explain(self, job: str, run_id: int, step: dict | None = None) -> int:
        """Run ``workbench layers RUN_ID`` (``job="layers"``) or ``layers RUN_ID --scan STEP``
        (``job="scan"``, ``step={"name", "params"}``) in a worker, and store what it finds beside the
        run as the CLI does; answers with explainEvent/explainFinished/explainFailed carrying the
        returned token. One at a time: a second call while one runs raises WorkbenchError."""
        if self.explaining():
            raise WorkbenchError("a layer comparison or scan is already running: wait for it or cancel it")
        cancel = threading.Event()
        self._explain_cancel = cancel
        token = next(self._tokens)

        def work() -> None:
            store = None
            try:
                from ..engine.session import Session
                from ..results.explain import save_layers, save_scan
                store = ResultsStore(self.db_path)
                run = store.get_run(run_id)
                extra = {}
                if job == "scan":
                    extra = {"plugin": {"name": step["name"], "params": dict(step.get("params") or {})}}
                    _check_scan_step(run.spec, extra["plugin"])     # refused before a worker starts
                result = Session(store).explain(job, run_id, run.spec, extra, cancel=cancel,
                                                on_event=lambda event: self._emit("explainEvent", token, event))
                answer = {"job": job, "run_id": run_id, "step": None, "result": result}
                if job == "layers":
                    if "rows" not in (result.get("layers") or {}):
                        raise WorkbenchError((result.get("layers") or {}).get("error")
                                             or "the layer comparison gave no rows")
                    save_layers(store, run_id, result["layers"])
                else:
                    answer["step"] = str(PluginStep(extra["plugin"]["name"], extra["plugin"]["params"]))
                    save_scan(store, run_id, answer["step"], result["scan"])
            except WorkbenchError as exc:
                first, _, rest = str(exc).partition("\n")
                self._emit("explainFailed", token, first, rest.strip())
                return
            except Exception as exc:
                self._emit("explainFailed", token, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                return
            finally:
                if store is not None:
                    store.close()
            self._emit("explainFinished", token, answer)

        self._explain_thread = self._start(f"workbench-explain-{token}", work)
        return token

    def explaining(self) -> bool:
        return self._explain_thread is not None and self._explain_thread.is_alive()

    def cancel_explain(self) -> None:
        if self._explain_cancel is not None:
            self._explain_cancel.set()

    # -- sweeps (engine.sweep; the points run as jobs of the queue) --------------------------------
    def plan_sweep(self, spec: RunSpec, grid: list[str], repeat: int = 1) -> dict:
        """The checked plan of a sweep (``engine.sweep.plan_sweep``, as ``workbench sweep`` makes it);
        raises SpecError naming every invalid point, before anything runs."""
        from ..engine.sweep import plan_sweep
        return plan_sweep(self.store, spec, grid, repeat=repeat, check_gpu=False)

    def start_sweep(self, plan: dict, name: str | None = None) -> threading.Thread:
        """Store the sweep and run it (``engine.sweep.run_sweep``) in a thread, each point a job of the
        queue. sweepStarted, sweepPoint and sweepFinished (or sweepFailed) answer."""
        def prepare(store: ResultsStore, executor) -> tuple[int, list]:
            from ..engine.sweep import create, pending_tasks
            from ..results.sweeps import SweepRecord
            preview = SweepRecord(0, 0.0, None, "running", None, plan["base_spec"]["model"], plan, None)
            tasks = pending_tasks(preview)
            executor.check(tasks)        # refused before the sweep is stored
            return create(store, plan, name), tasks
        return self._run_sweep(prepare)

    def resume_sweep(self, sweep_id: int) -> threading.Thread:
        """Run what is left of an interrupted sweep, as ``workbench sweep --resume ID`` does
        (``engine.sweep.claim_for_resume``): the points that did not finish, in the plan's order.
        The same signals answer; a sweep still running elsewhere or with nothing left is refused
        (sweepFailed)."""
        def prepare(store: ResultsStore, executor) -> tuple[int, list]:
            from ..engine.sweep import claim_for_resume, pending_tasks
            from ..results.sweeps import get_sweep
            executor.check(pending_tasks(get_sweep(store, sweep_id)))    # refused before it is claimed
            return sweep_id, pending_tasks(claim_for_resume(store, sweep_id))
        return self._run_sweep(prepare)

    def _run_sweep(self, prepare) -> threading.Thread:
        """``prepare(store, executor)`` -> (sweep id, its tasks), then ``run_sweep`` in a thread."""
        if self.sweeping():
            raise WorkbenchError("a sweep is already running: wait for it or cancel it")
        cancel = threading.Event()
        self._sweep_cancel = cancel

        def work() -> None:
            from ..engine.sweep import run_sweep
            from .sweep_runner import QueueExecutor
            store = None
            try:
                store = ResultsStore(self.db_path)
                executor = QueueExecutor(self.queue, "sweep")
                sweep_id, tasks = prepare(store, executor)
                executor.group = f"sweep-{sweep_id}"
                executor.on_queued = lambda jobs: self._emit("sweepStarted", sweep_id, jobs)
                finished = [0]

                def on_point(task, outcome) -> None:
                    finished[0] += 1
                    self._emit("sweepPoint", sweep_id, {"finished": finished[0], "total": len(tasks),
                                                        "label": task.label, "repeat": task.repeat,
                                                        "status": outcome.status, "error": outcome.error,
                                                        "run_id": outcome.run_id})

                record = run_sweep(store, sweep_id, executor, cancel, on_point)
                self._emit("sweepFinished", sweep_id, record.status, record.error or "")
            except WorkbenchError as exc:
                first, _, rest = str(exc).partition("\n")
                self._emit("sweepFailed", first, rest.strip())
            except Exception as exc:
                self._emit("sweepFailed", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            finally:
                if store is not None:
                    store.close()

        self._sweep_thread = self._start("workbench-sweep", work)
        return self._sweep_thread

    def sweeping(self) -> bool:
        return self._sweep_thread is not None and self._sweep_thread.is_alive()

    def cancel_sweep(self) -> None:
        """Stop the sweep after the run in flight (stored as cancelled); it stays resumable."""
        if self._sweep_cancel is not None:
            self._sweep_cancel.set()

    # -- report ------------------------------------------------------------------------------------
    def write_report(self, run_ids: list[int], path: str) -> threading.Thread:
        """Render the report of ``run_ids`` to ``path`` in a thread (it may take seconds);
        reportDone/reportFailed answer."""
        def work() -> None:
            store = None
            try:
                from ..report import write_report
                store = ResultsStore(self.db_path)
                written = write_report(store, run_ids, path)
                self._emit("reportDone", str(written or path))
            except WorkbenchError as exc:
                self._emit("reportFailed", f"Could not write the report: {exc}", "")
            except Exception as exc:
                self._emit("reportFailed", f"Could not write the report: {type(exc).__name__}: {exc}",
                           traceback.format_exc())
            finally:
                if store is not None:
                    store.close()

        return self._start("workbench-report", work)

    # -- GPUs --------------------------------------------------------------------------------------
    def probe_gpus(self) -> threading.Thread:
        """Ask NVML which GPUs there are (it can take a second); gpusFound answers, always."""
        def work() -> None:
            try:
                from ..telemetry.nvml import gpu_environment
                env = gpu_environment()
            except Exception as exc:  # never fatal: the CPU is always there
                env = {"nvml": f"unavailable: {exc}", "gpus": []}
            self._emit("gpusFound", env)

        return self._start("workbench-gpu-probe", work)

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 8.0) -> bool:
        """Cancel everything and wait (bounded) for the worker processes to end.

        Returns True when every thread stopped in time."""
        deadline = time.monotonic() + timeout_s
        self._shut_down = True
        self._prewarm_timer.stop()
        self.cancel_inspect()
        self.cancel_explain()
        self.cancel_sweep()
        stopped = self.queue.shutdown(timeout_s)
        for thread in self._inspect_threads + [t for t in (self._explain_thread, self._sweep_thread) if t]:
            thread.join(max(0.0, deadline - time.monotonic()))
        warm_workers.close()    # a spare never outlives the window
        return (stopped and not any(t.is_alive() for t in self._inspect_threads) and not self.explaining()
                and not self.sweeping())


def _check_scan_step(spec: dict, plugin: dict) -> None:
    """The CLI's up-front check of ``layers --scan``: an unknown plugin or a bad parameter is refused."""
    from ..engine.plan import check_chain
    check_chain(RunSpec.from_dict({**spec, "plugins": [plugin], "runtime": "torch", "profile": False}))
