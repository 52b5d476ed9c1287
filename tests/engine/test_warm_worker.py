"""Spare workers started ahead (engine.warm): a run through one is the same run, each spare serves
one job and is replaced, a spare with a stale environment is discarded, and none outlives its parent."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from core_fixtures import process_alive
from workbench.engine.process import WorkerProcess
from workbench.engine.session import Session
from workbench.engine.warm import WarmWorkers
from workbench.spec import RunSpec

QUICK = dict(model="demo:digits-cnn", batch=1, threads=1, iters=20, duration_s=0.05, warmup_min_iters=2,
             warmup_max_s=0.2)
WAIT_S = 60          # safety net against a hang on a loaded machine, not a threshold


@pytest.fixture
def pool():
    warm = WarmWorkers(enabled=True)
    yield warm
    warm.close()


def _started_pid(events: list[dict]) -> int:
    return next(e["pid"] for e in events if e["type"] == "started")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not process_alive(pid)


def test_a_run_through_a_spare_is_the_same_run_and_the_spare_is_used_once_then_replaced(store, pool):
    session = Session(store, warm=pool)
    cold = session.run(RunSpec(**QUICK))
    assert cold.status == "done", cold.error
    assert pool.spawned == 0, "nobody asked for a spare (the CLI's case): none is started"
    assert cold.environment["worker_start"] == {"prewarmed": False}

    assert pool.prewarm()
    first_spare = pool.spare.proc.pid
    events: list[dict] = []
    warm = session.run(RunSpec(**QUICK), on_event=events.append)
    assert warm.status == "done", warm.error
    assert _started_pid(events) == first_spare, "the run took the spare"
    # The same fields, statistics, fidelity and worker conditions as a worker started for the job.
    assert set(warm.result) == set(cold.result)
    assert set(warm.result["latency"]) == set(cold.result["latency"])
    assert warm.result["fidelity"] == cold.result["fidelity"]
    assert warm.result["threads"] == cold.result["threads"] == 1
    assert warm.environment["worker"] == cold.environment["worker"]
    start = warm.environment["worker_start"]
    assert start["prewarmed"] is True and start["spare_age_s"] >= 0
    assert start["imports_s"] > 0 and start["idle_s"] >= 0, start

    # Used once: that process ran its job and exited; a new spare replaced it when the run ended.
    assert _wait_gone(first_spare)
    assert pool.spare is not None and pool.spare.proc.pid != first_spare and pool.spare.alive()
    assert pool.spawned == 2 and pool.discarded == 0
    events.clear()
    again = session.run(RunSpec(**QUICK), on_event=events.append)
    assert again.status == "done" and again.environment["worker_start"]["prewarmed"] is True
    assert _started_pid(events) != first_spare


@pytest.mark.parametrize("name, value", [("MALLOC_ARENA_MAX", "2"), ("CUDA_VISIBLE_DEVICES", "")])
def test_a_spare_started_with_another_environment_is_discarded(tmp_path, pool, monkeypatch, name, value):
    monkeypatch.delenv(name, raising=False)
    assert pool.prewarm()
    stale = pool.spare.proc
    monkeypatch.setenv(name, value)     # e.g. the user exported a MALLOC_ variable, or picked other GPUs
    worker = WorkerProcess({"job": "inspect", "spec": RunSpec(model="demo:digits-cnn").to_dict()},
                           tmp_path / "worker.log", pool)
    try:
        assert worker.start_info == {"prewarmed": False}
        assert worker.pid != stale.pid
        assert stale.poll() is not None, "the stale spare was killed"
        assert pool.discarded == 1
        assert pool.spare is not None and pool.spare.env[name] == value, "its replacement has the new environment"
    finally:
        worker.terminate()
        worker.finish(0.0)


def test_no_spare_starts_while_a_run_is_in_progress(pool):
    with pool.running():
        assert pool.prewarm()
        assert pool.spare is None, "importing torch beside a measurement would disturb it"
    assert pool.spare is not None and pool.spare.alive()


def test_a_spare_asked_for_as_a_run_starts_comes_when_that_run_ends(pool):
    # The GUI asks as each run starts, in the thread about to run it: no fork may delay the run.
    assert pool.prewarm(now=False)
    assert pool.spare is None
    with pool.running():
        assert pool.spare is None
    assert pool.spare is not None and pool.spare.alive()


def test_close_kills_the_spare_and_stops_replacing_it(pool):
    assert pool.prewarm()
    proc = pool.spare.proc
    pool.close()
    assert proc.poll() is not None and pool.spare is None
    pool.replenish()
    assert pool.spare is None


def test_a_spare_exits_by_itself_when_its_stdin_closes(pool):
    assert pool.prewarm()
    proc = pool.spare.proc
    proc.stdin.close()                  # what the kernel does when the parent dies
    assert proc.wait(timeout=WAIT_S) == 0


_PARENT = textwrap.dedent("""
    import os, signal, sys, time
    from workbench.engine.warm import warm_workers
    warm_workers.prewarm()
    print(warm_workers.spare.proc.pid, flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)                     # a normal exit: atexit kills the spare
    time.sleep(120)                     # killed by the test meanwhile
""")


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_spare_never_outlives_its_parent(how):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, how], stdout=subprocess.PIPE, text=True)
    try:
        spare = int(parent.stdout.readline())
        if how == "kill":
            parent.kill()
        parent.wait(timeout=WAIT_S)
        if how == "exit":
            assert not process_alive(spare), "killed at exit, not left to notice by itself"
        assert _wait_gone(spare), "the spare outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_spares_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("WORKBENCH_PREWARM", "0")
    off = WarmWorkers()
    assert not off.prewarm() and off.spare is None
