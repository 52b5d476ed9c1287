"""Take ``docs/screenshot-profile.png`` and ``docs/screenshot-layers.png``: the Results dock's
Profile and Layers tabs, filled from runs already stored (nothing is measured here).

Record the runs first, then take the pictures under a real X server (Xvfb)::

    workbench --db /tmp/wb/x.sqlite bench demo:digits-transformer -p quantize:method=dynamic_int8 --profile
    workbench --db /tmp/wb/x.sqlite layers 2 --scan          # optional: the Sensitivity scan view
    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_explain_screenshots.py --db /tmp/wb/x.sqlite

It opens the main window on that store, selects the runs (``--runs``, default: the last two),
shows each tab (the Profile tab's diff against the baseline, the Layers tab's table and chart) and
saves ``QWidget.grab()`` of the window.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True, help="the results store holding the runs")
    parser.add_argument("--runs", default="", help="run ids to select, e.g. 1,2 (default: the last two)")
    parser.add_argument("--size", default="1600x1000")
    parser.add_argument("--split", type=float, default=0.25, help="the runs table's share of the Results dock")
    parser.add_argument("--results-height", type=int, default=560, help="px of the Results dock")
    parser.add_argument("--profile-output", default=str(ROOT / "docs" / "screenshot-profile.png"))
    parser.add_argument("--layers-output", default=str(ROOT / "docs" / "screenshot-layers.png"))
    parser.add_argument("--scan-output", default=None, help="also save the Sensitivity scan view")
    parser.add_argument("--top-ops-output", default=None, help="also save the Profile tab's Top ops view")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wb-explain-shot-"))
    import workbench.gui  # noqa: F401 - sets the Qt environment up before Qt loads
    from PySide6.QtCore import QCoreApplication, QSettings

    from workbench.gui.app import create_application
    app = create_application([sys.argv[0]])
    QCoreApplication.setApplicationName("WorkbenchScreenshot")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    from workbench.gui.main_window import MainWindow

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    width, height = (int(v) for v in args.size.split("x"))
    window = MainWindow(db=args.db, restore=False)
    window.confirm_on_close = False
    window.resize(width, height)
    window.show()
    pump(1.0)
    runs = [int(v) for v in args.runs.split(",") if v.strip()] or \
        sorted(r.id for r in window.store.list_runs(limit=2))
    window.select_runs(runs)
    window.results_dock.raise_()
    from PySide6.QtCore import Qt
    window.resizeDocks([window.model_dock, window.results_dock], [height - args.results_height - 80,
                                                                  args.results_height], Qt.Orientation.Vertical)
    pump(0.5)
    total = window.results_split.width()
    window.results_split.setSizes([int(total * args.split), total - int(total * args.split)])
    pane = window.results_split
    shots = [(pane.profile_tab, args.profile_output, 1), (pane.layers_tab, args.layers_output, 0)]
    if args.top_ops_output:
        shots.append((pane.profile_tab, args.top_ops_output, 0))
    if args.scan_output:
        shots.append((pane.layers_tab, args.scan_output, 1))
    for tab, output, view in shots:
        window.charts.tabs.setCurrentWidget(tab.parentWidget().parentWidget())     # its scroll area
        if view is not None:
            tab.views.setCurrentIndex(view)
        pump(1.0)
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        print(f"wrote {out} ({window.width()}x{window.height()})")
    window.close()
    window.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
