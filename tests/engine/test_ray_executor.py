"""``--executor ray``: points as Ray tasks with resource requests, results imported into the local store
with the node's fingerprint, a lost node's point retried once then failed, clear refusals.

Two layers. By default, ``RayExecutor`` runs against a small stand-in for the ``ray`` module (its
scheduling logic is what is tested, in milliseconds). The real thing -- a local Ray cluster on
127.0.0.1 with two logical nodes (``ray.cluster_utils.Cluster``), the ordinary worker on each -- is
marked ``slow`` and runs only where Ray is installed and ``WORKBENCH_RAY_TESTS=1`` is set: starting
the cluster alone takes ~20 s on a loaded 2-core machine (see docs/sweeps.md).
"""
from __future__ import annotations

import os
import sys
import threading

import pytest

from sweep_fixtures import FakeSession
from workbench.engine.executors import PointTask, RayExecutor, export_run, import_run, make_executor
from workbench.engine.sweep import create, plan_sweep, run_sweep
from workbench.errors import SpecError, WorkbenchError
from workbench.results.store import ResultsStore
from workbench.results.sweeps import get_sweep
from workbench.spec import RunSpec


# -- a stand-in for the ray module -------------------------------------------------------------------------
class _RayError(Exception):
    pass


class _Exceptions:
    RayError = _RayError
    RayTaskError = type("RayTaskError", (_RayError,), {})
    TaskCancelledError = type("TaskCancelledError", (_RayError,), {})
    NodeDiedError = type("NodeDiedError", (_RayError,), {})


class _Ref:
    def __init__(self, kind, value):
        self.kind, self.value = kind, value


class FakeRay:
    """Runs each task at submission with ``behave(task, attempt)``: a bundle, or an exception to raise."""

    exceptions = _Exceptions

    def __init__(self, behave, nodes=None):
        self.behave = behave
        self._nodes = nodes or [{"NodeID": "a", "Alive": True, "Resources": {"CPU": 2.0}},
                                {"NodeID": "b", "Alive": True, "Resources": {"CPU": 2.0, "accelerator_type:H100": 1.0}}]
        self.submitted: list[tuple[int, dict]] = []
        self.attempts: dict[tuple, int] = {}

    def is_initialized(self):
        return True

    def nodes(self):
        return self._nodes

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **options):
                self.opts = options
                return self

            def remote(self, task):
                key = (task["point"], task["repeat"])
                ray.attempts[key] = ray.attempts.get(key, 0) + 1
                ray.submitted.append((task["point"], dict(self.opts)))
                try:
                    return _Ref("ok", ray.behave(task, ray.attempts[key]))
                except Exception as exc:   # delivered by get(), like Ray
                    return _Ref("raise", exc)
        return Remote()

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        if ref.kind == "raise":
            raise ref.value
        return ref.value

    def cancel(self, ref, force=False):
        pass


@pytest.fixture
def bundle_of(tmp_path):
    """A real run bundle (what a node returns): measured by the fake session in a store of its own."""
    node_store = ResultsStore(tmp_path / "node.sqlite")
    cache = {}

    def make(task: dict) -> dict:
        key = task["point"]
        if key not in cache:
            record = FakeSession(node_store).run(RunSpec.from_dict(task["spec"]))
            cache[key] = {**export_run(node_store, record.id), "node": {"node_id": "b", "hostname": "node-b"}}
        return cache[key]
    yield make
    node_store.close()


def executor(store, monkeypatch, behave, **kwargs) -> tuple[RayExecutor, FakeRay]:
    fake = FakeRay(behave, kwargs.pop("nodes", None))
    monkeypatch.setitem(sys.modules, "ray", fake)
    return RayExecutor(store, "auto", **kwargs), fake


def _sweep(store, grid=("batch=1,2",), device="cpu"):
    plan = plan_sweep(store, RunSpec(model="demo:digits-cnn", threads=1, device=device), list(grid))
    return create(store, plan)


