"""Where a sweep's points run: here, one after another (``LocalExecutor``), or as Ray tasks on a
cluster (``RayExecutor``, the optional extra ``workbench[ray]``).

Either way a point is measured by the ordinary path, ``Session.run`` in a worker process under the
same conditions (``run_point``); on a Ray node that session writes into a throw-away store, and the
run (record, latencies, telemetry, events, the node's environment fingerprint) comes back as a
bundle that ``import_run`` writes into the local store as the point finishes.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import SpecError, WorkbenchError
from ..results.store import ResultsStore, RunRecord
from ..spec import RunSpec, device_kind

RAY_EXTRA = "pip install 'workbench[ray]'"
RETRIES_ON_LOST_WORKER = 1      # a point whose node (or Ray worker) died is tried once more, then failed
RAY_CONNECT_TIMEOUT_S = 60.0


@dataclass
class PointTask:
    """One (point, repeat) of a sweep, ready to run."""
    sweep_id: int
    point: int
    repeat: int
    spec: dict
    gpu: dict = field(default_factory=dict)
    label: str = ""
    # A baseline: the spec dicts of the points compared with it, checked on the loaded model before it is
    # timed (every one refused: nothing timed, the point fails with the refusal; engine.runner).
    check: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class PointOutcome:
    status: str                 # done | failed | cancelled
    run_id: int | None = None
    error: str | None = None
    node: str | None = None
    attempts: int = 1


StartCallback = Callable[[PointTask], None]
DoneCallback = Callable[[PointTask, PointOutcome], None]


def run_point(session: Any, task: PointTask, cancel: threading.Event | None = None,
              on_event: Callable[[dict], None] | None = None, journal: Path | None = None,
              nvml_module: Any = None) -> RunRecord:
    """Measure one point with ``session`` (the ordinary worker), its GPU settings applied around the run
    and restored after; those settings are stored in the run's environment. Raises
    ``WorkbenchError`` when a GPU setting cannot be applied (nothing was run then)."""
    from ..telemetry.gpu_control import applied_gpu_settings, nvml_index_for_device
    spec = RunSpec.from_dict(task.spec)
    if task.label:
        spec.label = task.label
    index = nvml_index_for_device(spec.device, nvml_module) if task.gpu else None
    with applied_gpu_settings(task.gpu, index, journal, nvml_module) as applied:
        record = session.run(spec, on_event=on_event, cancel=cancel,
                             check_variants=[RunSpec.from_dict(c) for c in task.check])
    if applied:
        session.store.update_environment(record.id, {**record.environment, "gpu_settings": applied})
        record = session.store.get_run(record.id)
    return record


def _spec_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def outcome_of(record: RunRecord, node: str | None = None, attempts: int = 1) -> PointOutcome:
    return PointOutcome(record.status if record.status in ("done", "cancelled") else "failed", record.id,
                        record.error, node, attempts)


class LocalExecutor:
    """Points one after another in this process's session (one worker process each)."""

    name = "local"

    def __init__(self, session: Any, progress: Callable[[PointTask], Callable[[dict], None]] | None = None) -> None:
        self.session = session
        self.progress = progress

    def describe(self) -> str:
        return f"locally on {socket.gethostname()}"

    def check(self, tasks: list[PointTask]) -> None:
        """Nothing to check beyond the plan's own validation."""

    def run(self, tasks: list[PointTask], on_start: StartCallback, on_done: DoneCallback,
            cancel: threading.Event) -> None:
        refused: dict[str, str] = {}      # a point's spec -> why its baseline's worker refused it
        for task in tasks:
            if cancel.is_set():
                return
            on_start(task)
            why = refused.get(_spec_key(task.spec))
            if why is not None:               # refused on the loaded model: not started
                on_done(task, PointOutcome("failed", error=why, node=socket.gethostname()))
                continue
            try:
                record = run_point(self.session, task, cancel, self.progress(task) if self.progress else None)
            except WorkbenchError as exc:     # a GPU setting refused, the store failed: this point only
                on_done(task, PointOutcome("cancelled" if cancel.is_set() else "failed", error=str(exc),
                                           node=socket.gethostname()))
                continue
            for spec, refusal in zip(task.check, getattr(record, "variant_refusals", None) or []):
                if refusal:
                    refused[_spec_key(spec)] = refusal
            outcome = outcome_of(record, socket.gethostname())
            on_done(task, outcome)
            if outcome.status == "cancelled":
                return


