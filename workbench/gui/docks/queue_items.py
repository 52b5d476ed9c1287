"""How a queued job reads in the Run dock's queue list: its mark, run number, label and state, and,
for a job that did not run (refused by its baseline's check of the loaded model, removed, failed),
the one-line reason beside it. No Qt here."""
from __future__ import annotations

STATUS_ICON = {"queued": "⏳", "running": "▶", "done": "✓", "failed": "✗", "cancelled": "■", "refused": "⊘"}
REASON_CHARS = 110      # the whole reason is in the tooltip


def one_line(text: str | None, limit: int = REASON_CHARS) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= limit else first[:limit - 1] + "…"


def job_text(job) -> str:
    """``⊘ prune:method=structured — refused: prune structured: a TorchScript model has no…``."""
    run = f"#{job.run_id} " if job.run_id is not None else ""
    text = f"{STATUS_ICON.get(job.status, '?')} {run}{job.label} — {job.status}"
    if job.status == "running" and job.phase:
        text += f" ({job.phase})"
    if job.status in ("refused", "failed") and job.message:
        text += f": {one_line(job.message)}"
    if job.finished_at and job.started_at:
        text += f" · {job.finished_at - job.started_at:.1f} s"
    return text


def job_tooltip(job) -> str:
    tip = job.spec.describe_chain() + f" on {job.spec.device}"
    return tip + (f"\n{job.message}" if job.message else "")
