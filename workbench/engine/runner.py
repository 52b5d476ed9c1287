"""Running a plan (``engine.plan``: baselines first, then variants) with the variants checked on the
loaded model before the baseline is timed.

The first run of a plan is the plain model when a baseline must be measured; its worker loads the
model anyway, so it also checks every later variant's chain there (``worker.preflight``). A refused
variant is not started; when the one the user asked for is refused, the baseline is not timed
either and ``VariantsRefused`` reaches the caller as a one-line error, exactly as a chain refused
before loading would.
"""
from __future__ import annotations

import threading
from typing import Callable

from ..results.store import RunRecord
from ..spec import RunSpec

EventCallback = Callable[[dict], None]


def run_planned(session, planned: list[RunSpec], on_event_for: Callable[[RunSpec], EventCallback | None] | None = None,
                cancel: threading.Event | None = None, require_last: bool = True,
                ) -> tuple[list[RunRecord], list[str]]:
    """Run ``planned`` in order; return the records and, for each variant refused once the model was
    loaded, ``"LABEL: reason"``. With ``require_last`` the last spec (the one the user asked for) must
    not be refused: its refusal raises VariantsRefused before anything is timed; without it (all
    combinations) refused variants are skipped and only a plan with none left raises. Stops after a
    cancelled run or when ``cancel`` is set."""
    requested = planned[-1] if require_last else None
    records: list[RunRecord] = []
    refused: dict[int, str] = {}
    for index, spec in enumerate(planned):
        if index in refused:
            continue
        later = [(i, s) for i, s in enumerate(planned[index + 1:], index + 1) if s.plugins and i not in refused]
        check = [s for _, s in later] if not spec.plugins and not records else []
        callback = on_event_for(spec) if on_event_for else None
        record = session.run(spec, on_event=callback, cancel=cancel, check_variants=check,
                             required=requested if any(s is requested for s in check) else None)
        records.append(record)
        for (i, variant), refusal in zip(later, record.variant_refusals if check else []):
            if refusal:
                refused[i] = f"{variant.label or variant.describe_chain()}: {refusal}"
        if record.status == "cancelled" or (cancel is not None and cancel.is_set()):
            break
    return records, list(refused.values())
