"""The "Why" block of each run's section in the HTML and PDF reports (``run["explain"]``, built
by ``explain_section``): top ops, the profile diff against the baseline, the most-drifted layers
with their bar chart, sensitivity scans, and the language-model figures."""
from __future__ import annotations

import html
from xml.sax.saxutils import escape

from .charts import BAD, BASE_RC, Chart, _export, _figure, _margins, _text_width_in
from .explain_section import (
    diff_table, generation_rows, has_explanation, layers_caption, layers_table, lm_rows,
    profile_caption, profile_table, scan_lines)

NUMERIC_HEADS = ("self time / iter", "% of total", "calls / iter", "Δ / iter", "of change", "output rel. error",
                 "cosine")


def _h(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# -- the per-layer drift chart -----------------------------------------------------------------------
def layer_drift_chart(run: dict, out_format: str = "svg", dpi: int = 200):
    """A horizontal bar per listed layer: its output relative error (the table's order), or None."""
    layers = (run.get("explain") or {}).get("layers") or {}
    rows = [r for r in layers.get("rows") or [] if r["relative_error"] is not None]
    if not rows:
        return None
    import matplotlib
    names = [r["name"] if len(r["name"]) <= 40 else "…" + r["name"][-39:] for r in rows]
    values = [r["relative_error"] for r in rows]
    with matplotlib.rc_context(BASE_RC):
        height = 0.7 + 0.24 * len(rows)
        fig = _figure(7.5, height)
        _margins(fig, left_in=min(3.2, _text_width_in(names, 7.5) + 0.25), top_in=0.3, bottom_in=0.45)
        ax = fig.add_subplot(1, 1, 1)
        ax.barh(range(len(rows)), values, color=BAD, alpha=0.8)
        ax.set_yticks(range(len(rows)), names)
        ax.invert_yaxis()
        ax.set_xlabel("output relative error ‖o − r‖/‖r‖ vs the unoptimized model")
        ax.set_title(f"#{run['id']}: output drift per layer")
        positive = [v for v in values if v > 0]
        if positive and max(positive) > 100 * min(positive):     # drift spans decades: a log axis shows them all
            ax.set_xscale("log")
        data = _export(fig, out_format, dpi, f"layers-{run['id']}")
    return Chart(f"layers-{run['id']}", f"Output drift per layer, run #{run['id']}",
                 "The most-drifted layers, largest first.", 7.5, height, data)


# -- HTML ----------------------------------------------------------------------------------------
def _html_table(head: list[str], rows: list[list[str]], cls: str) -> str:
    numeric = [h in NUMERIC_HEADS or h.startswith("#") for h in head]
    th = "".join(f'<th class="{"num" if n else ""}">{_h(h)}</th>' for h, n in zip(head, numeric))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if n else ""}">{_h(c)}</td>' for c, n in zip(row, numeric))
                   + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_kv(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in rows) + "</table>"


def explain_html(run: dict) -> str:
    """The run's explanation as HTML ("" when it stored none)."""
    if not has_explanation(run):
        return ""
    e = run["explain"]
    out = [f'<section class="explain" id="explain-{run["id"]}">']
    if e["generation"] or e["lm_fidelity"]:
        out.append('<div class="grid2">')
        if e["generation"]:
            out.append("<div><h4>Generation</h4>" + _html_kv(generation_rows(e["generation"])) + "</div>")
        if e["lm_fidelity"]:
            out.append("<div><h4>Language-model fidelity</h4>" + _html_kv(lm_rows(e["lm_fidelity"])) + "</div>")
        out.append("</div>")
    if e["profile_diff"]:
        d = e["profile_diff"]
        out.append(f'<h4>Why: profile vs baseline #{d["baseline_id"]}</h4><p class="why">{_h(d["sentence"])}.</p>')
        if d["ops"]:
            out.append(_html_table(*diff_table(d, run["id"]), "profile-diff"))
        out += [f'<p class="muted">{_h(n)}</p>' for n in d["notes"]]
    if e["profile"]:
        p = e["profile"]
        out.append(f'<h4>Top ops (per-op profile)</h4><p class="muted">{_h(profile_caption(p))}</p>')
        if p["top_ops"]:
            out.append(_html_table(*profile_table(p), "profile"))
    if e["layers"]:
        layers = e["layers"]
        out.append(f'<h4>Per-layer drift</h4><p class="muted">{_h(layers_caption(layers))}</p>')
        chart = layer_drift_chart(run, "svg")
        if chart is not None:
            out.append(f'<figure id="chart-{chart.id}">{chart.data}<figcaption><strong>{_h(chart.title)}.</strong> '
                       f"{_h(chart.caption)}</figcaption></figure>")
        if layers["rows"]:
            out.append(_html_table(*layers_table(layers), "layers"))
        out += [f'<p class="muted">{_h(n)}</p>' for n in layers["notes"]]
    if e["scans"]:
        out.append("<h4>Sensitivity scans</h4>" + "".join(f"<p>{_h(line)}</p>" for line in scan_lines(e["scans"])))
    out.append("</section>")
    return "\n".join(out)


