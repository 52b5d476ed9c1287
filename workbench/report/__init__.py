"""Reports: export runs as HTML, PDF, CSV or JSON (``workbench report``, the GUI's "Export report…").

One data model (``build_report``, in ``report_model.py``) is rendered per format:

=========  ==========================================================================================
``.html``  one self-contained page: styles and SVG charts inline, no network needed (``report_html``)
``.pdf``   a paginated document with the same content, charts as 200-dpi images (``report_pdf``)
``.csv``   one row per run, the stable documented columns of ``report_csv.CSV_COLUMNS``
``.json``  the data model itself; its schema is ``docs/report.schema.json``
=========  ==========================================================================================

Core module: no Qt. Safe to call from a worker thread (charts use matplotlib ``Figure`` objects,
never pyplot).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..errors import WorkbenchError
from .files import write_atomically
from .command import spec_to_command
from .model import CRITERIA, CRITERION_HELP, build_report, parse_criterion
from ..results.store import ResultsStore


def render_json(report: dict) -> bytes:
    return (json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def render_csv(report: dict) -> bytes:
    from .csv import render_csv as _render
    return _render(report)


def render_html(report: dict) -> bytes:
    from .html import render_html as _render
    return _render(report)


def render_pdf(report: dict) -> bytes:
    from .pdf import render_pdf as _render
    return _render(report)


FORMATS: dict[str, Callable[[dict], bytes]] = {
    ".html": render_html, ".htm": render_html, ".pdf": render_pdf, ".csv": render_csv, ".json": render_json,
}


def format_for(output: str | Path) -> Callable[[dict], bytes]:
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise WorkbenchError(f"cannot write a report as {suffix or 'a file without a suffix'!r} ({output}): "
                             f"the suffix picks the format, one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def write_report(store: ResultsStore, run_ids: list[int], output: str | Path, criterion: str = "p50") -> Path:
    """Build the report of ``run_ids`` and write it to ``output`` (format from the suffix).

    Raises ``WorkbenchError`` for an unsupported suffix, an unknown run id or criterion, or an
    unwritable path. The file appears complete or not at all (written beside, then renamed).
    """
    path = Path(output).expanduser()
    render = format_for(path)
    report = build_report(store, list(run_ids), criterion)
    data = render(report)
    return write_atomically(path, data)


__all__ = ["write_report", "build_report", "spec_to_command", "parse_criterion", "FORMATS", "CRITERIA",
           "CRITERION_HELP", "render_html", "render_pdf", "render_csv", "render_json", "format_for"]
