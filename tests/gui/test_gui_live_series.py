"""The Live dock's data without Qt (workbench.gui.live.series): phases, running percentiles,
histogram, and no Qt import."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

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
    assert series.phase_high == pytest.approx(1.0)
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
    code = ("import sys, workbench.gui.live.series, workbench.gui.results.columns; "
            "loaded = [m for m in ('PySide6', 'pyqtgraph', 'torch') if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
