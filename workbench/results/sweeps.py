"""Sweeps in the results database: a sweep (its plan) and, per point and repeat, the run that measured it.

Kept in the same SQLite file as the runs, in tables of their own created on first use (``CREATE
TABLE IF NOT EXISTS``), so the store's schema version and migrations are untouched: an older
Workbench opening the file simply does not see them. Every access goes through the store's one
gate (``ResultsStore._access``: its lock, its transactions, its error messages).

A sweep's owner (pid, start time, host) is recorded like a run's: a sweep left ``running`` by a
process that is gone reads as ``interrupted`` (``workbench sweep --resume ID`` continues it).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError, WorkbenchError
from .store import ResultsStore, owner_is_alive

SWEEP_STATUSES = ("running", "done", "interrupted")
POINT_STATUSES = ("pending", "running", "done", "failed", "cancelled")

_TABLES = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, finished_at REAL, status TEXT NOT NULL,
    name TEXT, model TEXT NOT NULL, plan_json TEXT NOT NULL, error TEXT,
    owner_pid INTEGER, owner_started_at REAL, owner_host TEXT
);
CREATE TABLE IF NOT EXISTS sweep_points (
    sweep_id INTEGER NOT NULL, point INTEGER NOT NULL, repeat INTEGER NOT NULL, run_id INTEGER,
    status TEXT NOT NULL, error TEXT, node TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at REAL,
    PRIMARY KEY (sweep_id, point, repeat)
);
CREATE INDEX IF NOT EXISTS sweep_points_run ON sweep_points(run_id);
"""


@dataclass
class SweepPointRecord:
    point: int
    repeat: int
    run_id: int | None
    status: str
    error: str | None
    node: str | None
    attempts: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SweepRecord:
    id: int
    created_at: float
    finished_at: float | None
    status: str
    name: str | None
    model: str
    plan: dict
    error: str | None
    points: list[SweepPointRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or f"sweep #{self.id}"

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in POINT_STATUSES}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"id": self.id, "created_at": self.created_at, "finished_at": self.finished_at,
                "status": self.status, "name": self.name, "model": self.model, "plan": self.plan,
                "error": self.error, "counts": self.counts(), "points": [p.to_dict() for p in self.points]}


def _has_tables(store: ResultsStore) -> bool:
    with store._access() as db:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='sweeps'").fetchone() is not None


def ensure_tables(store: ResultsStore) -> None:
    """Create the sweep tables when missing (no-op afterwards; a read-only store is left alone)."""
    if store.read_only or _has_tables(store):
        return
    with store._access(write=True) as db:
        db.executescript(_TABLES)


def _process_start() -> float | None:
    try:
        import psutil
        return psutil.Process(os.getpid()).create_time()
    except Exception:   # psutil cannot see itself (a locked-down container): judged by the pid alone
        return None


def create_sweep(store: ResultsStore, model: str, plan: dict, name: str | None = None) -> int:
    """A new ``running`` sweep owned by this process, with every (point, repeat) ``pending``."""
    ensure_tables(store)
    with store._access(write=True) as db:
        cur = db.execute("INSERT INTO sweeps (created_at, status, name, model, plan_json, owner_pid, "
                         "owner_started_at, owner_host) VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
                         (time.time(), name, model, json.dumps(plan), os.getpid(), _process_start(),
                          socket.gethostname()))
        sweep_id = int(cur.lastrowid)
        rows = [(sweep_id, point["index"], r, time.time()) for r in range(plan["repeat"]) for point in plan["points"]]
        db.executemany("INSERT INTO sweep_points (sweep_id, point, repeat, status, updated_at) "
                       "VALUES (?, ?, ?, 'pending', ?)", rows)
    return sweep_id


def claim_sweep(store: ResultsStore, sweep_id: int) -> None:
    """This process takes over sweep ``sweep_id`` (``--resume``): running again, owned here; points
    left ``running`` by a process that died go back to ``pending``."""
    with store._access(write=True) as db:
        db.execute("UPDATE sweeps SET status='running', finished_at=NULL, error=NULL, owner_pid=?, "
                   "owner_started_at=?, owner_host=? WHERE id=?",
                   (os.getpid(), _process_start(), socket.gethostname(), sweep_id))
        db.execute("UPDATE sweep_points SET status='pending' WHERE sweep_id=? AND status='running'", (sweep_id,))


