"""The results store: SQLite (WAL) holding runs, per-iteration latencies, telemetry and events.

Written as data arrives (batched by the session), so a crash of any process loses at most the
last flush interval. One connection per ``ResultsStore``; a lock makes it safe to share across
threads. Readers in other processes (the GUI while the CLI runs) see committed data thanks to WAL.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import WorkbenchError

SCHEMA_VERSION = 3
ENV_DB = "WORKBENCH_DB"
SAMPLE_COLUMNS = (
    "rss_bytes", "cpu_percent", "gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes",
    "gpu_mem_total_bytes", "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct", "sm_clock_mhz",
    "temperature_c", "clock_event_reasons",
)
STATUSES = ("running", "done", "failed", "cancelled")


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
    """ % ", ".join(f"{c} REAL" for c in SAMPLE_COLUMNS))


def _v2(db: sqlite3.Connection) -> None:
    # v2: saved model artifacts get their own table (path + hash) instead of living in result_json.
    db.execute("""CREATE TABLE IF NOT EXISTS artifacts (run_id INTEGER NOT NULL, kind TEXT, path TEXT,
                  sha256 TEXT, bytes INTEGER)""")


def _v3(db: sqlite3.Connection) -> None:
    # v3: the pid of the process that runs a run, so start-up only fails runs whose owner is gone.
    db.execute("ALTER TABLE runs ADD COLUMN owner_pid INTEGER")


