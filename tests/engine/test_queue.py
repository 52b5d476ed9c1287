"""engine.queue without Qt: jobs run one at a time in order on the runner thread, cancel and
remove, failures recorded (not raised), notifications once per change, shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from workbench.engine.queue import CANCELLED, DONE, FAILED, QUEUED, REFUSED, JobQueue
from workbench.errors import VariantsRefused, WorkbenchError
from workbench.results.store import RunRecord
from workbench.spec import PluginStep, RunSpec


class FakeSession:
    """Runs a spec by its label: "long" waits for its cancel event, "bad"/"boom" fail."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.threads: set[str] = set()
        self.running = threading.Event()
        self.next_id = 1

    def run(self, spec, on_event, cancel):
        self.threads.add(threading.current_thread().name)
        self.started.append(spec.label)
        run_id, self.next_id = self.next_id, self.next_id + 1
        on_event({"type": "run_created", "run_id": run_id})
        on_event({"type": "phase", "phase": "measure", "run_id": run_id})
        status, error = "done", None
        if spec.label == "bad":
            raise WorkbenchError("bad input")
        if spec.label == "boom":
            raise RuntimeError("core bug")
        if spec.label == "long":
            self.running.set()
            assert cancel.wait(10), "never cancelled"
            status, error = "cancelled", "cancelled by the user"
        return RunRecord(run_id, time.time(), time.time(), status, None, [], spec.model, spec.describe_chain(),
                         "torch", "cpu", None, spec.to_dict(), {}, {}, error, None)


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.started: list[str] = []
        self.finished: list[str] = []
        self.busy: list[bool] = []
        self.done = threading.Condition()

    def callbacks(self) -> dict:
        def finished(job):
            with self.done:
                self.finished.append(job.label)
                self.done.notify_all()
        return {"on_event": self.events.append, "on_started": lambda job: self.started.append(job.label),
                "on_finished": finished, "on_busy": self.busy.append}

    def wait_finished(self, n: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.finished) >= n, timeout=10), self.finished


@pytest.fixture
def queue(tmp_path):
    recorder = Recorder()
    q = JobQueue(tmp_path / "runs.sqlite", **recorder.callbacks())
    q.session = FakeSession()
    q.recorder = recorder
    yield q
    assert q.shutdown(timeout_s=5)


def _specs(*labels: str) -> list[RunSpec]:
    return [RunSpec(model="demo:digits-cnn", label=label) for label in labels]


def test_jobs_run_in_order_on_the_runner_thread(queue):
    jobs = queue.enqueue(_specs("a", "b"))
    assert [j.label for j in jobs] == ["a", "b"] and jobs[0].id < jobs[1].id
    queue.recorder.wait_finished(2)
    assert queue.session.started == ["a", "b"]
    assert queue.session.threads == {"workbench-runner"}
    assert [j.status for j in jobs] == [DONE, DONE] and [j.run_id for j in jobs] == [1, 2]
    assert all(j.finished and j.phase == "measure" for j in jobs)
    assert [e["job_id"] for e in queue.recorder.events if e["type"] == "run_created"] == [j.id for j in jobs]
    assert queue.recorder.started == ["a", "b"]
    assert not queue.is_busy() and queue.recorder.busy[0] is True and queue.recorder.busy[-1] is False


def test_cancel_all_stops_the_running_job_and_drops_the_rest(queue):
    jobs = queue.enqueue(_specs("long", "a", "b"))
    assert queue.session.running.wait(5)
    assert queue.current() is jobs[0] and queue.is_busy()
    assert [j.label for j in queue.pending()] == ["a", "b"]
    assert queue.remove(jobs[2].id)                  # a queued job can be taken off ...
    assert not queue.remove(jobs[0].id)              # ... the running one cannot (cancel it instead)
    assert queue.cancel_all() == 2                   # "a" dropped, "long" stopped
    queue.recorder.wait_finished(3)
    assert [j.status for j in jobs] == [CANCELLED] * 3
    assert jobs[1].message == jobs[2].message == "removed from the queue"
    assert queue.session.started == ["long"]
    assert queue.recorder.busy == [True, False]      # once per change, not once per job


def test_failures_are_recorded_not_raised(queue):
    jobs = queue.enqueue(_specs("bad", "boom", "ok"))
    queue.recorder.wait_finished(3)
    assert [j.status for j in jobs] == [FAILED, FAILED, DONE]
    assert jobs[0].message == "bad input" and jobs[0].detail is None
    assert "RuntimeError: core bug" in jobs[1].message and "Traceback" in jobs[1].detail


def test_clear_finished_keeps_what_is_still_to_come(queue):
    jobs = queue.enqueue(_specs("long", "a"))
    assert queue.session.running.wait(5)
    queue.remove(jobs[1].id)
    queue.clear_finished()
    assert queue.jobs() == [jobs[0]]                 # the running job stays listed
    queue.cancel_current()
    queue.recorder.wait_finished(2)
    queue.clear_finished()
    assert queue.jobs() == []


