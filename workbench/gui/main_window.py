"""The main window: the Model, Plugins, Run, Live, Results and Log docks and their layout, menus
and shortcuts, settings, opening models (dialog, recent files, demos, drag-and-drop) and exporting
reports (with an Open report button), saving a stored run's optimized model. Starting runs and
following them is ``run_control.py``'s; everything the core does is reached through ``bridge.py``
(which also opens the results store)."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QPushButton,
                               QScrollArea, QWidget)

from ..errors import WorkbenchError
from ..models.formats import is_model_file
from ..plugin_api import discover_plugins
from ..spec import PluginStep, RunSpec
from . import errors, help_dialogs
from .bridge import Job, SessionBridge
from .docks.log_dock import LogDock
from .docks.model_panel import ModelPanel, file_filter
from .docks.param_form import guard_wheel
from .docks.plugin_panel import PluginPanel
from .docks.run_panel import SAVE_FILTER, RunPanel
from .live.plots import LivePlots
from .recent_files import RecentFiles
from .results.pane import ResultsPane
from .run_control import RunControl

MAX_RECENT = 10
SETTINGS_VERSION = 2        # 2: the Run dock is a full-height column (older saved layouts are not restored)


LABEL_WRAP_WIDTH = 200


def wrap_long_labels(root: QWidget, width: int = LABEL_WRAP_WIDTH) -> None:
    """Long one-line labels wrap instead of widening their dock (the Model dock's busy line pushed
    Open… out of sight while a model was being inspected)."""
    for label in root.findChildren(QLabel):
        if not label.wordWrap() and label.sizeHint().width() > width and label.textFormat() != Qt.TextFormat.RichText:
            label.setWordWrap(True)


class DockScrollArea(QScrollArea):
    """A dock's content in a scroll area that asks for the width its content needs, so at the
    default layout nothing is clipped or scrolled sideways; only a window squeezed below that
    (each dock may shrink to ``SQUEEZED_WIDTH``) scrolls sideways instead of clipping."""

    SQUEEZED_WIDTH = 180

    def __init__(self, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setWidget(content)
        content.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()        # a form opened or closed: the dock's wish follows
        return super().eventFilter(watched, event)

    def needed_width(self) -> int:
        return (self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
                + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(min(self.needed_width(), self.SQUEEZED_WIDTH), 120)

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.needed_width()), hint.height())


class MainWindow(QMainWindow):
    def __init__(self, db: str | Path | None = None, settings: QSettings | None = None,
                 restore: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WorkbenchMainWindow")
        self.setWindowTitle("Workbench")
        self.setDockNestingEnabled(True)
        self.setAcceptDrops(True)
        self.confirm_on_close = True
        self.settings = settings if settings is not None else QSettings()
        self.recent = RecentFiles(self.settings, MAX_RECENT)
        self.bridge = SessionBridge(db, self)
        self.store = self.bridge.store
        stale = self.store.settle_orphaned_runs()

        # -- panels ------------------------------------------------------------------------------------
        self.model_panel = ModelPanel(self.bridge)
        self.plugin_panel = PluginPanel(discover_plugins())
        self.run_panel = RunPanel()
        self.live = LivePlots()
        self.results_split = ResultsPane(self.store, self.bridge)
        self.results, self.charts = self.results_split.table, self.results_split.charts
        self.log = LogDock()
        self.runs = RunControl(self.bridge, self.model_panel, self.plugin_panel, self.run_panel, self.live,
                               self.log, self)

        self.model_dock = self._dock("Model", "modelDock", self.model_panel, scroll=True)
        self.plugins_dock = self._dock("Plugins", "pluginsDock", self.plugin_panel, scroll=True)
        self.run_dock = self._dock("Run", "runDock", self.run_panel, scroll=True)
        self.live_dock = self._dock("Live", "liveDock", self.live)
        self.results_dock = self._dock("Results", "resultsDock", self.results_split)
        self.log_dock = self._dock("Log", "logDock", self.log)

        for dock in self.docks():
            guard_wheel(dock.widget())
            wrap_long_labels(dock.widget())

        self._build_actions()
        self._build_menus()
        self.last_report: str | None = None
        self.open_report_button = QPushButton("Open report")
        self.open_report_button.setObjectName("openReportButton")
        self.open_report_button.setFlat(True)
        self.open_report_button.clicked.connect(lambda: self.open_report())
        self.open_report_button.hide()
        self.statusBar().addPermanentWidget(self.open_report_button)
        self.queue_status = QLabel("idle")
        self.statusBar().addPermanentWidget(self.queue_status)
        db_label = QLabel(f"results: {self.store.path}")
        db_label.setToolTip(str(self.store.path))
        self.statusBar().addPermanentWidget(db_label)

        # -- wiring ------------------------------------------------------------------------------------
        self.model_panel.openRequested.connect(self.open_file_dialog)
        self.model_panel.sourceChanged.connect(self._source_changed)
        self.model_panel.errorOccurred.connect(self.show_error)
        self.model_panel.busyChanged.connect(
            lambda busy: self.statusBar().showMessage("Inspecting the model…" if busy else "", 0 if busy else 1))
        self.runs.stateChanged.connect(self._sync_run_actions)
        self.runs.jobsQueued.connect(self.live_dock.raise_)
        self.runs.queueSummary.connect(self.queue_status.setText)
        self.runs.statusMessage.connect(self.statusBar().showMessage)
        self.runs.runsChanged.connect(self.results_split.runs_changed)
        self.runs.groupFinished.connect(self.select_runs)
        self.runs.sweepFinished.connect(self.show_sweep)
        self.results_split.sweep_tab.resumeRequested.connect(self.runs.resume_sweep)
        self.runs.errorOccurred.connect(self.show_error)
        self.bridge.busyChanged.connect(lambda _busy: self.cancel_action.setEnabled(self.bridge.is_busy()))
        self.bridge.reportDone.connect(self._report_done)
        self.bridge.reportFailed.connect(self.show_error)

        self.resize(1500, 940)
        self._default_layout()
        if restore:
            self.restore_settings()
        self.runs.update_state()
        self.bridge.probe_gpus()
        if stale:
            self.log.append(f"{stale} run(s) left 'running' by an earlier session were marked failed")
        self.log.append(f"results store: {self.store.path}")

    # -- construction helpers ------------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, scroll: bool = False) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        dock.setWidget(DockScrollArea(widget) if scroll else widget)
        return dock

    def docks(self) -> list[QDockWidget]:
        return [self.model_dock, self.plugins_dock, self.run_dock, self.live_dock, self.results_dock,
                self.log_dock]

    def _default_layout(self) -> None:
        # One nested area (no central widget): Model | Plugins | Live over Results / Log, and Run as a
        # full-height column on the right, so its buttons, data, save field and queue fit at 720 px.
        area = Qt.DockWidgetArea.TopDockWidgetArea
        for dock in self.docks():
            self.removeDockWidget(dock)
            dock.setFloating(False)
        self.addDockWidget(area, self.model_dock)
        self.splitDockWidget(self.model_dock, self.run_dock, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.model_dock, self.results_dock, Qt.Orientation.Vertical)
        self.splitDockWidget(self.model_dock, self.plugins_dock, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.plugins_dock, self.live_dock, Qt.Orientation.Horizontal)
        self.tabifyDockWidget(self.results_dock, self.log_dock)
        for dock in self.docks():
            dock.show()
        self.results_dock.raise_()
        self._sizes_pending = True
        if self.isVisible():
            QTimer.singleShot(0, self._apply_default_sizes)

    def _apply_default_sizes(self) -> None:
        """Dock sizes in proportion to the window (only meaningful once it is shown)."""
        self._sizes_pending = False
        width, height = max(self.width(), 900), max(self.height(), 600)
        def fitting(dock: QDockWidget, share: int, least: int, most: int) -> int:
            # never less than the dock's content needs now; ``least`` leaves room for what it may
            # show later (the Model dock's inspection line, a plugin's form)
            return max(dock.widget().needed_width(), least, min(most, share))
        run = fitting(self.run_dock, int(width * 0.22), 300, 400)
        rest = width - run
        model = fitting(self.model_dock, int(rest * 0.27), 300, 400)
        plugins = fitting(self.plugins_dock, int(rest * 0.28), 260, 420)
        self.resizeDocks([self.run_dock], [run], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.plugins_dock, self.live_dock],
                         [model, plugins, max(240, rest - model - plugins)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.results_dock], [int(height * 0.55), int(height * 0.45)],
                         Qt.Orientation.Vertical)
        # the results pane knows what its table's first columns need (when it says so)
        self.results_split.setSizes(self.results_split.default_sizes(rest))

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if getattr(self, "_sizes_pending", False):
            QTimer.singleShot(0, self._apply_default_sizes)

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut=None, tip: str = "") -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                if isinstance(shortcut, (list, tuple)):
                    act.setShortcuts([QKeySequence(s) for s in shortcut])
                else:
                    act.setShortcut(QKeySequence(shortcut))
            if tip:
                act.setToolTip(tip)
                act.setStatusTip(tip)
            act.triggered.connect(lambda _checked=False: slot())
            self.addAction(act)          # shortcuts work while the menu bar is hidden too
            return act

        self.open_action = action("&Open model…", self.open_file_dialog, QKeySequence.StandardKey.Open,
                                  "Open a model file (ONNX, TorchScript, .pt2, state_dict, safetensors)")
        self.open_folder_action = action("Open model &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                         "Open a Hugging Face folder (config.json + safetensors + tokenizer)")
        self.run_action = action("&Run", lambda: self.start("run"), "Ctrl+R",
                                 "Measure the model with the checked plugins")
        self.pair_action = action("Run &baseline + variant", lambda: self.start("pair"), "Ctrl+Shift+R",
                                  "Measure the plain model and the optimized one")
        self.all_action = action("Run &all combinations", lambda: self.start("all"), None,
                                 "Baseline, each checked plugin alone, and the full chain")
        self.sweep_action = action("S&weep…", lambda: self.start("sweep"), None,
                                   "A grid over settings and plugin parameters, with scaling curves and the sweet spot")
        self.cancel_action = action("&Cancel", self.cancel, ["Esc", "Ctrl+."],
                                    "Stop the running job and clear the queue")
        self.export_action = action("&Export report…", self.export_report, "Ctrl+E",
                                    "Write a report (HTML, PDF, CSV, JSON) of the selected runs")
        self.save_model_action = action("&Save optimized model…", self.save_optimized_model, "Ctrl+Shift+S",
                                        "Save the optimized model of the run selected in the Results table")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.reset_layout_action = action("Reset &layout", self.reset_layout, None,
                                          "Put every dock back where it started")
        self.refresh_action = action("Re&load results", self.results.refresh, None,
                                     "Read the runs from the results store again (F5 in the table)")
        self.shortcuts_action = action("&Keyboard shortcuts", lambda: help_dialogs.show_shortcuts(self), None)
        self.about_action = action("&About Workbench", lambda: help_dialogs.show_about(self, self.store.path), None)
        self.cancel_action.setEnabled(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.open_folder_action)
        self.demo_menu = file_menu.addMenu("Open &demo")
        self.demo_menu.aboutToShow.connect(self._fill_demo_menu)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.save_model_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        for act in (self.run_action, self.pair_action, self.all_action, self.sweep_action, self.cancel_action):
            run_menu.addAction(act)
        view_menu = bar.addMenu("&View")
        for dock in self.docks():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.refresh_action)
        view_menu.addAction(self.reset_layout_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)

    # -- errors ----------------------------------------------------------------------------------------
    def show_error(self, message: str, details: str | None = None) -> None:
        self.log.append(f"error: {message}")
        errors.show_error(message, details or None, self)

    # -- model ---------------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        start = self.settings.value("dialogs/last_dir", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", str(start), file_filter())
        if path:
            self.settings.setValue("dialogs/last_dir", str(Path(path).parent))
            self.open_model(path)

    def open_folder_dialog(self) -> None:
        start = self.settings.value("dialogs/last_dir", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder", str(start))
        if path:
            self.settings.setValue("dialogs/last_dir", str(Path(path).parent))
            self.open_model(path)

    def open_model(self, source: str) -> None:
        """Open a file, a Hugging Face folder (or demo:NAME): checked here, described in a worker process."""
        source = str(source)
        if not source.startswith("demo:"):
            path = Path(source).expanduser()
            if not path.exists():
                self.show_error(f"Model file not found: {path}")
                self.recent.remove(str(path))
                return
            if path.is_dir() and not (path / "config.json").is_file():
                self.show_error(f"{path} is a folder without config.json: open a model file, or a Hugging Face "
                                "folder (config.json + weights)")
                return
            self.recent.add(str(path))
        self.model_panel.open_source(source)
        self.model_dock.raise_()

    def _source_changed(self, source: str) -> None:
        name = source if source.startswith("demo:") else Path(source).name
        self.setWindowTitle(f"{name} — Workbench")
        self.log.append(f"opened {source}")
        self.runs.update_state()

    def recent_files(self) -> list[str]:
        return self.recent.paths()

    def _fill_recent_menu(self) -> None:
        self.recent.fill_menu(self.recent_menu, self.open_model)

    def _fill_demo_menu(self) -> None:
        self.demo_menu.clear()
        for name, description in self.model_panel.demos:
            act = self.demo_menu.addAction(name)
            act.setStatusTip(description)
            act.triggered.connect(lambda _c=False, n=name: self.open_model(f"demo:{n}"))

    # -- drag and drop ---------------------------------------------------------------------------------
    @staticmethod
    def _dropped_file(mime) -> str | None:
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt API)
        path = self._dropped_file(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.statusBar().showMessage(f"Drop to open {Path(path).name}"
                                         + ("" if is_model_file(path) else " (unknown extension)"), 2000)
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._dropped_file(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_file(event.mimeData())
        if not path:
            event.ignore()
            return
        event.acceptProposedAction()
        # Open after the drop returns (the source application waits for the drop to finish).
        QTimer.singleShot(0, lambda: self.open_model(path))

    # -- runs (run_control.py) -------------------------------------------------------------------------
    def start(self, mode: str = "run") -> list[Job]:
        return self.runs.start(mode)

    def cancel(self) -> None:
        self.runs.cancel()

    def build_spec(self, plugins: list[PluginStep] | None = None) -> RunSpec:
        return self.runs.build_spec(plugins)

    def _sync_run_actions(self) -> None:
        self.run_action.setEnabled(self.run_panel.run_button.isEnabled())
        self.pair_action.setEnabled(self.run_panel.pair_button.isEnabled())
        self.all_action.setEnabled(self.run_panel.all_button.isEnabled())
        self.sweep_action.setEnabled(self.run_panel.sweep_button.isEnabled())

    def select_runs(self, run_ids: list[int]) -> None:
        """Select these runs in the results table (and so show them in the charts)."""
        self.results_split.select_runs(run_ids)

    def show_sweep(self, sweep_id: int) -> None:
        """Bring the Results' Sweep tab forward with this sweep's charts."""
        self.results_dock.raise_()
        self.results_split.show_sweep(sweep_id)

    # -- report ----------------------------------------------------------------------------------------
    def export_report(self) -> None:
        ids = self.results.selected_run_ids()
        if not ids:
            self.show_error("Select one or more runs in the Results table first, then export the report")
            return
        start = self.settings.value("dialogs/report_dir", str(Path.home()))
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export report", str(Path(str(start)) / "workbench-report.html"),
            "HTML (*.html);;PDF (*.pdf);;CSV (*.csv);;JSON (*.json)")
        if not path:
            return
        if not Path(path).suffix:
            path += {"PDF": ".pdf", "CSV": ".csv", "JSON": ".json"}.get(chosen.split(" ")[0], ".html")
        self.settings.setValue("dialogs/report_dir", str(Path(path).parent))
        self.write_report(ids, path)

    def write_report(self, run_ids: list[int], path: str) -> threading.Thread:
        """Render the report in a thread (it may take seconds); bridge.reportDone/reportFailed answer."""
        self.statusBar().showMessage(f"Writing {Path(path).name}…")
        self.log.append(f"writing report of runs {', '.join(map(str, run_ids))} to {path}")
        return self.bridge.write_report(run_ids, path)

    def _report_done(self, path: str) -> None:
        self.last_report = path
        self.statusBar().showMessage(f"Report written: {path}", 15000)
        self.open_report_button.setToolTip(f"Open {path} with the desktop's viewer")
        self.open_report_button.show()
        self.log.append(f"report written: {path}")

    def open_report(self, path: str | None = None) -> bool:
        """Open ``path`` (default: the last report written) with the desktop's viewer."""
        path = path or self.last_report
        if not path:
            return False
        opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).resolve())))
        if not opened:
            self.statusBar().showMessage(f"No application opened {path}: open it from your file manager", 8000)
        return bool(opened)

    # -- saving a run's optimized model ------------------------------------------------------------------
    def save_optimized_model(self, path: str | None = None) -> str | None:
        """File ▸ Save optimized model…: the run selected in the Results table, to ``path`` (asked
        when not given). Returns the status line, or None when nothing was done."""
        ids = self.results.selected_run_ids()
        if len(ids) != 1:
            self.show_error("Select one run in the Results table first, then save its optimized model"
                            if not ids else f"{len(ids)} runs are selected: select the one whose model to save")
            return None
        run_id = ids[0]
        if path is None:
            start = self.settings.value("dialogs/model_save_dir", str(Path.home()))
            path, _ = QFileDialog.getSaveFileName(self, f"Save the optimized model of run #{run_id}",
                                                  str(Path(str(start)) / f"run-{run_id}.pt"), SAVE_FILTER)
            if not path:
                return None
            self.settings.setValue("dialogs/model_save_dir", str(Path(path).parent))
        try:
            message = self.runs.save_run_model(run_id, path)
        except WorkbenchError as exc:
            self.show_error(f"Could not save the model of run #{run_id}: {exc}")
            return None
        self.statusBar().showMessage(message, 15000)
        return message

    # -- settings ------------------------------------------------------------------------------------
    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(SETTINGS_VERSION))
        s.setValue("window/results_split", self.results_split.saveState())
        s.setValue("run/settings", json.dumps(self.run_panel.state()))
        s.setValue("plugins/state", json.dumps(self.plugin_panel.state()))
        s.setValue("model/state", json.dumps(self.model_panel.state()))
        s.sync()

    def restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            if self.restoreState(state, SETTINGS_VERSION):
                self._sizes_pending = False      # the user's own layout wins
        split = s.value("window/results_split")
        if isinstance(split, QByteArray) and not split.isEmpty():
            self.results_split.restoreState(split)
        for key, target in (("run/settings", self.run_panel), ("plugins/state", self.plugin_panel)):
            raw = s.value(key)
            if raw:
                try:
                    target.restore_state(json.loads(raw))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    self.log.append(f"ignored unreadable saved setting {key}: {exc}")
        raw = s.value("model/state")
        if raw:
            try:
                model = json.loads(raw)
            except ValueError:
                model = {}
            source = model.get("source")
            if source and (source.startswith("demo:") or Path(source).exists()):
                self.model_panel.open_source(source)
                if model.get("factory"):
                    self.model_panel.factory_edit.setText(model["factory"])

    def reset_layout(self) -> None:
        self._default_layout()

    # -- closing -----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.bridge.is_busy() and self.confirm_on_close:
            answer = QMessageBox.question(
                self, "Quit Workbench", "A run is in progress. Stop it and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.runs.closing = True
        try:
            self.save_settings()
        except Exception as exc:  # settings must never block quitting
            print(f"workbench: could not save settings: {exc}")
        errors.close_all_error_dialogs()
        self.hide()
        self.results_split.stop()
        self.bridge.shutdown(timeout_s=8.0)
        super().closeEvent(event)
