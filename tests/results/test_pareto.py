"""results.pareto: the one latency-vs-fidelity Pareto rule (report badge and GUI chart)."""
from __future__ import annotations

import numpy as np

from workbench.results.distribution import latency_cdf
from workbench.results.pareto import pareto_front, pareto_fronts


def test_pareto_front():
    points = [(1.0, 0.90), (2.0, 0.95), (1.5, 0.85), (3.0, 0.99), (2.5, 0.94), (0.5, 0.50)]
    assert pareto_front(points) == [5, 0, 1, 3]            # sorted by latency
    # missing / non-finite coordinates are left out, duplicates on the front are all kept
    assert pareto_front([(1.0, None), (None, 1.0), (float("nan"), 1.0), (2.0, 0.9)]) == [3]
    assert pareto_front([(1.0, 0.9), (float("inf"), 1.0)]) == [0]
    assert pareto_front([(1.0, 0.9), (1.0, 0.9), (1.0, 0.8)]) == [0, 1]
    assert pareto_front([]) == []
    # same latency: only the most faithful counts; same fidelity: only the fastest
    assert pareto_front([(1.0, 0.8), (1.0, 0.9), (2.0, 0.9)]) == [1]


def _dominated(a, b) -> bool:
    """b dominates a: at least as fast and as faithful, strictly better in one."""
    return b[0] <= a[0] and b[1] >= a[1] and (b[0] < a[0] or b[1] > a[1])


def test_pareto_front_agrees_with_the_definition():
    rng = np.random.default_rng(7)
    for _ in range(200):
        points = [tuple(p) for p in rng.integers(0, 6, size=(int(rng.integers(1, 12)), 2)).astype(float)]
        expected = {i for i, a in enumerate(points) if not any(_dominated(a, b) for b in points)}
        assert set(pareto_front(points)) == expected


def test_one_front_per_model():
    # fidelity is agreement with each model's own unoptimized output: models never compete
    points = [(1.0, 1.0), (0.5, 0.9), (0.2, 1.0), (0.4, 0.5), (None, None)]
    models = ["a", "a", "b", "b", "c"]
    assert pareto_fronts(points, models) == {"a": [1, 0], "b": [2]}
    assert pareto_front(points) == [2]                      # across models, b's baseline would hide a's runs


def test_latency_cdf_is_the_reports_quantiles_and_the_sorted_values():
    ns = np.random.default_rng(1).integers(1_000_000, 5_000_000, size=1234)
    values, fractions = latency_cdf(ns, 101)
    assert np.array_equal(values, np.quantile(ns / 1e6, np.linspace(0, 1, 101)))   # report/model.py's reduction
    assert fractions[0] == 0 and fractions[-1] == 1
    values, _ = latency_cdf(ns, len(ns))
    assert np.allclose(values, np.sort(ns) / 1e6)
    assert [a.size for a in latency_cdf([], 10)] == [0, 0]
