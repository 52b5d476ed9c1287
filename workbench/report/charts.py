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

from .. import format as fmt
from .model import TRACE_POINTS
from ..results.stats import NOISE_RULE

CDF_MAX_RUNS = 12        # above this, the CDF panel is dropped (the box plot scales, spaghetti does not)
LEGEND_MAX_RUNS = 12
ANNOTATE_MAX_RUNS = 24   # value labels on bars / point ids: above this they only clutter (the tables have them)
POINTS_PER_PANEL = 4000  # telemetry points per panel, shared by all runs (thinned further when many)
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
def render_charts(report: dict, fmt: str = "svg", dpi: int = 200,
                  fit: tuple[float, float] | None = None) -> list[Chart]:
    """All charts that have data, rendered to ``fmt``: "svg" (text), "png" (bytes) or "pil" (a PIL image).

    ``fit=(width, height)`` in inches: the box a chart will be shown in; a bigger chart is scaled
    down there, so its raster ``dpi`` is lowered to keep ``dpi`` pixels per inch of the page."""
    import matplotlib
    charts = []
    colors = run_colors(report)
    with matplotlib.rc_context(BASE_RC):
        for builder in (_latency_chart, _vs_baseline_chart, _pareto_chart, _telemetry_chart):
            made = builder(report, colors)
            if made is None:
                continue
            chart, fig = made
            scale = 1.0 if fit is None else min(1.0, fit[0] / chart.width_in, fit[1] / chart.height_in)
            chart.data = _export(fig, fmt, max(72, int(round(dpi * scale))), chart.id)
            charts.append(chart)
    return charts


def _export(fig, fmt: str, dpi: int, prefix: str):
    if fmt == "pil":            # raw pixels for the PDF: no PNG encode/decode round trip
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image
        canvas = FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        canvas.draw()
        return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1) \
            .convert("RGB")
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
    # width/height in pt → responsive: keep the viewBox, let CSS size it. Namespace declarations
    # are dropped: the HTML parser puts inline <svg> (and xlink:href) in the right namespaces.
    svg = re.sub(r'<svg([^>]*?) width="[^"]+" height="[^"]+"', r'<svg\1 class="chart" role="img"', svg, count=1)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    return svg


def _row_layout(n: int, base: float) -> tuple[float, float]:
    """(inches per row, tick font size) for a chart with one row per run: rows shrink (down to
    0.13 in, 6 pt labels) so that 50 runs still fit a landscape page without scaling the text away."""
    per_row = min(0.26, max(0.12, 6.0 / max(n, 1)))
    return per_row, (7.5 if per_row >= 0.2 else 6.5 if per_row >= 0.16 else 6.0)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def _text_width_in(labels, size: float) -> float:
    """Generous width of the longest label in inches (DejaVu Sans: ~0.6 em per character)."""
    longest = max((len(str(t)) for t in labels), default=0)
    return longest * size * 0.6 / 72