# -- a run as data: from a node's throw-away store into the local one -----------------------------------
def export_run(store: ResultsStore, run_id: int) -> dict:
    """Everything stored about ``run_id``, as plain data (what a Ray task returns)."""
    record = store.get_run(run_id)
    with store._access() as db:     # the store's gate; the phases a run timed are not listed elsewhere
        phases = [r[0] for r in db.execute("SELECT DISTINCT phase FROM latencies WHERE run_id=?", (run_id,))]
    return {"spec": record.spec, "chain": record.chain, "runtime": record.runtime, "status": record.status,
            "result": record.result, "error": record.error, "error_detail": record.error_detail,
            "environment": record.environment, "work": record.work,
            "latencies": {phase: store.latencies(run_id, phase) for phase in phases},
            "samples": store.samples(run_id), "events": store.events(run_id), "artifacts": store.artifacts(run_id)}


def import_run(store: ResultsStore, bundle: dict, executor_info: dict) -> int:
    """Write a run measured elsewhere into ``store``; its environment is the node's fingerprint plus
    ``executor_info`` (where and how it ran). Returns the local run id."""
    environment = {**(bundle.get("environment") or {}), "executor": executor_info}
    run_id = store.create_run(bundle["spec"], bundle["chain"], bundle.get("runtime") or "auto", environment)
    for phase, values in (bundle.get("latencies") or {}).items():
        if values:
            store.add_latencies(run_id, phase, 0, values)
    store.add_samples(run_id, bundle.get("samples") or [])
    store.add_events(run_id, [{**e, "run_id": run_id} for e in bundle.get("events") or [] if "type" in e])
    for artifact in bundle.get("artifacts") or []:
        store.add_artifact(run_id, artifact)
    result = dict(bundle.get("result") or {})
    notes = _node_notes(store, run_id, bundle)
    if notes and bundle["status"] == "done":
        result["notes"] = list(result.get("notes") or []) + notes
    store.finish_run(run_id, bundle["status"], result, bundle.get("error"), bundle.get("error_detail"))
    return run_id


def _node_notes(store: ResultsStore, run_id: int, bundle: dict) -> list[str]:
    """What differs between the node and this machine in ways that matter to a comparison."""
    notes = []
    here = (store.get_run(run_id).work or {}).get("files") or {}
    there = (bundle.get("work") or {}).get("files") or {}
    for key, digest in there.items():
        if here.get(key) and digest and here[key] != digest:
            notes.append(f"the {key} file on the node differs from this machine's (other content, same path)")
    from .environment import collect_environment
    ours = (collect_environment(include_gpu=False).get("packages") or {}).get("workbench")
    theirs = ((bundle.get("environment") or {}).get("packages") or {}).get("workbench")
    if ours and theirs and ours != theirs:
        notes.append(f"measured with workbench {theirs} on the node (this machine has {ours})")
    return notes


def run_point_on_node(task: dict) -> dict:
    """A Ray task: measure one point on this node with the ordinary worker, in a throw-away store,
    and return the run as data with where it ran."""
    folder = tempfile.mkdtemp(prefix="workbench-ray-")
    try:
        from .session import Session
        store = ResultsStore(Path(folder) / "runs.sqlite")
        try:
            record = run_point(Session(store), PointTask(**task))
            bundle = export_run(store, record.id)
        finally:
            store.close()
        bundle["node"] = node_identity()
        return bundle
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def node_identity() -> dict:
    info: dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    try:
        import ray
        info.update(node_id=ray.get_runtime_context().get_node_id(), ip=ray.util.get_node_ip_address())
    except Exception:    # not inside Ray (a test calling it directly)
        pass
    return info


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def parse_requirements(texts: list[str]) -> dict[str, str]:
    """``--require gpu=H100`` -> ``{"gpu": "H100"}`` (the only requirement so far)."""
    out: dict[str, str] = {}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if key.strip() != "gpu" or not sep or not value.strip():
            raise SpecError(f"bad --require {text!r}: expected gpu=MODEL (e.g. gpu=H100, gpu=A100), matched "
                            "against the accelerator_type Ray detects on each node")
        out["gpu"] = value.strip()
    return out


def _address_hint(address: str) -> str:
    where = address
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        where = f"'auto' (RAY_ADDRESS={env})" if env else "'auto' (a cluster started on this machine with `ray start --head`)"
    return where


