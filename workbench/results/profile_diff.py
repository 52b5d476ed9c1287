"""Why one run is faster or slower than another, from their per-op profiles (torch-free).

``diff_profiles`` lines up two stored op tables (``result["profile"]``, written by
``workbench.worker.profile``), groups the ops into faster / slower / new / gone / unchanged and
says how much of the change in profiled time per iteration each op explains;
``explain_diff`` says it in one sentence. The CLI (``workbench profile B --vs A``), the reports
and the GUI's Profile tab read the same dicts.
"""
from __future__ import annotations

from typing import Any

from ..errors import WorkbenchError
from ..format import ms

GROUPS = ("slower", "new", "faster", "gone", "unchanged")
UNCHANGED_FRACTION = 0.01      # an op moving less than 1 % of the larger total is "unchanged"
LEAD_SHARE = 0.7               # the sentence names the ops that explain this much of the change ...
LEAD_MAX = 3                   # ... at most this many


class ProfileMismatch(WorkbenchError):
    """Two profiles that cannot be compared (different models or devices)."""


def check_comparable(a: Any, b: Any) -> list[str]:
    """Refuse to compare runs of different models or devices (their ops say nothing about each
    other); the notes for what may still differ (the runtime: op names differ)."""
    def where(run: Any) -> str:
        return f"run #{run.id} is {run.model} on {run.device}"

    if a.model != b.model:
        raise ProfileMismatch(f"--vs compares variants of one model on one device, but {where(b)} and {where(a)}: "
                              "their ops say nothing about each other; pick a run of the same model")
    if (a.device or "cpu") != (b.device or "cpu"):
        raise ProfileMismatch(f"--vs compares variants of one model on one device, but {where(b)} and {where(a)}: "
                              "a device changes every kernel; profile both on the same device")
    notes = []
    source_a, source_b = (((r.result or {}).get("profile") or {}).get("source") for r in (a, b))
    if source_a and source_b and source_a != source_b:
        notes.append(f"run #{a.id} was profiled by {source_a} and run #{b.id} by {source_b}: their op names differ, "
                     "so most ops show as new or gone")
    return notes


