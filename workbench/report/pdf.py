"""PDF rendering of a report (reportlab platypus): a paginated, bookmarked A4-landscape document.

Layout, page by page: the summary; the comparison table (continued over pages when long, header
repeated); one page per chart (200-dpi images from the same matplotlib figures as the HTML's
SVG); one page per run (plugin chain, latency, memory/power/energy, fidelity, failure, notes,
the reproducing command, RunSpec JSON and environment); the environment fingerprint of all runs.
Text uses the DejaVu fonts shipped with matplotlib, so →, ≥, ×, µ print as themselves.
"""
from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from xml.sax.saxutils import escape

from .charts import render_charts
from .explain_render import explain_pdf
from .text import (
    ENV_FIELDS, chain_steps, comparison_columns, env_differences, env_fingerprint, failure_line,
    fidelity_rows, group_rows, group_value_title, kpis, latency_rows, memory_power_rows, param_text,
    plugin_change_text, run_title)
from ..results.stats import NOISE_RULE

PAGE_MARGIN = 32
CHART_DPI = 200
CHART_HEADROOM = 80          # points a chart page keeps for its headings and caption
FONT, BOLD, MONO = "WB-Sans", "WB-Sans-Bold", "WB-Mono"
INK, MUTED, LINE, SOFT = "#1d2329", "#5b6670", "#dfe3e8", "#f5f7f9"
GOOD, BAD, WARN, WARNBG, BADBG, ACCENT = "#2e8540", "#c0392b", "#a86400", "#fff6e0", "#fdecea", "#1f5fa8"
_fonts_ready = False