def _margins(fig, left_in: float, right_in: float = 0.15, top_in: float = 0.32, bottom_in: float = 0.5,
             wspace_in: float = 0.0, hspace_in: float = 0.0, columns: int = 1, rows: int = 1) -> None:
    """Fixed margins in inches. (Constrained layout would measure every artist at draw time and
    cost ~45 % of the chart rendering; the labels here are known, so their room is computed.)"""
    width, height = fig.get_size_inches()
    inner_w = width - left_in - right_in
    inner_h = height - top_in - bottom_in
    cell_w = (inner_w - wspace_in * (columns - 1)) / columns
    cell_h = (inner_h - hspace_in * (rows - 1)) / rows
    fig.subplots_adjust(left=left_in / width, right=1 - right_in / width, top=1 - top_in / height,
                        bottom=bottom_in / height, wspace=wspace_in / max(cell_w, 1e-3),
                        hspace=hspace_in / max(cell_h, 1e-3))


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
    per_row, tick_size = _row_layout(len(runs), 0.26)
    height = max(2.6, per_row * len(runs) + 1.1)
    width = 10.0
    fig = _figure(width, height)
    labels = [short_label(run) for run in runs]
    _margins(fig, left_in=_text_width_in(labels, tick_size) + 0.2, wspace_in=0.75 if with_cdf else 0.0,
             columns=2 if with_cdf else 1)
    axes = fig.subplots(1, 2, width_ratios=[1.35, 1]) if with_cdf else [fig.subplots()]
    ax = axes[0]
    # Drawn as a handful of collections (not bxp's six artists per run): 50 runs stay cheap.
    q = np.array([run["series"]["latency_quantiles_ms"] for run in runs])
    factor, unit = fmt.latency_axis_unit(q[:, 99])     # the unit the tables print these latencies in
    q = q * factor
    y = np.arange(len(runs))[::-1].astype(float)
    run_color = [colors[run["id"]] for run in runs]
    ax.hlines(y, q[:, 5], q[:, 25], color="#333", linewidth=0.9, zorder=2)
    ax.hlines(y, q[:, 75], q[:, 95], color="#333", linewidth=0.9, zorder=2)
    ax.vlines(np.concatenate([q[:, 5], q[:, 95]]), np.concatenate([y - 0.15, y - 0.15]),
              np.concatenate([y + 0.15, y + 0.15]), color="#333", linewidth=0.9, zorder=2)
    ax.barh(y, q[:, 75] - q[:, 25], left=q[:, 25], height=0.6, color=run_color, alpha=0.8,
            edgecolor="#333", linewidth=0.7, zorder=3)
    ax.vlines(q[:, 50], y - 0.3, y + 0.3, color="#111", linewidth=1.6, zorder=4)
    ax.scatter(q[:, 99], y, marker="d", s=10, color="#444", zorder=4, linewidths=0)
    ax.set_yticks(y, labels, fontsize=tick_size)
    ax.set_ylim(-0.7, len(runs) - 0.3)
    ax.set_xlabel(f"latency per batch ({unit})")
    ax.set_title("Latency distribution per run")
    ax.grid(axis="y", visible=False)
    _log_if_spread(ax, list(q[:, 5]) + list(q[:, 99]))
    if with_cdf:
        cdf = axes[1]
        levels = np.linspace(0, 1, len(runs[0]["series"]["latency_quantiles_ms"]))
        for run in runs:
            cdf.plot(np.asarray(run["series"]["latency_quantiles_ms"]) * factor, levels, color=colors[run["id"]],
                     linewidth=1.4, label=short_label(run, 30))
        cdf.set_xlabel(f"latency per batch ({unit})")
        cdf.set_ylabel("fraction of iterations ≤ x")
        cdf.set_title("Cumulative distribution (CDF)")
        cdf.set_ylim(0, 1.01)
        _log_if_spread(cdf, [v for r in runs for v in r["series"]["latency_quantiles_ms"][1:-1]])   # scale-free
    caption = ("Box: interquartile range; line: median (p50); whiskers: 5th–95th percentile; ◆: p99. "
               + ("Right: the full distribution as a CDF, in the same colours (curves further left are faster)."
                  if with_cdf else f"(CDF panel omitted above {CDF_MAX_RUNS} runs.)"))
    return Chart("latency", "Latency distributions", caption, width, height), fig


def _agreement_name(runs: list[dict]) -> str:
    """What a run's top-1 agreement is: a language model's is next-token agreement (``lm_fidelity``)."""
    language = [bool(((r.get("explain") or {}).get("lm_fidelity") or {}).get("next_token_agreement") is not None)
                for r in runs if r["metrics"]["top1_agreement"] is not None]
    if language and all(language):
        return "next-token agreement"
    return "top-1 / next-token agreement" if any(language) else "top-1 agreement"


