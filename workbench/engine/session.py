"""Run a RunSpec in a worker process, sample telemetry beside it, and persist everything.

The parent (CLI or GUI) never loads a model. It spawns ``python -m workbench.worker``, streams
its JSON-line events into the results store as they arrive, samples the worker's RSS/CPU (and
the GPU through NVML) from a thread, and survives the worker crashing, hanging or being killed:
the run is then stored as failed or cancelled with the reason.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any, Callable, Sequence

from ..errors import StoreError, VariantsRefused, WorkbenchError
from ..spec import RunSpec, device_kind
from ..results.generation import attach_energy_per_token
from ..results.store import ResultsStore, RunRecord
# describe_exit is imported from here too.
from .process import EXIT_GRACE_S, WorkerProcess, describe_exit  # noqa: F401
from .warm import WarmWorkers, warm_workers

FLUSH_INTERVAL_S = 0.5          # latencies/events reach the database at least this often
EventCallback = Callable[[dict], None]


class Session:
    """Runs specs one at a time and records them in ``store``. Workers are taken from ``warm``
    (this process's spares by default) when a spare is ready, else started fresh."""

    def __init__(self, store: ResultsStore, warm: WarmWorkers | None = None) -> None:
        self.store = store
        self.warm = warm_workers if warm is None else warm

    # -- inspect ---------------------------------------------------------------------------------
    def inspect(self, spec: RunSpec, timeout_s: float = 300.0, cancel: threading.Event | None = None) -> dict:
        """Load the model in a worker and return its ModelInfo dict (raises WorkbenchError)."""
        log = self.store.artifacts_root / "inspect" / f"{os.getpid()}-{threading.get_ident()}.log"
        worker = WorkerProcess({"job": "inspect", "spec": spec.to_dict()}, log, self.warm)
        result, error, code, _reason = _collect(worker, timeout_s, cancel)
        if result is not None and isinstance(result.get("model_info"), dict):
            return result["model_info"]
        if error is not None:
            raise WorkbenchError(error["message"])
        if cancel is not None and cancel.is_set():
            raise WorkbenchError("cancelled")
        raise WorkbenchError(describe_exit(code) + _tail_hint(worker.log_tail()))

    # -- explain a stored run (issue 15) ------------------------------------------------------------
    def explain(self, job: str, run_id: int, spec: dict, extra: dict | None = None,
                on_event: EventCallback | None = None, cancel: threading.Event | None = None,
                timeout_s: float | None = None) -> dict:
        """Run a ``layers`` or ``scan`` job for stored run ``run_id`` in a worker and return its
        result dict; progress events go to ``on_event``. Raises WorkbenchError with the worker's
        reason (RunCancelled when cancelled)."""
        from ..errors import RunCancelled
        workdir = self.store.artifacts_root / f"run-{run_id}" / "explain"
        payload = {"job": job, "spec": spec, "workdir": str(workdir), **(extra or {})}
        worker = WorkerProcess(payload, workdir / f"{job}.log", self.warm)
        timeout_s = timeout_s if timeout_s is not None else (spec.get("timeout_s") or 1800.0)

        def forward(event: dict) -> None:
            event["run_id"] = run_id
            if on_event is not None:
                on_event(event)

        result, error, code, stop_reason = _collect(worker, timeout_s, cancel, forward)
        if result is not None and error is None:
            return result
        if (error or {}).get("kind") == "cancelled" or (stop_reason or "").startswith("cancelled"):
            raise RunCancelled(stop_reason or error["message"])
        if error is not None:
            raise WorkbenchError(error["message"])
        raise WorkbenchError((stop_reason or describe_exit(code)) + _tail_hint(worker.log_tail()))

    # -- run -------------------------------------------------------------------------------------
    def run(self, spec: RunSpec, on_event: EventCallback | None = None,
            cancel: threading.Event | None = None, check_variants: Sequence[RunSpec] = (),
            required: RunSpec | None = None) -> RunRecord:
        """Measure ``spec`` in a worker and store it. ``check_variants`` (for a baseline): the variants
        planned after it, whose chains the worker checks on the loaded model before timing anything.
        Their refusals come back as ``record.variant_refusals``; when every one is refused, or
        ``required`` (the one the user asked for) is, nothing is timed, the run is not kept and
        ``VariantsRefused`` is raised."""
        with self.warm.running():   # no spare starts importing beside a measurement
            return self._run(spec, on_event, cancel, list(check_variants), required)

    def _run(self, spec: RunSpec, on_event: EventCallback | None, cancel: threading.Event | None,
             check_variants: list[RunSpec], required: RunSpec | None = None) -> RunRecord:
        from .environment import collect_environment
        from ..telemetry.sampler import TelemetrySampler

        spec.validate()
        emit = on_event or (lambda event: None)
        cancel = cancel or threading.Event()
        run_id = self.store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
        workdir = self.store.artifacts_root / f"run-{run_id}"
        emit({"type": "run_created", "run_id": run_id, "t": time.monotonic()})
        environment = collect_environment(include_gpu=device_kind(spec.device) == "cuda")
        self.store.update_environment(run_id, environment)

        job = {"job": "run", "spec": spec.to_dict(), "workdir": str(workdir)}
        if check_variants:
            job["check_variants"] = [{"label": v.label or v.describe_chain(), "runtime": v.runtime,
                                      "plugins": v.to_dict()["plugins"], "required": v is required}
                                     for v in check_variants]
        worker = WorkerProcess(job, workdir / "worker.log", self.warm)
        refusals: list = []
        gpu_index = _gpu_index(spec.device, (environment.get("gpu") or {}).get("gpus") or [])
        sampler = TelemetrySampler(worker.pid, rate_hz=spec.telemetry_hz, gpu_index=gpu_index,
                                   on_samples=lambda batch: worker.events.put(
                                       {"type": "telemetry", "t": time.monotonic(),
                                        "samples": [s.to_dict() for s in batch]}))
        sampler.start()
        # The live view needs to know at once why power may be missing (e.g. no NVML).
        emit({"type": "telemetry_status", "status": dict(sampler.status), "run_id": run_id, "t": time.monotonic()})
        started = time.monotonic()
        writer = _BufferedWriter(self.store, run_id)
        result: dict | None = None
        error: dict | None = None
        stop_reason: str | None = None
        result_at: float | None = None
        exit_grace_s = EXIT_GRACE_S
        stream_open = True
        code: int | None = None
        store_failure: StoreError | None = None
        model_inputs: list = []     # the model's declared inputs (a partial run's batch may be fixed there)
        try:
            while stream_open:
                try:
                    if stop_reason is None and cancel.is_set():
                        stop_reason = getattr(cancel, "reason", None) or "cancelled by the user"
                    if stop_reason is None and spec.timeout_s and time.monotonic() - started > spec.timeout_s:
                        stop_reason = f"timed out after {spec.timeout_s:g} s (the worker hung or the run is too long)"
                    if stop_reason is not None:
                        worker.request_stop()
                    if result_at is not None and time.monotonic() - result_at > EXIT_GRACE_S:
                        exit_grace_s = 0.0   # measured and reported: a worker that hangs is not waited for
                        break
                    try:
                        event = worker.next_event(timeout=0.1)
                    except queue.Empty:
                        writer.maybe_flush()
                        continue
                    if event is None:
                        stream_open = False
                        break
                    event["run_id"] = run_id
                    kind = event["type"]
                    if kind == "latency_batch":
                        writer.latencies(event["phase"], event["values_ns"])
                    elif kind == "telemetry":
                        self.store.add_samples(run_id, event["samples"])
                    elif kind == "result":
                        result = dict(event["result"])   # a copy: the listener keeps the event as sent
                        result_at = time.monotonic()
                    elif kind == "error":
                        error = event
                        writer.event(event)
                        if event.get("kind") == "cancelled":
                            # Nothing left to do there: don't wait for torch's slow interpreter teardown.
                            worker.terminate()
                    elif kind == "artifact":
                        self.store.add_artifact(run_id, event)
                        writer.event(event)
                    elif kind == "started":
                        worker.note_started(event)
                        writer.event(event)
                    elif kind == "variants_checked":
                        refusals = list(event["refusals"])
                        writer.event(event)
                    elif kind == "model_info" and event.get("stage") == "original":
                        model_inputs = event["info"].get("inputs") or []
                        writer.event(event)
                    else:
                        writer.event(event)
                    writer.maybe_flush()
                    emit(event)
                except KeyboardInterrupt:   # Ctrl-C in the CLI: stop the worker cleanly, keep the data
                    stop_reason = stop_reason or "cancelled by the user (Ctrl-C)"
                except StoreError as exc:   # e.g. the disk filled up: stop the worker, say why
                    store_failure = store_failure or exc
                    stop_reason = stop_reason or f"stopped because {exc}"
                    writer.discard()
            code = worker.finish(exit_grace_s)
        finally:
            sampler.stop()
            if code is None:        # an unexpected error left the loop: never leave the worker behind
                worker.terminate()
                worker.finish(0.0)
            try:
                writer.flush()
            except StoreError as exc:
                store_failure = store_failure or exc
        warnings = self._worker_warnings(worker, run_id, emit)

        status, message, detail = "done", None, None
        if result is not None and error is None:
            # Measured and reported: the result is kept whatever happened while the worker exited.
            if code != 0 and not worker.killed_by_us:
                warnings.append(f"after reporting its result, {describe_exit(code)}; the result is kept")
            result.update(_telemetry_summary(sampler, result))
            attach_energy_per_token(result)     # generate runs: energy over the decode steps
            result["notes"] = list(result.get("notes") or []) + warnings
        elif error is not None and error.get("kind") == "cancelled":
            status, message = "cancelled", stop_reason or error["message"]
        elif stop_reason is not None and stop_reason.startswith("cancelled"):
            status, message = "cancelled", stop_reason
        elif stop_reason is not None:
            status, message = "failed", stop_reason
        elif error is not None:
            status, message, detail = "failed", error["message"], error.get("traceback")
        else:
            status, message, detail = "failed", describe_exit(code), worker.log_tail(40)
        environment["worker_start"] = worker.start_info
        if result is not None and status == "done":
            environment.update({"worker": result.pop("worker_env", {})})
        try:
            self.store.update_environment(run_id, environment)
        except StoreError:
            pass    # the result matters more: finish_run below raises if the store cannot be written at all
        if error is not None and error.get("kind") == VariantsRefused.__name__:
            # Nothing was timed and no variant can run: no run to keep, the refusal is the answer.
            self.store.delete_run(run_id)
            emit({"type": "run_finished", "run_id": run_id, "status": "refused", "message": error["message"],
                  "t": time.monotonic()})
            raise VariantsRefused(error["message"])
        if status != "done":
            result = {"telemetry_status": sampler.status, "partial": True}
            if store_failure is None:
                result.update(self._partial_statistics(run_id, spec, model_inputs, message))
            if warnings:
                detail = "\n".join(filter(None, [detail, *warnings]))
        if store_failure is not None:
            status, message, result = "failed", f"stopped because {store_failure}", {"partial": True}
        # If even this write fails the StoreError reaches the caller; the worker is already gone.
        self.store.finish_run(run_id, status, result, message, detail)
        record = self.store.get_run(run_id)
        record.variant_refusals = refusals
        emit({"type": "run_finished", "run_id": run_id, "status": status, "message": message,
              "t": time.monotonic()})
        return record

    def _partial_statistics(self, run_id: int, spec: RunSpec, model_inputs: list, why: str | None) -> dict:
        """The latency statistics of the iterations a run timed before it stopped (cancelled, timed
        out, crashed), marked ``partial``; nothing when it stopped before its measure phase."""
        from ..results.stats import compute_latency_stats
        try:
            values = self.store.latencies(run_id, "measure")
        except StoreError:
            return {}
        if not values:
            return {}
        batch = _known_batch(spec, model_inputs)
        latency = compute_latency_stats(values, batch=batch or 1, seed=spec.seed).to_dict()
        latency["partial"] = True
        if batch is None:   # the model picks its default batch in the worker, which did not say it
            latency.update(batch=None, throughput_per_s=None)
        how = "was cancelled" if (why or "").startswith("cancelled") else "stopped"
        return {"latency": latency,
                "notes": [f"partial: statistics of the {len(values)} timed iterations measured before the run "
                          f"{how}; not comparable with a finished run's"]}

    def _worker_warnings(self, worker: WorkerProcess, run_id: int, emit: EventCallback) -> list[str]:
        """What went wrong around the worker without failing the run (leftover processes, a hang at
        exit, lines on the event channel that were not events); logged now, noted with the run."""
        warnings = list(worker.exit_notes)
        malformed = worker.malformed_warning()
        if malformed:
            warnings.append(malformed)
        logged = [{"type": "log", "level": "warning", "message": w, "run_id": run_id, "t": time.monotonic()}
                  for w in warnings]
        self.store.add_events(run_id, logged)
        for event in logged:
            emit(event)
        return warnings


class _BufferedWriter:
    """Batches latencies and events so a 10 kHz loop costs a few inserts per second."""

    def __init__(self, store: ResultsStore, run_id: int) -> None:
        self.store, self.run_id = store, run_id
        self.pending_latencies: dict[str, list[int]] = {}
        self.next_seq: dict[str, int] = {}
        self.pending_events: list[dict] = []
        self.last_flush = time.monotonic()

    def latencies(self, phase: str, values: list[int]) -> None:
        self.pending_latencies.setdefault(phase, []).extend(values)

    def event(self, event: dict) -> None:
        self.pending_events.append(event)

    def maybe_flush(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def discard(self) -> None:
        """Drop what could not be written (the store failed); later batches are tried again."""
        self.pending_latencies, self.pending_events = {}, []

    def flush(self) -> None:
        for phase, values in self.pending_latencies.items():
            if values:
                start = self.next_seq.get(phase, 0)
                self.store.add_latencies(self.run_id, phase, start, values)
                self.next_seq[phase] = start + len(values)
        self.pending_latencies = {}
        self.store.add_events(self.run_id, self.pending_events)
        self.pending_events = []
        self.last_flush = time.monotonic()


def _known_batch(spec: RunSpec, model_inputs: list) -> int | None:
    """The batch a run measured, as far as the parent knows it: the spec's, else a batch the model
    fixes in its first declared input; None when the model's default was used."""
    if spec.batch:
        return spec.batch
    shape = (model_inputs[0] or {}).get("shape") if model_inputs and isinstance(model_inputs[0], dict) else None
    first = shape[0] if isinstance(shape, list) and shape else None
    return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else None


def _gpu_index(device: str, gpus: list[dict]) -> int | None:
    """The NVML index of ``device`` (None for the CPU). When CUDA_VISIBLE_DEVICES makes it
    ambiguous, the CUDA index is used and the sampler warns which GPU it reads."""
    if device_kind(device) != "cuda":
        return None
    from ..telemetry.nvml import nvml_index_for_cuda
    index = int(device.split(":")[1]) if ":" in device else 0
    found = nvml_index_for_cuda(index, os.environ.get("CUDA_VISIBLE_DEVICES"), gpus)
    return index if found is None else found


def _telemetry_summary(sampler: Any, result: dict) -> dict:
    """Telemetry of the timed window merged into the result: means/peaks, energy, CPU contention
    (``result["contention"]`` is set, and a line added to ``flags``, only when it distorted the run)."""
    from ..telemetry.contention import assess_cpu_contention
    from ..telemetry.energy import energy_per_inference
    from ..telemetry.host import current_load_average
    samples = sampler.samples
    window = result.get("window", {})
    t0, t1 = window.get("t_start"), window.get("t_end")

    def values(field: str, inside: bool = False) -> list[float]:
        return [getattr(s, field) for s in samples if getattr(s, field) is not None
                and (not inside or (t0 is not None and t0 <= s.t <= t1))]

    def peak(field: str) -> float | None:
        v = values(field)
        return max(v) if v else None

    def mean(field: str) -> float | None:
        v = values(field, inside=True)
        return sum(v) / len(v) if v else None

    reasons = 0
    for r in values("clock_event_reasons", inside=True):
        reasons |= int(r)
    summary = {
        "host_peak_rss_bytes": peak("rss_bytes"), "cpu_percent_mean": mean("cpu_percent"),
        "gpu_power_mean_w": mean("gpu_power_w") or mean("gpu_power_avg_w"),
        "gpu_power_max_w": peak("gpu_power_w") or peak("gpu_power_avg_w"),
        "gpu_mem_used_peak_bytes": peak("gpu_mem_used_bytes"), "gpu_proc_mem_peak_bytes": peak("gpu_proc_mem_bytes"),
        "gpu_util_mean_pct": mean("gpu_util_pct"), "sm_clock_mean_mhz": mean("sm_clock_mhz"),
        "temperature_max_c": peak("temperature_c"), "clock_event_reasons_seen": reasons or None,
        "samples": len(samples), "rate_hz": sampler.rate_hz,
        "sampler_cpu_fraction": sampler.cpu_seconds / max(1e-9, (samples[-1].t - samples[0].t)) if len(samples) > 1 else None,
    }
    energy = None
    if t0 is not None and window.get("iterations"):
        estimate = energy_per_inference(samples, t0, t1, window["iterations"])
        energy = estimate.__dict__ if hasattr(estimate, "__dict__") else dict(estimate)
        batch = (result.get("latency") or {}).get("batch") or 1
        if energy.get("joules_per_inference") is not None:
            energy["joules_per_sample"] = energy["joules_per_inference"] / batch
    # A GPU run's CPU side is the one thread that launches kernels; its intra-op threads mostly sleep.
    threads = 1 if getattr(sampler, "gpu_index", None) is not None else result.get("threads")
    cpu = assess_cpu_contention(samples, t0, t1, threads, getattr(sampler, "usable_cores", None),
                                current_load_average())
    summary["cpu"] = cpu
    merged = {"telemetry": summary, "telemetry_status": sampler.status, "energy": energy,
              "contention": cpu if cpu and cpu["contended"] else None}
    if merged["contention"]:
        merged["flags"] = list(result.get("flags") or []) + [cpu["message"]]
    return merged


def _tail_hint(tail: str) -> str:
    return f"\n--- worker log (last lines) ---\n{tail}" if tail else ""


def _collect(worker: WorkerProcess, timeout_s: float, cancel: threading.Event | None,
             on_event: EventCallback | None = None) -> tuple[dict | None, dict | None, int | None, str | None]:
    """Read a short job's events until the worker ends, asking it to stop once ``cancel`` is set or
    ``timeout_s`` has passed: ``(result, error event, exit code, why it was stopped or None)``."""
    deadline = time.monotonic() + timeout_s
    result = error = stop_reason = None
    while True:
        if stop_reason is None and cancel is not None and cancel.is_set():
            stop_reason = getattr(cancel, "reason", None) or "cancelled by the user"
        if stop_reason is None and time.monotonic() > deadline:
            stop_reason = f"timed out after {timeout_s:g} s"
        if stop_reason is not None:
            worker.request_stop()
        try:
            event = worker.next_event(timeout=0.1)
        except queue.Empty:
            continue
        if event is None:
            break
        if event["type"] == "result":
            result = event["result"]
        elif event["type"] == "error":
            error = event
        if on_event is not None:
            on_event(event)
    return result, error, worker.finish(), stop_reason
