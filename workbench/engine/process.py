"""One worker process seen from the parent: spawn it, feed it its job, read and check its events,
keep its output in a capped log, stop it, and end everything it left behind.

The worker runs in a session and process group of its own. Whatever the model starts there
(threads keep the worker itself alive; child processes keep pipes open) is ended when the worker
exits, on every path, and said in ``exit_notes``. The process is a spare started ahead
(``warm.WarmWorkers``) when one with the job's environment is ready, else a fresh one.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import signal
import threading
import time
from pathlib import Path

from .. import events as event_kinds
from .warm import WarmWorkers, job_environment, spawn_worker

CANCEL_GRACE_S = 1.0            # a cooperative cancel gets this long before SIGTERM ...
KILL_GRACE_S = 2.0              # ... and SIGTERM this long before SIGKILL
EXIT_GRACE_S = 10.0             # after its last event, the worker gets this long to exit
DRAIN_AFTER_EXIT_S = 0.5        # events still in the pipe when the worker has exited
LOG_HEAD_BYTES = 1 << 20        # the worker log keeps the first MiB of output ...
LOG_TAIL_BYTES = 1 << 20        # ... and the last MiB; what is between is counted, not kept


class WorkerProcess:
    """One worker: spawn, feed the job, read events on a thread, cancel/kill its process group."""

    def __init__(self, job: dict, log_path: Path, warm: WarmWorkers | None = None) -> None:
        env = job_environment()
        spare = warm.take(env) if warm is not None else None
        # How this worker started, recorded with the run (the worker adds its import and idle times).
        self.start_info: dict = {"prewarmed": spare is not None}
        if spare is not None:
            self.start_info["spare_age_s"] = round(time.monotonic() - spare.spawned_at, 3)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # A spare's output so far (its imports) waited in the pipe: it goes to this job's log.
        self.log = CappedLog(log_path)
        self.proc = spare.proc if spare is not None else spawn_worker(env)
        self.events: queue.Queue = queue.Queue()
        self.malformed_lines = 0
        self.first_malformed: tuple[str, bytes] | None = None
        self.exit_notes: list[str] = []
        self.killed_by_us = False
        self._last_line_at = time.monotonic()
        self._exited_at: float | None = None
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass    # it died already: the stream ends and the session says how, from its exit code
        if warm is not None:
            warm.replenish()    # the next spare (the pool defers it while a run is in progress)
        threading.Thread(target=self._read_events, daemon=True).start()
        self._log_reader = threading.Thread(target=self._read_log, daemon=True)
        self._log_reader.start()
        self._cancel_sent_at: float | None = None
        self._term_sent_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def note_started(self, event: dict) -> None:
        """Keep what a pre-warmed worker says in its ``started`` event: how long it spent importing
        before it could take a job, and how long it then waited for one (0: the job was waiting)."""
        for key in ("imports_s", "idle_s"):
            value = event.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.start_info[key] = round(float(value), 3)

    # -- reading ---------------------------------------------------------------------------------
    def _read_events(self) -> None:
        for raw in self.proc.stdout:
            self._last_line_at = time.monotonic()
            if not raw.strip():
                continue        # the worker starts each event on a fresh line: blank lines are normal
            event, why = event_kinds.parse(raw)
            if event is None:
                self.malformed_lines += 1
                if self.first_malformed is None:
                    self.first_malformed = (why, raw[:120])
                continue
            self.events.put(event)
        self.events.put(None)   # end of stream

    def _read_log(self) -> None:
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.log.write(chunk)

    def next_event(self, timeout: float = 0.1) -> dict | None:
        """The next event, or None once the stream has ended; raises queue.Empty when none came.

        The stream ends at EOF, or shortly after the worker exited even when a process the model
        forked still holds the pipe open."""
        if self._stream_abandoned():
            try:
                return self.events.get_nowait()
            except queue.Empty:
                return None
        return self.events.get(timeout=timeout)

    def _stream_abandoned(self) -> bool:
        if self._exited_at is None:
            if not self._has_exited():
                return False
            self._exited_at = time.monotonic()
        return time.monotonic() - max(self._exited_at, self._last_line_at) > DRAIN_AFTER_EXIT_S

    def malformed_warning(self) -> str | None:
        """What the parent ignored on the event channel, in words (None when nothing was)."""
        if not self.malformed_lines:
            return None
        why, sample = self.first_malformed or ("", b"")
        n = self.malformed_lines
        return (f"the model wrote to the worker's event channel; ignored {n} malformed line{'s' if n > 1 else ''} "
                f"(first: {sample.decode(errors='replace').strip()!r}: {why})")

    # -- stopping --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask nicely, then escalate; call repeatedly from the event loop until the worker exits."""
        now = time.monotonic()
        if self._cancel_sent_at is None:
            self._cancel_sent_at = now
            try:
                self.proc.stdin.write(b"cancel\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass
        elif self._term_sent_at is None and now - self._cancel_sent_at >= CANCEL_GRACE_S:
            self._term_sent_at = now
            self._signal(signal.SIGTERM)
        elif self._term_sent_at is not None and now - self._term_sent_at >= KILL_GRACE_S:
            self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _has_exited(self) -> bool:
        """Whether the worker has exited, without reaping it: while it is an unreaped zombie its
        pid, and so its process group id, cannot be reused by an unrelated process."""
        if self.proc.returncode is not None:
            return True
        if not hasattr(os, "waitid"):     # macOS before Python 3.13: reap (the pid is then free sooner)
            return self.proc.poll() is not None
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def finish(self, grace_s: float = EXIT_GRACE_S) -> int:
        """Wait up to ``grace_s`` for the worker to exit (then kill it), end whatever it left
        running, and return its exit code."""
        deadline = time.monotonic() + grace_s
        while not self._has_exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._has_exited():
            self.killed_by_us = True
            self.exit_notes.append(f"the worker did not exit within {EXIT_GRACE_S:g} s after its last event "
                                   "and was killed")
            self._signal(signal.SIGKILL)
            while not self._has_exited():
                time.sleep(0.02)
        left = end_process_group(self.proc.pid)
        if left:
            self.exit_notes.append(f"the model left {len(left)} process{'es' if len(left) > 1 else ''} running "
                                   f"after the worker exited (pid {', '.join(map(str, left))}); Workbench ended "
                                   f"{'them' if len(left) > 1 else 'it'}")
        code = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        # A process that escaped the group (setsid) may still hold stderr: do not wait for it forever.
        self._log_reader.join(timeout=2.0)
        self.log.close()
        return code

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def end_process_group(leader: int) -> list[int]:
    """SIGKILL every process left in the process group or session that ``leader`` started, and
    return their pids (Linux lists them from /proc; elsewhere the group is signalled unseen)."""
    left = [pid for pid in _session_members(leader) if pid != leader]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return left


def _session_members(leader: int) -> list[int]:
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state != b"Z" and leader in (pgrp, session):
            members.append(int(entry))
    return members


class CappedLog:
    """The worker's output on disk with a size limit: the first ``LOG_HEAD_BYTES`` as they come,
    the last ``LOG_TAIL_BYTES`` when closed, and a line saying how much was dropped between."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb", buffering=0)   # the head is on disk even if the parent dies
        self._head_cap = self._head_left = LOG_HEAD_BYTES
        self._tail_cap = LOG_TAIL_BYTES
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._closed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            if self._head_left > 0:
                head = data[:self._head_left]
                self._file.write(head)
                self._head_left -= len(head)
                data = data[len(head):]
            if data:
                self._tail.append(data)
                self._tail_bytes += len(data)
                while self._tail_bytes - len(self._tail[0]) >= self._tail_cap:
                    old = self._tail.popleft()
                    self._tail_bytes -= len(old)
                    self.dropped += len(old)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            tail = b"".join(self._tail)
            cut = max(0, len(tail) - self._tail_cap)
            self.dropped += cut
            if self.dropped:
                self._file.write(f"\n[... {self.dropped} bytes of worker output dropped: the log keeps the first "
                                 f"{self._head_cap} and the last {self._tail_cap} bytes ...]\n".encode())
            self._file.write(tail[cut:])
            self._file.close()


def describe_exit(code: int) -> str:
    """Why a worker died, in words."""
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGKILL:
            return f"the worker was killed ({name}); most often the system ran out of memory (OOM killer)"
        if sig == signal.SIGSEGV:
            return f"the worker crashed with a segmentation fault ({name}) inside the model or a library"
        if sig == signal.SIGABRT:
            return f"the worker aborted ({name}) inside the model or a library"
        return f"the worker was terminated by {name}"
    return f"the worker exited unexpectedly with code {code}"
