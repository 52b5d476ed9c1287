"""The Log dock: every core event as one line of text (batched into the widget ~10x a second)."""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout,
                               QWidget)

from ... import format as fmt
from ..live.status import gpu_status

MAX_LINES = 20_000


def describe_event(event: dict) -> str:
    """One readable line for a core event (latency batches summarized, never dumped)."""
    kind = event.get("type", "?")
    run = f"#{event['run_id']} " if event.get("run_id") is not None else ""
    if kind == "phase":
        message = event.get("message") or ""
        return f"{run}phase {event.get('phase')}{': ' + message if message else ''}"
    if kind == "latency_batch":
        values = event.get("values_ns") or []
        if not values:
            return f"{run}{event.get('phase')}: empty batch"
        ordered = sorted(values)
        median = ordered[len(ordered) // 2] / 1e6
        return (f"{run}{event.get('phase')}: {len(values)} iterations, median {fmt.ms(median)}, "
                f"min {fmt.ms(ordered[0] / 1e6)}, max {fmt.ms(ordered[-1] / 1e6)}")
    if kind == "progress":
        fraction = event.get("fraction")
        pct = f" {100 * fraction:.0f}%" if isinstance(fraction, (int, float)) else ""
        return f"{run}progress {event.get('phase', '')}{pct} {event.get('message') or ''}".rstrip()
    if kind == "telemetry":
        samples = event.get("samples") or []
        if not samples:
            return f"{run}telemetry: no samples"
        last = samples[-1]
        parts = [f"{len(samples)} samples"]
        if last.get("rss_bytes") is not None:
            parts.append(f"RSS {fmt.nbytes(last['rss_bytes'])}")
        if last.get("cpu_percent") is not None:
            parts.append(f"CPU {last['cpu_percent']:.0f}%")
        if last.get("gpu_power_w") is not None:
            parts.append(f"GPU {last['gpu_power_w']:.0f} W")
        if last.get("gpu_util_pct") is not None:
            parts.append(f"util {last['gpu_util_pct']:.0f}%")
        return f"{run}telemetry: " + ", ".join(parts)
    if kind == "plugin_report":
        report = event.get("report") or {}
        return f"{run}plugin {report.get('plugin')}: {report.get('summary')}"
    if kind == "model_info":
        info = event.get("info") or {}
        return (f"{run}model ({event.get('stage')}): {fmt.count(info.get('parameters'))} parameters, "
                f"{fmt.nbytes(info.get('bytes'))}")
    if kind == "train":
        keys = ("epoch", "step", "loss", "acc", "accuracy", "student_acc")
        parts = [f"{k} {event[k]:.4g}" if isinstance(event[k], float) else f"{k} {event[k]}"
                 for k in keys if k in event]
        return f"{run}train: " + ", ".join(parts)
    if kind == "error":
        return f"{run}ERROR ({event.get('kind')}): {event.get('message')}"
    if kind == "result":
        latency = (event.get("result") or {}).get("latency") or {}
        return (f"{run}result: p50 {fmt.ms(latency.get('median_ms'))}, p99 {fmt.ms(latency.get('p99_ms'))}, "
                f"{fmt.num(latency.get('throughput_per_s'), '.1f')} samples/s")
    if kind == "telemetry_status":
        status = event.get("status") or {}
        warnings = "".join(f"; ⚠ {w}" for w in status.get("warnings") or [])
        if status.get("nvml") == "ok":
            return f"{run}telemetry: GPU via NVML ({status.get('gpu_name') or 'NVIDIA GPU'}){warnings}"
        headline, _, details = gpu_status(status.get("nvml"))
        return f"{run}telemetry: {headline}" + (f" ({details})" if details else "") + warnings
    if kind == "run_created":
        return f"{run}run created"
    if kind == "run_finished":
        message = event.get("message")
        return f"{run}run finished: {event.get('status')}{' — ' + message if message else ''}"
    if kind == "variants_checked":
        refusals = event.get("refusals") or []
        refused = sum(1 for r in refusals if r)
        return (f"{run}checked {len(refusals)} planned variant(s) on the loaded model: "
                + (f"{refused} refused" if refused else "all can run"))
    if kind == "measure_window":
        return f"{run}measured {event.get('iterations')} iterations at batch {event.get('batch')}"
    if kind == "log":
        return f"{run}worker: {event.get('message')}"
    if kind == "started":
        return f"{run}worker process started (pid {event.get('pid')})"
    if kind == "artifact":
        return f"{run}saved {event.get('path')} ({fmt.nbytes(event.get('bytes'))})"
    extra = {k: v for k, v in event.items() if k not in ("type", "t", "run_id", "job_id")}
    text = ", ".join(f"{k}={v}" for k, v in extra.items())
    return f"{run}{kind}: {text[:300]}"


class LogDock(QWidget):
    """A read-only, bounded text log. ``append`` is cheap: lines are flushed on a 100 ms timer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.telemetry_check = QCheckBox("Show telemetry lines")
        self.telemetry_check.setToolTip("Telemetry arrives several times a second; hidden by default")
        self.follow_check = QCheckBox("Follow")
        self.follow_check.setChecked(True)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        bar = QHBoxLayout()
        bar.addWidget(self.follow_check)
        bar.addWidget(self.telemetry_check)
        bar.addStretch(1)
        bar.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.text, 1)
        self._pending: list[str] = []
        self._all_lines = 0
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.flush)
        self._timer.start()

    def append(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        for part in str(line).splitlines() or [""]:
            self._pending.append(f"{stamp}  {part}")
            stamp = " " * len(stamp)

    def append_event(self, event: dict) -> None:
        if event.get("type") == "telemetry" and not self.telemetry_check.isChecked():
            return
        self.append(describe_event(event))

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending[-MAX_LINES:], []
        self._all_lines += len(lines)
        bar = self.text.verticalScrollBar()
        self.text.appendPlainText("\n".join(lines))
        if self.follow_check.isChecked():
            bar.setValue(bar.maximum())

    def clear(self) -> None:
        self._pending = []
        self.text.clear()

    def plain_text(self) -> str:
        self.flush()
        return self.text.toPlainText()
