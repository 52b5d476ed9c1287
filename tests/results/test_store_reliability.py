"""Reliability of the results store and of the inputs a run is built from (issue 10: 3, 9, 12, 13).

Each test reproduces a failure seen with a hostile input first: a parent killed with -9, a full
disk, a damaged row, a read-only database, NaN in numeric options, a machine busy with other work.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from workbench.errors import StoreError
from workbench.results.store import SCHEMA_VERSION, UNREADABLE, ResultsStore, _v1, _v2, _v3

SPEC = {"model": "m.onnx", "timeout_s": 1800.0}


def child_python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stdin=subprocess.PIPE, text=True, **kwargs)


def v3_store(path: Path) -> None:
    """A store as Workbench wrote it before owners had a start time and host."""
    db = sqlite3.connect(path)
    for migrate in (_v1, _v2, _v3):
        migrate(db)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    db.commit()
    db.close()


def insert_legacy_run(path: Path, owner_pid: int | None) -> int:
    db = sqlite3.connect(path)
    cur = db.execute("INSERT INTO runs (created_at, status, model, chain, spec_json, owner_pid) "
                     "VALUES (1.0, 'running', 'm.onnx', 'baseline', ?, ?)", (json.dumps(SPEC), owner_pid))
    db.commit()
    db.close()
    return int(cur.lastrowid)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- 3: runs whose owner was killed ----------------------------------------------------------------
def test_run_of_an_owner_killed_with_sigkill_is_settled_failed_and_keeps_its_latencies(tmp_path):
    db = tmp_path / "runs.sqlite"
    owner = child_python(f"""
        import os, signal
        from workbench.results.store import ResultsStore
        store = ResultsStore({str(db)!r})
        run = store.create_run({SPEC!r}, "baseline", "onnxruntime")
        store.add_latencies(run, "warmup", 0, [5] * 7)
        store.add_latencies(run, "measure", 0, range(1000, 1025))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    owner.wait(timeout=60)
    assert owner.returncode == -signal.SIGKILL
    store = ResultsStore(db)
    (run,) = store.list_runs()
    assert run.status == "running"     # what `workbench runs` showed before
    assert store.settle_orphaned_runs() == 1
    run = store.get_run(run.id)
    assert run.status == "failed" and run.finished_at is not None
    assert run.error == (f"interrupted: the workbench process that ran it (pid {owner.pid}) ended before it "
                         "finished; its 25 latencies were kept")
    assert store.latencies(run.id) == list(range(1000, 1025)) and len(store.latencies(run.id, "warmup")) == 7
    assert store.settle_orphaned_runs() == 0


def test_runs_of_a_live_owner_are_left_alone_until_it_dies(tmp_path):
    db = tmp_path / "runs.sqlite"
    ResultsStore(db).close()
    owner = child_python(f"""
        import sys
        from workbench.results.store import ResultsStore
        store = ResultsStore({str(db)!r})
        print(store.create_run({SPEC!r}, "baseline", "onnxruntime"), flush=True)
        sys.stdin.readline()     # a second bench, measuring until told to stop
    """)
    try:
        run_id = int(owner.stdout.readline())
        store = ResultsStore(db)
        mine = store.create_run(SPEC, "baseline", "onnxruntime")
        assert store.settle_orphaned_runs() == 0
        assert store.get_run(run_id).status == "running" and store.get_run(mine).status == "running"
    finally:
        owner.kill()
        owner.wait()
    assert store.settle_orphaned_runs() == 1
    assert store.get_run(run_id).status == "failed" and store.get_run(mine).status == "running"