# -- PDF -----------------------------------------------------------------------------------------
def explain_pdf(run: dict, st, width: float, table, picture, dpi: int = 200) -> list:
    """The run's explanation as reportlab flowables; ``st`` is pdf's styles, ``table(rows, widths)``
    its table maker, ``picture(image, w, h)`` its image flowable."""
    if not has_explanation(run):
        return []
    from reportlab.platypus import Paragraph
    e = run["explain"]
    out = []

    def grid(head, rows, weights):
        total = sum(weights)
        data = [[Paragraph(escape(h), st.head) for h in head]]
        data += [[Paragraph(escape(str(c)), st.cell) for c in row] for row in rows]
        return table(data, [width * w / total for w in weights])

    def kv(title, rows):
        out.append(Paragraph(title, st.h2))
        out.append(table([[Paragraph(escape(k), st.cell), Paragraph(escape(v), st.cell)] for k, v in rows],
                         [width * 0.3, width * 0.7], header=False))

    if e["generation"]:
        kv("GENERATION", generation_rows(e["generation"]))
    if e["lm_fidelity"]:
        kv("LANGUAGE-MODEL FIDELITY", lm_rows(e["lm_fidelity"]))
    if e["profile_diff"]:
        d = e["profile_diff"]
        out.append(Paragraph(f"WHY: PROFILE VS BASELINE #{d['baseline_id']}", st.h2))
        out.append(Paragraph(escape(d["sentence"]) + ".", st.body))
        if d["ops"]:
            out.append(grid(*diff_table(d, run["id"]), [0.8, 3.2, 1, 1, 1, 0.8, 1.2]))
        out += [Paragraph(escape(n), st.muted) for n in d["notes"]]
    if e["profile"]:
        p = e["profile"]
        out.append(Paragraph("TOP OPS (PER-OP PROFILE)", st.h2))
        out.append(Paragraph(escape(profile_caption(p)), st.muted))
        if p["top_ops"]:
            out.append(grid(*profile_table(p), [3.2, 1, 0.8, 0.8, 3]))
    if e["layers"]:
        layers = e["layers"]
        out.append(Paragraph("PER-LAYER DRIFT", st.h2))
        out.append(Paragraph(escape(layers_caption(layers)), st.muted))
        chart = layer_drift_chart(run, "pil", dpi)
        if chart is not None:
            w = min(width * 0.75, chart.width_in * 72)
            out.append(picture(chart.data, w, w * chart.height_in / chart.width_in))
        if layers["rows"]:
            out.append(grid(*layers_table(layers), [2.6, 1.4, 1, 0.9, 3.6, 1.3]))
        out += [Paragraph(escape(n), st.muted) for n in layers["notes"]]
    if e["scans"]:
        out.append(Paragraph("SENSITIVITY SCANS", st.h2))
        out += [Paragraph(escape(line), st.small) for line in scan_lines(e["scans"])]
    return out
