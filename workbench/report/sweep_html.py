"""The HTML sweep section: the points table, the scaling curves (CI bands), throughput vs latency with
the sweet spot, the speed-vs-fidelity frontier with its knee, and each plugin's contribution.

Charts are matplotlib ``Figure`` objects exported as inline SVG, like the rest of the report
(``report.charts``); no pyplot.
"""
from __future__ import annotations

import html
import io
from typing import Any

from .. import format as fmt
from .charts import ACCENT, BAD, BASE_RC, GOOD, NEUTRAL, inline_svg
from .sweep_text import _findings, _ratio, _value_text, noise_lines, rule_word, special_points

MAX_SERIES = 8          # series per curve panel; more are summarised in the table only


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _svg(fig, prefix: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return inline_svg(buffer.getvalue(), prefix)


def _figure(width: float, height: float, left_in: float = 0.75):
    """Fixed margins in inches (room for 5-digit tick labels and the axis label)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left_in / width, right=0.98, top=0.86, bottom=0.2, wspace=0.3)
    return fig


def _positions(axis: dict) -> tuple[list, bool]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in axis["values"])
    return (list(axis["values"]) if numeric else list(range(len(axis["values"])))), numeric


def _series_label(fixed: dict) -> str:
    return ", ".join(f"{k}={_value_text(v) if not isinstance(v, tuple) else '→'.join(v)}" for k, v in fixed.items()) \
        or "all"


def _curve_chart(curve: dict, axis: dict, index: int) -> str | None:
    series = [s for s in curve["series"] if s["points"]][:MAX_SERIES]
    if not series:
        return None
    positions, numeric = _positions(axis)
    where = {v: p for v, p in zip(axis["values"], positions)}
    fig = _figure(8.0, 2.8)
    latency_ax, thr_ax = fig.subplots(1, 2)
    for s in series:
        xs = [where[p["x"]] for p in s["points"]]
        label = _series_label(s["fixed"])
        p50 = [p["p50_ms"] for p in s["points"]]
        line = latency_ax.plot(xs, p50, marker="o", label=label)[0]
        latency_ax.fill_between(xs, [p["p50_ci_ms"][0] for p in s["points"]],
                                [p["p50_ci_ms"][1] for p in s["points"]], color=line.get_color(), alpha=0.18)
        thr = [p["throughput"] for p in s["points"]]
        thr_ax.plot(xs, thr, marker="o", color=line.get_color(), label=label)
        cis = [p["throughput_ci"] or (p["throughput"],) * 2 for p in s["points"]]
        thr_ax.fill_between(xs, [c[0] for c in cis], [c[1] for c in cis], color=line.get_color(), alpha=0.18)
    for ax, title in ((latency_ax, "p50 latency (ms), 95 % CI"), (thr_ax, "throughput (samples/s), 95 % CI")):
        ax.set_title(title)
        ax.set_xlabel(curve["axis"])
        if numeric and len(positions) > 2 and max(positions) / max(min(positions), 1e-9) >= 16:
            ax.set_xscale("log", base=2)
        ax.set_xticks(positions)
        ax.set_xticklabels([_value_text(v) for v in axis["values"]])
    if len(series) > 1:
        thr_ax.legend(loc="best")
    return _svg(fig, f"sweep-curve-{index}")


def _sweet_spot_chart(analysis: dict) -> str | None:
    spot = analysis.get("sweet_spot") or {}
    if not spot.get("found"):
        return None
    metric = spot["metric"]
    key = "p50_ms" if metric == "p50" else f"{metric}_ms"
    groups: dict[str, list] = {}
    for e in analysis["points"]:
        if e["role"] == "point" and e.get("throughput") and e.get(key) is not None:
            fixed = {k: v for k, v in e["values"].items() if k != "batch"}
            groups.setdefault(_series_label(fixed), []).append(e)
    fig = _figure(5.6, 3.2)
    ax = fig.subplots()
    for label, members in list(groups.items())[:MAX_SERIES]:
        members.sort(key=lambda e: e[key])
        line = ax.plot([e[key] for e in members], [e["throughput"] for e in members], marker="o", label=label)[0]
        for e in members:
            if "batch" in e["values"]:
                ax.annotate(f"b{e['values']['batch']}", (e[key], e["throughput"]), fontsize=6.5,
                            xytext=(3, 3), textcoords="offset points", color=line.get_color())
    best = spot["best"]
    ax.plot([best["latency_ms"]], [best["throughput"]], marker="*", markersize=14, color=GOOD, linestyle="none",
            label=f"sweet spot (point {best['point']})")
    for g in spot["groups"]:
        ax.axvline(g["budget_ms"], color=BAD, linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"{metric} latency (ms)")
    ax.set_ylabel("samples/s")
    ax.set_title(f"throughput vs latency; budget {best['rule']} (dashed)")
    ax.legend(loc="best")
    return _svg(fig, "sweep-sweetspot")


def _frontier_chart(front: dict, index: int) -> str | None:
    if not front["points"]:
        return None
    fig = _figure(5.6, 3.2)
    ax = fig.subplots()
    on = [p for p in front["points"] if p["on_front"]]
    off = [p for p in front["points"] if not p["on_front"]]
    if off:
        ax.scatter([p["speedup"] for p in off], [100 * p["fidelity"] for p in off], color=NEUTRAL, label="dominated")
    on.sort(key=lambda p: p["speedup"])
    ax.plot([p["speedup"] for p in on], [100 * p["fidelity"] for p in on], marker="o", color=ACCENT, label="frontier")
    for p in front["points"]:
        ax.annotate(", ".join(_value_text(v) for k, v in p["values"].items() if "." in k), (p["speedup"],
                    100 * p["fidelity"]), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
    if front.get("knee") is not None:
        knee = next(p for p in front["points"] if p["point"] == front["knee"])
        ax.plot([knee["speedup"]], [100 * knee["fidelity"]], marker="D", markersize=9, color=GOOD, linestyle="none",
                label=f"knee (point {knee['point']})")
    ax.set_xlabel("speed-up vs baseline (×)")
    ax.set_ylabel(f"{front['fidelity_kind'] or 'fidelity'} (%)")
    ax.set_title("speed vs fidelity" + (f" ({_series_label(front['fixed'])})" if front["fixed"] else ""))
    ax.legend(loc="best")
    return _svg(fig, f"sweep-frontier-{index}")


def _points_table(analysis: dict) -> str:
    axes = [a["name"] for a in analysis["axes"]]
    sweet, front, knees = special_points(analysis)
    head = "".join(f"<th>{_e(h)}</th>" for h in ["#", "role", *axes, "chain", "status", "runs", "p50 [95% CI]", "p99",
                                                   "samples/s", "speed-up [95% CI]", "noise rule", "fidelity", "verdict"])
    rows = []
    for e in analysis["points"]:
        marks = " ★ sweet spot" if e["index"] in sweet else ""
        marks += " ◆ knee" if e["index"] in knees else (" · frontier" if e["index"] in front else "")
        level = (e.get("verdict") or {}).get("level", "")
        cells = [f"{e['index']}{marks}", e["role"], *[_value_text(e["values"].get(a, "")) for a in axes],
                 " → ".join(e["combo"]) if e.get("combo") is not None else e["chain"], e["status"],
                 len(e["run_ids"]), f"{fmt.ms(e.get('p50_ms'))} {fmt.ci(e.get('p50_ci_ms'))}" if e.get("p50_ms") else "—",
                 fmt.ms(e.get("p99_ms")), fmt.num(e.get("throughput"), ".1f"), _ratio(e.get("speedup"), e.get("speedup_ci")),
                 rule_word(e), "—" if e.get("fidelity") is None else f"{100 * e['fidelity']:.1f} %",
                 (e.get("verdict") or {}).get("text", "")]
        rows.append(f'<tr class="{_e(level)}">' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return f'<div class="table-wrap"><table class="cmp"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def sweep_section(analysis: dict) -> str:
    """``<section id="sweep">``: everything the sweep shows, placed first in the report."""
    import matplotlib
    axes = {a["name"]: a for a in analysis["axes"]}
    charts = []
    with matplotlib.rc_context(BASE_RC):
        for i, curve in enumerate(analysis.get("curves") or []):
            charts.append(_curve_chart(curve, axes[curve["axis"]], i))
        charts.append(_sweet_spot_chart(analysis))
        for i, front in enumerate(analysis.get("frontier") or []):
            charts.append(_frontier_chart(front, i))
    noise = analysis["noise"]
    axes_text = "; ".join(f"{a['name']} = {', '.join(_value_text(v) for v in a['values'])}" for a in analysis["axes"])
    parts = ['<section id="sweep">', f"<h2>Sweep: {_e(analysis['label'])}</h2>",
             f"<p>{_e(analysis['model'])} · {_e(analysis['status'])} · axes: {_e(axes_text or 'combinations only')} · "
             f"--repeat {analysis['repeat']} · "
             f"{_e(', '.join(f'{k} {v}' for k, v in analysis['counts'].items() if v))}</p>",
             "".join(f'<p class="note">{_e(line)}</p>' for line in noise_lines(noise)),
             _points_table(analysis)]
    findings = _findings(analysis)
    if findings:
        parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in findings) + "</ul>")
    for chart in filter(None, charts):
        parts.append(f'<figure class="chart">{chart}</figure>')
    failures = [(e["index"], f) for e in analysis["points"] for f in e["failures"]]
    if failures:
        parts.append("<h3>Failed points</h3><ul>" + "".join(
            f"<li>point {i}, repeat {f['repeat']}: {_e(f['status'])}: {_e(f['error'])}</li>" for i, f in failures) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)