def _register_fonts() -> None:
    global _fonts_ready
    if _fonts_ready:
        return
    import matplotlib
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(ttf / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(ttf / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFont(TTFont(MONO, str(ttf / "DejaVuSansMono.ttf")))
    addMapping(FONT, 0, 0, FONT)
    addMapping(FONT, 1, 0, BOLD)
    addMapping(FONT, 0, 1, FONT)
    addMapping(FONT, 1, 1, BOLD)
    _fonts_ready = True


def _e(value) -> str:
    return escape("" if value is None else str(value))


class _Styles:
    def __init__(self) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle
        c = colors.HexColor
        self.title = ParagraphStyle("title", fontName=BOLD, fontSize=20, leading=24, textColor=c("#17324d"),
                                    spaceAfter=4)
        self.meta = ParagraphStyle("meta", fontName=FONT, fontSize=8.5, leading=11, textColor=c(MUTED), spaceAfter=8)
        self.h1 = ParagraphStyle("h1", fontName=BOLD, fontSize=15, leading=19, textColor=c(INK), spaceBefore=4,
                                 spaceAfter=6)
        self.h2 = ParagraphStyle("h2", fontName=BOLD, fontSize=9, leading=12, textColor=c(MUTED), spaceBefore=7,
                                 spaceAfter=3)
        self.body = ParagraphStyle("body", fontName=FONT, fontSize=8.5, leading=11.5, textColor=c(INK))
        self.small = ParagraphStyle("small", parent=self.body, fontSize=7.5, leading=9.5)
        self.muted = ParagraphStyle("muted", parent=self.body, fontSize=8, leading=10.5, textColor=c(MUTED))
        self.cell = ParagraphStyle("cell", fontName=FONT, fontSize=7, leading=8.6, textColor=c(INK))
        self.cell_r = ParagraphStyle("cell_r", parent=self.cell, alignment=2)
        self.head = ParagraphStyle("head", parent=self.cell, fontName=BOLD)
        self.head_r = ParagraphStyle("head_r", parent=self.head, alignment=2)
        self.mono = ParagraphStyle("mono", fontName=MONO, fontSize=6.6, leading=8.2, textColor=c(INK))
        self.kpi_label = ParagraphStyle("kpil", fontName=FONT, fontSize=7, leading=9, textColor=c(MUTED))
        self.kpi_value = ParagraphStyle("kpiv", fontName=BOLD, fontSize=15, leading=18, textColor=c(INK))
        self.callout = ParagraphStyle("callout", parent=self.body, backColor=c(WARNBG), borderColor=c(WARN),
                                      borderWidth=0, borderPadding=(5, 6, 5, 6), spaceBefore=6, spaceAfter=8)
        self.callout_bad = ParagraphStyle("callout_bad", parent=self.callout, backColor=c(BADBG))


def _bookmarked(paragraph, title: str, level: int, key: str):
    """Mark a flowable so the document adds a PDF outline entry (bookmark) where it lands."""
    paragraph._bookmark = (title, level, key)
    return paragraph


def _doc_class():
    from reportlab.platypus import BaseDocTemplate

    class ReportDoc(BaseDocTemplate):
        def afterFlowable(self, flowable):
            mark = getattr(flowable, "_bookmark", None)
            if mark:
                title, level, key = mark
                self.canv.bookmarkPage(key)
                self.canv.addOutlineEntry(title, key, level=level, closed=level > 0)
    return ReportDoc


def _canvas_class(footer_left: str):
    from reportlab.lib import colors
    from reportlab.pdfgen import canvas

    class NumberedCanvas(canvas.Canvas):
        """Writes 'page N of M' once the total is known."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                width, _ = self._pagesize
                self.setFont(FONT, 7)
                self.setFillColor(colors.HexColor(MUTED))
                self.drawString(PAGE_MARGIN, 16, footer_left)
                self.drawRightString(width - PAGE_MARGIN, 16, f"page {self._pageNumber} of {total}")
                super().showPage()
            super().save()
    return NumberedCanvas


# ---------------------------------------------------------------------------------------------
def render_pdf(report: dict) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.platypus import Frame, PageTemplate

    from reportlab import rl_config
    rl_config.useA85 = 0        # binary streams: ASCII85-encoding the chart images (pure Python) costs seconds
    _register_fonts()
    st = _Styles()
    page = landscape(A4)
    frame_w = page[0] - 2 * PAGE_MARGIN
    frame_h = page[1] - 2 * PAGE_MARGIN - 8
    charts = render_charts(report, "pil", dpi=CHART_DPI, fit=(frame_w / 72, (frame_h - CHART_HEADROOM) / 72))
    story = []
    story += _summary(report, st, frame_w)
    story += _comparison(report, st, frame_w)
    story += _charts(charts, st, frame_w, frame_h)
    for run in report["runs"]:
        story += _run(run, st, frame_w)
    story += _fingerprints(report, st, frame_w)

    buffer = io.BytesIO()
    doc = _doc_class()(buffer, pagesize=page, leftMargin=PAGE_MARGIN, rightMargin=PAGE_MARGIN,
                       topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN + 8,
                       title=f"{report['title']} — runs {', '.join(f'#{i}' for i in report['run_ids'])}",
                       author="Workbench", subject=report["criterion"]["description"],
                       creator=f"Workbench {report['workbench_version'] or ''}".strip())
    frame = Frame(PAGE_MARGIN, PAGE_MARGIN + 8, frame_w, frame_h, id="body", leftPadding=0, rightPadding=0,
                  topPadding=0, bottomPadding=0)
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    footer = f"{report['title']} · generated {report['generated_at']} · Workbench {report['workbench_version'] or ''}"
    doc.build(story, canvasmaker=_canvas_class(footer))
    return buffer.getvalue()


def _fits(text: str, width: float, size: float = 7.0) -> bool:
    """Whether ``text`` fits on one line of a cell ``width`` wide (DejaVu Sans is at most ~0.62 em)."""
    return len(text) * size * 0.62 <= width - 6


def _cell(text: str, width: float, style):
    """Plain strings where they fit (cheap to lay out), a wrapping Paragraph where they do not."""
    return text if _fits(text, width, style.fontSize) else _para(_e(text), style)


def _para(markup: str, style):
    from reportlab.platypus import Paragraph
    return Paragraph(markup, style)


class _Picture:
    """A chart image (PIL) drawn at a fixed size; built lazily so reportlab is imported only here."""

    @staticmethod
    def make(image, width: float, height: float):
        from reportlab.lib.utils import ImageReader
        from reportlab.platypus import Flowable

        class Picture(Flowable):
            def wrap(self, available_width, available_height):
                return width, height

            def draw(self):
                self.canv.drawImage(ImageReader(image), 0, 0, width, height)
        return Picture()


def _table(rows, widths, st: _Styles, header: bool = True, zebra: bool = True, extra=()):
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 7),
             ("LEADING", (0, 0), (-1, -1), 8.6), ("TEXTCOLOR", (0, 0), (-1, -1), colors.HexColor(INK)),
             ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
             ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 2),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
             ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor(LINE))]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(SOFT)))
    style += list(extra)
    table.setStyle(TableStyle(style))
    return table


def _kv_table(rows, st: _Styles, width: float):
    widths = [width * 0.38, width * 0.62]
    data = [[_cell(k, widths[0], st.cell), _cell(v, widths[1], st.cell)] for k, v in rows]
    return _table(data, widths, st, header=False)


# ---------------------------------------------------------------------------------------------
def _summary(report: dict, st: _Styles, width: float) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Spacer, Table, TableStyle
    s = report["summary"]
    models = sorted({r["model"] for r in report["runs"]})
    out = [Paragraph(_e(report["title"]), st.title),
           Paragraph(f"{len(report['runs'])} run(s) of {_e(', '.join(models))} · generated {_e(report['generated_at'])} "
                     f"· Workbench {_e(report['workbench_version'] or '')} · database {_e(report['database'])}", st.meta),
           _bookmarked(Paragraph("Summary", st.h1), "Summary", 0, "summary")]
    out.append(Paragraph(f"<b>Criterion:</b> {_e(report['criterion']['description'])}.", st.body))
    out.append(Spacer(1, 6))
    if s["best_run_id"] is None:
        out.append(Paragraph(f"<b>No best variant.</b> {_e(s['reason'])}", st.callout_bad))
    else:
        out.append(Paragraph(f"<b>Best variant: #{s['best_run_id']}</b> <font name='{MONO}'>{_e(s['best_chain'])}</font>",
                             st.h1))
        out.append(Paragraph(_e(s["reason"]) + ".", st.muted))
        out.append(Spacer(1, 6))
        cards = kpis(s)
        cell_w = width / len(cards)
        color = {"good": GOOD, "bad": BAD, "noise": WARN}
        row = []
        for label, value, sub, cls in cards:
            value_style = st.kpi_value.clone("v", textColor=colors.HexColor(color.get(cls, INK)))
            row.append([Paragraph(_e(label.upper()), st.kpi_label), Paragraph(_e(value), value_style),
                        Paragraph(_e(sub), st.small)])
        table = Table([row], colWidths=[cell_w] * len(cards), hAlign="LEFT")
        table.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#b9d3ee")),
                                   ("INNERGRID", (0, 0), (-1, -1), 0.6, colors.HexColor("#b9d3ee")),
                                   ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#f1f7fd")),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 6),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        out.append(table)
        if s["noise_warning"]:
            out.append(Paragraph(f"<b>Warning:</b> {_e(s['noise_warning'])}", st.callout))
    if len(s["groups"]) > 1:
        out.append(Paragraph("BEST PER MODEL AND SETUP", st.h2))
        rows = [[Paragraph(h, st.head) for h in ("setup", "best variant", group_value_title(report))]]
        rows += [[Paragraph(_e(a), st.cell), Paragraph(_e(b), st.cell), Paragraph(_e(c), st.cell)]
                 for a, b, c in group_rows(report)]
        out.append(_table(rows, [width * 0.4, width * 0.35, width * 0.25], st))
    if s["warnings"]:
        out.append(Paragraph("WARNINGS", st.h2))
        out += [Paragraph("• " + _e(w), st.body) for w in s["warnings"]]
    if s["excluded"]:
        out.append(Paragraph("NOT CONSIDERED FOR “BEST”", st.h2))
        out += [Paragraph(f"• #{e['id']}: {_e(e['reason'])}", st.small) for e in s["excluded"][:60]]
        if len(s["excluded"]) > 60:
            out.append(Paragraph(f"… and {len(s['excluded']) - 60} more (see each run's page)", st.small))
    return out


def _comparison(report: dict, st: _Styles, width: float) -> list:
    from reportlab.lib import colors
    from reportlab.platypus import PageBreak, Paragraph
    cols = comparison_columns()
    weights = {"run": 2.4, "status": 1.3, "p50": 1.75, "p99": 0.8, "throughput": 0.9, "speedup": 1.45, "verdict": 2.4, "size": 0.85,
               "compression": 1.05, "top1": 0.8, "accuracy": 0.8, "energy": 0.9, "rss": 0.85}
    total = sum(weights[c.key] for c in cols)
    widths = [width * weights[c.key] / total for c in cols]
    rows = [[Paragraph(_e(c.title), st.head_r if c.align else st.head) for c in cols]]
    extra = [("ALIGN", (i, 0), (i, -1), "RIGHT") for i, c in enumerate(cols) if c.align]
    color = {"good": GOOD, "bad": BAD, "noise": WARN}
    for i, run in enumerate(report["runs"], 1):
        cells = []
        for j, (c, w) in enumerate(zip(cols, widths)):
            if run["status"] != "done" and c.key not in ("run", "status"):
                cells.append(Paragraph(f"<font color='{BAD}'>{_e(failure_line(run))}</font>", st.cell))
                cells += [""] * (len(cols) - j - 1)
                extra.append(("SPAN", (j, i), (-1, i)))
                break
            text, note = c.cell(run)
            if note == "noise" and c.key == "speedup":
                text += " ~"
            if note in color:
                extra.append(("TEXTCOLOR", (j, i), (j, i), colors.HexColor(color[note])))
            cells.append(_cell(text, w, st.cell_r if c.align else st.cell))
        rows.append(cells)
        if run["best"]:
            extra.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#eef6ee")))
        elif run["status"] != "done":
            extra.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fdf3f2")))
    return [PageBreak(), _bookmarked(Paragraph("Comparison", st.h1), "Comparison", 0, "comparison"),
            _table(rows, widths, st, extra=extra),
            Paragraph("Speed-up and size are relative to each run's baseline (plugin-free run of the same model, "
                      "runtime, device and batch); “~” marks a speed-up inside the noise: " + NOISE_RULE + ". "
                      "Latencies are per batch. Green row: the best variant.", st.muted)]


def _charts(charts: list, st: _Styles, width: float, height: float) -> list:
    from reportlab.platypus import PageBreak, Paragraph
    out = []
    for i, chart in enumerate(charts):
        out.append(PageBreak())
        title = _bookmarked(Paragraph(f"Charts · {_e(chart.title)}", st.h1), chart.title, 1, f"chart-{chart.id}")
        if i == 0:     # the section's bookmark sits on the same heading
            out.append(_bookmarked(Paragraph("", st.small), "Charts", 0, "charts"))
        out.append(title)
        w = width
        h = w * chart.height_in / chart.width_in
        room = height - CHART_HEADROOM
        if h > room:
            w, h = w * room / h, room
        out.append(_Picture.make(chart.data, w, h))
        out.append(Paragraph(_e(chart.caption), st.muted))
    return out


def _wrap_mono(text: str, width_chars: int) -> str:
    lines = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, width_chars, break_long_words=True, break_on_hyphens=False,
                               replace_whitespace=False, drop_whitespace=False) or [""]
    return "<br/>".join(_e(line).replace(" ", "&nbsp;") for line in lines)


def _run(run: dict, st: _Styles, width: float) -> list:
    from reportlab.platypus import PageBreak, Paragraph, Spacer, Table, TableStyle
    badges = [run["status"]] + (["best variant"] if run["best"] else []) + (["Pareto front"] if run["pareto"] else [])
    if (run["comparison"] or {}).get("speedup_significant") is False:
        badges.append("speed-up inside noise")
    title = f"Run {run_title(run)}"
    mono_chars = int(width / (0.602 * st.mono.fontSize)) - 1       # DejaVu Sans Mono: 0.602 em per character
    out = [PageBreak(), _bookmarked(Paragraph(_e(title), st.h1), title, 0, f"run-{run['id']}"),
           Paragraph(f"<b>{_e(' · '.join(badges))}</b> — {_e(run['model'])} · {_e(run['runtime'])} on "
                     f"{_e(run['device'])} · dtype {_e(run['dtype'])} · batch {_e(run['batch'])} · threads "
                     f"{_e(run['threads'])} · created {_e(run['created_at'])}", st.muted)]
    if run["failure"]:
        f = run["failure"]
        where = f" (during {_e(f['phase'])})" if f.get("phase") else ""
        out.append(Paragraph(f"<b>{_e(f['status'].capitalize())}:</b> {_e(f['reason'])}{where}", st.callout_bad))
        if f["detail"]:
            detail = "\n".join(f["detail"].splitlines()[-14:])
            out.append(Paragraph(_wrap_mono(detail, mono_chars), st.mono))
    if run["excluded_because"] and run["status"] == "done" and not run["is_baseline"]:
        out.append(Paragraph(f"Not eligible as best: {_e(run['excluded_because'])}.", st.muted))

    out.append(Paragraph("PLUGIN CHAIN", st.h2))
    steps = chain_steps(run)
    if not steps:
        out.append(Paragraph("None: this is a baseline (the model as loaded).", st.muted))
    else:
        rows = [[Paragraph(h, st.head) for h in ("step", "plugin", "parameters (bold: given; others: defaults)",
                                                 "what it changed")]]
        for i, step in enumerate(steps, 1):
            params = ", ".join((f"<b>{_e(k)}={_e(param_text(v))}</b>" if k in step["given_params"]
                                else f"{_e(k)}={_e(param_text(v))}") for k, v in step["params"].items()) or "—"
            change = _e(plugin_change_text(step)) if step["applied"] else f"<font color='{BAD}'>not applied</font>"
            name = _e(step["plugin"]) + (" (auto-inserted)" if step["auto_inserted"] else "")
            rows.append([Paragraph(str(i), st.cell), Paragraph(name, st.cell), Paragraph(params, st.cell),
                         Paragraph(change, st.cell)])
        out.append(_table(rows, [width * 0.05, width * 0.12, width * 0.38, width * 0.45], st))

    blocks = []
    if run["latency"]:
        blocks.append(("LATENCY", latency_rows(run)))
    blocks.append(("MEMORY, POWER, ENERGY", memory_power_rows(run)))
    if run["fidelity"]:
        blocks.append(("FIDELITY VS THE UNOPTIMIZED MODEL", fidelity_rows(run)))
    gap = 10
    col_w = (width - gap * (len(blocks) - 1)) / len(blocks)
    cells = [[Paragraph(title, st.h2), _kv_table(rows, st, col_w)] for title, rows in blocks]
    grid = Table([cells], colWidths=[col_w + (gap if i < len(blocks) - 1 else 0) for i in range(len(blocks))],
                 hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                              ("RIGHTPADDING", (0, 0), (-1, -1), gap), ("RIGHTPADDING", (-1, 0), (-1, 0), 0)]))
    out.append(grid)
    out += explain_pdf(run, st, width, lambda rows, widths, header=True: _table(rows, widths, st, header=header),
                       _Picture.make, CHART_DPI)
    notes = run["warnings"] + run["flags"] + run["notes"]
    if notes:
        out.append(Paragraph("NOTES AND WARNINGS", st.h2))
        out += [Paragraph("• " + _e(n), st.small) for n in notes]

    out.append(Paragraph("REPRODUCE", st.h2))
    out.append(Paragraph(_wrap_mono(run["command"] or "(no RunSpec stored)", mono_chars), st.mono))
    for note in run["command_notes"]:
        out.append(Paragraph("• " + _e(note), st.small))
    out.append(Spacer(1, 3))
    out.append(Paragraph("<b>RunSpec JSON</b>", st.small))
    spec_json = json.dumps(run["spec"], sort_keys=True, separators=(", ", ": "))
    out.append(Paragraph(_wrap_mono(spec_json, mono_chars), st.mono))
    fp = env_fingerprint(run)
    titles = dict(ENV_FIELDS)
    env_text = " · ".join(f"{titles[k]} {v}" for k, v in fp.items())
    packages = ", ".join(f"{k} {v}" for k, v in ((run["environment"] or {}).get("packages") or {}).items() if v)
    out.append(Spacer(1, 3))
    out.append(Paragraph(f"<b>Environment</b> — {_e(env_text)}" + (f"<br/>packages: {_e(packages)}" if packages else ""),
                         st.small))
    return out


def _fingerprints(report: dict, st: _Styles, width: float) -> list:
    from reportlab.platypus import PageBreak, Paragraph
    runs = report["runs"]
    out = [PageBreak(), _bookmarked(Paragraph("Reproducibility: environment fingerprints", st.h1),
                                    "Reproducibility", 0, "reproducibility"),
           Paragraph("Each run's page carries its exact RunSpec JSON and the <font name='%s'>workbench bench</font> "
                     "command that measures it again; this table compares where they were measured." % MONO, st.muted)]
    diffs = env_differences(runs)
    if diffs:
        out.append(Paragraph(f"<b>The runs were measured in different environments:</b> {_e(', '.join(diffs))} "
                             "differ. Compare their numbers with care.", st.callout))
    head = [Paragraph("run", st.head)] + [Paragraph(_e(t), st.head) for _, t in ENV_FIELDS]
    rows = [head] + [[Paragraph(f"#{r['id']}", st.cell)] + [Paragraph(_e(v), st.cell) for v in env_fingerprint(r).values()]
                     for r in runs]
    weights = [0.5, 0.7, 1.0, 0.9, 0.7, 2.0, 0.8, 0.8, 1.6, 1.6, 1.1]
    total = sum(weights)
    out.append(_table(rows, [width * w / total for w in weights], st))
    return out
