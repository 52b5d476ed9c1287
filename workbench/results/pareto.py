"""The latency-vs-fidelity Pareto front: the one rule behind the report's "Pareto front" badge and
the GUI's trade-off chart.

A run is on the front when no other run is at least as fast (lower latency) and at least as
faithful (higher fidelity), and strictly better in one of the two; identical runs on the front are
all kept. Fidelity is measured against each model's own unoptimized output, so runs of different
models never compete: ``pareto_fronts`` takes one front per model.
"""
from __future__ import annotations

import math
from typing import Hashable, Sequence

__all__ = ["pareto_front", "pareto_fronts"]

Point = tuple[float | None, float | None]


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated ``(latency, fidelity)`` points, sorted by latency.

    A point with a missing or non-finite coordinate cannot be ranked and is left out (it is
    neither on the front nor hides anyone from it)."""
    valid = [(float(x), float(y), i) for i, (x, y) in enumerate(points)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    # Fastest first, most faithful first among equally fast: a point is on the front exactly when
    # it is more faithful than every point before it (or identical to the last one taken).
    valid.sort(key=lambda p: (p[0], -p[1]))
    front: list[int] = []
    best_y = -math.inf
    last: tuple[float, float] | None = None
    for x, y, i in valid:
        if y > best_y:
            front.append(i)
            best_y = y
            last = (x, y)
        elif (x, y) == last:
            front.append(i)
    return front


def pareto_fronts(points: Sequence[Point], groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """``pareto_front`` within each group (``groups[i]`` is point i's model): ``{group: indices into
    points, sorted by latency}``, groups in order of first appearance, groups with no rankable
    point left out."""
    members: dict[Hashable, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    fronts = {}
    for group, indices in members.items():
        front = [indices[j] for j in pareto_front([points[i] for i in indices])]
        if front:
            fronts[group] = front
    return fronts
