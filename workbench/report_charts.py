"""The report's charts, drawn with matplotlib from the report data model (never from the store).

One figure per chart type, whatever the number of runs (a 50-run report draws four figures):
latency distributions, key metrics vs baseline, latency-vs-fidelity with the Pareto front, and
telemetry over the run. ``render_charts(report, "svg")`` gives inline-ready SVG text (HTML);
``render_charts(report, "png", dpi=200)`` gives PNG bytes (PDF). No pyplot: figures are plain
``matplotlib.figure.Figure`` objects, so no GUI backend is touched and threads are safe.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

CDF_MAX_RUNS = 12        # above this, the CDF panel is dropped (the box plot scales, spaghetti does not)
LEGEND_MAX_RUNS = 12
BASE_RC = {
    "font.family": "DejaVu Sans", "font.size": 8.5, "axes.titlesize": 9.5, "axes.titleweight": "bold",
    "axes.labelsize": 8.5, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e3e6ea", "grid.linewidth": 0.6, "axes.edgecolor": "#9aa3ad", "legend.fontsize": 7.5,
    "legend.frameon": False, "svg.fonttype": "none", "xtick.labelsize": 7.5, "ytick.labelsize": 7.5,
}
GOOD, BAD, NEUTRAL, ACCENT = "#2e8540", "#c0392b", "#8a949e", "#1f5fa8"


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    width_in: float
    height_in: float
    data: Any = None          # SVG text or PNG bytes


def run_colors(report: dict) -> dict[int, str]:
    """A stable colour per run (same in every chart)."""
    from matplotlib import colormaps
    cmap = colormaps["tab20" if len(report["runs"]) > 10 else "tab10"]
    n = cmap.N
    return {run["id"]: _hex(cmap(i % n)) for i, run in enumerate(report["runs"])}


def _hex(rgba) -> str:
    return "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgba[:3])


def short_label(run: dict, width: int = 38) -> str:
    """``#3 prune:amount=0.5`` or ``#1 baseline digits-cnn``, cut to ``width`` characters."""
    what = f"baseline {run['model'].removeprefix('demo:')}" if run["is_baseline"] else run["chain"]
    text = f"#{run['id']} {what}"
    return text if len(text) <= width else text[:width - 1] + "…"


# ---------------------------------------------------------------------------------------------
def render_charts(report: dict, fmt: str = "svg", dpi: int = 200) -> list[Chart]:
    """All charts that have data, rendered to ``fmt`` ("svg" or "png")."""
    import matplotlib
    charts = []
    colors = run_colors(report)
    with matplotlib.rc_context(BASE_RC):
        for builder in (_latency_chart, _vs_baseline_chart, _pareto_chart, _telemetry_chart):
            made = builder(report, colors)
            if made is None:
                continue
            chart, fig = made
            chart.data = _export(fig, fmt, dpi, chart.id)
            charts.append(chart)
    return charts


def _export(fig, fmt: str, dpi: int, prefix: str):
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    data = buffer.getvalue()
    if fmt != "svg":
        return data
    return inline_svg(data.decode("utf-8"), prefix)


def _metadata(fmt: str) -> dict:
    if fmt == "svg":
        return {"Date": None, "Creator": None, "Format": None, "Type": None}
    if fmt == "png":
        return {"Software": None}
    return {}


_ID_RE = re.compile(r'id="([^"]+)"')