def test_a_live_process_that_reuses_the_owners_pid_is_not_taken_for_the_owner(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(SPEC, "baseline", "onnxruntime")
    # This process is alive with the recorded pid, but it started an hour after the recorded owner.
    with store._db:
        store._db.execute("UPDATE runs SET owner_started_at = owner_started_at - 3600 WHERE id=?", (run_id,))
    assert store.settle_orphaned_runs() == 1
    assert f"(pid {os.getpid()})" in store.get_run(run_id).error


def test_a_zombie_owner_counts_as_gone(tmp_path):
    db = tmp_path / "runs.sqlite"
    owner = child_python(f"""
        from workbench.results.store import ResultsStore
        print(ResultsStore({str(db)!r}).create_run({SPEC!r}, "baseline", "torch"), flush=True)
    """)
    run_id = int(owner.stdout.readline())
    os.waitid(os.P_PID, owner.pid, os.WEXITED | os.WNOWAIT)   # exited, left unreaped: a zombie
    store = ResultsStore(db)
    assert store.settle_orphaned_runs() == 1 and store.get_run(run_id).status == "failed"
    owner.wait()


def test_a_run_owned_on_another_host_is_left_alone_until_far_past_its_timeout(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    recent = store.create_run(SPEC, "baseline", "torch")
    stale = store.create_run(SPEC, "baseline", "torch")
    with store._db:
        store._db.execute("UPDATE runs SET owner_host='another-machine', owner_pid=1")
        store._db.execute("UPDATE runs SET created_at = created_at - 2 * 86400 WHERE id=?", (stale,))
    assert store.settle_orphaned_runs() == 1
    assert store.get_run(recent).status == "running"
    assert "(pid 1 on another-machine)" in store.get_run(stale).error


def test_store_from_before_owners_had_a_start_time_opens_and_settles_its_orphans(tmp_path):
    db = tmp_path / "old.sqlite"
    v3_store(db)
    orphan = insert_legacy_run(db, dead_pid())
    alive = insert_legacy_run(db, os.getpid())
    no_owner = insert_legacy_run(db, None)     # written before v3 recorded any owner
    store = ResultsStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 5
    assert store.settle_orphaned_runs() == 2
    assert store.get_run(orphan).status == "failed" and store.get_run(no_owner).status == "failed"
    assert store.get_run(alive).status == "running"
    assert "not recorded" in store.get_run(no_owner).error
    assert store.samples(orphan) == []     # the v4 sample column exists


def test_settling_costs_one_query_when_nothing_is_running(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    store.finish_run(store.create_run(SPEC, "baseline", "torch"), "done", {})
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.settle_orphaned_runs() == 0
    assert len(statements) == 1 and "status='running'" in statements[0]
    plan = " ".join(str(r) for r in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE status='running'"))
    assert "runs_status" in plan


# -- 12: full disk, damaged rows, read-only databases ----------------------------------------------
def test_a_full_disk_is_a_store_error_that_says_what_to_do(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = ResultsStore(path)
    run_id = store.create_run(SPEC, "baseline", "torch")
    store.add_latencies(run_id, "measure", 0, [1, 2, 3])
    # A real SQLITE_FULL: the database may not grow past the pages it has now.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(StoreError) as caught:
        store.add_latencies(run_id, "measure", 3, range(100_000))
    assert str(caught.value) == (f"the results database {path} cannot be written: the disk is full; "
                                 "free space or use --db to pick another location")
    assert store.latencies(run_id) == [1, 2, 3]          # nothing half-written; reads still work
    assert [r.status for r in store.list_runs()] == ["running"]


def test_a_damaged_row_is_listed_as_unreadable_and_the_others_still_list(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    good = store.create_run(SPEC, "baseline", "torch")
    bad = store.create_run(SPEC, "prune", "torch")
    wrong_type = store.create_run(SPEC, "fuse", "torch")
    store.add_events(good, [{"type": "phase", "phase": "measure", "t": 1.0}, {"type": "log", "t": 2.0}])
    with store._db:
        store._db.execute("UPDATE runs SET spec_json='{\"model\": ' WHERE id=?", (bad,))
        store._db.execute("UPDATE runs SET result_json='[1, 2]' WHERE id=?", (wrong_type,))
        store._db.execute("UPDATE events SET payload='{not json' WHERE type='log'")
    runs = {r.id: r for r in store.list_runs()}
    assert set(runs) == {good, bad, wrong_type} and runs[good].status == "running"
    assert runs[bad].status == UNREADABLE and runs[bad].spec == {} and runs[bad].model == "m.onnx"
    assert runs[bad].error.startswith("this run's stored data cannot be read: spec_json: ")
    assert "stored status: running" in runs[bad].error_detail
    assert runs[wrong_type].status == UNREADABLE and "result_json holds a list" in runs[wrong_type].error
    assert store.get_run(bad).status == UNREADABLE
    assert [e["type"] for e in store.events(good)] == ["phase"]


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not SQLite at all, just some text" * 100)
    with pytest.raises(StoreError, match=r"is damaged \(file is not a database\).*use --db"):
        ResultsStore(path)


def test_opening_read_only_on_request_skips_migrations_and_refuses_writes(tmp_path):
    path = tmp_path / "old.sqlite"
    v3_store(path)
    run_id = insert_legacy_run(path, dead_pid())
    before = path.read_bytes()
    store = ResultsStore(path, read_only=True)
    assert store.read_only and [r.id for r in store.list_runs()] == [run_id]
    assert store.samples(run_id) == [] and store.settle_orphaned_runs() == 0
    with pytest.raises(StoreError, match=r"is read-only \(opened read-only on request\).*use --db"):
        store.rename_run(run_id, "x")
    store.close()
    assert path.read_bytes() == before and not Path(f"{path}-wal").exists()


@pytest.fixture
def unprivileged_dir():
    """A folder an unprivileged user owns (root ignores file permissions, so root tests drop to nobody)."""
    uid = 65534 if os.geteuid() == 0 else os.geteuid()
    folder = Path(tempfile.mkdtemp(prefix="wb-ro-", dir="/tmp"))
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        os.chown(folder, uid, uid)
    yield folder, uid
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, stat.S_IRWXU)
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()


def run_unprivileged(uid: int, code: str) -> subprocess.CompletedProcess:
    # Modules are imported before dropping privileges: root's Python may live where nobody can read.
    prelude = "import json, sqlite3, workbench.results.store, workbench.errors\nimport os\n"
    if os.geteuid() == 0:
        prelude += f"os.setgid({uid}); os.setuid({uid})\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("file_mode, dir_mode, reason", [
    (0o444, 0o755, "the file is not writable"),
    (0o644, 0o555, "folder"),                   # WAL needs to create files beside it
    (0o444, 0o555, "the file is not writable"),
])
def test_a_database_that_cannot_be_written_is_listed_read_only(unprivileged_dir, file_mode, dir_mode, reason):
    folder, uid = unprivileged_dir
    path = folder / "runs.sqlite"
    store = ResultsStore(path)
    done = store.create_run(SPEC, "baseline", "torch")
    store.add_latencies(done, "measure", 0, [7, 8, 9])
    store.finish_run(done, "done", {"latency": {"median_ms": 1.0}})
    store.close()
    for p in folder.iterdir():
        os.chown(p, uid, uid)
    os.chmod(path, file_mode)
    os.chmod(folder, dir_mode)
    child = run_unprivileged(uid, f"""
        from workbench.results.store import ResultsStore
        from workbench.errors import StoreError
        store = ResultsStore({str(path)!r})
        print(json.dumps([store.read_only, store.read_only_reason, [r.status for r in store.list_runs()],
                          store.latencies({done}), store.settle_orphaned_runs()]))
        try:
            store.create_run({{"model": "m"}}, "baseline", "torch")
        except StoreError as exc:
            print(exc)
    """)
    assert child.returncode == 0, child.stderr
    listing, refusal = child.stdout.splitlines()
    read_only, why, statuses, latencies, settled = json.loads(listing)
    assert read_only and reason in why and statuses == ["done"] and latencies == [7, 8, 9] and settled == 0
    assert refusal.startswith(f"the results database {path} is read-only (") and "use --db" in refusal


# -- 9: non-finite and out-of-range numbers --------------------------------------------------------
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("field, option, value", [
    ("duration_s", "--duration", NAN), ("duration_s", "--duration", -INF), ("duration_s", "--duration", 0.0),
    ("timeout_s", "--timeout", NAN), ("timeout_s", "--timeout", INF), ("timeout_s", "--timeout", -5.0),
    ("telemetry_hz", "--telemetry-hz", NAN), ("telemetry_hz", "--telemetry-hz", INF),
    ("warmup_max_s", "warmup_max_s", NAN), ("warmup_max_s", "warmup_max_s", -0.0),
    ("max_duration_s", "max_duration_s", INF), ("max_duration_s", "max_duration_s", NAN),
    ("iters", "--iters", 0), ("iters", "--iters", True), ("iters", "--iters", 2.5), ("iters", "--iters", NAN),
    ("batch", "--batch", 0), ("batch", "--batch", -3), ("threads", "--threads", 0),
    ("threads", "--threads", 10**9), ("warmup_min_iters", "warmup_min_iters", -1),
    ("seed", "--seed", -1), ("seed", "--seed", 2**64), ("duration_s", "--duration", "1"),
])
def test_every_numeric_run_option_rejects_bad_numbers_naming_option_and_value(field, option, value):
    from workbench.errors import SpecError
    from workbench.spec import RunSpec
    with pytest.raises(SpecError) as caught:
        RunSpec(model="demo:digits-cnn", **{field: value}).validate()
    message = str(caught.value)
    assert option in message and repr(value) in message and "\n" not in message


def test_nan_in_a_stored_spec_is_rejected_when_it_is_loaded():
    from workbench.errors import SpecError
    from workbench.spec import RunSpec
    with pytest.raises(SpecError, match="--duration"):
        RunSpec.from_json('{"model": "demo:digits-cnn", "duration_s": NaN}')


def test_valid_numbers_still_pass():
    from workbench.spec import RunSpec
    RunSpec(model="demo:digits-cnn", batch=1, threads=1, iters=1, warmup_min_iters=0, seed=0, duration_s=0.01,
            warmup_max_s=0.5, max_duration_s=1e6, timeout_s=None, telemetry_hz=0.5).validate()


def test_cli_refuses_nan_duration_and_timeout_at_once_instead_of_hanging(tmp_path):
    for option in ("--duration", "--timeout"):
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(tmp_path / "db.sqlite"), "bench",
                               "demo:digits-cnn", option, "nan"], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and f"{option} ({'duration_s' if option == '--duration' else 'timeout_s'})" \
            f" must be a finite number of seconds > 0, got nan" in proc.stderr + proc.stdout


@pytest.mark.parametrize("kind, text, message", [
    ("float", "nan", "nan is not a finite number"), ("float", "inf", "inf is not a finite number"),
    ("float", "-inf", "-inf is not a finite number"), ("float", NAN, "nan is not a finite number"),
    ("int", NAN, "nan is not a finite number"), ("int", INF, "inf is not a finite number"),
    ("int", "nan", "'nan' is not a valid int"), ("int", 2.5, "expected an integer, got 2.5"),
    ("int", True, "expected an integer, got True"), ("int", "0", "0 is outside [1, 10]"),
    ("float", "10.5", "10.5 is outside [1, 10]"), ("float", "1e400", "inf is not a finite number"),
])
def test_plugin_parameters_must_be_finite_typed_and_inside_their_bounds(kind, text, message):
    from workbench.errors import PluginError
    from workbench.plugin_api import Param
    param = Param("n", kind, 1, "help", minimum=1, maximum=10)
    with pytest.raises(PluginError) as caught:
        param.parse(text, "demo")
    assert str(caught.value) == f"demo:n: {message}"


def test_plugin_parameters_from_the_command_line_reject_nan():
    from workbench.errors import PluginError
    from workbench.plugin_api import build_chain
    from workbench.spec import PluginStep
    with pytest.raises(PluginError, match=r"^prune:amount: nan is not a finite number"):
        build_chain([PluginStep.parse("prune:amount=nan")], "torch", "cpu", "torch")
    with pytest.raises(PluginError, match=r"^prune:finetune_epochs: 'inf' is not a valid int"):
        build_chain([PluginStep.parse("prune:finetune_epochs=inf")], "torch", "cpu", "torch")


def test_a_param_with_a_nan_bound_is_refused_when_declared():
    from workbench.plugin_api import Param
    with pytest.raises(ValueError, match="bounds must be finite"):
        Param("x", "float", 0.5, "help", minimum=NAN)


# -- 13: CPU contention and the default thread count ------------------------------------------------
def window_samples(worker_percent, host_percent, n=20, t0=100.0):
    from workbench.telemetry import TelemetrySample
    blank = dict.fromkeys(("rss_bytes", "gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes",
                           "gpu_mem_total_bytes", "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct",
                           "sm_clock_mhz", "temperature_c", "clock_event_reasons"))
    return [TelemetrySample(t=t0 + i * 0.1, cpu_percent=worker_percent, host_cpu_percent=host_percent, **blank)
            for i in range(n)]


def test_a_run_crowded_out_by_other_processes_is_contended():
    from workbench.telemetry import assess_cpu_contention
    # 2 threads on 2 cores; the worker got one core, something else kept the other busy.
    report = assess_cpu_contention(window_samples(100.0, 200.0), 100.0, 102.0, threads=2, usable_cores=2,
                                   load_avg=3.9)
    assert report["contended"] and report["cpu_share"] == pytest.approx(0.5)
    assert report["other_cores"] == pytest.approx(1.0) and report["idle_cores"] == pytest.approx(0.0)
    assert report["message"] == ("CPU contention: the worker got 1.0 of the 2 cores its 2 threads could use "
                                 "(other processes used 1.0 cores, load average 3.9); latencies are inflated: "
                                 "rerun on a quiet machine or with fewer --threads")


@pytest.mark.parametrize("threads, worker, host, why", [
    (2, 100.0, 104.0, "the model itself used one thread; the other core sat idle"),
    (2, 197.0, 200.0, "all cores to itself"),
    (1, 99.0, 200.0, "one thread, one core of two; the other process had the other core"),
    (8, 200.0, 200.0, "more threads than cores, but nobody else took any"),
])
def test_a_run_that_got_what_it_could_use_is_not_contended(threads, worker, host, why):
    from workbench.telemetry import assess_cpu_contention
    report = assess_cpu_contention(window_samples(worker, host), 100.0, 102.0, threads, usable_cores=2)
    assert report["contended"] is False and report["message"] is None, why


def test_only_samples_inside_the_timed_window_count():
    from workbench.telemetry import assess_cpu_contention
    busy_before = window_samples(50.0, 200.0, t0=90.0)
    quiet_during = window_samples(200.0, 200.0, t0=100.0)
    report = assess_cpu_contention(busy_before + quiet_during, 100.0, 102.0, threads=2, usable_cores=2)
    assert report["contended"] is False and report["worker_cores"] == pytest.approx(2.0)


def test_load_average_stands_in_when_there_are_no_machine_samples():
    from workbench.telemetry import assess_cpu_contention
    no_host = window_samples(100.0, None)
    busy = assess_cpu_contention(no_host, 100.0, 102.0, threads=2, usable_cores=2, load_avg=4.0)
    quiet = assess_cpu_contention(no_host, 100.0, 102.0, threads=2, usable_cores=2, load_avg=1.2)
    assert busy["contended"] and busy["basis"] == "load average" and "load average 4.0" in busy["message"]
    assert quiet["contended"] is False
    assert assess_cpu_contention(no_host, 100.0, 102.0, threads=2, usable_cores=2) is None
    assert assess_cpu_contention(no_host, 100.0, 102.0, threads=None, usable_cores=2, load_avg=4.0) is None


class RecordedSampler:
    """What ``_telemetry_summary`` reads from a ``TelemetrySampler`` after a run."""

    def __init__(self, samples, usable_cores):
        self.samples, self.usable_cores = samples, usable_cores
        self.rate_hz, self.cpu_seconds, self.status = 10.0, 0.01, {"warnings": []}


def test_the_run_result_carries_the_contention_and_a_flag_the_views_already_show():
    from workbench.engine.session import _telemetry_summary
    result = {"threads": 2, "flags": ["model outputs contain NaN/Inf (3 values)"],
              "window": {"t_start": 100.0, "t_end": 102.0, "iterations": 100}}
    merged = _telemetry_summary(RecordedSampler(window_samples(80.0, 200.0), 2), result)
    assert merged["contention"]["contended"] and merged["contention"]["cpu_share"] == pytest.approx(0.4)
    assert merged["flags"][0] == result["flags"][0]
    assert merged["flags"][1].startswith("CPU contention: the worker got 0.8 of the 2 cores its 2 threads")
    assert merged["telemetry"]["cpu"] == merged["contention"]
    quiet = _telemetry_summary(RecordedSampler(window_samples(190.0, 195.0), 2), result)
    assert quiet["contention"] is None and "flags" not in quiet
    assert quiet["telemetry"]["cpu"]["cpu_share"] == pytest.approx(0.95)


def busy_child(cpu: int) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.sched_setaffinity(child.pid, {cpu})
    return child


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_real_process_sharing_its_core_with_another_is_flagged():
    import time
    from workbench.telemetry import TelemetrySampler, assess_cpu_contention, current_load_average
    cpu = min(os.sched_getaffinity(0))
    worker, rival = busy_child(cpu), busy_child(cpu)
    try:
        sampler = TelemetrySampler(worker.pid, rate_hz=20)
        sampler.start()
        time.sleep(0.3)
        t_start = time.monotonic()
        time.sleep(1.5)
        t_end = time.monotonic()
        sampler.stop()
    finally:
        for child in (worker, rival):
            child.kill()
            child.wait()
    report = assess_cpu_contention(sampler.samples, t_start, t_end, threads=1,
                                   usable_cores=sampler.usable_cores, load_avg=current_load_average())
    assert sampler.usable_cores == 1 and report["basis"] == "window samples"
    assert report["contended"] and report["cpu_share"] < 0.75 and report["other_cores"] > 0.25, report


def test_samples_store_the_machine_cpu_beside_the_workers(tmp_path):
    from workbench.results.store import SAMPLE_COLUMNS
    from workbench.telemetry import SAMPLE_FIELDS
    assert ("t",) + SAMPLE_COLUMNS == SAMPLE_FIELDS
    store = ResultsStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(SPEC, "baseline", "torch")
    store.add_samples(run_id, [s.to_dict() for s in window_samples(100.0, 180.0, n=2)])
    assert [s["host_cpu_percent"] for s in store.samples(run_id)] == [180.0, 180.0]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_default_threads_counts_the_cores_this_process_may_use():
    from workbench.worker.conditions import default_threads
    assert 1 <= default_threads() <= len(os.sched_getaffinity(0))
    pinned = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
         "from workbench.worker.conditions import default_threads; print(default_threads())"],
        capture_output=True, text=True, timeout=60)
    assert pinned.stdout.strip() == "1", pinned.stderr


