"""The report's charts name a language model's fidelity by what it is: next-token agreement (the
comparison and Pareto panels plot ``fidelity_score``, which for a causal LM is its next-token
agreement), never "top-1 agreement"."""
from __future__ import annotations

from lm_run_fixtures import add_lm_run
from workbench.report.charts import _pareto_chart, _vs_baseline_chart, run_colors
from workbench.report.model import build_report


def test_report_charts_title_language_model_agreement(store):
    import matplotlib.pyplot as plt
    ids = [add_lm_run(store, seed=1),
           add_lm_run(store, ["quantize:method=dynamic_int8"], median_ms=1.2, agreement=0.985, seed=2)]
    report = build_report(store, ids)
    colors = run_colors(report)
    _chart, bars = _vs_baseline_chart(report, colors)
    titles = [ax.get_title() for ax in bars.axes]
    assert "next-token agreement" in titles and not any("top-1" in t for t in titles), titles
    _chart, pareto = _pareto_chart(report, colors)
    assert pareto.axes[0].get_ylabel().startswith("next-token agreement (%)")
    plt.close("all")
