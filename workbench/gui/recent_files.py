"""File ▸ Open recent: the model files opened last, newest first, kept in QSettings."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu


class RecentFiles:
    KEY = "recent_files"

    def __init__(self, settings: QSettings, limit: int = 10) -> None:
        self.settings = settings
        self.limit = limit

    def paths(self) -> list[str]:
        value = self.settings.value(self.KEY, [])
        if isinstance(value, str):      # QSettings (INI) gives a one-item list back as a string
            value = [value]
        return [str(v) for v in value or []]

    def add(self, path: str) -> None:
        files = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue(self.KEY, files[:self.limit])

    def remove(self, path: str) -> None:
        self.settings.setValue(self.KEY, [p for p in self.paths() if p != path])

    def clear(self) -> None:
        self.settings.setValue(self.KEY, [])

    def fill_menu(self, menu: QMenu, open_path: Callable[[str], None]) -> None:
        """Rebuild ``menu`` (numbered entries, the full path as tip) just before it shows."""
        menu.clear()
        files = self.paths()
        if not files:
            menu.addAction("(no recent files)").setEnabled(False)
            return
        for i, path in enumerate(files):
            act = menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _checked=False, p=path: open_path(p))
        menu.addSeparator()
        menu.addAction("Clear list", self.clear)
