"""The Help menu's two boxes: the keyboard shortcuts and About."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

# (keys, what they do): the window's actions and the results table's own shortcuts
SHORTCUTS = [("Ctrl+O", "Open a model"), ("Ctrl+R", "Run"), ("Ctrl+Shift+R", "Run baseline + variant"),
             ("Esc / Ctrl+.", "Cancel the running job and the queue"), ("Ctrl+E", "Export a report"),
             ("Ctrl+Shift+S", "Save the selected run's optimized model"),
             ("F2 / Ctrl+T / Del", "Rename / tag / delete the selected runs (results table)"),
             ("F5", "Reload results (results table)"), ("Ctrl+Q", "Quit")]


def _open(box: QMessageBox) -> None:
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()          # non-blocking: runs keep streaming while it is up


def show_shortcuts(parent: QWidget) -> None:
    text = ("<table>" + "".join(f"<tr><td><b>{keys}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>"
                                for keys, what in SHORTCUTS) + "</table>")
    _open(QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, parent))


def show_about(parent: QWidget, store_path: str | Path) -> None:
    _open(QMessageBox(QMessageBox.Icon.Information, "About Workbench",
                      "Workbench: optimize neural networks (quantize, prune, fuse, distill), measure them "
                      "rigorously in an isolated worker process (latency, memory, power), compare and "
                      f"report.\n\nResults store: {store_path}", QMessageBox.StandardButton.Ok, parent))