def update_point(store: ResultsStore, sweep_id: int, point: int, repeat: int, status: str, *,
                 run_id: int | None = None, error: str | None = None, node: str | None = None,
                 attempts: int | None = None) -> None:
    if status not in POINT_STATUSES:
        raise ValueError(status)
    with store._access(write=True) as db:
        db.execute("UPDATE sweep_points SET status=?, run_id=COALESCE(?, run_id), error=?, node=COALESCE(?, node), "
                   "attempts=COALESCE(?, attempts), updated_at=? WHERE sweep_id=? AND point=? AND repeat=?",
                   (status, run_id, error, node, attempts, time.time(), sweep_id, point, repeat))


def finish_sweep(store: ResultsStore, sweep_id: int, status: str, error: str | None = None) -> None:
    if status not in SWEEP_STATUSES:
        raise ValueError(status)
    with store._access(write=True) as db:
        db.execute("UPDATE sweeps SET status=?, finished_at=?, error=? WHERE id=?",
                   (status, time.time(), error, sweep_id))


_SWEEP_COLUMNS = ("id, created_at, finished_at, status, name, model, plan_json, error, owner_pid, owner_started_at, "
                  "owner_host")


def _record(row: tuple) -> SweepRecord:
    sweep_id, created, finished, status, name, model, plan_json, error, pid, started, host = row
    try:
        plan = json.loads(plan_json)
        if not isinstance(plan, dict):
            raise ValueError("not an object")
    except (ValueError, TypeError) as exc:
        plan, status, error = {}, "unreadable", f"this sweep's stored plan cannot be read: {exc}"
    if status == "running" and not owner_is_alive(pid, started, host):
        status = "interrupted"   # its process is gone: resumable
        error = error or f"the process that ran it (pid {pid}) ended before it finished; resume it with --resume"
    return SweepRecord(sweep_id, created, finished, status, name, model, plan, error)


def get_sweep(store: ResultsStore, sweep_id: int) -> SweepRecord:
    """The sweep with its points (raises ``WorkbenchError`` for an unknown id)."""
    if not _has_tables(store):
        raise WorkbenchError(f"no sweep with id {sweep_id} in {store.path} (it holds no sweeps yet)")
    with store._access() as db:
        row = db.execute(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        points = db.execute("SELECT point, repeat, run_id, status, error, node, attempts FROM sweep_points "
                            "WHERE sweep_id=? ORDER BY repeat, point", (sweep_id,)).fetchall()
    if row is None:
        raise WorkbenchError(f"no sweep with id {sweep_id} in {store.path}; `workbench sweeps` lists them")
    record = _record(row)
    record.points = [SweepPointRecord(*p) for p in points]
    return record


def list_sweeps(store: ResultsStore, limit: int | None = None) -> list[SweepRecord]:
    """Sweeps, newest first, with their points."""
    if not _has_tables(store):
        return []
    query = f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC" + (" LIMIT ?" if limit else "")
    with store._access() as db:
        rows = db.execute(query, (limit,) if limit else ()).fetchall()
        points = db.execute("SELECT sweep_id, point, repeat, run_id, status, error, node, attempts FROM sweep_points "
                            "ORDER BY repeat, point").fetchall()
    by_sweep: dict[int, list[SweepPointRecord]] = {}
    for sweep_id, *rest in points:
        by_sweep.setdefault(sweep_id, []).append(SweepPointRecord(*rest))
    records = []
    for row in rows:
        record = _record(row)
        record.points = by_sweep.get(record.id, [])
        records.append(record)
    return records


def sweep_of_run(store: ResultsStore, run_id: int) -> int | None:
    """The sweep a run was measured in (None when it was not part of one)."""
    try:
        if not _has_tables(store):
            return None
        with store._access() as db:
            row = db.execute("SELECT sweep_id FROM sweep_points WHERE run_id=? LIMIT 1", (run_id,)).fetchone()
    except StoreError:
        return None
    return row[0] if row else None


def point_runs(store: ResultsStore, sweep: SweepRecord) -> dict[int, list[Any]]:
    """``{point index: [RunRecord of each finished repeat]}`` (runs deleted since are left out)."""
    out: dict[int, list[Any]] = {}
    for p in sweep.points:
        if p.run_id is None or p.status != "done":
            continue
        try:
            out.setdefault(p.point, []).append(store.get_run(p.run_id))
        except WorkbenchError:
            continue
    return out
