"""Take ``docs/screenshot-verdict-1920.png`` (the README's first picture): the main window after a baseline + variant comparison.

Run under a real X server (Xvfb), e.g.::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py

It opens the demo CNN, ticks structured pruning, runs "baseline + variant", waits for both,
selects both rows (the comparison charts fill in) and saves ``QWidget.grab()`` of the window.

``--variant MODEL=CHAIN`` (repeatable) runs other comparisons in the same window instead, each
as "baseline + variant"; CHAIN is the CLI's plugin syntax joined by ``+``. The verdict
screenshots (a CNN pruned without its recovery fine-tune, in red, beside a good int8 transformer
in green; one thread keeps a busy 2-core machine's timings steady)::

    xvfb-run -a -s "-screen 0 1920x1080x24" python docs/make_screenshot.py --size 1280x720 --threads 1 \
        --iters 400 --duration 3 \
        --variant "demo:digits-cnn=prune:method=structured,amount=0.5,finetune=off+fuse" \
        --variant "demo:digits-transformer=quantize:method=dynamic_int8" \
        --output docs/screenshot-verdict-1280.png
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo:digits-cnn")
    parser.add_argument("--plugin", default="prune", help="the plugin of the variant")
    parser.add_argument("--param", action="append", default=["amount=0.5"], help="plugin key=value")
    parser.add_argument("--variant", action="append", default=[],
                        help="MODEL=CHAIN, e.g. demo:digits-cnn=prune:method=structured,amount=0.5+fuse "
                             "(repeatable; replaces --model/--plugin/--param)")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = library default)")
    parser.add_argument("--size", default="1600x1000")
    parser.add_argument("--output", default=str(ROOT / "docs" / "screenshot-verdict-1920.png"))
    parser.add_argument("--theme", default=None, help="force light or dark")
    parser.add_argument("--tradeoff-output", default=None,
                        help="also save the window with the 'Distribution & trade-off' charts tab shown")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wb-shot-"))
    if args.theme:
        os.environ["WORKBENCH_THEME"] = args.theme
    import workbench.gui  # noqa: F401
    from PySide6.QtCore import QCoreApplication, QSettings

    from workbench.gui.app import create_application
    app = create_application([sys.argv[0]])
    QCoreApplication.setApplicationName("WorkbenchScreenshot")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    from workbench.gui.main_window import MainWindow

    width, height = (int(v) for v in args.size.split("x"))
    window = MainWindow(db=tmp / "runs.sqlite", restore=False)
    window.confirm_on_close = False
    window.resize(width, height)
    window.show()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(condition, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)

    def run_pair(model: str, steps: list) -> list:
        """Open ``model``, tick exactly ``steps`` in their order, run baseline + variant, wait."""
        window.open_model(model)
        wait(lambda: window.model_panel.source() == model and not window.model_panel.is_busy()
             and (window.model_panel.info() is not None or window.model_panel.load_error()), 180, "the model info")
        if window.model_panel.load_error():
            raise SystemExit(window.model_panel.load_error())
        window.run_panel.iters_spin.setValue(args.iters)
        window.run_panel.duration_spin.setValue(args.duration)
        window.run_panel.threads_spin.setValue(args.threads)
        for name in window.plugin_panel.order():
            if name in window.plugin_panel.checked():
                window.plugin_panel.set_checked(name, False)
        for row, step in enumerate(steps):
            window.plugin_panel.move(step.name, row)
            window.plugin_panel.set_checked(step.name)
            window.plugin_panel.form(step.name).set_values(step.params)
        pump(0.3)
        jobs = window.start("pair")
        if not jobs:
            raise SystemExit(f"could not start the runs of {model} {steps}")
        wait(lambda: all(j.finished for j in jobs), 900, "the runs")
        failed = [(j.label, j.message) for j in jobs if j.status != "done"]
        if failed:
            raise SystemExit(f"runs failed: {failed}")
        return jobs

    from workbench.spec import PluginStep
    pump(0.5)
    variants = [(args.model, [PluginStep(args.plugin, dict(p.split("=", 1) for p in args.param))])]
    if args.variant:
        variants = []
        for text in args.variant:
            model, sep, chain = text.partition("=")
            if not sep or not chain:
                raise SystemExit(f"bad --variant {text!r}: expected MODEL=PLUGIN[:key=value,...][+PLUGIN...]")
            variants.append((model, [PluginStep.parse(step) for step in chain.split("+")]))
    jobs = [job for model, steps in variants for job in run_pair(model, steps)]
    pump(0.5)       # the last group's own "select my runs" lands first, then ours
    window.select_runs([j.run_id for j in jobs])
    window.results_dock.raise_()
    if os.environ.get("WB_SPLIT"):
        total = window.results_split.width()
        f = float(os.environ["WB_SPLIT"])
        window.results_split.setSizes([int(total * f), int(total * (1 - f))])
    pump(1.5)
    if os.environ.get("WB_DEBUG_SIZES"):
        from PySide6.QtWidgets import QWidget
        print("charts", window.charts.minimumSizeHint().toTuple(), window.charts.size().toTuple(),
              "table", window.results.minimumSizeHint().toTuple(), window.results.size().toTuple(),
              "split", window.results_split.size().toTuple())
        for c in window.charts.findChildren(QWidget):
            if c.minimumSizeHint().width() > 300:
                print("   chart child:", type(c).__name__, c.objectName(), c.minimumSizeHint().toTuple(), c.size().toTuple())
        for d in (window.model_dock, window.plugins_dock, window.run_dock, window.live_dock, window.results_dock):
            print(d.windowTitle(), "min", d.minimumSizeHint().toTuple(), "size", d.size().toTuple())
            for c in d.findChildren(QWidget):
                if c.minimumSizeHint().width() > 450:
                    print("   wide:", type(c).__name__, c.objectName(), c.minimumSizeHint().toTuple())
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"wrote {out} ({window.width()}x{window.height()})")
    if args.tradeoff_output:
        window.charts.tabs.setCurrentIndex(1)
        pump(1.0)
        window.grab().save(args.tradeoff_output)
        print(f"wrote {args.tradeoff_output}")
    window.close()
    window.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
