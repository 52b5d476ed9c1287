"""The sweep's statistics and views: the between-process noise rule (and the constant band below 3
processes), scaling curves with CIs, the sweet spot under a latency budget, the frontier's knee and
per-plugin contributions. Synthetic figures where the answer is known; fake-session sweeps for the
whole analysis (tests/sweep_fixtures.py)."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from sweep_fixtures import FakeSession
from workbench.engine.executors import LocalExecutor
from workbench.engine.sweep import create, plan_sweep, run_sweep
from workbench.errors import SpecError
from workbench.results.repeat_stats import (BETWEEN_PROCESS_RULE, RULE_CONSTANT, RULE_MEASURED, between_process_ci,
                                            process_spread, ratio_between_processes, speedup_for_point,
                                            t_quantile_95)
from workbench.results.stats import NOISE_RULE
from workbench.results.sweep_analysis import (analyze_sweep, contributions, knee_index, parse_latency_budget,
                                              sweet_spot)
from workbench.spec import PluginStep, RunSpec


def lat(median: float, ci: float = 0.001, batch: int = 1, **extra) -> dict:
    return {"median_ms": median, "median_ci_ms": (median * (1 - ci), median * (1 + ci)), "batch": batch, **extra}


def test_t_quantiles():
    assert t_quantile_95(1) == pytest.approx(12.706) and t_quantile_95(4) == pytest.approx(2.776)
    assert t_quantile_95(4.9) == t_quantile_95(4)         # a fractional df rounds down: wider, safe
    assert t_quantile_95(1000) == pytest.approx(1.95996, abs=1e-4)


def test_the_between_process_interval_covers_the_truth_at_about_95_percent():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):        # true speed-up 1.5, 2 % process noise, 5 processes a side
        base = 3.0 * np.exp(rng.normal(0, 0.02, 5))
        var = 2.0 * np.exp(rng.normal(0, 0.02, 5))
        low, high = ratio_between_processes(base, var)["speedup_ci"]
        hits += low <= 1.5 <= high
    assert 0.90 <= hits / 400 <= 0.99


def test_measured_noise_decides_significance_not_the_constant_band():
    # 1 % apart with 0.1 % spread: real, though inside the ±2 % band the constant rule would apply.
    tight = ratio_between_processes([1.010, 1.011, 1.009, 1.010], [1.000, 1.001, 0.999, 1.000])
    assert tight["significant"] and tight["rule"] == RULE_MEASURED and tight["noise_rule"] == BETWEEN_PROCESS_RULE
    # 5 % apart with 6 % spread between processes: not shown, though outside the ±2 % band.
    loose = ratio_between_processes([1.05, 1.12, 0.99], [1.0, 0.94, 1.06])
    assert not loose["significant"]
    assert process_spread([1.0, 1.0, 1.0]) == 0.0 and process_spread([1.0]) is None
    center, (low, high) = between_process_ci([2.0, 2.02, 1.98])
    assert low < center < high and center == pytest.approx(2.0, rel=1e-3)


def test_fewer_than_3_processes_fall_back_to_the_constant_band():
    two = speedup_for_point([lat(2.0), lat(2.02)], [lat(1.0), lat(1.01)])
    assert two["rule"] == RULE_CONSTANT and two["noise_rule"] == NOISE_RULE and two["noise_floor"] == 0.02
    assert "fewer than 3" in two["rule_reason"]
    inside = speedup_for_point([lat(1.0)], [lat(0.99)])          # 1 % faster: inside the ±2 % band
    assert not inside["significant"]
    three = speedup_for_point([lat(2.0)] * 2 + [lat(2.01)], [lat(1.0), lat(1.01), lat(0.99)])
    assert three["rule"] == RULE_MEASURED and three["speedup"] == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("text, expected", [(None, ("factor", 2.0)), ("3x", ("factor", 3.0)), ("5ms", ("ms", 5.0)),
                                            ("0.5", ("ms", 0.5))])
def test_latency_budget_parsing(text, expected):
    assert parse_latency_budget(text) == expected


@pytest.mark.parametrize("text", ["fast", "-2x", "0ms", "nan"])
def test_bad_latency_budgets_are_refused(text):
    with pytest.raises(SpecError, match="latency-budget"):
        parse_latency_budget(text)


def _entry(index, batch, p50, p99=None, threads=1):
    return {"index": index, "role": "point", "values": {"batch": batch, "threads": threads}, "combo": None,
            "p50_ms": p50, "p99_ms": p99, "batch": batch, "throughput": batch * 1e3 / p50}


def test_sweet_spot_is_the_highest_throughput_within_twice_the_batch_1_p99():
    entries = [_entry(0, 1, 1.0, 1.5), _entry(1, 8, 1.8, 2.9), _entry(2, 32, 4.0, 6.0), _entry(3, 64, 7.0, 9.0)]
    spot = sweet_spot(entries)
    assert spot["found"] and spot["metric"] == "p99" and spot["best"]["point"] == 1    # 2.9 <= 3.0 < 6.0
    assert spot["best"]["budget_ms"] == pytest.approx(3.0) and spot["note"] is None
    assert sweet_spot(entries, "5x")["best"]["point"] == 2
    assert sweet_spot(entries, "10ms")["best"]["point"] == 3


def test_sweet_spot_falls_back_to_a_reported_percentile_and_says_so():
    entries = [_entry(0, 1, 1.0), _entry(1, 8, 1.9), _entry(2, 32, 4.0)]      # no p99 (short runs)
    spot = sweet_spot(entries)
    assert spot["metric"] == "p50" and spot["best"]["point"] == 1 and "662" in spot["note"]
    no_batch_1 = sweet_spot([_entry(1, 8, 1.9), _entry(2, 32, 4.0)])
    assert not no_batch_1["found"] and "no batch-1 point" in no_batch_1["reason"]


def test_knee_is_where_more_speed_starts_to_cost_fidelity():
    assert knee_index([1.1, 1.5, 1.6, 2.2], [1.0, 0.99, 0.90, 0.50]) == 1
    assert knee_index([1.6, 1.1, 2.2, 1.5], [0.90, 1.0, 0.50, 0.99]) == 3       # in any order
    assert knee_index([1.0, 2.0], [1.0, 0.5]) is None                  # two points: no bend to find
    assert knee_index([1.0, 2.0, 3.0], [1.0, 0.5, 0.0]) is None        # a straight line has no knee


def test_contributions_recover_each_plugins_effect_from_a_factorial():
    def e(combo, speedup, fidelity, role="point"):
        return {"role": role, "values": {}, "combo": combo, "speedup": speedup, "fidelity": fidelity}
    entries = [e([], None, None, "baseline"), e(["fuse"], 1.2, 1.0), e(["prune"], 2.0, 0.9),
               e(["fuse", "prune"], 2.4, 0.9)]
    found = {c["plugin"]: c for c in contributions(entries)}
    assert found["fuse"]["speedup_factor"] == pytest.approx(1.2) and found["fuse"]["fidelity_delta"] == pytest.approx(0)
    assert found["prune"]["speedup_factor"] == pytest.approx(2.0)
    assert found["prune"]["fidelity_delta"] == pytest.approx(-0.1) and found["prune"]["pairs"] == 2


def _sweep(store, grid, repeat=1, plugins=(), all_combinations=False, noise=0.01):
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep.parse(p) for p in plugins], threads=1)
    plan = plan_sweep(store, spec, grid, repeat=repeat, all_combinations=all_combinations)
    sweep_id = create(store, plan)
    return run_sweep(store, sweep_id, LocalExecutor(FakeSession(store, process_noise=noise)), threading.Event())


def test_a_repeat_5_sweep_uses_the_measured_rule_everywhere(store):
    record = _sweep(store, ["prune.amount=0.1,0.3,0.5"], repeat=5, plugins=["prune:method=structured,finetune=off"])
    analysis = analyze_sweep(store, record)
    assert analysis["noise"]["rule"] == RULE_MEASURED
    assert 0.2 < analysis["noise"]["measured_spread_pct_median"] < 3.0        # the fake's 1 % noise, measured
    points = [p for p in analysis["points"] if p["role"] == "point"]
    assert all(p["rule"] == RULE_MEASURED and p["ci_rule"] == RULE_MEASURED and p["processes"] == 5 for p in points)
    for p, amount in zip(points, (0.1, 0.3, 0.5)):
        assert p["speedup_ci"][0] <= 1 / (1 - amount) * 1.05 and p["speedup_ci"][1] >= 1 / (1 - amount) * 0.95
        assert p["fidelity"] == pytest.approx(1 - amount ** 2) and p["fidelity_kind"] == "top-1 agreement"
    front = analysis["frontier"][0]
    assert sorted(front["front"]) == [p["index"] for p in points] and front["knee"] == points[1]["index"]


def test_a_batch_sweep_has_curves_and_a_sweet_spot(store):
    record = _sweep(store, ["batch=1,8,32,64", "threads=1,2"], noise=0.0)
    analysis = analyze_sweep(store, record)
    assert analysis["noise"]["rule"] == RULE_CONSTANT
    curves = {c["axis"]: c for c in analysis["curves"]}
    batch = curves["batch"]["series"]
    assert [s["fixed"] for s in batch] == [{"threads": 1}, {"threads": 2}]
    xs = [p["x"] for p in batch[0]["points"]]
    thr = [p["throughput"] for p in batch[0]["points"]]
    assert xs == [1, 8, 32, 64] and thr == sorted(thr)                    # throughput grows with the batch
    assert all(p["p50_ci_ms"][0] <= p["p50_ms"] <= p["p50_ci_ms"][1] for p in batch[0]["points"])
    spot = analysis["sweet_spot"]          # latency 1.05 ms at batch 1: budget 2.1 ms; batch 8: 1.4, 32: 2.6 ms
    assert spot["found"] and spot["best"]["values"]["batch"] == 8


def test_all_combinations_contributions_from_a_sweep(store):
    record = _sweep(store, ["batch=4"], plugins=["fuse:method=conv_bn", "prune:method=structured,amount=0.5,finetune=off"],
                    all_combinations=True, noise=0.0)
    found = {c["plugin"]: c for c in analyze_sweep(store, record)["contributions"]}
    assert found["fuse"]["speedup_factor"] == pytest.approx(1.25, rel=0.01)
    assert found["prune"]["speedup_factor"] == pytest.approx(2.0, rel=0.01)
    assert math.isclose(found["prune"]["fidelity_delta"], -0.25, abs_tol=1e-9)