def test_labels_default_to_the_spec_and_a_shut_queue_refuses_work(tmp_path):
    q = JobQueue(tmp_path / "runs.sqlite")
    q.session = FakeSession()
    spec = RunSpec(model="demo:digits-cnn")
    assert q.shutdown(timeout_s=5)
    with pytest.raises(WorkbenchError, match="shut down"):
        q.enqueue([spec])
    assert QUEUED == "queued"


# -- preflight groups (the GUI's baseline + variant and all combinations, like engine.runner.run_planned) --
class PreflightSession(FakeSession):
    """A baseline given ``check_variants`` refuses those labelled "refuse…", as the worker's
    preflight does: aligned refusals on the record; VariantsRefused (run not kept) when the required
    one, or every one, is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[tuple[list[str], str | None]] = []

    def run(self, spec, on_event, cancel, check_variants=(), required=None):
        if not check_variants:
            return super().run(spec, on_event, cancel)
        self.checked.append(([v.label for v in check_variants], required.label if required is not None else None))
        refusals = [f"{v.label} cannot run here" if v.label.startswith("refuse") else None for v in check_variants]
        on_event({"type": "run_created", "run_id": 99})
        on_event({"type": "variants_checked", "refusals": refusals})
        if (required is not None and refusals[[v is required for v in check_variants].index(True)]) \
                or all(refusals):
            self.started.append(spec.label)
            raise VariantsRefused(next(r for r in refusals if r))
        record = super().run(spec, on_event, cancel)
        record.variant_refusals = refusals
        return record


def _plugin_specs(*labels: str) -> list[RunSpec]:
    return [RunSpec(model="demo:digits-cnn", label=label,
                    plugins=[] if label == "base" else [PluginStep("fuse")]) for label in labels]


def test_a_refused_variant_is_not_started_and_says_why(queue):
    queue.session = PreflightSession()
    jobs = queue.enqueue(_plugin_specs("base", "ok", "refuse-a", "whole"), group="all-1", preflight=True,
                         require_last=False)
    queue.recorder.wait_finished(4)
    assert queue.session.checked == [(["ok", "refuse-a", "whole"], None)]
    assert queue.session.started == ["base", "ok", "whole"]           # the refused one never ran
    assert [j.status for j in jobs] == [DONE, DONE, REFUSED, DONE]
    assert jobs[2].message == "refuse-a cannot run here" and jobs[2].run_id is None and jobs[2].finished
    # announced right after its baseline, before the next job ran
    assert queue.recorder.finished[:2] == ["base", "refuse-a"]


def test_the_requested_variant_refused_refuses_the_group_before_anything_is_timed(queue):
    queue.session = PreflightSession()
    jobs = queue.enqueue(_plugin_specs("base", "convert", "refuse-me"), group="pair-1", preflight=True)
    queue.recorder.wait_finished(3)
    assert queue.session.checked == [(["convert", "refuse-me"], "refuse-me")]
    assert queue.session.started == ["base"]                           # refused in its worker, nothing timed
    base, convert, variant = jobs
    assert base.status == REFUSED and base.message == "refuse-me cannot run here"
    assert base.run_id is None and base.detail is None                  # no run kept, no traceback
    assert variant.status == REFUSED and variant.message == "refuse-me cannot run here"
    assert convert.status == CANCELLED and convert.message.startswith("not started: base was refused")
    assert not queue.is_busy()


def test_without_preflight_or_with_a_stored_baseline_nothing_is_checked(queue):
    queue.session = PreflightSession()
    plain = queue.enqueue(_plugin_specs("base", "refuse-x"))                          # no preflight asked
    variant_only = queue.enqueue(_plugin_specs("refuse-y"), preflight=True)           # no baseline to run
    queue.recorder.wait_finished(3)
    assert queue.session.checked == []
    assert [j.status for j in plain + variant_only] == [DONE, DONE, DONE]


def test_a_variant_removed_by_the_user_is_not_checked(queue):
    queue.session = PreflightSession()
    blocker = queue.enqueue(_specs("long"))
    assert queue.session.running.wait(5)
    jobs = queue.enqueue(_plugin_specs("base", "refuse-z", "ok"), preflight=True, require_last=False)
    assert queue.remove(jobs[1].id)
    blocker[0].cancel.set()
    queue.recorder.wait_finished(4)
    assert queue.session.checked == [(["ok"], None)]
    assert jobs[1].status == CANCELLED and jobs[1].message == "removed from the queue"


def test_explicit_checks_let_each_baseline_check_its_own_points(queue):
    """A sweep's rounds: each baseline checks the points compared with it (``checks`` by index)."""
    queue.session = PreflightSession()
    jobs = queue.enqueue(_plugin_specs("base", "ok", "refuse-1", "base", "refuse-2"),
                         checks=[[1, 2], [], [], [4], []])
    queue.recorder.wait_finished(5)
    assert queue.session.checked == [(["ok", "refuse-1"], None), (["refuse-2"], None)]
    assert [j.status for j in jobs] == [DONE, DONE, REFUSED, REFUSED, REFUSED]     # all refused: nothing timed
    assert queue.session.started == ["base", "ok", "base"]