def _vs_baseline_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["status"] == "done" and r["comparison"] and not r["is_baseline"]]
    if not runs:
        return None
    panels: list[tuple[str, Callable[[dict], float | None], str]] = [
        ("speed-up (p50)", lambda r: r["comparison"]["speedup"], "× faster than baseline"),
        ("size ratio", lambda r: r["comparison"]["size_ratio"], "× baseline bytes"),
        (_agreement_name(runs), lambda r: r["metrics"]["fidelity_score"], "fraction of baseline outputs"),
    ]
    if any(r["comparison"]["energy_ratio"] is not None for r in runs):
        panels.append(("energy per inference", lambda r: r["comparison"]["energy_ratio"], "× baseline joules"))
    if not any(r["metrics"]["top1_agreement"] is not None for r in runs):
        panels[2] = ("cosine similarity", lambda r: r["metrics"]["cosine"], "to baseline outputs")
    per_row, tick_size = _row_layout(len(runs), 0.24)
    height = max(2.4, per_row * len(runs) + 1.2)
    width = 10.0
    fig = _figure(width, height)
    y = np.arange(len(runs))[::-1]
    labels = [short_label(r, 30) for r in runs]
    _margins(fig, left_in=_text_width_in(labels, tick_size) + 0.2, wspace_in=0.25, columns=len(panels))
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (title, getter, unit) in zip(axes, panels):
        values = [getter(r) for r in runs]
        plotted = [v if v is not None else 0.0 for v in values]
        if title.startswith("speed-up"):
            # Coloured by the core's verdict: a fast variant that ruined the outputs is red.
            bar_colors = [{"win": GOOD, "loss": BAD}.get(r["comparison"]["verdict"]["level"], NEUTRAL)
                          for r in runs]
            err = np.array([[max(0.0, (v or 0) - (r["comparison"]["speedup_ci"] or [v, v])[0]),
                             max(0.0, (r["comparison"]["speedup_ci"] or [v, v])[1] - (v or 0))]
                            for v, r in zip(values, runs)]).T
            ax.barh(y, plotted, color=bar_colors, xerr=err, error_kw={"elinewidth": 0.9, "capsize": 2,
                                                                       "ecolor": "#333"}, height=0.65)
        else:
            ax.barh(y, plotted, color=[colors[r["id"]] for r in runs], height=0.65, alpha=0.85)
        fidelity = title == panels[2][0]
        if not fidelity:
            ax.axvline(1.0, color="#333", linewidth=0.9, linestyle="--")
        else:
            low = min([v for v in values if v is not None] or [1.0])
            ax.set_xlim(max(0.0, min(0.9, low - 0.02)), 1.005)
        for yi, v in zip(y, values if len(runs) <= ANNOTATE_MAX_RUNS else []):
            text = "n/a" if v is None else (f"{100 * v:.1f}%" if fidelity and v <= 1
                                            else f"{v:.2f}×")
            ax.annotate(text, (0, yi), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", va="center", fontsize=6.5, color="#222")
        ax.set_title(title)
        ax.set_xlabel(unit)
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(y, labels, fontsize=tick_size)
    caption = ("Each optimized run against its own baseline (a plugin-free run of the same model, runtime, device "
               "and batch). Speed-up bars carry the 95 % interval and the verdict's colour: green "
               "faster with the outputs within the fidelity gate, red slower or below the gate however fast, grey "
               "inside the noise: " + NOISE_RULE + ". Size and energy below 1 are better; agreement near 100 % means the outputs barely moved.")
    return Chart("vs_baseline", "Key metrics vs baseline", caption, width, height), fig


def _pareto_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["status"] == "done" and r["metrics"]["p50_ms"] is not None
            and r["metrics"]["fidelity_score"] is not None]
    if not runs:
        return None
    use_top1 = any(r["metrics"]["top1_agreement"] is not None for r in runs)
    width, height = 10.0, 4.2
    fig = _figure(width, height)
    _margins(fig, left_in=0.75)
    ax = fig.subplots()
    models = sorted({r["model"] for r in runs})
    factor, unit = fmt.latency_axis_unit([r["metrics"]["p50_ms"] for r in runs])
    markers = "osD^vP*X"
    model_colors = {m: c for m, c in zip(models, ["#1f5fa8", "#d9822b", "#2e8540", "#8e44ad", "#c0392b",
                                                  "#16a085", "#7f8c8d", "#b7950b"] * 4)}
    for i, model in enumerate(models):
        members = [r for r in runs if r["model"] == model]
        xs = [r["metrics"]["p50_ms"] * factor for r in members]
        ys = [100 * r["metrics"]["fidelity_score"] for r in members]
        ax.scatter(xs, ys, s=[70 if r["best"] else 28 for r in members], marker=markers[i % len(markers)],
                   color=model_colors[model], edgecolors=["#000" if r["best"] else "none" for r in members],
                   linewidths=1.2, label=model.removeprefix("demo:"), zorder=3)
        front = sorted((r for r in members if r["pareto"]), key=lambda r: r["metrics"]["p50_ms"])
        if len(front) > 1:
            ax.step([r["metrics"]["p50_ms"] * factor for r in front],
                    [100 * r["metrics"]["fidelity_score"] for r in front],
                    where="post", color=model_colors[model], linewidth=1.1, linestyle="--", alpha=0.8, zorder=2)
        if len(runs) <= ANNOTATE_MAX_RUNS:
            # Points that (nearly) coincide share one label: "#1, #3".
            spots: dict[tuple, list] = {}
            span = (max(xs) - min(xs)) or 1.0
            for r, x, yv in zip(members, xs, ys):
                key = (round((x - min(xs)) / span * 60), round(yv * 2))
                spots.setdefault(key, []).append((r, x, yv))
            for group in spots.values():
                r, x, yv = group[0]
                ax.annotate(", ".join(f"#{g[0]['id']}" for g in group), (x, yv), xytext=(4, 3),
                            textcoords="offset points", fontsize=6.5, color="#333")
    _log_if_spread(ax, [r["metrics"]["p50_ms"] * factor for r in runs])
    low = min(100 * r["metrics"]["fidelity_score"] for r in runs)
    bottom = max(0.0, low - max(1.0, 0.08 * (100 - low)))
    ax.set_ylim(bottom, 100 + 0.05 * (100 - bottom))
    ax.set_yticks([t for t in ax.get_yticks() if bottom <= t <= 100])     # nothing lies above 100 %
    ax.set_xlabel(f"median latency p50 ({unit}) — left is faster")
    ax.set_ylabel((_agreement_name(runs) if use_top1 else "cosine similarity") + " (%) — up is more faithful")
    ax.set_title("Latency vs fidelity (dashed: Pareto front per model; outlined: best variant)")
    ax.legend(loc="lower right", ncols=min(4, len(models)))
    caption = ("A run is on the Pareto front when no other run of the same model is both faster and more faithful. "
               "The best variant by the report's criterion is drawn larger with a black outline.")
    return Chart("pareto", "Latency vs fidelity", caption, width, height), fig


