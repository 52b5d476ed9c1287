"""The Live dock's data and words without Qt (workbench.gui.live.series, .status): phases, running
percentiles, histogram, the min/max envelope, the y range, label spacing, time left, GPU status
words, and no Qt import."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from workbench.gui.live import status as words
from workbench.gui.live.series import LatencySeries, XYSeries


def test_phases_keep_their_own_percentiles_and_histogram():
    series = LatencySeries()
    series.add("warmup", np.full(3000, 5_000_000))            # 5 ms
    series.add("measure", np.full(200, 1_000_000))            # 1 ms
    assert len(series) == 3200 and series.phase == "measure" and series.phase_start == 3000
    assert series.phase_markers == [(0, "warmup"), (3000, "measure")]
    assert series.update_percentiles()
    assert series.running == (pytest.approx(1.0), pytest.approx(1.0))      # not dragged by the warm-up
    assert series.window_size() == 200
    p50 = series.p50.data
    assert p50[0] == pytest.approx(5.0) and np.isnan(p50).sum() == 1       # one break between the phases
    assert not series.update_percentiles()                                # nothing new
    counts, edges = series.histogram()
    assert counts.sum() == 200 and edges[0] == pytest.approx(1.0)


def test_running_percentiles_are_numpys_over_the_window():
    values = np.random.default_rng(5).integers(100_000, 900_000, size=5000)
    series = LatencySeries()
    series.add("measure", values)
    series.update_percentiles()
    window = values[-LatencySeries.PERCENTILE_WINDOW:] / 1e6
    assert series.running == (pytest.approx(np.percentile(window, 50)), pytest.approx(np.percentile(window, 99)))


def test_xy_series_skips_missing_readings():
    series = XYSeries()
    for x, y in ((0.0, 1.0), (0.1, None), (0.2, float("nan")), (0.3, 2.0)):
        series.add(x, y)
    assert len(series) == 2 and series.dirty and list(series.x.data) == [0.0, 0.3]


def test_series_module_imports_no_qt():
    code = ("import sys, workbench.gui.live.series, workbench.gui.live.status, workbench.gui.results.columns; "
            "loaded = [m for m in ('PySide6', 'pyqtgraph', 'torch') if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the min/max trace ---------------------------------------------------------------------------------
def _fed_in_batches(values_ns: np.ndarray, batch: int = 777) -> LatencySeries:
    series = LatencySeries()
    for start in range(0, values_ns.shape[0], batch):
        series.add("measure", values_ns[start:start + batch])
        if start % (batch * 13) == 0:
            series.peaks.update(series.y.data)       # updated part-way, as the timer does
    return series


@pytest.mark.parametrize("first, last, columns", [(0, 300_000, 800), (12_345, 67_890, 700), (0, 5_000, 1600),
                                                  (250_000, 299_999, 300)])
def test_the_envelope_keeps_every_peak(first, last, columns):
    rng = np.random.default_rng(7)
    values = rng.lognormal(np.log(1e6), 0.2, 300_000).astype(np.int64)
    spikes = rng.integers(0, values.shape[0], 40)
    values[spikes] *= 50                                        # isolated one-iteration spikes
    values[rng.integers(0, values.shape[0], 40)] //= 20         # and dips
    series = _fed_in_batches(values)
    x, low, high = series.envelope(first, last, columns)
    assert x.shape[0] <= columns and np.all(np.diff(x) > 0)
    ms = series.y.data          # the series' own ms values (exact comparisons)
    # every column's extremes are those of the iterations it covers: the blocks around the range
    size = series.peaks.block_size(0)
    covered = ms[max(0, first - size ** 2):last + size ** 2]
    inner = ms[first:last]
    assert inner.max() <= high.max() <= covered.max()
    assert covered.min() <= low.min() <= inner.min()
    # each spike in view stands out in the column that holds it
    for index in spikes[(spikes >= first) & (spikes < last)]:
        column = np.argmin(np.abs(x - index))
        assert high[max(0, column - 1):column + 2].max() >= ms[index]


def test_incremental_blocks_match_a_full_rebuild():
    values = np.random.default_rng(1).integers(100_000, 9_000_000, size=100_003)
    incremental = _fed_in_batches(values, batch=1000)
    incremental.peaks.update(incremental.y.data)
    whole = LatencySeries()
    whole.add("measure", values)
    whole.peaks.update(whole.y.data)
    for level in range(whole.peaks.LEVELS):
        assert np.array_equal(incremental.peaks._min[level].data, whole.peaks._min[level].data)
        assert np.array_equal(incremental.peaks._max[level].data, whole.peaks._max[level].data)
    top = whole.peaks.LEVELS - 1
    assert whole.peaks._max[top].data.max() == values.max() / 1e6


def test_few_points_are_drawn_as_they_are():
    series = LatencySeries()
    series.add("measure", np.arange(1, 1001) * 1000)
    assert series.envelope(0, 1000, 800) is None               # fewer than two points per column
    assert series.envelope(0, 1000, 100) is not None


# -- y range, words ------------------------------------------------------------------------------------
def test_the_y_top_is_a_robust_percentile_not_the_cold_call_or_a_stall():
    series = LatencySeries()
    series.add("cold", [90_000_000])
    series.add("warmup", np.full(400, 2_000_000))
    values = np.full(200_000, 1_000_000)
    values[::50] = 30_000_000                                   # 2 % spikes
    series.add("measure", values)
    series.update_percentiles()
    everything = np.concatenate(([90.0], np.full(400, 2.0), values / 1e6))
    top = series.y_top(0, len(series))
    assert np.percentile(everything, 99) <= top < 90.0          # the p99 fits; the cold call is clipped
    assert series.running[1] <= top
    # a view of the measure phase only: its own p99, from a sample of at most RANGE_SAMPLE points
    assert series.y_top(10_000, 20_000) == pytest.approx(30.0 * LatencySeries.Y_HEADROOM)
    # one stalled window does not squash the plot: its running p99 is left above the top
    stalled = LatencySeries()
    calm = np.full(60_000, 1_000_000)
    calm[30_000:30_020] = 50_000_000                             # 20 slow calls: a few windows' p99 jump
    stalled.add("measure", calm)
    stalled.update_percentiles()
    assert stalled.p99.data.max() == pytest.approx(50.0) and stalled.y_top(0, 60_000) < 2.0
    # only the cold call so far: it sets the range
    cold = LatencySeries()
    cold.add("cold", [90_000_000])
    assert cold.y_top(0, 1) == pytest.approx(90.0 * LatencySeries.Y_HEADROOM)


def test_group_labels_never_overlap():
    width = lambda text: 7.0 * len(text)                      # noqa: E731
    groups = words.group_labels([0.0, 0.5, 3.0, 400.0, 405.0, 900.0],
                                ["cold call", "warm-up", "measure", "a", "b", "c"], width, gap=8)
    assert groups == [(0.0, "cold call · warm-up · measure"), (400.0, "a · b"), (900.0, "c")]
    for (x, text), (next_x, _) in zip(groups, groups[1:]):
        assert x + width(text) + 8 <= next_x


def test_eta_needs_both_targets():
    # 1000 iterations in 5 s (200/s); 10 000 wanted and 5 s: 45 s more for the count
    assert words.eta_seconds(1000, 5.0, 10_000, 5.0) == pytest.approx(45.0)
    assert words.eta_seconds(1000, 5.0, 100, 60.0) == pytest.approx(55.0)     # the duration is longer
    assert words.eta_seconds(1000, 5.0, 10_000_000, 5.0, max_duration_s=600) == pytest.approx(595.0)
    assert words.eta_seconds(0, 0.0, 100, 1.0) is None
    assert [words.eta_text(s) for s in (0.4, 12.2, 89, 185, 3 * 3600 + 300)] == [
        "finishing", "~12 s left", "~89 s left", "~3 min left", "~3 h 05 min left"]


def test_gpu_status_words_hide_nvmls_own():
    for raw, headline in (("unavailable: nvmlInit failed: NVML Shared Library Not Found", words.NO_GPU),
                          ("unavailable: nvmlInit failed: Driver Not Loaded", words.NO_GPU),
                          ("unavailable: GPU index 0 out of range: NVML sees 0 GPU(s)", words.NO_GPU),
                          ("unavailable: pynvml cannot be imported: No module named 'pynvml'", words.NO_NVML),
                          ("unavailable: nvmlInit failed: Insufficient Permissions", words.NO_NVML),
                          ("disabled (no GPU selected)", words.CPU_RUN)):
        shown, explanation, details = words.gpu_status(raw)
        assert shown == headline
        reason = raw.split(": ", 1)[-1]
        assert reason not in shown + explanation and reason in details
    assert words.gpu_status(None)[0] == words.BEFORE_RUN
    assert words.gpu_status("ok")[1] == "Waiting for the first GPU samples…"
    assert words.gpu_status(None, telemetry_seen=True)[0] == words.NO_GPU


def test_running_text_says_what_the_window_is():
    assert words.running_text(1.0, 2.0, 100, "measure", 100) == (
        "running p50 1.00 ms · p99 2.00 ms of the last 100 iterations (final p99 needs ≥ 662)")
    assert words.running_text(1.0, 2.0, 1000, "warmup", 5000) == (
        "running p50 1.00 ms · p99 2.00 ms of the last 1 000 warm-up iterations")
