"""The results views tell the truth at a glance: a fast variant that ruined its outputs is red, never
green, with the core's verdict beside its speed-up; the verdict and fidelity columns are on screen
at 1280 and 1920 px without scrolling; the Metrics tab puts a fidelity chart beside the speed bars
and no chart title runs into a value."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QBrush, QColor, QFontMetrics  # noqa: E402
import pyqtgraph as pg  # noqa: E402

from test_gui_results import add_run  # noqa: E402
from workbench.gui import plot_style  # noqa: E402
from workbench.gui.results.charts import FIDELITY, VERDICT_COLORS, ComparisonCharts  # noqa: E402
from workbench.gui.results.columns import COLUMNS, PRIORITY  # noqa: E402
from workbench.gui.results.table import COLUMN_INDEX, ResultsView  # noqa: E402
from workbench.results.compare import compare_runs  # noqa: E402
from workbench.results.verdict import LOSS, WIN  # noqa: E402


@pytest.fixture
def verdicts(store):
    """The issue's case: structured pruning made the CNN 3× faster and ruined it; int8 kept it."""
    ids = {
        "baseline": add_run(store, median_ms=3.0, seed=1, accuracy=0.997),
        "ruined": add_run(store, plugins=["prune:method=structured,amount=0.5", "fuse"], median_ms=1.0, seed=2,
                          top1=0.10, cosine=0.2, accuracy=0.10, size_bytes=380_000),
        "good": add_run(store, plugins=["quantize:method=dynamic_int8"], median_ms=1.5, seed=3, top1=0.998,
                        cosine=0.9999, accuracy=0.995, size_bytes=420_000),
    }
    return store, ids


def _cell(view: ResultsView, run_id: int, key: str, role=Qt.ItemDataRole.DisplayRole):
    return view.model.index(view.model.row_of(run_id), COLUMN_INDEX[key]).data(role)


def _color(value) -> QColor | None:
    if value is None:
        return None
    return value.color() if isinstance(value, QBrush) else QColor(value)


def test_a_ruined_fast_variant_is_red_with_its_verdict(qtbot, verdicts):
    store, ids = verdicts
    rows = {r["id"]: r for r in compare_runs(store, list(ids.values()))}
    ruined = rows[ids["ruined"]]
    assert ruined["speedup"] > 2.5 and ruined["speedup_significant"]          # a real speed-up ...
    assert ruined["verdict"]["level"] == LOSS and ruined["verdict"]["fidelity_ok"] is False   # ... and a loss

    view = ResultsView(store)
    qtbot.addWidget(view)
    for key in ("speedup", "verdict"):
        background = _color(_cell(view, ids["ruined"], key, Qt.ItemDataRole.BackgroundRole))
        assert background == plot_style.bad_background() != plot_style.good_background()
        assert background.red() > background.green()
    verdict = _cell(view, ids["ruined"], "verdict")
    assert verdict.startswith("✗") and ruined["verdict"]["text"] in verdict and "accuracy −89.7 pts" in verdict
    assert _cell(view, ids["ruined"], "speedup") == f"{ruined['speedup']:.2f}×"     # the interval is in the tooltip
    tip = _cell(view, ids["ruined"], "speedup", Qt.ItemDataRole.ToolTipRole)
    low, high = ruined["speedup_ci"]
    assert ruined["verdict"]["text"] in tip and f"[{low:.3f}×, {high:.3f}×]" in tip
    assert "gate: top-1 agreement ≥ 99 %" in tip and "10.0 %" in tip and "below the gate" in tip
    assert _cell(view, ids["ruined"], "verdict", Qt.ItemDataRole.ToolTipRole) == tip
    # an elided chain is whole in its tooltip
    assert _cell(view, ids["ruined"], "chain", Qt.ItemDataRole.ToolTipRole) == ruined["chain"]

    # the good one is green and says why
    assert rows[ids["good"]]["verdict"]["level"] == WIN
    assert _color(_cell(view, ids["good"], "speedup", Qt.ItemDataRole.BackgroundRole)) == plot_style.good_background()
    assert _cell(view, ids["good"], "verdict").startswith("✓")
    assert "passes" in _cell(view, ids["good"], "verdict", Qt.ItemDataRole.ToolTipRole)


