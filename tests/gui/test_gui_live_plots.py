"""LivePlots: buffers, running percentiles, redraw cost at 1 M points, the min/max trace, the y
range, phase labels, the empty state, the header's words (running window, time left, partial
results), the GPU placeholder, training."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from workbench.gui.live import status as words  # noqa: E402
from workbench.gui.live.plots import LivePlots  # noqa: E402
from workbench.gui.live.series import GrowingBuffer, LatencySeries  # noqa: E402

NO_GPU = dict.fromkeys(("gpu_power_w", "gpu_power_avg_w", "gpu_energy_mj", "gpu_mem_used_bytes",
                        "gpu_mem_total_bytes", "gpu_proc_mem_bytes", "gpu_util_pct", "gpu_mem_util_pct",
                        "sm_clock_mhz", "temperature_c", "clock_event_reasons"))


def _cpu_sample(t: float, rss: float = 300e6) -> dict:
    return {"t": t, "rss_bytes": rss, "cpu_percent": 99.0, **NO_GPU}


def _gpu_sample(t: float, i: int) -> dict:
    return {"t": t, "rss_bytes": 900e6, "cpu_percent": 100.0, "gpu_power_w": 200.0 + i, "gpu_power_avg_w": 190.0,
            "gpu_energy_mj": 1e6 + 200 * i, "gpu_mem_used_bytes": 4e9, "gpu_mem_total_bytes": 80e9,
            "gpu_proc_mem_bytes": 1.5e9, "gpu_util_pct": 97.0, "gpu_mem_util_pct": 40.0, "sm_clock_mhz": 1980.0,
            "temperature_c": 55.0, "clock_event_reasons": 0}


@pytest.fixture
def plots(qtbot):
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.reset("#1 demo:mlp")
    return widget


def _feed(plots: LivePlots, values_ns: np.ndarray, phase: str = "measure", batch: int = 1000) -> None:
    for start in range(0, values_ns.shape[0], batch):
        plots.handle_event({"type": "latency_batch", "phase": phase,
                            "values_ns": values_ns[start:start + batch].tolist(), "t": 0.0})


def test_growing_buffer_doubles():
    buf = GrowingBuffer(4)
    caps = []
    for i in range(40):
        buf.append(float(i))
        caps.append(buf.capacity)
    assert buf.size == 40 and np.array_equal(buf.data, np.arange(40.0))
    assert sorted(set(caps)) == [4, 8, 16, 32, 64]
    buf.extend(np.arange(1000.0))
    assert buf.capacity == 2048 and buf.size == 1040


def test_growing_buffer_reserves_once_past_a_million():
    buf = GrowingBuffer(GrowingBuffer.RESERVE_FROM)
    buf.extend(np.arange(GrowingBuffer.RESERVE_FROM, dtype=np.float64))
    buf.extend(np.arange(10, dtype=np.float64))       # one jump to the reserve, not a doubling
    assert buf.capacity == GrowingBuffer.RESERVE and buf.growths == 1
    assert buf.size == GrowingBuffer.RESERVE_FROM + 10 and buf.data[-1] == 9.0
    assert buf.data[GrowingBuffer.RESERVE_FROM - 1] == GrowingBuffer.RESERVE_FROM - 1


def test_running_percentiles_match_a_direct_computation(plots):
    rng = np.random.default_rng(3)
    values = (rng.lognormal(np.log(300_000), 0.3, 7000)).astype(np.int64)
    _feed(plots, values[:300], phase="warmup", batch=300)
    _feed(plots, values[300:], phase="measure", batch=1700)
    plots.flush()
    y = values / 1e6
    xs, p50s = plots.p50_curve.xData, plots.p50_curve.yData
    checked = 0
    for x, p50 in zip(xs, p50s):
        if np.isnan(p50):
            continue
        end = int(x) + 1
        start = 0 if end <= 300 else 300
        window = y[max(start, end - LatencySeries.PERCENTILE_WINDOW):end]
        assert p50 == pytest.approx(np.percentile(window, 50))
        checked += 1
    assert checked > 10


def test_one_million_points(plots, qtbot):
    plots.show()
    qtbot.waitExposed(plots)
    rng = np.random.default_rng(0)
    values = (rng.lognormal(np.log(0.1), 0.2, 1_000_000) * 1e6).astype(np.int64)   # ~0.1 ms each
    warm = values[:5000] * 2
    _feed(plots, warm, phase="warmup")
    plots.flush()                                        # (first draw: one-time lazy imports in numpy)
    _feed(plots, values)                                 # 1000 batches of 1000, as the worker sends them
    n = warm.shape[0] + values.shape[0]
    assert plots.latency_point_count() == n
    # memory grows by doubling from the initial capacity: never one reallocation per batch
    buf = plots.latency_buffer
    assert buf.capacity == buf.initial_capacity * 2 ** buf.growths
    assert buf.capacity >= n > buf.capacity // 2
    assert buf.growths == int(np.ceil(np.log2(n / buf.initial_capacity)))
    # no drawing happened since: events only fill buffers
    assert plots.latency_band.yData.max() == pytest.approx(warm.max() / 1e6)

    started = time.perf_counter()
    assert plots.flush()                                 # one redraw of 1 M points ...
    plots.latency_view.repaint()                         # ... and its paint
    redraw_s = time.perf_counter() - started
    print(f"\n1 M-point redraw (flush + paint): {redraw_s * 1e3:.1f} ms")
    # drawn as a min/max band of about one column per pixel, not 1 M vertices, with every peak
    band_x, band_y = plots.latency_band.xData, plots.latency_band.yData
    assert 0 < band_x.shape[0] <= 2 * (plots._columns() + 1)
    all_ms = np.concatenate((warm, values)) / 1e6
    assert band_y.max() == pytest.approx(all_ms.max()) and band_y.min() == pytest.approx(all_ms.min())
    # the running p50/p99 are numpy's over the window of the current (measure) phase
    window = values[-LatencySeries.PERCENTILE_WINDOW:] / 1e6
    p50, p99 = plots.running_percentiles()
    assert p50 == pytest.approx(float(np.median(window)), rel=1e-12)
    assert p99 == pytest.approx(float(np.percentile(window, 99)), rel=1e-12)
    # nothing changed: the next tick draws nothing
    assert not plots.flush()

    # an incremental tick at 1 M points stays cheap
    _feed(plots, values[:1000])
    started = time.perf_counter()
    plots.flush()
    plots.latency_view.repaint()
    incremental_s = time.perf_counter() - started
    print(f"incremental redraw at 1 M points: {incremental_s * 1e3:.1f} ms")


def test_running_percentiles_stay_within_the_phase(plots):
    _feed(plots, np.full(3000, 5_000_000, dtype=np.int64), phase="warmup")   # 5 ms
    _feed(plots, np.full(200, 1_000_000, dtype=np.int64), phase="measure")   # 1 ms
    plots.flush()
    # the window is the 200 measure values only, not the slower warm-up before them
    assert plots.running_percentiles() == (pytest.approx(1.0), pytest.approx(1.0))
    # the running p50 line covers the whole run (points every PERCENTILE_STRIDE iterations)
    px, py = plots.p50_curve.xData, plots.p50_curve.yData
    assert len(px) >= 3000 // LatencySeries.PERCENTILE_STRIDE
    assert py[0] == pytest.approx(5.0) and py[-1] == pytest.approx(1.0)


def test_timer_redraws_without_explicit_flush(plots, qtbot):
    _feed(plots, np.arange(1, 501, dtype=np.int64) * 1000)
    qtbot.waitUntil(lambda: plots.latency_curve.xData is not None and len(plots.latency_curve.xData) == 500,
                    timeout=2000)


def test_timer_redraws_one_view_per_tick_taking_turns(plots):
    """With latency and telemetry both changed, a timer tick redraws one view and the next tick
    the other, so one repaint never carries every plot at once."""
    def feed_both():
        _feed(plots, np.full(100, 300_000, dtype=np.int64))
        plots.handle_event({"type": "telemetry", "samples": [_cpu_sample(1.0 + plots.telemetry_point_count())]})

    def rss_points() -> int:
        data = plots._telemetry["rss"].curve.yData
        return 0 if data is None else len(data)

    feed_both()
    assert plots.flush(one_view=True)
    assert len(plots.latency_curve.yData) == 100 and rss_points() == 0
    assert plots.flush(one_view=True)
    assert rss_points() == 1
    assert not plots.flush(one_view=True)           # nothing changed since
    feed_both()
    assert plots.flush(one_view=True)               # the latency view's turn again
    assert len(plots.latency_curve.yData) == 200 and rss_points() == 1
    feed_both()
    assert plots.flush(one_view=True)               # telemetry's turn, although latency changed too
    assert len(plots.latency_curve.yData) == 200 and rss_points() == 3
    assert plots.flush()                             # an explicit flush draws everything
    assert len(plots.latency_curve.yData) == 300


def test_a_narrow_dock_clips_long_titles_not_the_plots(qtbot):
    """A title's text width must not become the plot's minimum width: in a narrow dock the
    histogram would be pushed off the view's right edge."""
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.reset("#1")
    widget.resize(380, 600)
    widget.show()
    qtbot.waitExposed(widget)
    view = widget.latency_view
    assert widget.latency_plot.titleLabel.minimumWidth() == 0
    hist_right = widget.hist_plot.mapRectToScene(widget.hist_plot.boundingRect()).right()
    assert hist_right <= view.viewport().width() + 1, (hist_right, view.viewport().width())


