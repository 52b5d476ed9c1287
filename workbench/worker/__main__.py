"""``python -m workbench.worker``: one worker process. Reads one job (JSON) from stdin, runs it
(``pipeline``), writes events on the private channel (``channel``), and ends with ``os._exit``
once its events are out, so threads the model left running cannot keep it alive.
"""
import json
import os
import sys
import traceback

from ..errors import RunCancelled, WorkbenchError
from .channel import CancelWatcher, EventWriter, exit_now, private_event_channel
from .pipeline import Stage, inspect_job, run_job


def main() -> int:
    emit = EventWriter(private_event_channel())
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.readline())
    cancelled = CancelWatcher(sys.stdin)
    stage = Stage()
    emit("started", pid=os.getpid())
    try:
        if job["job"] == "inspect":
            inspect_job(job, emit, stage)
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