def test_a_gpu_run_is_judged_by_its_one_launching_thread():
    from workbench.engine.session import _telemetry_summary
    sampler = RecordedSampler(window_samples(100.0, 200.0), 2)
    sampler.gpu_index = 0
    result = {"threads": 2, "window": {"t_start": 100.0, "t_end": 102.0, "iterations": 100}}
    assert _telemetry_summary(sampler, result)["contention"] is None      # it had its one core
    sampler.samples = window_samples(60.0, 200.0)
    merged = _telemetry_summary(sampler, result)
    assert merged["flags"][0].startswith("CPU contention: the worker got 0.6 of the 1 core its 1 thread could use")


# -- a store that fills up while a run is streaming ------------------------------------------------
def test_a_disk_that_fills_up_mid_run_stops_the_worker_and_says_why(tmp_path):
    """The store fails while latencies stream in: the session stops the worker (none is left
    running) and either records the run as failed with the reason or, when even that write
    fails, raises the StoreError, never a raw sqlite error."""
    import os

    from workbench.errors import StoreError
    from workbench.engine.session import Session
    from workbench.spec import RunSpec

    from core_fixtures import make_tiny_models
    tiny = make_tiny_models(tmp_path)
    store = ResultsStore(tmp_path / "runs.sqlite")
    worker_pids: list[int] = []

    def fill_the_disk(event: dict) -> None:
        if event["type"] == "started":
            worker_pids.append(event["pid"])
        if event["type"] == "phase" and event["phase"] == "measure":
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")

    spec = RunSpec(model=str(tiny["onnx"]), inputs=[], batch=2, iters=10**8, duration_s=300, threads=1,
                   timeout_s=240)
    try:
        record = Session(store).run(spec, on_event=fill_the_disk)
    except StoreError as exc:
        assert "full" in str(exc)
    else:
        assert record.status == "failed" and "full" in record.error
    assert worker_pids
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pids[0], 0)