def test_x_range_shows_the_whole_run_until_the_user_moves_it(plots):
    def x_range():
        return plots.latency_plot.getViewBox().viewRange()[0]

    _feed(plots, np.full(1000, 300_000, dtype=np.int64))
    plots.flush()
    lo, hi = x_range()
    assert lo <= 0 and 1000 <= hi < 1100                         # the whole run, a little padding
    plots.latency_plot.setXRange(100, 200, padding=0)            # the user zooms in ...
    plots._user_moved_latency()                                   # (what sigRangeChangedManually calls)
    _feed(plots, np.full(1000, 300_000, dtype=np.int64))
    plots.flush()
    assert x_range() == pytest.approx([100, 200])                 # ... and the view stays put
    plots.follow_box.setChecked(True)                             # follow the newest iterations
    plots.flush()
    assert x_range() == pytest.approx([0, 2000])
    _feed(plots, np.full(6000, 300_000, dtype=np.int64))
    plots.flush()
    assert x_range() == pytest.approx([8000 - plots.FOLLOW_ITERATIONS, 8000])
    plots.follow_box.setChecked(False)                            # back to the whole run
    plots.flush()
    lo, hi = x_range()
    assert lo <= 0 and 8000 <= hi < 8500


def test_no_gpu_shows_placeholder_with_reason(plots):
    assert plots.gpu_placeholder_visible()               # nothing yet: a text, not an empty axis
    plots.handle_event({"type": "telemetry", "samples": [_cpu_sample(100.0 + i * 0.1, 3e8 + i) for i in range(20)]})
    plots.flush()
    assert plots.telemetry_point_count() == 20
    assert plots.gpu_placeholder_visible()
    assert plots.gpu_placeholder_text().startswith(words.NO_GPU)
    # the sampler's status arrives as an event: a friendly headline, NVML's words only in the tooltip
    raw = "unavailable: nvmlInit failed: NVML Shared Library Not Found"
    plots.handle_event({"type": "telemetry_status", "status": {"nvml": raw, "warnings": []}})
    assert plots.gpu_placeholder_visible()
    assert plots.gpu_placeholder_text().splitlines()[0] == "No NVIDIA GPU found"
    assert "Shared Library" not in plots.gpu_placeholder_text()
    assert "NVML Shared Library Not Found" in plots.gpu_placeholder.toolTip()
    plots.set_telemetry_status({"nvml": "unavailable: pynvml cannot be imported: No module named 'pynvml'"})
    assert plots.gpu_placeholder_text().splitlines()[0] == "NVML not available on this machine"
    assert "pynvml" not in plots.gpu_placeholder_text() and "pynvml" in plots.gpu_placeholder.toolTip()
    plots.set_telemetry_status({"nvml": "disabled (no GPU selected)"})
    assert plots.gpu_placeholder_text().startswith(words.CPU_RUN)
    # the memory plot still has the host RSS
    x, y = plots._telemetry["rss"].curve.xData, plots._telemetry["rss"].curve.yData
    assert len(y) == 20 and x[0] == 0.0