def test_never_green_when_the_fidelity_failed(qtbot, verdicts):
    """Whatever the level says, a verdict whose fidelity failed is painted as a loss."""
    store, ids = verdicts
    view = ResultsView(store)
    qtbot.addWidget(view)
    row = view.model.comparison(view.model.row_of(ids["ruined"]))
    row["verdict"] = dict(row["verdict"], level=WIN)
    for key in ("speedup", "verdict"):
        assert _color(_cell(view, ids["ruined"], key, Qt.ItemDataRole.BackgroundRole)) != plot_style.good_background()


def test_verdict_and_fidelity_come_right_after_the_speedup():
    keys = [c.key for c in COLUMNS]
    assert keys[:6] == list(PRIORITY) == ["id", "chain", "speedup", "verdict", "top1", "accuracy"]


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_verdict_and_fidelity_columns_are_on_screen(make_workbench, verdicts, qtbot, size):
    store, ids = verdicts
    window = make_workbench(restore=False)
    window.resize(*size)
    qtbot.wait(50)                      # the default dock sizes are applied after the first show
    window.results.refresh()
    table = window.results.table
    qtbot.waitUntil(lambda: table.viewport().width() > 0)
    assert window.results.row_count() == 3
    assert table.horizontalScrollBar().value() == 0
    viewport = table.viewport().width()
    metrics = QFontMetrics(table.font())
    for key in PRIORITY:
        column = COLUMN_INDEX[key]
        left, width = table.columnViewportPosition(column), table.columnWidth(column)
        assert not table.isColumnHidden(column)
        assert left >= 0 and left + width <= viewport, f"{key} at {left}+{width} leaves a {viewport} px table"
        if key not in ("verdict", "chain"):   # these two may be elided (tooltips have them); the rest fit whole
            for run_id in ids.values():
                text = _cell(window.results, run_id, key)
                assert metrics.horizontalAdvance(text) <= width, f"{key} cuts {text!r} at {width} px"
    # the verdict is wide enough to read its mark and the speed-up
    assert table.columnWidth(COLUMN_INDEX["verdict"]) >= metrics.horizontalAdvance("✗ 3.00× faster") + 8


def test_columns_refit_when_the_table_widens(qtbot, verdicts):
    store, ids = verdicts
    view = ResultsView(store)
    qtbot.addWidget(view)
    view.resize(380, 300)
    view.show()
    qtbot.waitExposed(view)
    verdict = COLUMN_INDEX["verdict"]
    narrow = view.table.columnWidth(verdict)
    assert narrow < view.natural_width(verdict)            # squeezed to keep the fidelity columns in view
    view.resize(3000, 300)                                 # wider than all columns: the last one stretches
    qtbot.waitUntil(lambda: view.table.columnWidth(verdict) == view.natural_width(verdict), timeout=2000)
    view.resize(380, 300)                                  # and back: squeezed again (no user drag happened)
    qtbot.waitUntil(lambda: view.table.columnWidth(verdict) == narrow, timeout=2000)


def _shown_plots(charts: ComparisonCharts) -> list[pg.PlotItem]:
    return [charts.bar_plots[key] for key in charts.shown_bar_charts()]