def _telemetry_chart(report: dict, colors: dict[int, str]):
    runs = [r for r in report["runs"] if r["series"]["telemetry"] or r["series"]["latency_trace"]]
    if not runs:
        return None
    factor, unit = fmt.latency_axis_unit([v for r in runs if r["series"]["latency_trace"]
                                          for v in r["series"]["latency_trace"]["p50_ms"]])
    rows: list[tuple[str, str, float, Callable[[dict], tuple[list, list] | None]]] = [
        ("latency", f"latency ({unit}, bucket median)", factor,
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
    legend = len(runs) <= LEGEND_MAX_RUNS
    _margins(fig, left_in=0.85, right_in=(_text_width_in([short_label(r, 30) for r in runs], 6.5) + 0.55)
             if legend else 0.15, hspace_in=0.18, rows=len(present))
    axes = np.atleast_1d(fig.subplots(len(present), 1, sharex=True))
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    budget = max(40, POINTS_PER_PANEL // len(runs))     # points per run and panel
    for ax, (key, label, scale, getter) in zip(axes, present):
        segments, seg_colors = [], []
        for run in runs:
            got = getter(run)
            if not got:
                continue
            pts = np.array([(t, v * scale) for t, v in zip(*got) if v is not None and t is not None], dtype=float)
            if len(pts) == 0:
                continue
            if len(pts) > budget:
                pts = pts[np.linspace(0, len(pts) - 1, budget).round().astype(int)]
            segments.append(pts)
            seg_colors.append(colors[run["id"]])
        if segments:
            ax.add_collection(LineCollection(segments, colors=seg_colors, linewidths=1.0))
            ax.autoscale_view()
        ax.set_ylabel(label, fontsize=7.5)
        ax.axvline(0.0, color="#555", linewidth=0.7, linestyle=":")
        if key == "latency":
            _log_if_spread(ax, [v for r in runs if r["series"]["latency_trace"]
                                for v in r["series"]["latency_trace"]["p50_ms"]], axis="y")   # scale-free
    axes[0].set_title("Over the run (t = 0: the timed phase starts; before it: load, optimize, warm-up)")
    axes[-1].set_xlabel("seconds from the start of the timed phase")
    if legend:
        handles = [Line2D([], [], color=colors[r["id"]], linewidth=1.4) for r in runs]
        axes[0].legend(handles, [short_label(r, 30) for r in runs], loc="upper left", bbox_to_anchor=(1.005, 1.0),
                       fontsize=6.5)
    caption = ("Per-iteration latency (median of each bucket of consecutive iterations), the worker's resident "
               "memory and CPU use sampled by the parent process, and GPU power/memory where NVML was available; "
               "colours as in the other charts. Runs that never reached the timed phase end at t = 0, where "
               f"they stopped. Series are thinned to at most {min(budget, TRACE_POINTS)} points per run.")
    return Chart("telemetry", "Telemetry over the run", caption, width, height), fig