def diff_profiles(before: dict, after: dict) -> dict:
    """Per-op changes from ``before`` (run A) to ``after`` (run B), per iteration.

    ``{"total_before_us", "total_after_us", "change_us", "ratio", "ops": [{"op", "group",
    "before_us", "after_us", "change_us", "share_of_change", "calls_before", "calls_after",
    "share_after"}], "groups": {group: {"ops", "change_us", "share_of_change"}}}``;
    ``share_of_change`` is the op's change over the total change (signed: an op that moved the
    other way has a negative share)."""
    rows_a = {r["op"]: r for r in before.get("ops") or []}
    rows_b = {r["op"]: r for r in after.get("ops") or []}
    total_a, total_b = float(before.get("total_us") or 0.0), float(after.get("total_us") or 0.0)
    change = total_b - total_a
    still = UNCHANGED_FRACTION * max(total_a, total_b)
    ops = []
    for name in list(rows_a) + [n for n in rows_b if n not in rows_a]:
        a, b = rows_a.get(name), rows_b.get(name)
        us_a, us_b = (float(r["time_us"]) if r else 0.0 for r in (a, b))
        delta = us_b - us_a
        if a is None:
            group = "new"
        elif b is None:
            group = "gone"
        elif abs(delta) < still:
            group = "unchanged"
        else:
            group = "slower" if delta > 0 else "faster"
        ops.append({"op": name, "group": group, "before_us": round(us_a, 3), "after_us": round(us_b, 3),
                    "change_us": round(delta, 3), "share_of_change": _share(delta, change),
                    "calls_before": a["calls"] if a else 0.0, "calls_after": b["calls"] if b else 0.0,
                    "share_after": round(us_b / total_b, 5) if total_b else 0.0})
    ops.sort(key=lambda r: -abs(r["change_us"]))
    groups = {}
    for group in GROUPS:
        members = [r for r in ops if r["group"] == group]
        moved = sum(r["change_us"] for r in members)
        groups[group] = {"ops": len(members), "change_us": round(moved, 3), "share_of_change": _share(moved, change)}
    return {"total_before_us": round(total_a, 3), "total_after_us": round(total_b, 3), "change_us": round(change, 3),
            "ratio": round(total_b / total_a, 4) if total_a else None, "ops": ops, "groups": groups}


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def explain_diff(diff: dict, name_before: str = "run A", name_after: str = "run B") -> str:
    """One sentence: which ops make ``name_after`` slower or faster than ``name_before``, and what
    moved the other way (a new int8 kernel can cost while the fp32 matmul it replaced is gone)."""
    change, ratio = diff["change_us"], diff.get("ratio")
    if not ratio or not diff["ops"]:
        return f"{name_after} and {name_before} have no profiled ops to compare"
    if abs(change) < UNCHANGED_FRACTION * max(diff["total_before_us"], diff["total_after_us"]):
        return (f"{name_after} and {name_before} spend the same time in their ops "
                f"({_us(diff['total_after_us'])} vs {_us(diff['total_before_us'])} per iteration)")
    slower = change > 0
    lead = _leading([r for r in diff["ops"] if r["change_us"] != 0 and (r["change_us"] > 0) == slower])
    against = _leading([r for r in diff["ops"] if r["change_us"] != 0 and (r["change_us"] > 0) != slower])
    moved = sum(r["change_us"] for r in lead)
    if slower:
        where = sum(r["after_us"] for r in lead) / diff["total_after_us"]
        calls = sum(r["calls_after"] for r in lead)
        sentence = (f"{name_after} is {ratio:.2f}× slower than {name_before} in the profile (+{_us(change)} per "
                    f"iteration): {_names(lead)} ({_how(lead)}) take {where:.0%} of its time "
                    f"({_calls(calls)} per iteration, +{_us(moved)})")
    else:
        where = sum(r["before_us"] for r in lead) / diff["total_before_us"]
        calls = sum(r["calls_before"] for r in lead)
        sentence = (f"{name_after} is {1 / ratio:.2f}× faster than {name_before} in the profile ({_us(change)} per "
                    f"iteration): {_names(lead)} ({_how(lead)}) took {where:.0%} of {name_before}'s time "
                    f"({_calls(calls)} per iteration) and save {_us(-moved)}")
    pushback = sum(r["change_us"] for r in against)
    if against and abs(pushback) >= 0.1 * abs(change):
        sign = "+" if pushback > 0 else ""
        sentence += f", while {_names(against)} ({_how(against)}) moved the other way ({sign}{_us(pushback)})"
    return sentence


def _leading(rows: list[dict]) -> list[dict]:
    """The fewest ops (at most LEAD_MAX) that hold LEAD_SHARE of these rows' movement."""
    rows = sorted(rows, key=lambda r: -abs(r["change_us"]))
    gross = sum(abs(r["change_us"]) for r in rows)
    chosen, held = [], 0.0
    for row in rows:
        chosen.append(row)
        held += abs(row["change_us"])
        if held >= LEAD_SHARE * gross or len(chosen) == LEAD_MAX:
            break
    return chosen


def _names(rows: list[dict]) -> str:
    return "/".join(r["op"] for r in rows)


def _how(rows: list[dict]) -> str:
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    words = {"new": "new", "gone": "gone", "slower": "slower", "faster": "faster", "unchanged": "about the same"}
    return " or ".join(words[g] for g in groups)


def top_ops(profile: dict, n: int = 15) -> list[dict]:
    """The ``n`` most expensive ops of a stored profile (already sorted by time)."""
    return list(profile.get("ops") or [])[:n]


def _us(value: float) -> str:
    return ("−" if value < 0 else "") + ms(abs(value) / 1000)


def _calls(calls: float) -> str:
    text = f"{calls:.0f}" if abs(calls - round(calls)) < 0.05 else f"{calls:.1f}"
    return f"{text} call{'' if text == '1' else 's'}"