def test_gpu_samples_fill_the_power_plot(plots):
    plots.set_telemetry_status({"nvml": "ok", "warnings": ["another process is using the GPU: pid 42"]})
    plots.handle_event({"type": "telemetry", "samples": [_gpu_sample(50.0 + i * 0.05, i) for i in range(40)]})
    plots.flush()
    assert not plots.gpu_placeholder_visible()
    x, y = plots._telemetry["power"].curve.xData, plots._telemetry["power"].curve.yData
    assert len(y) == 40 and y[0] == 200.0 and x[-1] == pytest.approx(39 * 0.05)
    for key in ("util", "clock", "temperature", "gpu_mem", "gpu_proc_mem"):
        assert len(plots._telemetry[key].curve.yData) == 40
    assert "pid 42" in plots.gpu_warnings.text() and not plots.gpu_warnings.isHidden()
    # a new run starts empty again
    plots.reset("#2")
    assert plots.telemetry_point_count() == 0 and plots.gpu_placeholder_visible()


def test_train_events_populate_the_training_plot(plots):
    assert not plots.training_visible()
    for step in range(1, 41):
        plots.handle_event({"type": "train", "step": step, "epoch": (step - 1) // 10 + 1, "loss": 2.0 / step,
                            "student_accuracy": 0.5 + step / 100 if step % 10 == 0 else None})
    plots.flush()
    assert plots.training_visible()
    assert plots.train_point_count() == 40
    lx, ly = plots.train_view.series["loss"].curve.xData, plots.train_view.series["loss"].curve.yData
    assert list(lx[:3]) == [1.0, 2.0, 3.0] and ly[1] == pytest.approx(1.0)
    ax, ay = plots.train_view.series["accuracy"].curve.xData, plots.train_view.series["accuracy"].curve.yData
    assert list(ax) == [10.0, 20.0, 30.0, 40.0] and ay[-1] == pytest.approx(0.9)
    plots.reset("next")
    assert not plots.training_visible() and plots.train_point_count() == 0


