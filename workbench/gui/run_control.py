"""From the docks to queued runs and back: builds the RunSpec the Model, Plugins and Run docks
describe, queues what the Run menu asks for (the plans are ``workbench.engine.plan``'s), and
routes each job's events and outcome to the Live, Run and Log docks.

The main window wires it in and answers its signals (status bar, Results table, error dialogs);
nothing here lays out widgets.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from ..engine.plan import check_chain, check_files_exist, combinations_plan, pair_plan
from ..engine.queue import REFUSED
from ..errors import SpecError, WorkbenchError
from ..plugin_api import chain_error
from ..spec import PluginStep, RunSpec, device_kind
from ..telemetry.nvml import gpu_devices
from . import errors
from .bridge import Job, SessionBridge
from .docks.log_dock import LogDock
from .docks.model_panel import ModelPanel
from .docks.plugin_panel import PluginPanel
from .docks.run_panel import RunPanel, save_path_problem, summarize_record
from .live.plots import LivePlots


class RunControl(QObject):
    stateChanged = Signal()             # which runs can start changed (the window mirrors it in its menu)
    jobsQueued = Signal()               # new jobs: show the Live dock
    queueSummary = Signal(str)          # "idle" / "running X (phase) · N queued", for the status bar
    statusMessage = Signal(str, int)    # a transient status bar message and its timeout (ms)
    runsChanged = Signal(bool)          # the stored runs changed; True: reload now, False: soon (debounced)
    groupFinished = Signal(list)        # run ids of a finished pair / all-combinations group: compare them
    errorOccurred = Signal(str, str)    # message, details
    sweepFinished = Signal(int)         # a sweep ended (done or interrupted): show it in the Results

    def __init__(self, bridge: SessionBridge, model_panel: ModelPanel, plugin_panel: PluginPanel,
                 run_panel: RunPanel, live: LivePlots, log: LogDock, dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.bridge, self.model_panel, self.plugin_panel = bridge, model_panel, plugin_panel
        self.run_panel, self.live, self.log = run_panel, live, log
        self.dialog_parent = dialog_parent
        self.gpu_env: dict = {"nvml": "not checked yet", "gpus": []}
        self.closing = False            # no more error dialogs: the window is going away
        self._groups: dict[str, list[Job]] = {}
        self._shown_job_id: int | None = None     # the job the Live dock is showing

        model_panel.modelChanged.connect(self.update_state)
        plugin_panel.chainChanged.connect(self.update_state)
        run_panel.settingsChanged.connect(self.update_state)
        run_panel.runRequested.connect(self.start)
        run_panel.cancelRequested.connect(self.cancel)
        run_panel.removeJobRequested.connect(bridge.remove)
        run_panel.clearFinishedRequested.connect(bridge.clear_finished)
        bridge.eventReceived.connect(self._on_event)
        bridge.jobStarted.connect(self._job_started)
        bridge.jobFinished.connect(self._job_finished)
        bridge.queueChanged.connect(self._queue_changed)
        bridge.busyChanged.connect(self._busy_changed)
        bridge.gpusFound.connect(self._gpus_found)
        bridge.sweepStarted.connect(self._sweep_started)
        bridge.sweepPoint.connect(self._sweep_point)
        bridge.sweepFinished.connect(self._sweep_finished)
        bridge.sweepFailed.connect(lambda message, detail: self.errorOccurred.emit(
            f"Cannot run the sweep: {message}", detail))

    # -- what can run --------------------------------------------------------------------------------
    def run_problem(self) -> str | None:
        problem = self.model_panel.problem()
        if problem:
            return problem
        error = self.plugin_panel.error()
        if error:
            return f"invalid plugin chain: {error}"
        problem = self.run_panel.files_problem()
        if problem:
            return problem
        save = self.run_panel.save_field.path()
        if save:        # the format the chain ends in decides the suffix (engine.plan's rule)
            try:
                check_chain(RunSpec(model=self.model_panel.source() or "", plugins=self.plugin_panel.steps(),
                                    device=self.run_panel.device(), runtime=self.run_panel.runtime(),
                                    save_model=save))
            except WorkbenchError as exc:
                return f"save optimized model: {exc}"
        return None

    def update_state(self) -> None:
        self.run_panel.set_model_source(self.model_panel.source())
        self.run_panel.lm_options.set_model_info(self.model_panel.info())
        self.plugin_panel.set_context(self.model_panel.model_format(), self.run_panel.device(),
                                      self.run_panel.runtime())
        chain = self.plugin_panel.checked()
        self.run_panel.set_problem(self.run_problem(), len(chain), self.plugin_panel.error() is None)
        self.stateChanged.emit()

    def build_spec(self, plugins: list[PluginStep] | None = None) -> RunSpec:
        """The RunSpec of the current docks (``plugins`` overrides the chain). Raises
        WorkbenchError with a clear message when something is missing or invalid."""
        problem = self.model_panel.problem()
        if problem:
            raise SpecError(problem)
        spec = RunSpec(model=self.model_panel.source(), factory=self.model_panel.factory(),
                       trust_pickle=self.model_panel.trust(),
                       trust_remote_code=self.model_panel.trust_remote_code(),
                       plugins=list(self.plugin_panel.steps() if plugins is None else plugins),
                       inputs=self.model_panel.inputs())
        problem = self.run_panel.files_problem()
        if problem:
            raise SpecError(problem)
        self.run_panel.fill(spec)
        spec.validate()
        if spec.plugins:
            error = chain_error(spec.plugins, spec.model_format, spec.device, spec.runtime)
            if error:
                raise SpecError(f"invalid plugin chain: {error}")
        if spec.save_model:
            try:
                check_chain(spec)
            except WorkbenchError as exc:
                raise SpecError(f"save optimized model: {exc}") from None
        return spec

    # -- saving a stored run's model -----------------------------------------------------------------
    def save_run_model(self, run_id: int, path: str) -> str:
        """Put run ``run_id``'s optimized model at ``path``: a copy of the file the run saved when it
        kept one in that format, otherwise the run's own spec queued again with ``save_model`` set.
        Returns what was done, in one line; raises WorkbenchError with what went wrong."""
        target = Path(path).expanduser().resolve()
        problem = save_path_problem(str(target))
        if problem:
            raise SpecError(problem)
        record = self.bridge.store.get_run(run_id)
        artifacts = self.bridge.store.artifacts(run_id)
        for artifact in artifacts:
            source = Path(str(artifact.get("path") or ""))
            if source.is_file() and source.suffix.lower() == target.suffix.lower():
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if source.resolve() != target:
                        shutil.copyfile(source, target)
                except OSError as exc:
                    raise WorkbenchError(f"could not copy the saved model to {target}: {exc.strerror or exc}") \
                        from None
                self.log.append(f"copied the model saved by run #{run_id} ({source}) to {target}")
                return f"Saved run #{run_id}'s optimized model to {target}"
        try:
            spec = RunSpec.from_dict({**record.spec, "save_model": str(target), "label": None})
            check_files_exist(spec)
            check_chain(spec)
        except WorkbenchError as exc:
            raise WorkbenchError(f"cannot run #{run_id} again to save its model: {exc}") from None
        label = f"save: {spec.describe_chain()}"
        self.bridge.enqueue([spec], [label], group=f"save-{run_id}")
        self.jobsQueued.emit()
        kept = f"no {target.suffix} model" if artifacts else "no saved model"
        self.log.append(f"queued {label} (run #{run_id} kept {kept}): saving to {target}")
        return f"Run #{run_id} kept {kept}: queued it again (“{label}”) to save it to {target}"

    # -- starting and stopping -----------------------------------------------------------------------
    def start(self, mode: str = "run") -> list[Job]:
        """Queue runs: "run" (the current chain), "pair" (baseline + variant) or "all" (baseline,
        each checked plugin alone, the full chain). Returns the queued jobs."""
        if mode == "sweep":
            self.open_sweep_dialog()
            return []
        try:
            if mode == "run":
                spec = self.build_spec()
                specs = self.bridge.plan(spec)
                if len(specs) == 1:
                    jobs = self.bridge.enqueue(specs, [spec.describe_chain()], group="run")
                else:   # no stored baseline: measure the plain model first, then compare the pair
                    self.log.append(f"no stored baseline for {spec.model} on {spec.device}: measuring it first")
                    # the baseline's worker checks the variant on the loaded model before timing anything
                    jobs = self.bridge.enqueue(specs, [s.describe_chain() for s in specs], group=f"run-{id(specs)}",
                                               preflight=True, require_last=True)
                    self._groups[jobs[0].group] = jobs
            else:
                variant = self.build_spec()
                specs, skipped = (pair_plan(variant), []) if mode == "pair" else combinations_plan(variant)
                for reason in skipped:
                    self.log.append(f"skipped {reason}")
                # pair: the requested variant refused refuses the pair; all: refused ones are skipped
                jobs = self.bridge.enqueue(specs, [s.describe_chain() for s in specs], group=f"{mode}-{id(specs)}",
                                           preflight=True, require_last=mode == "pair")
                self._groups[jobs[0].group] = jobs
        except WorkbenchError as exc:
            self.errorOccurred.emit(f"Cannot start the run: {exc}", "")
            return []
        self.jobsQueued.emit()
        self.log.append("queued: " + "; ".join(j.label for j in jobs))
        return jobs

    def cancel(self) -> None:
        self.bridge.cancel_sweep()      # its queued points are dropped with the rest below
        if self.bridge.is_busy():
            n = self.bridge.cancel_all()
            self.run_panel.cancelling()
            self.log.append("cancel requested" + (f" ({n} job(s))" if n else ""))
            self.statusMessage.emit("Cancelling…", 3000)

    # -- sweeps (sweep_dialog.py; the points are runs of the queue) ----------------------------------
    def open_sweep_dialog(self):
        """Run ▸ Sweep…: the dialog over the current docks' run; Start queues the sweep."""
        from .sweep_dialog import SweepDialog
        if self.bridge.sweeping():
            self.errorOccurred.emit("A sweep is already running: wait for it, or cancel it first", "")
            return None
        try:
            spec = self.build_spec()
        except WorkbenchError as exc:
            self.errorOccurred.emit(f"Cannot plan a sweep: {exc}", "")
            return None
        note = ""
        if spec.save_model:
            spec.save_model = None
            note = "The Save to field is ignored: a sweep does not save models."
        dialog = SweepDialog(self.bridge, spec, self.dialog_parent, note)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.start_sweep(dialog.plan, dialog.name()))
        dialog.open()
        return dialog

    def start_sweep(self, plan: dict | None, name: str | None = None) -> bool:
        if plan is None:
            return False
        try:
            self.bridge.start_sweep(plan, name)
        except WorkbenchError as exc:
            self.errorOccurred.emit(f"Cannot start the sweep: {exc}", "")
            return False
        self.log.append(f"sweep of {plan['base_spec']['model']}: {plan['grid_points']} point(s), "
                        f"{len(plan['points']) * plan['repeat']} run(s) planned")
        return True

    def resume_sweep(self, sweep_id: int) -> bool:
        """The Sweep tab's Resume: run what is left of an interrupted sweep (``workbench sweep --resume``)."""
        if self.bridge.sweeping():
            self.errorOccurred.emit("A sweep is already running: wait for it, or cancel it first", "")
            return False
        try:
            self.bridge.resume_sweep(sweep_id)
        except WorkbenchError as exc:
            self.errorOccurred.emit(f"Cannot resume sweep {sweep_id}: {exc}", "")
            return False
        self.log.append(f"resuming sweep {sweep_id}: running the points that did not finish")
        self.statusMessage.emit(f"Resuming sweep {sweep_id}…", 5000)
        return True

    def _sweep_started(self, sweep_id: int, jobs: list) -> None:
        self.jobsQueued.emit()
        self.log.append(f"sweep {sweep_id}: queued {len(jobs)} run(s)")

    def _sweep_point(self, sweep_id: int, info: dict) -> None:
        tail = "" if info["status"] == "done" else f": {info.get('error') or info['status']}"
        self.log.append(f"[{info['finished']}/{info['total']}] {info['label']} (repeat {info['repeat'] + 1}): "
                        f"{info['status']}{tail}")
        self.statusMessage.emit(f"Sweep {sweep_id}: {info['finished']} of {info['total']} run(s) finished", 5000)

    def _sweep_finished(self, sweep_id: int, status: str, message: str) -> None:
        self.log.append(f"sweep {sweep_id} {status}" + (f": {message}" if message else ""))
        self.statusMessage.emit(f"Sweep {sweep_id} {status}" + (" (resumable: Resume in the Results' Sweep tab, "
                                                                f"or workbench sweep --resume {sweep_id})"
                                                                if status != "done" else ""), 10000)
        self.runsChanged.emit(True)
        self.sweepFinished.emit(sweep_id)

    # -- GPUs ----------------------------------------------------------------------------------------
    def _gpus_found(self, env: dict) -> None:
        self.gpu_env = env
        devices, note = gpu_devices(env)
        self.run_panel.set_devices(devices, note)
        self.plugin_panel.set_available_devices(self.run_panel.device_kinds())
        wanted = getattr(self.run_panel, "_wanted_device", None)
        if wanted:
            self.run_panel.set_device(wanted)
        self.log.append(f"devices: CPU{''.join(', ' + label for label, _ in devices)}"
                        + (f" ({note})" if note else ""))

    def _expected_telemetry(self, device: str) -> dict:
        if device_kind(device) != "cuda":
            return {"nvml": "disabled (no GPU selected)"}
        nvml = self.gpu_env.get("nvml") or "unavailable"
        return {"nvml": nvml if nvml == "ok" else (nvml if nvml.startswith("unavailable") else f"unavailable: {nvml}")}

    # -- the bridge's answers ------------------------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        # Routed by the job the Live dock shows, not by the bridge's current job: events arrive
        # queued, and the last ones (run_finished) come after the bridge has moved on.
        if event.get("job_id") is not None and event.get("job_id") == self._shown_job_id:
            self.live.handle_event(event)
            self.run_panel.handle_event(event)
        self.log.append_event(event)
        kind = event.get("type")
        if kind == "run_created":
            self.runsChanged.emit(False)
        elif kind == "phase":
            self._queue_changed()

    def _job_started(self, job: Job) -> None:
        self._shown_job_id = job.id
        self.live.reset(f"{job.label} — {job.spec.model} on {job.spec.device}", job.spec)
        self.live.set_telemetry_status(self._expected_telemetry(job.spec.device))
        self.run_panel.job_started(job)
        self.log.append(f"started: {job.label} ({job.spec.describe_chain()}, {job.spec.device})")

    def _job_finished(self, job: Job) -> None:
        record = None
        if job.run_id is not None:
            try:
                record = self.bridge.store.get_run(job.run_id)
            except WorkbenchError:
                record = None
        if record is not None and self.run_panel.showing(job):
            status = (record.result or {}).get("telemetry_status")
            if status:
                self.live.set_telemetry_status(status)
        if record is not None and job.id == self._shown_job_id:
            # The stored result (a cancelled run's partial statistics travel in no event) and the
            # ending, in case its run_finished event was dropped with a job the bridge left.
            self.live.show_result(record.result)
            self.live.handle_event({"type": "run_finished", "status": job.status, "message": job.message})
        summary = summarize_record(record) if record is not None else ""
        self.run_panel.job_finished(job, summary)
        self.runsChanged.emit(True)
        if job.status == "done":
            self.log.append(f"done: {job.label} (run #{job.run_id})" + (f" — {summary}" if record is not None else ""))
        elif job.status == "cancelled":
            self.log.append(f"cancelled: {job.label}" + (f" — {job.message}" if job.message else ""))
        elif job.status == REFUSED:
            self._job_refused(job)
        else:
            self.log.append(f"failed: {job.label}: {job.message}")
            if not self.closing and not job.group.startswith("sweep-"):   # a sweep goes on; its chart says
                errors.show_error(f"Run “{job.label}” failed: {job.message or 'unknown reason'}", job.detail,
                                  self.dialog_parent)
        group = self._groups.get(job.group)
        if group and all(j.finished for j in group):
            del self._groups[job.group]
            ids = [j.run_id for j in group if j.run_id is not None and j.status == "done"]
            if len(ids) >= 2:
                self.groupFinished.emit(ids)

    def _job_refused(self, job: Job) -> None:
        """A job refused before anything was timed: one line in the log and the status bar. When it is a
        baseline (the variant asked for, or every one, cannot run) or a run on its own (its worker refused
        its chain on the loaded model), nothing ran: say so once, no traceback."""
        self.log.append(f"refused: {job.label}: {job.message}")
        if job.checks or job.group == "run":        # "run": a run queued on its own (start("run"))
            self.statusMessage.emit(f"Nothing was timed: {job.message}", 15000)
            if not self.closing:
                errors.show_error(f"Nothing was run: {job.message}", None, self.dialog_parent)
        else:
            self.statusMessage.emit(f"Skipped {job.label}: {job.message}", 15000)

    def _queue_changed(self) -> None:
        jobs = self.bridge.jobs()
        self.run_panel.update_queue(jobs)
        queued = sum(1 for j in jobs if j.status == "queued")
        current = self.bridge.current()
        if current is not None:
            text = f"running {current.label}" + (f" ({current.phase})" if current.phase else "")
            text += f" · {queued} queued" if queued else ""
        else:
            text = "idle"
        self.queueSummary.emit(text)

    def _busy_changed(self, _busy: bool) -> None:
        self.run_panel.set_busy(self.bridge.is_busy())      # now, not when the signal was sent
        self._queue_changed()