def inline_svg(svg: str, prefix: str) -> str:
    """matplotlib's SVG made fit to sit inside an HTML page: no XML prolog/DOCTYPE/metadata,
    ids prefixed (several figures on one page must not share ids), scalable width."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    ids = set(_ID_RE.findall(svg))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{prefix}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"').replace(f'#{old})', f'#{new})') \
                 .replace(f'href="#{old}"', f'href="#{new}"')
    # width/height in pt → responsive: keep the viewBox, let CSS size it.
    svg = re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 class="chart" role="img"', svg, count=1)
    return svg


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def _done(report: dict) -> list[dict]:
    return [r for r in report["runs"] if r["status"] == "done" and r["series"]["latency_quantiles_ms"]]


def _log_if_spread(ax, values, axis: str = "x") -> None:
    values = [v for v in values if v is not None and v > 0]
    if values and max(values) / min(values) > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


# ---------------------------------------------------------------------------------------------
def _latency_chart(report: dict, colors: dict[int, str]):
    runs = _done(report)
    if not runs:
        return None
    with_cdf = len(runs) <= CDF_MAX_RUNS
    height = max(2.6, 0.26 * len(runs) + 1.1)
    width = 10.0
    fig = _figure(width, height)
    axes = fig.subplots(1, 2, width_ratios=[1.35, 1]) if with_cdf else [fig.subplots()]
    ax = axes[0]
    stats = []
    for run in runs:
        q = run["series"]["latency_quantiles_ms"]
        stats.append({"med": q[50], "q1": q[25], "q3": q[75], "whislo": q[5], "whishi": q[95],
                      "fliers": [q[99]], "label": short_label(run)})
    positions = np.arange(len(runs))[::-1]
    boxes = ax.bxp(stats, positions=positions, orientation="horizontal", widths=0.6, patch_artist=True,
                   showfliers=True, flierprops={"marker": "d", "markersize": 3.5, "markerfacecolor": "#444",
                                                "markeredgecolor": "none"},
                   medianprops={"color": "#111", "linewidth": 1.4})
    for patch, run in zip(boxes["boxes"], runs):
        patch.set_facecolor(colors[run["id"]])
        patch.set_alpha(0.75)
        patch.set_edgecolor("#333")
    ax.set_xlabel("latency per batch (ms)")
    ax.set_title("Latency distribution per run")
    ax.grid(axis="y", visible=False)
    _log_if_spread(ax, [s["whislo"] for s in stats] + [s["fliers"][0] for s in stats])
    if with_cdf:
        cdf = axes[1]
        levels = np.linspace(0, 1, len(runs[0]["series"]["latency_quantiles_ms"]))
        for run in runs:
            cdf.plot(run["series"]["latency_quantiles_ms"], levels, color=colors[run["id"]], linewidth=1.4,
                     label=short_label(run, 30))
        cdf.set_xlabel("latency per batch (ms)")
        cdf.set_ylabel("fraction of iterations ≤ x")
        cdf.set_title("Cumulative distribution (CDF)")
        cdf.set_ylim(0, 1.01)
        _log_if_spread(cdf, [v for r in runs for v in r["series"]["latency_quantiles_ms"][1:-1]])
        if len(runs) <= LEGEND_MAX_RUNS:
            cdf.legend(loc="lower right")
    caption = ("Box: interquartile range; line: median (p50); whiskers: 5th–95th percentile; ◆: p99. "
               + ("Right: the full distribution as a CDF (curves further left are faster)."
                  if with_cdf else f"(CDF panel omitted above {CDF_MAX_RUNS} runs.)"))
    return Chart("latency", "Latency distributions", caption, width, height), fig


def _vs_baseline_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["status"] == "done" and r["comparison"] and not r["is_baseline"]]
    if not runs:
        return None
    panels: list[tuple[str, Callable[[dict], float | None], str]] = [
        ("speed-up (p50)", lambda r: r["comparison"]["speedup"], "× faster than baseline"),
        ("size ratio", lambda r: r["comparison"]["size_ratio"], "× baseline bytes"),
        ("top-1 agreement", lambda r: r["metrics"]["fidelity_score"], "fraction of baseline outputs"),
    ]
    if any(r["comparison"]["energy_ratio"] is not None for r in runs):
        panels.append(("energy per inference", lambda r: r["comparison"]["energy_ratio"], "× baseline joules"))
    if not any(r["metrics"]["top1_agreement"] is not None for r in runs):
        panels[2] = ("cosine similarity", lambda r: r["metrics"]["cosine"], "to baseline outputs")
    height = max(2.4, 0.24 * len(runs) + 1.2)
    width = 10.0
    fig = _figure(width, height)
    axes = fig.subplots(1, len(panels), sharey=True)
    y = np.arange(len(runs))[::-1]
    labels = [short_label(r, 30) for r in runs]
    for ax, (title, getter, unit) in zip(axes, panels):
        values = [getter(r) for r in runs]
        plotted = [v if v is not None else 0.0 for v in values]
        if title.startswith("speed-up"):
            bar_colors = []
            for r in runs:
                c = r["comparison"]
                if c["speedup_significant"] is False or c["speedup"] is None:
                    bar_colors.append(NEUTRAL)
                else:
                    bar_colors.append(GOOD if c["speedup"] > 1 else BAD)
            err = np.array([[max(0.0, (v or 0) - (r["comparison"]["speedup_ci"] or [v, v])[0]),
                             max(0.0, (r["comparison"]["speedup_ci"] or [v, v])[1] - (v or 0))]
                            for v, r in zip(values, runs)]).T
            ax.barh(y, plotted, color=bar_colors, xerr=err, error_kw={"elinewidth": 0.9, "capsize": 2,
                                                                       "ecolor": "#333"}, height=0.65)
        else:
            ax.barh(y, plotted, color=[colors[r["id"]] for r in runs], height=0.65, alpha=0.85)
        if not title.startswith(("top-1", "cosine")):
            ax.axvline(1.0, color="#333", linewidth=0.9, linestyle="--")
        else:
            low = min([v for v in values if v is not None] or [1.0])
            ax.set_xlim(max(0.0, min(0.9, low - 0.02)), 1.005)
        for yi, v in zip(y, values):
            text = "n/a" if v is None else (f"{100 * v:.1f}%" if title.startswith(("top-1", "cosine")) and v <= 1
                                            else f"{v:.2f}×")
            ax.annotate(text, (0, yi), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", va="center", fontsize=6.5, color="#222")
        ax.set_title(title)
        ax.set_xlabel(unit)
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(y, labels)
    caption = ("Each optimized run against its own baseline (a plugin-free run of the same model, runtime, device "
               "and batch). Speed-up bars carry the 95 % interval; grey bars lie inside the noise (the interval "
               "contains 1). Size and energy below 1 are better; agreement near 100 % means the outputs barely moved.")
    return Chart("vs_baseline", "Key metrics vs baseline", caption, width, height), fig


def _pareto_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["status"] == "done" and r["metrics"]["p50_ms"] is not None
            and r["metrics"]["fidelity_score"] is not None]
    if not runs:
        return None
    use_top1 = any(r["metrics"]["top1_agreement"] is not None for r in runs)
    width, height = 10.0, 4.2
    fig = _figure(width, height)
    ax = fig.subplots()
    models = sorted({r["model"] for r in runs})
    markers = "osD^vP*X"
    model_colors = {m: c for m, c in zip(models, ["#1f5fa8", "#d9822b", "#2e8540", "#8e44ad", "#c0392b",
                                                  "#16a085", "#7f8c8d", "#b7950b"] * 4)}
    for i, model in enumerate(models):
        members = [r for r in runs if r["model"] == model]
        xs = [r["metrics"]["p50_ms"] for r in members]
        ys = [100 * r["metrics"]["fidelity_score"] for r in members]
        ax.scatter(xs, ys, s=[70 if r["best"] else 28 for r in members], marker=markers[i % len(markers)],
                   color=model_colors[model], edgecolors=["#000" if r["best"] else "none" for r in members],
                   linewidths=1.2, label=model.removeprefix("demo:"), zorder=3)
        front = sorted((r for r in members if r["pareto"]), key=lambda r: r["metrics"]["p50_ms"])
        if len(front) > 1:
            ax.step([r["metrics"]["p50_ms"] for r in front], [100 * r["metrics"]["fidelity_score"] for r in front],
                    where="post", color=model_colors[model], linewidth=1.1, linestyle="--", alpha=0.8, zorder=2)
        if len(runs) <= 30:
            for r, x, yv in zip(members, xs, ys):
                ax.annotate(f"#{r['id']}", (x, yv), xytext=(4, 3), textcoords="offset points", fontsize=6.5,
                            color="#333")
    _log_if_spread(ax, [r["metrics"]["p50_ms"] for r in runs])
    ax.set_xlabel("median latency p50 (ms) — left is faster")
    ax.set_ylabel(("top-1 agreement" if use_top1 else "cosine similarity") + " (%) — up is more faithful")
    ax.set_title("Latency vs fidelity (dashed: Pareto front per model; outlined: best variant)")
    ax.legend(loc="lower right", ncols=min(4, len(models)))
    caption = ("A run is on the Pareto front when no other run of the same model is both faster and more faithful. "
               "The best variant by the report's criterion is drawn larger with a black outline.")
    return Chart("pareto", "Latency vs fidelity", caption, width, height), fig


def _telemetry_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["series"]["telemetry"] or r["series"]["latency_trace"]]
    if not runs:
        return None
    rows: list[tuple[str, str, float, Callable[[dict], tuple[list, list] | None]]] = [
        ("latency", "latency (ms, bucket median)", 1.0,
         lambda r: (r["series"]["latency_trace"]["t_s"], r["series"]["latency_trace"]["p50_ms"])
         if r["series"]["latency_trace"] else None),
        ("rss_bytes", "worker RSS (MiB)", 1 / 2 ** 20, None),
        ("cpu_percent", "worker CPU (%)", 1.0, None),
        ("gpu_power_w", "GPU power (W)", 1.0, None),
        ("gpu_mem_used_bytes", "GPU memory used (MiB)", 1 / 2 ** 20, None),
    ]
    present = []
    for key, label, scale, getter in rows:
        if getter is None:
            getter = (lambda r, k=key: (r["series"]["telemetry"]["t_s"], r["series"]["telemetry"][k])
                      if r["series"]["telemetry"] and k in r["series"]["telemetry"] else None)
        if any(getter(r) for r in runs):
            present.append((key, label, scale, getter))
    if not present:
        return None
    width = 10.0
    height = 1.55 * len(present) + 0.9
    fig = _figure(width, height)
    axes = np.atleast_1d(fig.subplots(len(present), 1, sharex=True))
    for ax, (key, label, scale, getter) in zip(axes, present):
        for run in runs:
            got = getter(run)
            if not got:
                continue
            ts, vs = got
            pts = [(t, v * scale) for t, v in zip(ts, vs) if v is not None]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colors[run["id"]], linewidth=1.0,
                    label=short_label(run, 30))
        ax.set_ylabel(label, fontsize=7.5)
        ax.axvline(0.0, color="#555", linewidth=0.7, linestyle=":")
        if key == "latency":
            _log_if_spread(ax, [v for r in runs if r["series"]["latency_trace"]
                                for v in r["series"]["latency_trace"]["p50_ms"]], axis="y")
    axes[0].set_title("Over the run (t = 0: the timed phase starts; before it: load, optimize, warm-up)")
    axes[-1].set_xlabel("seconds from the start of the timed phase")
    if len(runs) <= LEGEND_MAX_RUNS:
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=6.5)
    caption = ("Per-iteration latency (median of each bucket of consecutive iterations), the worker's resident "
               "memory and CPU use sampled by the parent process, and GPU power/memory where NVML was available. "
               "Series are thinned to at most 200 points per run.")
    return Chart("telemetry", "Telemetry over the run", caption, width, height), fig