def test_result_and_finish_events_update_the_status(plots):
    plots.handle_event({"type": "phase", "phase": "measure", "message": ""})
    assert "phase: measure" in plots.status_label.text()
    plots.handle_event({"type": "result", "result": {"latency": {"median_ms": 1.5, "median_ci_ms": [1.4, 1.6],
                                                                 "p99_ms": 2.0, "n": 1000}}})
    plots.handle_event({"type": "run_finished", "run_id": 1, "status": "failed", "message": "out of memory"})
    assert "failed: out of memory" in plots.status_label.text()
    assert plots.figures_label.text() == "result: p50 1.50 ms [1.40 ms, 1.60 ms], p99 2.00 ms"
    plots.handle_event({"type": "something_new"})        # unknown events are ignored


def test_a_cancelled_run_shows_its_partial_statistics_marked(plots):
    _feed(plots, np.full(300, 1_000_000, dtype=np.int64))
    plots.flush()
    plots.handle_event({"type": "result", "result": {"partial": True, "latency": {
        "median_ms": 1.0, "median_ci_ms": [0.99, 1.01], "p99_ms": None, "n": 300}}})
    plots.handle_event({"type": "run_finished", "run_id": 1, "status": "cancelled", "message": "cancelled by the user"})
    figures = plots.figures_label.text()
    assert figures.startswith("partial result (300 iterations before the stop): p50 1.00 ms")
    assert figures.endswith("no p99 (needs ≥ 662)")
    assert "cancelled" in plots.status_label.text()
    # the stored result of a stopped run (the session marks its statistics partial)
    plots.reset("#2")
    plots.show_result({"partial": True, "latency": {"median_ms": 2.0, "median_ci_ms": [1.9, 2.1], "p99_ms": 3.0,
                                                    "n": 800, "partial": True}})
    assert plots.figures_label.text() == "partial result (800 iterations before the stop): p50 2.00 ms [1.90 ms, 2.10 ms], p99 3.00 ms"


def test_the_running_figures_say_what_they_are(plots):
    _feed(plots, np.full(100, 1_000_000, dtype=np.int64))
    plots.flush()
    text = plots.figures_label.text()
    assert "running p50 1.00 ms · p99 1.00 ms of the last 100 iterations" in text
    assert "final p99 needs ≥ 662" in text
    _feed(plots, np.full(2000, 1_000_000, dtype=np.int64))
    plots.flush()
    text = plots.figures_label.text()
    assert "of the last 1 000 iterations" in text and "662" not in text


def test_the_workers_cancel_ends_the_running_state(plots):
    """The worker's error event says the run stopped even if run_finished never reaches the dock."""
    plots.set_measure_targets(iters=10_000, duration_s=60.0)
    _feed(plots, np.full(100, 1_000_000, dtype=np.int64))
    plots.handle_event({"type": "error", "kind": "cancelled", "message": "cancelled by the user"})
    plots.flush()
    text = plots.status_label.text()
    assert "cancelled: cancelled by the user" in text and "phase:" not in text and "left" not in text


