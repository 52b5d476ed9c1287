"""A language model's fidelity chart is titled by what it plots: next-token agreement (the fraction of
held-out positions where the variant predicts the unoptimized model's token), not top-1 agreement,
in the GUI's Metrics tab and its latency-vs-fidelity scatter. No worker process starts here."""
from __future__ import annotations

import pytest

from lm_run_fixtures import add_lm_run
from test_gui_results import add_run
from workbench.gui.results.charts import FIDELITY, ComparisonCharts, agreement_title


def test_language_model_charts_say_next_token_agreement(qtbot, store):
    base = add_lm_run(store, seed=1)
    int8 = add_lm_run(store, ["quantize:method=dynamic_int8"], median_ms=1.2, agreement=0.985, seed=2)
    charts = ComparisonCharts()
    qtbot.addWidget(charts)
    charts.show_runs(store, [base, int8])
    assert charts.fidelity_metric == "top1_agreement"
    assert charts.bar_plots[FIDELITY].titleLabel.text.startswith("Next-token agreement")
    assert charts.bar_values[FIDELITY][int8] == pytest.approx(98.5)
    assert charts.scatter_metric == "top1_agreement"
    assert charts.scatter_plot.getAxis("left").labelText == "next-token agreement"

    # a classifier keeps its name; a selection of both says both
    cnn = add_run(store, median_ms=3.0, seed=3, accuracy=None)     # no labels: top-1 agreement
    charts.show_runs(store, [cnn])
    assert charts.bar_plots[FIDELITY].titleLabel.text.startswith("Top-1 agreement")
    charts.show_runs(store, [cnn, int8])
    assert charts.bar_plots[FIDELITY].titleLabel.text.startswith("Top-1 / next-token agreement")


def test_agreement_title_reads_the_rows():
    lm = {"top1_agreement": 0.98, "next_token_agreement": 0.98}
    assert agreement_title([lm, lm]) == "Next-token agreement"
    assert agreement_title([{"top1_agreement": 0.9}]) == "Top-1 agreement"
    assert agreement_title([lm, {"top1_agreement": 0.9}, {"cosine": 0.9}]) == "Top-1 / next-token agreement"
