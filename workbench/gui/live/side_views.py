"""The Live dock's views that appear only when their events arrive: the training curve
(distillation / fine-tuning ``train`` events) and the per-token latency of a generation
(``generation`` events: the prefill, i.e. time to first token, then every decode step).

Like the other live views they only append on an event and draw on the dock's timer tick."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ...format import ms as fmt_ms
from .. import plot_style as style
from .widgets import CurveSeries, curve, keyed_title, make_plot, set_title


class TrainingView(pg.GraphicsLayoutWidget):
    """Training loss and the student's accuracy per step."""

    def __init__(self) -> None:
        super().__init__()
        style.style_plot_widget(self)
        self.loss_plot = make_plot("Training loss", "loss", None, "step", None, si_prefix=False)
        self.acc_plot = make_plot("Student accuracy", "accuracy", None, "step", None, si_prefix=False)
        self.acc_plot.setXLink(self.loss_plot)
        self.addItem(self.loss_plot, row=0, col=0)
        self.addItem(self.acc_plot, row=0, col=1)
        self.setMinimumHeight(150)
        self.acc_plot.setYRange(0, 1, padding=0.02)
        self.series = {"loss": CurveSeries(curve(self.loss_plot, "loss")),
                       "accuracy": CurveSeries(curve(self.acc_plot, "accuracy", symbol="o"))}
        self.dirty = False

    def reset(self) -> None:
        for series in self.series.values():
            series.clear()
        self.dirty = False
        self.hide()

    def add(self, event: dict) -> None:
        step = event.get("step")
        if step is None:
            step = len(self.series["loss"]) + 1
        self.series["loss"].add(float(step), event.get("loss"))
        self.series["accuracy"].add(float(step), event.get("student_accuracy"))
        self.dirty = True
        if self.isHidden():
            self.show()

    def point_count(self) -> int:
        return len(self.series["loss"])

    def draw(self) -> None:
        self.dirty = False
        for series in self.series.values():
            series.draw()


class TokenLatencyView(pg.GraphicsLayoutWidget):
    """Latency per generated token: x = token position (0 = the prefill, marked), y = ms. The last
    generation is drawn as points, the median over the timed generations as a line."""

    def __init__(self) -> None:
        super().__init__()
        style.style_plot_widget(self)
        self.plot = make_plot("Latency per token", "latency", "ms", "token", None, si_prefix=False)
        self.addItem(self.plot)
        self.setMinimumHeight(150)
        self.last_curve = curve(self.plot, "latency", symbol="o")
        self.median_curve = curve(self.plot, "p50", width=2)
        self.prefill_bar = pg.BarGraphItem(x=[0], height=[0], width=0.6, pen=None,
                                           brush=pg.mkBrush(style.SERIES["p99"]))
        self.plot.addItem(self.prefill_bar)
        self.prefill_label = pg.TextItem(anchor=(0, 1), color=style.SERIES["p99"])
        self.plot.addItem(self.prefill_label)
        self.generations: list[tuple[str, float, np.ndarray]] = []   # (phase, prefill ms, decode ms)
        self.dirty = False

    def reset(self) -> None:
        self.generations = []
        self.last_curve.setData([], [])
        self.median_curve.setData([], [])
        self.prefill_bar.setOpts(x=[0], height=[0])
        self.prefill_label.setText("")
        self.dirty = False
        self.hide()

    def add(self, event: dict) -> None:
        decode = np.asarray(event.get("decode_ns") or (), dtype=np.float64) / 1e6
        prefill = float(event.get("prefill_ns") or 0) / 1e6
        self.generations.append((str(event.get("phase") or "measure"), prefill, decode))
        self.dirty = True
        if self.isHidden():
            self.show()

    def generation_count(self) -> int:
        return len(self.generations)

    def timed(self) -> list[tuple[str, float, np.ndarray]]:
        """The timed generations (all of them until the measure phase starts)."""
        measured = [g for g in self.generations if g[0] == "measure"]
        return measured or self.generations

    def medians(self) -> tuple[float, np.ndarray]:
        """Median prefill ms and the median decode ms at each token position over the timed generations."""
        timed = self.timed()
        prefill = float(np.median([g[1] for g in timed]))
        length = min(len(g[2]) for g in timed)
        decode = np.median(np.stack([g[2][:length] for g in timed]), axis=0) if length else np.zeros(0)
        return prefill, decode

    def draw(self) -> None:
        self.dirty = False
        if not self.generations:
            return
        _phase, prefill_last, decode_last = self.generations[-1]
        self.last_curve.setData(np.arange(1, len(decode_last) + 1), decode_last)
        prefill, decode = self.medians()
        self.median_curve.setData(np.arange(1, len(decode) + 1), decode)
        self.prefill_bar.setOpts(x=[0], height=[prefill])
        self.prefill_label.setText(f"prefill {fmt_ms(prefill)}")
        self.prefill_label.setPos(0.4, prefill)
        top = max(prefill, float(decode.max()) if len(decode) else 0.0, float(decode_last.max(initial=0.0)))
        self.plot.setRange(xRange=(-0.5, max(len(decode_last), 1) + 0.5), yRange=(0, top * 1.1 or 1), padding=0)
        set_title(self.plot, keyed_title(f"Latency per token ({len(self.timed())} generations)", (
            ("latency", "last generation", False), ("p50", "median per token", False))))

