"""Run a script against a real main window in a fresh interpreter (this test process may already
have imported torch for other tests, so "the GUI never imports torch" can only be checked there)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Defines t0 (before any import), app, and w (the window, shown) on argv[1] (db) / argv[2] (settings).
_PRELUDE = textwrap.dedent("""
    import json, os, sys, time
    t0 = time.perf_counter()
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    QCoreApplication.setOrganizationName("WorkbenchTests"); QCoreApplication.setApplicationName("probe")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[2])
    from workbench.gui.main_window import MainWindow
    w = MainWindow(db=sys.argv[1])
    w.show()
""")
_EPILOGUE = textwrap.dedent("""
    w.confirm_on_close = False
    w.close(); w.deleteLater(); app.processEvents()
""")


def run_gui_probe(body: str, tmp_path: Path, timeout: float) -> dict:
    """Run ``body`` (which prints one JSON line last) after the prelude; return that JSON."""
    script = _PRELUDE + textwrap.dedent(body) + _EPILOGUE
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "runs.sqlite"), str(tmp_path)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
