"""The results store: SQLite (WAL) holding runs, per-iteration latencies, telemetry and events.

Written as data arrives (batched by the session), so a crash of any process loses at most the
last flush interval. One connection per ``ResultsStore``; a lock makes it safe to share across
threads. Readers in other processes (the GUI while the CLI runs) see committed data thanks to WAL.

Every SQLite error is turned into a ``StoreError`` that says what happened and what to do, in one
place (``_access``). A database that cannot be written (read-only file, folder or filesystem) is
opened read-only: it can be listed and shown, and any write raises a ``StoreError``. A row whose
stored JSON is damaged is listed as status ``unreadable`` instead of breaking the listing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import quote

import psutil

from ..errors import StoreError, WorkbenchError
from .workkey import file_digests

SCHEMA_VERSION = 5
ENV_DB = "WORKBENCH_DB"
_V1_SAMPLE_COLUMNS = (
    "rss_bytes", "cpu_percent", "gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes",
    "gpu_mem_total_bytes", "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct", "sm_clock_mhz",
    "temperature_c", "clock_event_reasons",
)
SAMPLE_COLUMNS = _V1_SAMPLE_COLUMNS + ("host_cpu_percent",)
STATUSES = ("running", "done", "failed", "cancelled")
UNREADABLE = "unreadable"          # the status shown for a row whose stored JSON cannot be decoded
BUSY_TIMEOUT_S = 30
# psutil derives a process's start time from the boot time, an integer that can move by a second
# as the clock is adjusted; a different process on the same pid starts later than that.
OWNER_START_TOLERANCE_S = 2.0
# A run owned on another host cannot be checked from here; once it is this far past its own
# timeout, its owner cannot still be running it (the owner enforces that timeout).
FOREIGN_OWNER_GRACE_S = 3600.0


def default_db_path() -> Path:
    override = os.environ.get(ENV_DB)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir
    return Path(user_data_dir("workbench", appauthor=False)) / "runs.sqlite"


def _v1(db: sqlite3.Connection) -> None:
    db.executescript("""
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL,
        name TEXT, tags TEXT NOT NULL DEFAULT '[]',
        model TEXT NOT NULL, chain TEXT NOT NULL, runtime TEXT, device TEXT, batch INTEGER,
        spec_json TEXT NOT NULL, environment_json TEXT, result_json TEXT,
        error TEXT, error_detail TEXT,
        median_ms REAL, p99_ms REAL, throughput REAL
    );
    CREATE TABLE IF NOT EXISTS latencies (run_id INTEGER NOT NULL, phase TEXT NOT NULL, seq INTEGER NOT NULL,
                                          ns INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS latencies_run ON latencies(run_id, phase, seq);
    CREATE TABLE IF NOT EXISTS samples (run_id INTEGER NOT NULL, t REAL NOT NULL, %s);
    CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id, t);
    CREATE TABLE IF NOT EXISTS events (run_id INTEGER NOT NULL, t REAL NOT NULL, type TEXT NOT NULL, payload TEXT);
    CREATE INDEX IF NOT EXISTS events_run ON events(run_id, t);
    """ % ", ".join(f"{c} REAL" for c in _V1_SAMPLE_COLUMNS))


def _v2(db: sqlite3.Connection) -> None:
    # v2: saved model artifacts get their own table (path + hash) instead of living in result_json.
    db.execute("""CREATE TABLE IF NOT EXISTS artifacts (run_id INTEGER NOT NULL, kind TEXT, path TEXT,
                  sha256 TEXT, bytes INTEGER)""")


def _v3(db: sqlite3.Connection) -> None:
    # v3: the pid of the process that runs a run, so start-up only fails runs whose owner is gone.
    db.execute("ALTER TABLE runs ADD COLUMN owner_pid INTEGER")


def _v4(db: sqlite3.Connection) -> None:
    # v4: the owner's start time and host, so a pid reused by another process is not taken for the
    # owner; an index so the start-up check finds running runs in one cheap query; and the CPU use
    # of the whole machine beside the worker's, to tell contention from a model that uses few cores.
    db.execute("ALTER TABLE runs ADD COLUMN owner_started_at REAL")
    db.execute("ALTER TABLE runs ADD COLUMN owner_host TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs(status)")
    db.execute("ALTER TABLE samples ADD COLUMN host_cpu_percent REAL")


def _v5(db: sqlite3.Connection) -> None:
    # v5: the digests of the files a run reads (model, data, text), taken when it starts, so a
    # baseline is matched by the content that was measured, not by a path (``results.workkey``).
    db.execute("ALTER TABLE runs ADD COLUMN work_json TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS runs_model ON runs(model, device, status)")


MIGRATIONS = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5}


# -- run owners ------------------------------------------------------------------------------------
def _process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


_HOST = socket.gethostname()
_OWN_START = _process_start_time(os.getpid())


def owner_is_alive(pid: int | None, started_at: float | None, host: str | None) -> bool:
    """Whether the process recorded as a run's owner still exists (this host only).

    ``started_at`` tells the owner from a later process that got the same pid; runs recorded
    before it was stored (schema v3) are judged by the pid alone, and runs without any owner
    (older still) are taken as orphaned.
    """
    if host is not None and host != _HOST:
        return True    # another machine's processes cannot be seen from here
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(proc.create_time() - started_at) <= OWNER_START_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        return True    # it exists; without its start time, leave it alone


# -- errors ----------------------------------------------------------------------------------------
def describe_sqlite_error(path: Path, exc: BaseException, writing: bool) -> str:
    """What went wrong with the database at ``path`` and what the user can do, in one line."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    lowered = text.lower()
    verb = "written" if writing else "read"
    elsewhere = "use --db to pick another location"
    if name == "SQLITE_FULL" or "disk is full" in lowered:
        return f"the results database {path} cannot be written: the disk is full; free space or {elsewhere}"
    if name.startswith("SQLITE_READONLY") or "readonly" in lowered or "read-only" in lowered:
        return (f"the results database {path} cannot be written: it is read-only ({text}); "
                f"make it and its folder writable, or {elsewhere}")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in lowered:
        return (f"the results database {path} is locked by another process (waited {BUSY_TIMEOUT_S} s); "
                f"try again when that process finishes, or {elsewhere}")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in lowered or "not a database" in lowered:
        return (f"the results database {path} is damaged ({text}); move it aside (`sqlite3 {path} .recover` "
                f"may rescue its runs) or {elsewhere}")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "unable to open" in lowered:
        return (f"the results database {path} cannot be opened ({text}); check that its folder exists and "
                f"is accessible, or {elsewhere}")
    if name.startswith("SQLITE_IOERR") or "disk i/o" in lowered:
        return f"the results database {path} could not be {verb}: disk I/O error ({text}); check the disk, or {elsewhere}"
    return f"the results database {path} could not be {verb}: {type(exc).__name__}: {text}"