def test_long_runs_show_the_time_left(plots):
    now = [100.0]
    plots.clock = lambda: now[0]
    plots.set_measure_targets(iters=10_000, duration_s=5.0)
    _feed(plots, np.full(1000, 1_000_000, dtype=np.int64))        # 1000 iterations of 1 ms
    now[0] += 4.0                                                  # 5 s in: rate 200 it/s
    plots.flush()
    # both targets must be met: 9000 more iterations at 200/s = 45 s, although 5 s have passed
    assert "~45 s left" in plots.status_label.text()
    plots.set_measure_targets(iters=100, duration_s=60.0)          # the duration is the longer one
    _feed(plots, np.full(10, 1_000_000, dtype=np.int64))
    plots.flush()
    assert "~55 s left" in plots.status_label.text()
    plots.handle_event({"type": "run_finished", "run_id": 1, "status": "done"})
    assert "left" not in plots.status_label.text()


def test_the_y_range_keeps_the_running_p99_in_view(plots):
    rng = np.random.default_rng(2)
    _feed(plots, np.array([80_000_000]), phase="cold")             # an 80 ms cold call
    warm = (rng.lognormal(np.log(3e6), 0.3, 400)).astype(np.int64)
    _feed(plots, warm, phase="warmup")
    values = (rng.lognormal(np.log(1e6), 0.1, 40_000)).astype(np.int64)
    values[::150] *= 6                                             # spikes above the p99
    _feed(plots, values)
    plots.flush()
    (_, _), (y0, y1) = plots.latency_plot.getViewBox().viewRange()
    assert y0 == 0 and plots.running_percentiles()[1] <= y1        # the running p99 fits ...
    assert np.percentile(np.concatenate((values, warm)) / 1e6, 99) <= y1   # ... and the p99 of all in view
    assert y1 < 80.0 and y1 < values.max() / 1e6                   # the cold call and the spikes are clipped


def test_phase_labels_never_overlap(plots, qtbot):
    plots.show()
    qtbot.waitExposed(plots)
    _feed(plots, np.array([5_000_000]), phase="cold")
    _feed(plots, np.full(50, 1_200_000, dtype=np.int64), phase="warmup")
    _feed(plots, np.full(40_000, 1_000_000, dtype=np.int64))
    plots.flush()
    # cold call, warm-up and measure begin within a few pixels of each other: one joined label
    assert plots.phase_label_texts() == ["cold call 5.00 ms · warm-up · measure"]
    plots.latency_plot.setXRange(0, 60, padding=0)                 # zoomed in: far apart, one each
    plots._user_moved_latency()
    plots.flush()
    texts = plots.phase_label_texts()
    assert texts[-1] == "measure" and "warm-up" in " ".join(texts)
    rects = [item.mapRectToScene(item.boundingRect()) for item in plots._phases.labels if item.isVisible()]
    for left, right in zip(rects, rects[1:]):
        assert left.right() <= right.left(), (left, right)


def test_the_empty_plots_show_a_text_and_no_axes(qtbot):
    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    for plot in (widget.latency_plot, widget.hist_plot, widget.memory_plot):
        assert not plot.getAxis("bottom").isVisible()            # no bare 0..1 axis with crowded ticks
    assert widget.latency_plot._workbench_empty_text.isVisible()
    texts = [plot._workbench_empty_text.textItem.toPlainText() for plot in (widget.latency_plot, widget.memory_plot)]
    assert texts == ["Latency per iteration appears here while a run is timed", "Memory appears here during a run"]
    widget.reset("#1 demo:mlp")                           # a run starts: now it waits for its data
    assert widget.latency_plot._workbench_empty_text.textItem.toPlainText() == "Waiting for the first timed iterations…"
    assert not widget.hist_plot.getAxis("left").isVisible()
    _feed(widget, np.full(100, 1_000_000, dtype=np.int64))
    widget.flush()
    for plot in (widget.latency_plot, widget.hist_plot):
        assert plot.getAxis("bottom").isVisible()
    assert widget.latency_plot.getAxis("left").isVisible() and not widget.hist_plot.getAxis("left").isVisible()
    assert not widget.latency_plot._workbench_empty_text.isVisible()


def test_the_log_line_of_the_telemetry_status_leads_with_words():
    from workbench.gui.docks.log_dock import describe_event
    line = describe_event({"type": "telemetry_status", "run_id": 3, "status": {
        "nvml": "unavailable: nvmlInit failed: NVML Shared Library Not Found", "warnings": []}})
    assert line == "#3 telemetry: No NVIDIA GPU found (NVML: nvmlInit failed: NVML Shared Library Not Found)"
    line = describe_event({"type": "telemetry_status", "status": {"nvml": "ok", "gpu_name": "NVIDIA H100",
                                                                   "warnings": ["another process uses the GPU"]}})
    assert line == "telemetry: GPU via NVML (NVIDIA H100); ⚠ another process uses the GPU"
