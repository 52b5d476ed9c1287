"""A generate run's comparison carries two ratios: ``speedup`` per decoded token and the prefill's
(time to first token), each with its interval; the CLI prints both, the report and CSV carry both."""
from __future__ import annotations

import numpy as np

from workbench.results.compare import comparison_row
from workbench.results.stats import compute_latency_stats
from workbench.results.store import ResultsStore
from workbench.spec import PluginStep, RunSpec


def _generate_run(store: ResultsStore, plugins: tuple, decode_ms: float, prefill_ms: float, seed: int):
    spec = RunSpec(model="demo:tiny-lm", plugins=[PluginStep.parse(p) for p in plugins], scenario="generate")
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), "torch")
    rng = np.random.default_rng(seed)
    decode = (rng.lognormal(np.log(decode_ms), 0.03, 300) * 1e6).astype(np.int64)
    prefill = (rng.lognormal(np.log(prefill_ms), 0.03, 12) * 1e6).astype(np.int64)
    store.finish_run(run_id, "done", {
        "latency": compute_latency_stats(decode, batch=1, seed=0).to_dict(), "threads": 1, "runtime_name": "torch",
        "scenario": "generate",
        "generation": {"prefill": compute_latency_stats(prefill, batch=1, seed=0).to_dict(),
                       "ttft_ms": prefill_ms, "decode_tokens_per_s": 1000 / decode_ms}})
    return store.get_run(run_id)


def test_a_generate_comparison_has_the_prefill_ratio_beside_the_decode_ratio(tmp_path):
    from workbench.cli_output import _prefill_text
    store = ResultsStore(tmp_path / "runs.sqlite")
    baseline = _generate_run(store, (), decode_ms=13.5, prefill_ms=49.6, seed=0)
    pruned = _generate_run(store, ("prune:method=structured,amount=0.3",), decode_ms=12.1, prefill_ms=38.6, seed=1)
    row = comparison_row(pruned, baseline)
    assert 1.08 < row["speedup"] < 1.14                      # per decoded token
    assert 1.25 < row["prefill_speedup"] < 1.33              # time to first token
    low, high = row["prefill_speedup_ci"]
    assert low < row["prefill_speedup"] < high
    assert _prefill_text(row).startswith(" per decoded token, prefill 1.2")
    assert comparison_row(baseline, None)["prefill_speedup"] is None     # nothing to compare with
    store.close()


def test_the_results_table_tooltip_names_both_ratios(tmp_path):
    from workbench.gui.results.columns import verdict_tip      # pure: no Qt in columns.py
    store = ResultsStore(tmp_path / "runs.sqlite")
    baseline = _generate_run(store, (), decode_ms=13.5, prefill_ms=49.6, seed=0)
    pruned = _generate_run(store, ("prune:method=structured,amount=0.3",), decode_ms=12.1, prefill_ms=38.6, seed=1)
    tip = verdict_tip(comparison_row(pruned, baseline))
    assert "per decoded token; prefill (time to first token): 1.2" in tip and "95 % interval" in tip
    store.close()


def test_the_report_text_names_both_ratios():
    from workbench.report.text import speedup_text
    comp = {"speedup": 1.11, "speedup_ci": [1.09, 1.13], "prefill_speedup": 1.29, "prefill_speedup_ci": [1.25, 1.32]}
    assert speedup_text(comp) == "1.11× [1.09, 1.13] per decoded token, prefill 1.29× [1.25, 1.32]"
    assert speedup_text({**comp, "prefill_speedup": None}) == "1.11× [1.09, 1.13]"


def test_the_verdict_of_a_generate_run_names_the_prefill_ratio_too(tmp_path):
    store = ResultsStore(tmp_path / "runs.sqlite")
    baseline = _generate_run(store, (), decode_ms=13.5, prefill_ms=49.6, seed=0)
    pruned = _generate_run(store, ("prune:method=structured,amount=0.3",), decode_ms=12.1, prefill_ms=38.6, seed=1)
    text = comparison_row(pruned, baseline)["verdict"]["text"]
    assert text.startswith("1.1") and "faster decode (1.2" in text and "× prefill)" in text, text
    store.close()