@pytest.mark.parametrize("size", [(640, 260), (1000, 440)])
def test_fidelity_beside_speed_and_titles_clear_of_values(qtbot, verdicts, size):
    store, ids = verdicts
    charts = ComparisonCharts()
    qtbot.addWidget(charts)
    charts.resize(*size)
    charts.show()
    qtbot.waitExposed(charts)
    charts.show_runs(store, [ids["ruined"], ids["good"]])     # the baseline joins as the reference
    qtbot.wait(20)
    shown = charts.shown_bar_charts()
    assert shown[:2] == ["p50_ms", FIDELITY]
    # side by side: the fidelity chart in the latency chart's row, both fully in view
    speed, fidelity = (charts.bar_plots[k].sceneBoundingRect() for k in shown[:2])
    assert speed.top() == pytest.approx(fidelity.top()) and speed.right() <= fidelity.left() + 1
    assert fidelity.right() <= charts.metrics_view.width() + 1
    assert charts.fidelity_metric == "accuracy"
    assert charts.bar_values[FIDELITY][ids["ruined"]] == pytest.approx(10.0)      # %
    assert "−89.7 pts" in charts.bar_labels[FIDELITY][ids["ruined"]]
    # bars in the verdict's colour: the ruined variant red in every chart, even its (faster) latency
    for key in shown:
        bars = next(i for i in charts.bar_plots[key].items if isinstance(i, pg.BarGraphItem))
        colours = {QColor(b.color()).name() for b in bars.opts["brushes"]}
        assert VERDICT_COLORS[LOSS] in colours and VERDICT_COLORS[WIN] in colours
    # nothing on CPU runs: energy and p99 are left out, and the key says why
    assert "energy_j_per_inference" not in shown and "NVML" in charts.key_label.text()

    plots = _shown_plots(charts)
    for plot in plots:
        title = plot.titleLabel.sceneBoundingRect()
        values_axis = plot.getAxis("right")
        assert not plot.getAxis("left").labelText and not values_axis.labelText   # no rotated axis titles
        for part in (plot.vb, values_axis, plot.getAxis("left")):
            rect = part.mapRectToScene(part.rect())      # its laid-out box (the bounding rect has slack)
            assert rect.top() >= title.bottom() - 0.5, f"{plot.titleLabel.text} overlaps its values"
        # each value label is centred on its bar's row and a row is taller than the text: none spills up
        rows = len(charts.rows)
        font = values_axis.style["tickFont"] or values_axis.font()
        assert plot.vb.height() / rows >= QFontMetrics(font).height()
        # every value label fits in its axis (not clipped at the plot's edge)
        widest = max(QFontMetrics(font).horizontalAdvance(text) for text in charts.bar_labels[
            next(k for k, p in charts.bar_plots.items() if p is plot)].values())
        assert values_axis.width() >= widest
    for i, a in enumerate(plots):      # no chart reaches into another
        for b in plots[i + 1:]:
            assert not a.sceneBoundingRect().adjusted(1, 1, -1, -1).intersects(b.sceneBoundingRect())


def test_latency_axes_use_the_tables_unit(qtbot, store):
    """8 µs in the table is 8 µs on the axes, not 0.008 ms."""
    base = add_run(store, median_ms=0.008, seed=1)
    fast = add_run(store, plugins=["fuse"], median_ms=0.006, seed=2)
    charts = ComparisonCharts()
    qtbot.addWidget(charts)
    charts.show_runs(store, [base, fast])
    assert charts.cdf_unit == "µs" and charts.scatter_unit == "µs"
    x, _y = charts.cdf_curves[0].getData()
    assert 4 < x[len(x) // 2] < 12
    assert charts.scatter_plot.getAxis("bottom").labelUnits == "µs"
    assert charts.bar_labels["p50_ms"][base].endswith("µs")


def test_a_cross_runtime_chain_shows_both_ratios(qtbot, store):
    """onnx_export → int8 of a torch model: vs the PyTorch original and vs the fp32 model on ONNX
    Runtime, each named in the cell, each with its interval in the tooltip (issue 13 F)."""
    base = add_run(store, median_ms=4.0, seed=1)
    fp32 = add_run(store, plugins=["onnx_export"], median_ms=2.0, seed=2, runtime="onnxruntime")
    int8 = add_run(store, plugins=["onnx_export", "quantize:method=dynamic_int8"], median_ms=1.0, seed=3,
                   runtime="onnxruntime", top1=0.995)
    view = ResultsView(store)
    qtbot.addWidget(view)
    row = view.model.comparison(view.model.row_of(int8))
    assert row["baseline_id"] == base and row["runtime_baseline_id"] == fp32
    both = _cell(view, int8, "speedup")
    assert both == f"{row['speedup']:.2f}× vs torch · {row['runtime_speedup']:.2f}× vs ORT fp32"
    assert row["speedup"] == pytest.approx(4.0, rel=0.05) and row["runtime_speedup"] == pytest.approx(2.0, rel=0.05)
    tip = _cell(view, int8, "speedup", Qt.ItemDataRole.ToolTipRole)
    low, high = row["runtime_speedup_ci"]
    assert f"vs #{fp32} (the fp32 model on onnxruntime, same runtime), 95 % interval [{low:.3f}×, {high:.3f}×]" in tip
    assert f"vs baseline #{base} (the original on torch)" in tip
    # the conversion alone has one reference (the original); a same-runtime chain keeps its plain ratio
    assert _cell(view, fp32, "speedup") == f"{view.model.comparison(view.model.row_of(fp32))['speedup']:.2f}× vs torch"
    assert _cell(view, base, "speedup") == "baseline"
