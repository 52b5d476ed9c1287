"""HTML rendering of a report: one self-contained file.

Styles are inline, charts are matplotlib SVG inlined in the page (text stays text: searchable and
crisp at any zoom), and nothing is loaded from the network: the only ``href`` values are
in-page anchors (``#run-3``). Everything the PDF shows is here too, from the same data model.
"""
from __future__ import annotations

import html
import json
from typing import Any, Iterable

from .charts import render_charts
from .explain_render import explain_html
from .text import (
    ENV_FIELDS, chain_steps, comparison_columns, env_differences, env_fingerprint, failure_line,
    fidelity_rows, group_rows, group_value_title, kpis, latency_rows, memory_power_rows, param_text,
    plugin_change_text, run_title)
from ..results.stats import NOISE_RULE

CSS = """
:root { --ink:#1d2329; --muted:#5b6670; --line:#dfe3e8; --soft:#f5f7f9; --accent:#1f5fa8; --good:#2e8540;
        --bad:#c0392b; --warn:#a86400; --warnbg:#fff6e0; --badbg:#fdecea; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1280px; margin: 0 auto; padding: 0 28px 48px; }
header.top { background: #17324d; color: #fff; padding: 22px 0 16px; margin-bottom: 18px; }
header.top .inner { max-width: 1280px; margin: 0 auto; padding: 0 28px; }
header.top h1 { margin: 0 0 4px; font-size: 24px; letter-spacing: .2px; }
header.top .meta { color: #c9d6e3; font-size: 13px; }
header.top nav { margin-top: 10px; display: flex; gap: 16px; flex-wrap: wrap; }
header.top nav a { color: #fff; text-decoration: none; border-bottom: 1px solid #6d8bab; font-size: 13px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
p { margin: 6px 0; }
h5 { font-size: 13.5px; margin: 16px 0 4px; }
code, pre, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
      white-space: pre-wrap; word-break: break-all; margin: 4px 0; }
.muted { color: var(--muted); }
.best { border: 1px solid #b9d3ee; background: #f1f7fd; border-radius: 8px; padding: 14px 16px; }
.best .title { font-size: 17px; font-weight: 600; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 10px; margin: 12px 0 4px; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.kpi .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
.kpi .value { font-size: 22px; font-weight: 650; margin: 2px 0; }
.kpi .sub { font-size: 12px; color: var(--muted); }
.callout { border-left: 4px solid var(--warn); background: var(--warnbg); padding: 8px 12px; border-radius: 4px;
           margin: 8px 0; }
.callout.bad { border-color: var(--bad); background: var(--badbg); }
ul.warnings { margin: 6px 0; padding-left: 20px; }
ul.warnings li { margin: 2px 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
table.cmp { font-size: 11.5px; } table.cmp th, table.cmp td { padding: 5px 6px; }
table.cmp td:first-child { min-width: 170px; max-width: 300px; overflow-wrap: break-word; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best-row td { background: #eef6ee; }
tr.failed-row td { background: #fdf3f2; }
table.kv { width: auto; min-width: 320px; }
table.kv th { background: none; color: var(--muted); font-weight: 500; position: static; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 11.5px; font-weight: 600;
         vertical-align: middle; }
.badge.done { background: #e3f2e6; color: var(--good); } .badge.failed { background: var(--badbg); color: var(--bad); }
.badge.cancelled, .badge.running { background: #eceff2; color: var(--muted); }
.badge.best { background: #1f5fa8; color: #fff; } .badge.pareto { background: #e8eefc; color: #2b4c8c; }
.badge.noise { background: var(--warnbg); color: var(--warn); }
.noise { color: var(--warn); font-weight: 600; }
.good { color: var(--good); } .bad { color: var(--bad); }
figure { margin: 18px 0 26px; }
figure svg.chart { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
article.run { border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
article.run header { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 4px 22px; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--accent); }
a { color: var(--accent); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 10px; }
@media print { header.top { background: none; color: var(--ink); } header.top nav { display: none; }
               article.run, figure { break-inside: avoid; } th { position: static; } }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _list(items: Iterable[str], cls: str = "warnings") -> str:
    items = list(items)
    if not items:
        return ""
    return f'<ul class="{cls}">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _badges(run: dict) -> str:
    out = [f'<span class="badge {_e(run["status"])}">{_e(run["status"])}</span>']
    if run["best"]:
        out.append('<span class="badge best">best variant</span>')
    if run["pareto"]:
        out.append('<span class="badge pareto">Pareto front</span>')
    if (run["comparison"] or {}).get("speedup_significant") is False:
        out.append('<span class="badge noise">speed-up inside noise</span>')
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
def render_html(report: dict) -> bytes:
    charts = render_charts(report, "svg")
    runs = report["runs"]
    s = report["summary"]
    models = sorted({r["model"] for r in runs})
    parts = [
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report['title'])} — {len(runs)} run(s), {_e(', '.join(models))}</title>",
        f"<style>{CSS}</style>", "</head>", "<body>",
        '<header class="top"><div class="inner">',
        f"<h1>{_e(report['title'])}</h1>",
        f'<div class="meta">{len(runs)} run(s) of {_e(", ".join(models))} · generated {_e(report["generated_at"])} '
        f'by Workbench {_e(report["workbench_version"] or "")} · best by: {_e(report["criterion"]["description"])}</div>',
        '<nav><a href="#summary">Summary</a><a href="#comparison">Comparison</a><a href="#charts">Charts</a>'
        '<a href="#runs">Runs</a><a href="#reproducibility">Reproducibility</a></nav>',
        "</div></header>", "<main>",
        _summary(report),
        _comparison(report),
        _charts(charts),
        _runs(report),
        _reproducibility(report),
        f'<footer>Workbench report format {_e(report["format"])} v{report["version"]} · database '
        f'<span class="mono">{_e(report["database"])}</span> · runs {_e(", ".join(f"#{i}" for i in report["run_ids"]))}'
        f" · counts: {_e(', '.join(f'{k} {v}' for k, v in s['counts'].items()))}</footer>",
        "</main>", "</body>", "</html>",
    ]
    return "\n".join(parts).encode("utf-8")


def _summary(report: dict) -> str:
    s = report["summary"]
    out = ['<section id="summary">', "<h2>Summary</h2>"]
    if s["best_run_id"] is None:
        out.append(f'<div class="callout bad"><strong>No best variant.</strong> {_e(s["reason"])}</div>')
    else:
        out.append('<div class="best">')
        out.append(f'<div class="title">Best variant: <a href="#run-{s["best_run_id"]}">#{s["best_run_id"]}</a> '
                   f'<span class="mono">{_e(s["best_chain"])}</span></div>')
        out.append(f'<p class="muted">{_e(s["reason"])}.</p>')
        out.append('<div class="kpis">')
        for label, value, sub, cls in kpis(s):
            out.append(f'<div class="kpi"><div class="label">{_e(label)}</div>'
                       f'<div class="value {cls}">{_e(value)}</div><div class="sub">{_e(sub)}</div></div>')
        out.append("</div></div>")
        if s["noise_warning"]:
            out.append(f'<div class="callout"><strong>Warning:</strong> {_e(s["noise_warning"])}</div>')
    if len(s["groups"]) > 1:
        rows = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td class=\"num\">{_e(c)}</td></tr>"
                       for a, b, c in group_rows(report))
        out.append(f'<h4>Best per model and setup</h4><div class="table-wrap"><table class="groups"><thead><tr>'
                   f'<th>setup</th><th>best variant</th><th class="num">{_e(group_value_title(report))}</th></tr>'
                   f"</thead><tbody>{rows}</tbody></table></div>")
    if s["warnings"]:
        out.append("<h4>Warnings</h4>" + _list(s["warnings"]))
    if s["excluded"]:
        items = "".join(f'<li><a href="#run-{e["id"]}">#{e["id"]}</a>: {_e(e["reason"])}</li>' for e in s["excluded"])
        out.append(f'<details><summary>Not considered for "best" ({len(s["excluded"])})</summary>'
                   f'<ul class="warnings">{items}</ul></details>')
    out.append("</section>")
    return "\n".join(out)


def _comparison(report: dict) -> str:
    cols = comparison_columns()
    head = "".join(f'<th class="{c.align}">{_e(c.title)}</th>' for c in cols)
    body = []
    for run in report["runs"]:
        cls = "best-row" if run["best"] else ("failed-row" if run["status"] != "done" else "")
        cells = []
        for c in cols:
            if run["status"] != "done" and c.key not in ("run", "status"):
                cells.append(f'<td colspan="{len(cols) - 2}" class="bad">{_e(failure_line(run))}</td>')
                break
            text, note = c.cell(run)
            content = _e(text)
            if c.key == "run":
                content = (f'<a href="#run-{run["id"]}">#{run["id"]}</a> '
                           f'<span class="mono">{_e(run["chain"]).replace(",", ",<wbr>")}</span>')
                if run["is_baseline"]:
                    content += f' <span class="muted">({_e(run["model"])})</span>'
            if note == "noise":
                mark = " ~" if c.key == "speedup" else ""
                content = f'<span class="noise" title="inside the noise: {_e(NOISE_RULE)}">{content}{mark}</span>'
            elif note == "good":
                content = f'<span class="good">{content}</span>'
            elif note == "bad":
                content = f'<span class="bad">{content}</span>'
            cls_attr = c.align or ("status" if c.key == "status" else "")
            cells.append(f'<td class="{cls_attr}">{content}</td>')
        body.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    legend = ('<p class="muted">Speed-up and size are relative to each run\'s baseline (plugin-free run of the same '
              'work: model and file contents, inputs as run, batch, threads, dtype, device, on the model\'s own '
              'runtime); a chain that moved the model to another runtime shows a second ratio, against the fp32 '
              'model on that runtime (what its steps did); <span class="noise">~</span> marks a speed-up inside '
              f'the noise: {_e(NOISE_RULE)}. Latencies are per batch.</p>')
    return (f'<section id="comparison"><h2>Comparison</h2><div class="table-wrap"><table class="cmp"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>{legend}</section>')


def _charts(charts: list) -> str:
    out = ['<section id="charts">', "<h2>Charts</h2>"]
    if not charts:
        out.append('<p class="muted">No finished runs: nothing to chart.</p>')
    for chart in charts:
        out.append(f'<figure id="chart-{chart.id}">{chart.data}<figcaption><strong>{_e(chart.title)}.</strong> '
                   f"{_e(chart.caption)}</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def _runs(report: dict) -> str:
    out = ['<section id="runs">', "<h2>Runs</h2>"]
    for run in report["runs"]:
        out.append(f'<article class="run" id="run-{run["id"]}"><header><h3>{_e(run_title(run))}</h3>'
                   f'{_badges(run)}<span class="muted">{_e(run["model"])} · {_e(run["runtime"])} on '
                   f'{_e(run["device"])} · batch {_e(run["batch"])} · {_e(run["created_at"])}</span></header>')
        if run["failure"]:
            f = run["failure"]
            where = f' <span class="muted">(during {_e(f["phase"])})</span>' if f.get("phase") else ""
            out.append(f'<div class="callout bad"><strong>{_e(f["status"].capitalize())}:</strong> {_e(f["reason"])}{where}'
                       + (f'<details><summary>details (traceback)</summary><pre>{_e(f["detail"])}</pre></details>'
                          if f["detail"] else "") + "</div>")
        if run["excluded_because"] and run["status"] == "done" and not run["is_baseline"]:
            out.append(f'<p class="muted">Not eligible as best: {_e(run["excluded_because"])}.</p>')
        out.append("<h4>Plugin chain</h4>" + _chain(run))
        out.append('<div class="grid2">')
        if run["latency"]:
            out.append("<div><h4>Latency</h4>" + _kv((k, _e(v)) for k, v in latency_rows(run)) + "</div>")
        out.append("<div><h4>Memory, power, energy</h4>" + _kv((k, _e(v)) for k, v in memory_power_rows(run)) + "</div>")
        if run["fidelity"]:
            out.append("<div><h4>Fidelity vs the unoptimized model</h4>"
                       + _kv((k, _e(v)) for k, v in fidelity_rows(run)) + "</div>")
        out.append("</div>")
        out.append(explain_html(run))
        notes = run["warnings"] + run["flags"] + run["notes"]
        if notes:
            out.append("<h4>Notes and warnings</h4>" + _list(notes))
        out.append(f'<p><a href="#repro-{run["id"]}">Reproduce this run ↓</a></p>')
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


def _chain(run: dict) -> str:
    steps = chain_steps(run)
    if not steps:
        return '<p class="muted">None: this is a baseline (the model as loaded).</p>'
    rows = []
    for i, step in enumerate(steps, 1):
        params = ", ".join(
            f'<span class="mono">{"<strong>" if k in step["given_params"] else ""}{_e(k)}={_e(param_text(v))}'
            f'{"</strong>" if k in step["given_params"] else ""}</span>' for k, v in step["params"].items()) or "—"
        name = _e(step["plugin"]) + (' <span class="muted">(auto-inserted)</span>' if step["auto_inserted"] else "")
        change = _e(plugin_change_text(step)) if step["applied"] else '<span class="bad">not applied</span>'
        rows.append(f"<tr><td class=\"num\">{i}</td><td>{name}</td><td>{params}</td><td>{change}</td></tr>")
    return ('<div class="table-wrap"><table><thead><tr><th class="num">step</th><th>plugin</th>'
            '<th>parameters (bold: given; others: defaults)</th><th>what it changed</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _reproducibility(report: dict) -> str:
    runs = report["runs"]
    out = ['<section id="reproducibility">', "<h2>Reproducibility</h2>",
           '<p class="muted">Each run\'s environment fingerprint, its exact RunSpec (as stored) and the command that '
           "measures it again.</p>"]
    diffs = env_differences(runs)
    if diffs:
        out.append(f'<div class="callout"><strong>The runs were measured in different environments:</strong> '
                   f'{_e(", ".join(diffs))} differ. Compare their numbers with care.</div>')
    head = "".join(f"<th>{_e(title)}</th>" for _, title in ENV_FIELDS)
    rows = "".join(f'<tr><td><a href="#run-{r["id"]}">#{r["id"]}</a></td>'
                   + "".join(f"<td>{_e(v)}</td>" for v in env_fingerprint(r).values()) + "</tr>" for r in runs)
    out.append(f'<h4>Environment fingerprint</h4><div class="table-wrap"><table><thead><tr><th>run</th>{head}</tr>'
               f"</thead><tbody>{rows}</tbody></table></div>")
    for run in runs:
        out.append(f'<div class="repro" id="repro-{run["id"]}"><h5>{_e(run_title(run))}</h5>')
        out.append(f'<pre class="command">{_e(run["command"] or "(no RunSpec stored)")}</pre>')
        if run["command_notes"]:
            out.append(_list(run["command_notes"]))
        out.append(f'<details><summary>RunSpec JSON</summary><pre>{_e(json.dumps(run["spec"], indent=2, sort_keys=True))}'
                   f'</pre></details>')
        out.append(f'<details><summary>Full environment</summary><pre>'
                   f'{_e(json.dumps(run["environment"], indent=2, sort_keys=True))}</pre></details></div>')
    out.append("</section>")
    return "\n".join(out)


__all__ = ["render_html", "CSS"]