def test_points_land_in_the_local_store_with_the_nodes_fingerprint(store, monkeypatch, bundle_of):
    ex, fake = executor(store, monkeypatch, lambda task, attempt: bundle_of(task))
    record = run_sweep(store, _sweep(store), ex, threading.Event())
    assert record.status == "done" and [p.node for p in record.points] == ["b", "b"]
    run = store.get_run(record.points[1].run_id)
    assert run.status == "done" and run.latency["batch"] == 2 and len(store.latencies(run.id)) == 60
    assert run.environment["executor"] == {"kind": "ray", "address": "auto", "attempt": 1, "node_id": "b",
                                           "hostname": "node-b"}
    assert run.environment["host"] == {"cpu_model": "fake"}           # the node's fingerprint, not this machine's
    assert [opts["num_cpus"] for _, opts in fake.submitted] == [1, 1]


def test_a_point_whose_node_died_is_retried_once_then_stored(store, monkeypatch, bundle_of):
    def behave(task, attempt):
        if task["point"] == 0 and attempt == 1:
            raise _Exceptions.NodeDiedError("node a died")
        return bundle_of(task)
    notes = []
    ex, fake = executor(store, monkeypatch, behave, notify=notes.append)
    record = run_sweep(store, _sweep(store), ex, threading.Event())
    assert record.status == "done" and [p.attempts for p in record.points] == [2, 1]
    assert [point for point, _ in fake.submitted] == [0, 1, 0] and "trying it once more" in notes[0]
    assert store.get_run(record.points[0].run_id).environment["executor"]["attempt"] == 2


def test_a_point_whose_node_dies_twice_is_failed_and_the_sweep_goes_on(store, monkeypatch, bundle_of):
    def behave(task, attempt):
        if task["point"] == 0:
            raise _Exceptions.NodeDiedError(f"node died (attempt {attempt})")
        return bundle_of(task)
    ex, _ = executor(store, monkeypatch, behave)
    record = run_sweep(store, _sweep(store), ex, threading.Event())
    lost, fine = record.points
    assert lost.status == "failed" and lost.attempts == 2 and lost.run_id is None
    assert "died on both attempts" in lost.error and "attempt 1" in lost.error and "attempt 2" in lost.error
    assert fine.status == "done" and record.status == "done"


def test_an_error_raised_on_the_node_fails_the_point_without_a_retry(store, monkeypatch):
    error = _Exceptions.RayTaskError("ray traceback")
    error.cause = WorkbenchError("the results database could not be written: disk full")

    def behave(task, attempt):
        raise error
    ex, fake = executor(store, monkeypatch, behave)
    record = run_sweep(store, _sweep(store, ["batch=1"]), ex, threading.Event())
    assert record.points[0].status == "failed" and "disk full" in record.points[0].error and len(fake.submitted) == 1


def test_resource_requests_and_refusals_before_anything_runs(store, monkeypatch):
    ex, fake = executor(store, monkeypatch, lambda task, attempt: pytest.fail("nothing may run"),
                        require={"gpu": "H100"}, cpus_per_point=2)
    task = PointTask(1, 0, 0, RunSpec(model="demo:digits-cnn", device="cuda").to_dict())
    assert ex.options(task) == {"num_cpus": 2, "num_gpus": 1, "max_retries": 0, "accelerator_type": "H100"}
    with pytest.raises(SpecError, match=r"no node of the Ray cluster at auto offers .*GPU=1.*the nodes offer: CPU=2;"):
        ex.check([task])                            # node b has the H100 resource but no GPU to give
    with pytest.raises(SpecError, match="use --device cuda, not cuda:1"):
        ex.check([PointTask(1, 0, 0, RunSpec(model="demo:digits-cnn", device="cuda:1").to_dict())])
    cpu_task = PointTask(1, 0, 0, RunSpec(model="demo:digits-cnn").to_dict())
    ex.check([cpu_task])                            # CPU points fit node b (it has the H100 resource)
    assert fake.submitted == []