def _tcp_reachable(address: str, timeout_s: float = 5.0) -> str | None:
    """None when HOST:PORT answers, else why not (an explicit address is checked before ray.init,
    which would otherwise retry for a minute)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None     # not HOST:PORT: left to ray.init
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"TCP connect to {host}:{port} failed: {exc.strerror or exc}"


class RayExecutor:
    """Each point a Ray task (``run_point_on_node``) with resource requests: ``num_gpus=1`` for a GPU
    point, ``accelerator_type`` for ``--require gpu=MODEL``, ``num_cpus`` = the point's threads (or
    ``cpus_per_point``). Finished points are written to the local store as they arrive; a point whose
    node or Ray worker died is tried once more (Ray never places it on a dead node), then failed."""

    name = "ray"

    def __init__(self, store: ResultsStore, address: str = "auto", require: dict | None = None,
                 cpus_per_point: int | None = None, runner: Callable[[dict], dict] | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        self.ray = import_ray()
        self.store, self.address = store, address
        self.require = dict(require or {})
        self.cpus_per_point = cpus_per_point
        self.runner = runner or run_point_on_node
        self.notify = notify or (lambda line: None)
        self._connect()

    def describe(self) -> str:
        return f"on the Ray cluster at {self.address}"

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return          # connected already (a test's cluster, or a driver that did it)
        if self.address != "auto":
            why = _tcp_reachable(self.address)
            if why:
                raise WorkbenchError(f"no Ray cluster reachable at {self.address}: {why}; start one with "
                                     "`ray start --head` and pass --address HOST:PORT of its head node")
        outcome: dict[str, Any] = {}

        def connect() -> None:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
                outcome["ok"] = True
            except Exception as exc:   # ConnectionError, or Ray's own errors for a bad address
                outcome["error"] = exc

        # ray.init retries for as long as the GCS answers TCP without completing its handshake (a head
        # bound to another interface, another Ray version): a deadline turns that into an error.
        thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
        thread.start()
        thread.join(RAY_CONNECT_TIMEOUT_S)
        if thread.is_alive():
            raise WorkbenchError(f"the Ray cluster at {self.address} answers but did not complete the connection in "
                                 f"{RAY_CONNECT_TIMEOUT_S:g} s (a head started on another interface than this "
                                 "address, or another Ray version?); check `ray status` on the head node")
        if "error" in outcome:
            exc = outcome["error"]
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WorkbenchError(f"no Ray cluster reachable at {_address_hint(self.address)}: {first}; start one "
                                 "with `ray start --head`, or pass --address HOST:PORT of its head node") from None

    # -- resources -----------------------------------------------------------------------------------
    def options(self, task: PointTask) -> dict:
        spec = task.spec
        cuda = device_kind(spec.get("device") or "cpu") == "cuda"
        options: dict[str, Any] = {"num_cpus": self.cpus_per_point or spec.get("threads") or 1,
                                   "num_gpus": 1 if cuda else 0, "max_retries": 0}
        if self.require.get("gpu"):
            options["accelerator_type"] = self.require["gpu"]
        return options

    @staticmethod
    def _needs(options: dict) -> dict[str, float]:
        needs = {"CPU": float(options["num_cpus"])}
        if options["num_gpus"]:
            needs["GPU"] = float(options["num_gpus"])
        if options.get("accelerator_type"):
            needs[f"accelerator_type:{options['accelerator_type']}"] = 0.001
        return needs

    def _fits_somewhere(self, needs: dict[str, float]) -> bool:
        return any(all(node.get("Resources", {}).get(k, 0) >= v for k, v in needs.items())
                   for node in self.ray.nodes() if node.get("Alive"))

    def check(self, tasks: list[PointTask]) -> None:
        """Refuse, before anything runs, points that no node of the cluster could ever take."""
        for task in tasks:
            device = task.spec.get("device") or "cpu"
            if device.startswith("cuda:"):
                raise SpecError(f"with --executor ray use --device cuda, not {device}: Ray gives each point its "
                                "own GPU (CUDA_VISIBLE_DEVICES), which the point sees as cuda")
        wanted = {tuple(sorted(self._needs(self.options(t)).items())) for t in tasks}
        for needs in wanted:
            if not self._fits_somewhere(dict(needs)):
                offered = "; ".join(", ".join(f"{k}={v:g}" for k, v in sorted(n.get("Resources", {}).items())
                                              if not k.startswith(("node:", "memory", "object_store")))
                                    for n in self.ray.nodes() if n.get("Alive")) or "no live node"
                raise SpecError(f"no node of the Ray cluster at {self.address} offers what a point needs "
                                f"({', '.join(f'{k}={v:g}' for k, v in needs)}); the nodes offer: {offered}")

    # -- running -------------------------------------------------------------------------------------
    def run(self, tasks: list[PointTask], on_start: StartCallback, on_done: DoneCallback,
            cancel: threading.Event) -> None:
        ray = self.ray
        remote = ray.remote(self.runner)
        pending: dict[Any, tuple[PointTask, int, str | None]] = {}

        def submit(task: PointTask, attempt: int, first_error: str | None = None) -> None:
            ref = remote.options(**self.options(task)).remote(task.to_dict())
            pending[ref] = (task, attempt, first_error)

        for task in tasks:
            on_start(task)
            submit(task, 1)
        last_check = time.monotonic()
        while pending:
            if cancel.is_set():
                self._cancel_all(pending, on_done)
                return
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                task, attempt, first_error = pending.pop(ref)
                outcome = self._collect(ref, task, attempt, first_error)
                if isinstance(outcome, str):     # the node or its worker died: once more, elsewhere
                    submit(task, attempt + 1, outcome)
                    continue
                on_done(task, outcome)
            if time.monotonic() - last_check > 5.0:
                last_check = time.monotonic()
                self._fail_unplaceable(pending, on_done)

    def _collect(self, ref: Any, task: PointTask, attempt: int, first_error: str | None) -> PointOutcome | str:
        """The point's outcome, or (a str) why its node or Ray worker was lost when it gets another try."""
        ray = self.ray
        exceptions = ray.exceptions
        try:
            bundle = ray.get(ref)
        except exceptions.TaskCancelledError:
            return PointOutcome("cancelled", error="cancelled", attempts=attempt)
        except exceptions.RayTaskError as exc:       # our code raised on the node: the point failed
            cause = getattr(exc, "cause", None) or exc
            return PointOutcome("failed", error=(str(cause).strip().splitlines() or ["error"])[-1], attempts=attempt)
        except exceptions.RayError as exc:           # the node or the Ray worker died under the point
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            if attempt <= RETRIES_ON_LOST_WORKER:
                self.notify(f"point {task.point} (repeat {task.repeat + 1}): its Ray node or worker died ({reason}); "
                            "trying it once more on another node")
                return reason
            return PointOutcome("failed", error=f"the Ray node or worker running it died on both attempts "
                                                f"(first: {first_error}; then: {reason})", attempts=attempt)
        node = bundle.get("node") or {}
        info = {"kind": "ray", "address": self.address, "attempt": attempt, **node}
        run_id = import_run(self.store, bundle, info)
        status = bundle["status"] if bundle["status"] in ("done", "cancelled") else "failed"
        return PointOutcome(status, run_id, bundle.get("error"), node.get("node_id") or node.get("hostname"), attempt)

    def _cancel_all(self, pending: dict, on_done: DoneCallback) -> None:
        for ref in pending:
            self.ray.cancel(ref)        # not forced: the task stops its worker cleanly (KeyboardInterrupt)
        for ref, (task, attempt, _) in list(pending.items()):
            on_done(task, PointOutcome("cancelled", error="the sweep was stopped", attempts=attempt))
        pending.clear()

    def _fail_unplaceable(self, pending: dict, on_done: DoneCallback) -> None:
        """Ray waits forever for resources no live node has (its node died): fail those points."""
        for ref, (task, attempt, _) in list(pending.items()):
            needs = self._needs(self.options(task))
            if not self._fits_somewhere(needs):
                self.ray.cancel(ref, force=True)
                pending.pop(ref)
                on_done(task, PointOutcome("failed", error="no live node of the Ray cluster offers what it needs ("
                                           + ", ".join(f"{k}={v:g}" for k, v in needs.items()) + ")",
                                           attempts=attempt))


def make_executor(kind: str, store: ResultsStore, session: Any = None, *, address: str = "auto",
                  require: list[str] | None = None, cpus_per_point: int | None = None,
                  progress: Callable | None = None, notify: Callable[[str], None] | None = None) -> Any:
    """The executor ``--executor`` names (``local`` or ``ray``)."""
    if kind == "local":
        from .session import Session
        return LocalExecutor(session or Session(store), progress)
    if kind == "ray":
        return RayExecutor(store, address, parse_requirements(require or []), cpus_per_point, notify=notify)
    raise SpecError(f"unknown executor {kind!r}; choose local or ray")
