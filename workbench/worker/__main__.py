"""``python -m workbench.worker [--prewarm]``: one worker process. Reads one job (JSON) from
stdin, runs it (``pipeline``), writes events on the private channel (``channel``), and ends with
``os._exit`` once its events are out, so threads the model left running cannot keep it alive.

``--prewarm``: a spare started ahead of its job (``engine.warm``). It imports what every run
imports (``channel.prewarm_imports``) before reading its job line, and does nothing else, so it
measures under the same conditions as a worker started for the job. Stdin closing before a job
came means the parent discarded it or is gone: it exits quietly.
"""
import json
import os
import sys
import traceback

from ..errors import RunCancelled, WorkbenchError
from .channel import CancelWatcher, EventWriter, exit_now, prewarm_imports, private_event_channel, read_job_line
from .pipeline import Stage, inspect_job, run_job


def main() -> int:
    emit = EventWriter(private_event_channel())
    sys.stdout = sys.stderr     # what imports and the model print goes to the log
    prewarmed = "--prewarm" in sys.argv[1:]
    imports_s = prewarm_imports() if prewarmed else None
    line, idle_s = read_job_line(sys.stdin)
    if not line.strip():
        return 0                # no job: a spare nobody took
    job = json.loads(line)
    cancelled = CancelWatcher(sys.stdin)
    stage = Stage()
    emit("started", pid=os.getpid(), **({"imports_s": imports_s, "idle_s": idle_s} if prewarmed else {}))
    try:
        if job["job"] == "inspect":
            inspect_job(job, emit, stage)
        elif job["job"] in ("layers", "scan"):      # explain a stored run (issue 15)
            from .explain import layers_job, scan_job
            (layers_job if job["job"] == "layers" else scan_job)(job, emit, cancelled, stage)
        else:
            run_job(job, emit, cancelled, stage)
        return 0
    except RunCancelled as exc:
        emit("error", kind="cancelled", message=str(exc) or "cancelled")
        return 0
    except WorkbenchError as exc:
        cause = exc.__cause__    # the model's own exception, when there was one: keep where it came from
        emit("error", kind=type(exc).__name__, message=str(exc),
             **({"traceback": "".join(traceback.format_exception(cause))} if cause is not None else {}))
        return 0
    except SystemExit as exc:  # a model calling sys.exit() must not look like success
        emit("error", kind="SystemExit", message=f"the model called sys.exit({exc.code!r}) while {stage.now}",
             traceback=traceback.format_exc())
        return 1
    except BaseException as exc:  # noqa: BLE001 - report every failure with its traceback
        emit("error", kind="exception", message=f"{type(exc).__name__}: {str(exc).strip()} (while {stage.now})",
             traceback=traceback.format_exc())
        return 1
    finally:
        emit.close()


if __name__ == "__main__":
    try:
        exit_code = main()
    except BaseException:   # noqa: BLE001 - e.g. the event pipe broke because the parent is gone
        traceback.print_exc()
        exit_code = 1
    exit_now(exit_code)