def test_ray_not_installed_names_the_extra(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray -> ImportError
    with pytest.raises(SpecError, match=r"needs Ray, which is not installed: pip install 'workbench\[ray\]'"):
        make_executor("ray", store)


def test_an_unreachable_address_is_named(store, monkeypatch):
    class Disconnected(FakeRay):
        def is_initialized(self):
            return False
    monkeypatch.setitem(sys.modules, "ray", Disconnected(None))
    with pytest.raises(WorkbenchError, match="no Ray cluster reachable at 127.0.0.1:1: TCP connect to 127.0.0.1:1"):
        RayExecutor(store, "127.0.0.1:1")


def test_a_cluster_that_never_completes_the_handshake_is_an_error_not_a_hang(store, monkeypatch):
    import workbench.engine.executors as executors
    release = threading.Event()

    class Hanging(FakeRay):
        def is_initialized(self):
            return False

        def init(self, **kwargs):       # what ray.init does when the GCS answers TCP but not Ray
            release.wait(10)
    monkeypatch.setitem(sys.modules, "ray", Hanging(None))
    monkeypatch.setattr(executors, "RAY_CONNECT_TIMEOUT_S", 0.2)
    with pytest.raises(WorkbenchError, match="did not complete the connection in 0.2 s"):
        RayExecutor(store, "auto")
    release.set()


def test_a_run_bundle_round_trips_between_stores(store, tmp_path):
    node = ResultsStore(tmp_path / "node.sqlite")
    record = FakeSession(node).run(RunSpec(model="demo:digits-cnn", batch=4))
    node.add_events(record.id, [{"type": "phase", "phase": "measure", "t": 1.0, "run_id": record.id}])
    bundle = export_run(node, record.id)
    run_id = import_run(store, bundle, {"kind": "ray", "node_id": "n1"})
    here = store.get_run(run_id)
    assert here.result["latency"] == record.result["latency"] and here.status == "done"
    assert store.latencies(run_id) == node.latencies(record.id)
    assert store.events(run_id)[0]["run_id"] == run_id and here.environment["executor"]["node_id"] == "n1"
    node.close()


# -- a real local Ray cluster -------------------------------------------------------------------------------
RAY_TESTS = os.environ.get("WORKBENCH_RAY_TESTS") == "1"


@pytest.fixture(scope="module")
def ray_cluster():
    if not RAY_TESTS:
        pytest.skip("set WORKBENCH_RAY_TESTS=1 to start a local Ray cluster (~20 s on a loaded machine)")
    # Ray's switch for single-machine use: every address is 127.0.0.1 (read when ray is imported; the
    # raylets inherit it).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'workbench[ray]')")
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 1, "resources": {"node_a": 1}, "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"node_b": 1, "accelerator_type:H100": 1})
    cluster.wait_for_nodes()
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    assert cluster.address.startswith("127.0.0.1:") and len(nodes) == 2
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()
    os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_sweep_on_a_local_ray_cluster_is_placed_and_stored(ray_cluster, store):
    cluster, nodes = ray_cluster
    spec = RunSpec(model="demo:digits-cnn", iters=5, duration_s=0.05, threads=1)
    sweep_id = create(store, plan_sweep(store, spec, ["batch=1,2"]))
    record = run_sweep(store, sweep_id, RayExecutor(store, cluster.address), threading.Event())
    assert record.status == "done", [p.error for p in record.points]
    used = {p.node for p in record.points}
    assert used <= set(nodes) and len(used) == 2           # one CPU per node: the two points ran side by side
    for p in record.points:
        run = store.get_run(p.run_id)
        assert run.status == "done" and run.environment["executor"]["node_id"] == p.node
        assert run.environment["packages"]["torch"] and store.latencies(run.id)     # the node's fingerprint, its data
    # --require gpu=H100: only node b offers it
    h100 = next(node for node, res in nodes.items() if "accelerator_type:H100" in res)
    sweep_id = create(store, plan_sweep(store, spec, ["batch=3"]))
    record = run_sweep(store, sweep_id, RayExecutor(store, cluster.address, {"gpu": "H100"}), threading.Event())
    assert [p.node for p in record.points] == [h100] and record.points[0].status == "done"
    # a Ray worker that dies under its point: tried once more, then failed with the reason
    def die(task):      # a local function: Ray ships it by value (this test module is not importable there)
        os._exit(3)     # the Ray worker dies under the point: what a lost node looks like to the driver
    sweep_id = create(store, plan_sweep(store, spec, ["batch=5"]))
    record = run_sweep(store, sweep_id, RayExecutor(store, cluster.address, runner=die), threading.Event())
    assert record.points[0].status == "failed" and record.points[0].attempts == 2
    assert "died on both attempts" in get_sweep(store, sweep_id).points[0].error