MIGRATIONS = {1: _v1, 2: _v2, 3: _v3}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    @property
    def label(self) -> str:
        return self.name or f"#{self.id} {self.chain}"

    @property
    def latency(self) -> dict | None:
        return self.result.get("latency")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class ResultsStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise WorkbenchError(f"cannot open the results store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._migrate()

    @property
    def artifacts_root(self) -> Path:
        return self.path.parent / "artifacts"

    # -- schema --------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise WorkbenchError(f"{self.path} was written by a newer Workbench (schema v{version}, "
                                     f"this one knows v{SCHEMA_VERSION}); upgrade, or use --db another.sqlite")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self._db)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def schema_version(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    # -- writing -------------------------------------------------------------------------------
    def create_run(self, spec: dict, chain: str, runtime: str, environment: dict | None = None) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO runs (created_at, status, name, model, chain, runtime, device, batch, spec_json, "
                "environment_json, owner_pid) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), spec.get("label"), spec["model"], chain, runtime, spec.get("device"),
                 spec.get("batch"), json.dumps(spec), json.dumps(environment or {}), os.getpid()))
            return int(cur.lastrowid)

    def add_latencies(self, run_id: int, phase: str, start_seq: int, values_ns: Iterable[int]) -> None:
        rows = [(run_id, phase, start_seq + i, int(v)) for i, v in enumerate(values_ns)]
        with self._lock, self._db:
            self._db.executemany("INSERT INTO latencies VALUES (?, ?, ?, ?)", rows)

    def add_samples(self, run_id: int, samples: Iterable[dict]) -> None:
        columns = ("t",) + SAMPLE_COLUMNS
        rows = [(run_id,) + tuple(s.get(c) for c in columns) for s in samples]
        if not rows:
            return
        marks = ", ".join("?" * (len(columns) + 1))
        with self._lock, self._db:
            self._db.executemany(f"INSERT INTO samples (run_id, {', '.join(columns)}) VALUES ({marks})", rows)

    def add_events(self, run_id: int, events: Iterable[dict]) -> None:
        rows = [(run_id, e.get("t", time.monotonic()), e["type"], json.dumps(e)) for e in events]
        if rows:
            with self._lock, self._db:
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)

    def add_artifact(self, run_id: int, artifact: dict) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
                             (run_id, artifact.get("kind"), artifact.get("path"), artifact.get("sha256"),
                              artifact.get("bytes")))

    def update_environment(self, run_id: int, environment: dict) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE runs SET environment_json=? WHERE id=?", (json.dumps(environment), run_id))

    def finish_run(self, run_id: int, status: str, result: dict | None = None, error: str | None = None,
                   error_detail: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        latency = (result or {}).get("latency") or {}
        with self._lock, self._db:
            self._db.execute(
                "UPDATE runs SET status=?, finished_at=?, result_json=?, error=?, error_detail=?, median_ms=?, "
                "p99_ms=?, throughput=?, runtime=COALESCE(?, runtime) WHERE id=?",
                (status, time.time(), json.dumps(result or {}), error, error_detail, latency.get("median_ms"),
                 latency.get("p99_ms"), latency.get("throughput_per_s"), (result or {}).get("runtime_name"),
                 run_id))

    def rename_run(self, run_id: int, name: str | None) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE runs SET name=? WHERE id=?", (name or None, run_id))

    def set_tags(self, run_id: int, tags: list[str]) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE runs SET tags=? WHERE id=?", (json.dumps(sorted(set(tags))), run_id))

    def delete_run(self, run_id: int) -> None:
        with self._lock, self._db:
            for table in ("latencies", "samples", "events", "artifacts"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            self._db.execute("DELETE FROM runs WHERE id=?", (run_id,))
        # The run's own working folder (worker log, intermediate files); never user-chosen save paths.
        shutil.rmtree(self.artifacts_root / f"run-{run_id}", ignore_errors=True)

    def mark_stale_running(self, reason: str = "interrupted: the process that ran it ended") -> int:
        """Runs left 'running' by a parent that no longer exists become 'failed' (called at start-up).

        Runs whose owning process is still alive (another CLI or GUI measuring right now) are left alone.
        """
        with self._lock, self._db:
            rows = self._db.execute("SELECT id, owner_pid FROM runs WHERE status='running'").fetchall()
            stale = [run_id for run_id, pid in rows if not _pid_alive(pid)]
            self._db.executemany("UPDATE runs SET status='failed', error=?, finished_at=? WHERE id=?",
                                 [(reason, time.time(), run_id) for run_id in stale])
            return len(stale)

    # -- reading -------------------------------------------------------------------------------
    def _record(self, row: sqlite3.Row | tuple) -> RunRecord:
        (rid, created, finished, status, name, tags, model, chain, runtime, device, batch, spec, env, result,
         error, detail) = row[:16]
        return RunRecord(rid, created, finished, status, name, json.loads(tags or "[]"), model, chain, runtime,
                         device, batch, json.loads(spec), json.loads(env or "{}"), json.loads(result or "{}"),
                         error, detail)

    _COLUMNS = ("id, created_at, finished_at, status, name, tags, model, chain, runtime, device, batch, "
                "spec_json, environment_json, result_json, error, error_detail")

    def get_run(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
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
        with self._lock:
            return [self._record(r) for r in self._db.execute(query, args).fetchall()]

    def latencies(self, run_id: int, phase: str = "measure") -> list[int]:
        with self._lock:
            rows = self._db.execute("SELECT ns FROM latencies WHERE run_id=? AND phase=? ORDER BY seq",
                                    (run_id, phase)).fetchall()
        return [r[0] for r in rows]

    def samples(self, run_id: int) -> list[dict]:
        columns = ("t",) + SAMPLE_COLUMNS
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(columns)} FROM samples WHERE run_id=? ORDER BY t",
                                    (run_id,)).fetchall()
        return [dict(zip(columns, r)) for r in rows]

    def events(self, run_id: int, type_: str | None = None) -> list[dict]:
        query = "SELECT payload FROM events WHERE run_id=?"
        args: list[Any] = [run_id]
        if type_:
            query += " AND type=?"
            args.append(type_)
        with self._lock:
            return [json.loads(r[0]) for r in self._db.execute(query + " ORDER BY t", args).fetchall()]

    def artifacts(self, run_id: int) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT kind, path, sha256, bytes FROM artifacts WHERE run_id=?",
                                    (run_id,)).fetchall()
        return [dict(zip(("kind", "path", "sha256", "bytes"), r)) for r in rows]

    def find_baseline(self, run: RunRecord) -> RunRecord | None:
        """The latest finished plugin-free run of the same model, runtime, device, batch, dtype, threads."""
        spec = run.spec
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM runs WHERE status='done' AND chain='baseline' AND model=? AND "
                "device IS ? AND runtime IS ? AND id != ? ORDER BY id DESC",
                (run.model, run.device, run.runtime, run.id)).fetchall()
        for row in rows:
            candidate = self._record(row)
            if all(candidate.spec.get(k) == spec.get(k) for k in ("batch", "dtype", "threads", "factory")):
                return candidate
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