def _decode(text: str | None, column: str, kind: type, default: Any) -> Any:
    if text is None:
        return default
    value = json.loads(text)
    if not isinstance(value, kind):
        raise ValueError(f"{column} holds a {type(value).__name__}, not a {kind.__name__}")
    return value


@dataclass
class RunRecord:
    id: int
    created_at: float
    finished_at: float | None
    status: str
    name: str | None
    tags: list[str]
    model: str
    chain: str
    runtime: str | None
    device: str | None
    batch: int | None
    spec: dict
    environment: dict
    result: dict
    error: str | None
    error_detail: str | None
    work: dict = field(default_factory=dict)      # {"files": {model/data/text: sha256}} (workkey)
    # Not stored: set by Session.run on a baseline that checked the variants planned after it.
    variant_refusals: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or f"#{self.id} {self.chain}"

    @property
    def latency(self) -> dict | None:
        return self.result.get("latency")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class ResultsStore:
    """The results database at ``path``; ``read_only=True`` never writes (also chosen on its own
    when the file, its folder or its filesystem cannot be written: ``read_only_reason`` says why)."""

    def __init__(self, path: str | Path | None = None, read_only: bool = False) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()
        self._lock = threading.RLock()
        self.read_only = False
        self.read_only_reason: str | None = None
        self._db: sqlite3.Connection | None = None
        if read_only:
            self._open_read_only("opened read-only on request")
        elif self.path.exists() and not self._writable():
            self._open_read_only(self._why_not_writable())
        else:
            self._open_read_write()
        with self._access() as db:   # what an older store opened read-only lacks reads as empty
            self._tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            columns = {r[1] for r in db.execute("PRAGMA table_info(samples)")}
            has_work = any(r[1] == "work_json" for r in db.execute("PRAGMA table_info(runs)"))
        self._sample_columns = tuple(c for c in SAMPLE_COLUMNS if c in columns)
        self._COLUMNS = self._BASE_COLUMNS + (", work_json" if has_work else ", NULL")

    # -- opening -------------------------------------------------------------------------------
    def _writable(self) -> bool:
        # WAL keeps -wal/-shm files beside the database, so its folder must be writable too.
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def _why_not_writable(self) -> str:
        if _read_only_fs(self.path.parent):
            return "it is on a read-only filesystem"
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return "the file is not writable"
        return f"its folder {self.path.parent} is not writable"

    def _open_read_write(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the results database {self.path}: "
                             f"{exc.strerror or exc}; use --db to pick another location") from None
        existed = self.path.exists()
        if not existed and not os.access(self.path.parent, os.W_OK):
            raise StoreError(f"the results database {self.path} cannot be created: {self._why_not_writable()}; "
                             "use --db to pick another location")
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            readonly = getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))
            if existed and readonly:   # permissions os.access cannot see (ACLs, a read-only mount option)
                self._close_quietly()
                self._open_read_only(str(exc))
                return
            raise StoreError(describe_sqlite_error(self.path, exc, writing=True)) from None
        self._migrate()

    def _open_read_only(self, reason: str) -> None:
        """``mode=ro``; where even that needs a write (WAL's shared-memory file in a read-only folder),
        ``immutable=1``, which reads the file as it is (nothing can be writing it)."""
        if not self.path.exists():
            raise StoreError(f"the results database {self.path} does not exist; use --db to pick another location")
        self.read_only, self.read_only_reason = True, reason
        uri = "file:" + quote(str(self.path.resolve())) + "?mode=ro"
        error: sqlite3.Error | None = None
        for suffix in ("", "&immutable=1"):
            self._close_quietly()
            try:
                self._db = sqlite3.connect(uri + suffix, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
                version = self._stored_version()
                break
            except sqlite3.Error as exc:
                error = exc
        else:
            raise StoreError(describe_sqlite_error(self.path, error, writing=False)) from None
        if version > SCHEMA_VERSION:
            raise StoreError(self._newer_message(version))
        if version == 0:
            raise StoreError(f"{self.path} is not a Workbench results database (it is read-only, so it "
                             "cannot be set up); use --db to pick another location")

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    @contextmanager
    def _access(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The one gate to the database: the lock, a transaction for writes, and every SQLite error
        turned into a ``StoreError`` that says what to do."""
        if write and self.read_only:
            raise StoreError(f"the results database {self.path} is read-only ({self.read_only_reason}): "
                             "runs can be listed and shown but not changed; use --db to pick a writable location")
        try:
            with self._lock:
                if write:
                    with self._db:
                        yield self._db
                else:
                    yield self._db
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(self.path, exc, writing=write)) from exc

    @property
    def artifacts_root(self) -> Path:
        return self.path.parent / "artifacts"

    # -- schema --------------------------------------------------------------------------------
    def _stored_version(self) -> int:
        has_meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if has_meta else None
        return int(row[0]) if row else 0

    def _newer_message(self, version: int) -> str:
        return (f"{self.path} was written by a newer Workbench (schema v{version}, "
                f"this one knows v{SCHEMA_VERSION}); upgrade, or use --db another.sqlite")

    def _migrate(self) -> None:
        with self._access(write=True) as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            version = self._stored_version()
            if version > SCHEMA_VERSION:
                raise WorkbenchError(self._newer_message(version))
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](db)
            if version != SCHEMA_VERSION:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def schema_version(self) -> int:
        with self._access() as db:
            return int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    # -- writing -------------------------------------------------------------------------------
    def create_run(self, spec: dict, chain: str, runtime: str, environment: dict | None = None) -> int:
        """A new 'running' run owned by this process (pid, start time, host: see ``settle_orphaned_runs``),
        with the digests of the files it reads (``workkey.file_digests``)."""
        work = {"files": file_digests(spec)} if not self.read_only else {}
        with self._access(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (created_at, status, name, model, chain, runtime, device, batch, spec_json, "
                "environment_json, owner_pid, owner_started_at, owner_host, work_json) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), spec.get("label"), spec["model"], chain, runtime, spec.get("device"),
                 spec.get("batch"), json.dumps(spec), json.dumps(environment or {}), os.getpid(), _OWN_START,
                 _HOST, json.dumps(work)))
            return int(cur.lastrowid)

    def add_latencies(self, run_id: int, phase: str, start_seq: int, values_ns: Iterable[int]) -> None:
        rows = [(run_id, phase, start_seq + i, int(v)) for i, v in enumerate(values_ns)]
        with self._access(write=True) as db:
            db.executemany("INSERT INTO latencies VALUES (?, ?, ?, ?)", rows)

    def add_samples(self, run_id: int, samples: Iterable[dict]) -> None:
        columns = ("t",) + SAMPLE_COLUMNS
        rows = [(run_id,) + tuple(s.get(c) for c in columns) for s in samples]
        if not rows:
            return
        marks = ", ".join("?" * (len(columns) + 1))
        with self._access(write=True) as db:
            db.executemany(f"INSERT INTO samples (run_id, {', '.join(columns)}) VALUES ({marks})", rows)

    def add_events(self, run_id: int, events: Iterable[dict]) -> None:
        rows = [(run_id, e.get("t", time.monotonic()), e["type"], json.dumps(e)) for e in events]
        if rows:
            with self._access(write=True) as db:
                db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)

    def add_artifact(self, run_id: int, artifact: dict) -> None:
        with self._access(write=True) as db:
            db.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
                       (run_id, artifact.get("kind"), artifact.get("path"), artifact.get("sha256"),
                        artifact.get("bytes")))

    def update_environment(self, run_id: int, environment: dict) -> None:
        with self._access(write=True) as db:
            db.execute("UPDATE runs SET environment_json=? WHERE id=?", (json.dumps(environment), run_id))

    def finish_run(self, run_id: int, status: str, result: dict | None = None, error: str | None = None,
                   error_detail: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        latency = (result or {}).get("latency") or {}
        with self._access(write=True) as db:
            db.execute(
                "UPDATE runs SET status=?, finished_at=?, result_json=?, error=?, error_detail=?, median_ms=?, "
                "p99_ms=?, throughput=?, runtime=COALESCE(?, runtime) WHERE id=?",
                (status, time.time(), json.dumps(result or {}), error, error_detail, latency.get("median_ms"),
                 latency.get("p99_ms"), latency.get("throughput_per_s"), (result or {}).get("runtime_name"),
                 run_id))

    def rename_run(self, run_id: int, name: str | None) -> None:
        with self._access(write=True) as db:
            db.execute("UPDATE runs SET name=? WHERE id=?", (name or None, run_id))

    def set_tags(self, run_id: int, tags: list[str]) -> None:
        with self._access(write=True) as db:
            db.execute("UPDATE runs SET tags=? WHERE id=?", (json.dumps(sorted(set(tags))), run_id))

    def delete_run(self, run_id: int) -> None:
        with self._access(write=True) as db:
            for table in ("latencies", "samples", "events", "artifacts"):
                db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        # The run's own working folder (worker log, intermediate files); never user-chosen save paths.
        shutil.rmtree(self.artifacts_root / f"run-{run_id}", ignore_errors=True)

    def settle_orphaned_runs(self) -> int:
        """Mark 'running' runs whose owner process is gone as 'failed', keeping everything they stored.

        Meant for the start of every command: one indexed query when nothing is running. Runs owned
        by a live process (another CLI or GUI measuring right now) are left alone, and so are runs
        owned on another host until they are far past their own timeout. A read-only store cannot be
        changed, so nothing is settled there. Returns how many runs were settled.
        """
        if self.read_only:
            return 0
        with self._access() as db:
            running = db.execute("SELECT id, created_at, owner_pid, owner_started_at, owner_host, spec_json "
                                 "FROM runs WHERE status='running'").fetchall()
        if not running:
            return 0
        now = time.time()
        orphans = []
        for run_id, created_at, pid, started_at, host, spec_json in running:
            if not owner_is_alive(pid, started_at, host):
                orphans.append((run_id, f"(pid {pid})" if pid else "(not recorded: an older Workbench)"))
            elif host is not None and host != _HOST and _past_timeout(created_at, spec_json, now):
                orphans.append((run_id, f"(pid {pid} on {host})"))
        settled = 0
        with self._access(write=True) as db:
            for run_id, who in orphans:
                kept = db.execute("SELECT COUNT(*) FROM latencies WHERE run_id=? AND phase='measure'",
                                  (run_id,)).fetchone()[0]
                reason = (f"interrupted: the workbench process that ran it {who} ended before it finished; "
                          f"its {kept} latencies were kept")
                settled += db.execute(
                    "UPDATE runs SET status='failed', error=?, finished_at=?, "
                    "result_json=COALESCE(result_json, '{\"partial\": true}') WHERE id=? AND status='running'",
                    (reason, now, run_id)).rowcount
        return settled

    # -- reading -------------------------------------------------------------------------------
    def _record(self, row: sqlite3.Row | tuple) -> RunRecord:
        (rid, created, finished, status, name, tags, model, chain, runtime, device, batch, spec, env, result,
         error, detail) = row[:16]
        try:
            work = _decode(row[16], "work_json", dict, {}) if len(row) > 16 else {}
        except (ValueError, TypeError):
            work = {}        # unknown digests: the run matches no baseline by content
        decoded = []
        for column, text, kind, default in (("tags", tags, list, []), ("spec_json", spec, dict, None),
                                            ("environment_json", env, dict, {}), ("result_json", result, dict, {})):
            try:
                decoded.append(_decode(text, column, kind, default))
            except (ValueError, TypeError) as exc:
                # One damaged row must not hide the others: show it, say what is wrong with it.
                return RunRecord(rid, created, finished, UNREADABLE, name, [], model, chain, runtime, device, batch,
                                 {}, {}, {}, f"this run's stored data cannot be read: {column}: {exc}",
                                 f"stored status: {status}; the other runs are not affected")
        tags, spec, env, result = decoded
        if spec is None:
            return RunRecord(rid, created, finished, UNREADABLE, name, tags, model, chain, runtime, device, batch,
                             {}, env, result, "this run's stored data cannot be read: spec_json is empty",
                             f"stored status: {status}")
        return RunRecord(rid, created, finished, status, name, tags, model, chain, runtime, device, batch, spec,
                         env, result, error, detail, work)

    _BASE_COLUMNS = ("id, created_at, finished_at, status, name, tags, model, chain, runtime, device, batch, "
                "spec_json, environment_json, result_json, error, error_detail")

    def get_run(self, run_id: int) -> RunRecord:
        with self._access() as db:
            row = db.execute(f"SELECT {self._COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise WorkbenchError(f"no run with id {run_id} in {self.path}")
        return self._record(row)

    def list_runs(self, limit: int | None = None, status: str | None = None) -> list[RunRecord]:
        query = f"SELECT {self._COLUMNS} FROM runs"
        args: list[Any] = []
        if status:
            query += " WHERE status=?"
            args.append(status)
        query += " ORDER BY id DESC"
        if limit:
            query += " LIMIT ?"
            args.append(limit)
        with self._access() as db:
            rows = db.execute(query, args).fetchall()
        return [self._record(r) for r in rows]

    def latencies(self, run_id: int, phase: str = "measure") -> list[int]:
        with self._access() as db:
            rows = db.execute("SELECT ns FROM latencies WHERE run_id=? AND phase=? ORDER BY seq",
                              (run_id, phase)).fetchall()
        return [r[0] for r in rows]

    def samples(self, run_id: int) -> list[dict]:
        # An older store opened read-only lacks the newer columns: they read as None.
        columns = ("t",) + self._sample_columns
        with self._access() as db:
            rows = db.execute(f"SELECT {', '.join(columns)} FROM samples WHERE run_id=? ORDER BY t",
                              (run_id,)).fetchall()
        missing = dict.fromkeys(c for c in SAMPLE_COLUMNS if c not in self._sample_columns)
        return [{**dict(zip(columns, r)), **missing} for r in rows]

    def events(self, run_id: int, type_: str | None = None) -> list[dict]:
        """The run's events in time order; a damaged payload is skipped, not fatal."""
        query = "SELECT payload FROM events WHERE run_id=?"
        args: list[Any] = [run_id]
        if type_:
            query += " AND type=?"
            args.append(type_)
        with self._access() as db:
            rows = db.execute(query + " ORDER BY t", args).fetchall()
        events = []
        for (payload,) in rows:
            try:
                events.append(_decode(payload, "payload", dict, {}))
            except (ValueError, TypeError):
                continue
        return events

    def artifacts(self, run_id: int) -> list[dict]:
        if "artifacts" not in self._tables:   # a v1 store opened read-only
            return []
        with self._access() as db:
            rows = db.execute("SELECT kind, path, sha256, bytes FROM artifacts WHERE run_id=?",
                              (run_id,)).fetchall()
        return [dict(zip(("kind", "path", "sha256", "bytes"), r)) for r in rows]

    def baseline_candidates(self, model: str, device: str | None, runtime: str | None = None) -> list[RunRecord]:
        """Finished runs of ``model`` on ``device`` (and ``runtime``, when given) that can serve as a
        baseline: plugin-free, or a lone ``onnx_export`` (the fp32 model on ONNX Runtime); newest
        first. ``results.compare`` applies the rule itself (same work, right runtime)."""
        query = (f"SELECT {self._COLUMNS} FROM runs WHERE status='done' AND model=? AND device IS ? AND "
                 "(chain='baseline' OR (chain LIKE 'onnx_export%' AND chain NOT LIKE '%→%'))")
        args: list[Any] = [model, device]
        if runtime is not None:
            query += " AND runtime IS ?"
            args.append(runtime)
        with self._access() as db:
            rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
        return [record for record in map(self._record, rows) if record.status == "done"]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()    # later use raises (as a StoreError), as with any closed connection


def _past_timeout(created_at: float, spec_json: str | None, now: float) -> bool:
    try:
        timeout = json.loads(spec_json or "{}").get("timeout_s")
    except (ValueError, AttributeError):
        return False
    return isinstance(timeout, (int, float)) and now > created_at + timeout + FOREIGN_OWNER_GRACE_S


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False
