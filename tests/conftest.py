"""Shared fixtures. Qt runs offscreen (set before any Qt module loads), every test gets its own
results database and its own QSettings location, and ``make_workbench`` builds main windows
the way napari's ``make_napari_viewer`` builds viewers: registered with qtbot, closed at the end,
and the test fails if it leaked top-level widgets."""
from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

import pytest  # noqa: E402

try:
    import workbench.gui  # noqa: E402,F401  (applies the PySide6 6.12 / Python 3.11 workaround early)
except ImportError:       # a GPU machine without PySide6 (.ci/gpu-check): the core and GPU tests still run
    pass


@pytest.fixture(scope="session")
def data() -> dict:
    """The bundled digits data (x_train/y_train/x_test/y_test), loaded once."""
    from plugin_fixtures import digits_data
    return digits_data()


@pytest.fixture
def store(tmp_path):
    """A results store of its own, closed after the test."""
    from workbench.results.store import ResultsStore
    results = ResultsStore(tmp_path / "runs.sqlite")
    yield results
    results.close()


@pytest.fixture
def tmp_db(tmp_path, monkeypatch):
    """A fresh results database for the test (also exported as WORKBENCH_DB for subprocesses)."""
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("WORKBENCH_DB", str(path))
    return path


@pytest.fixture
def tmp_qsettings(tmp_path, qapp):
    """QSettings() of this test live in a temp folder (never the user's real settings)."""
    from PySide6.QtCore import QCoreApplication, QSettings

    folder = tmp_path / "qsettings"
    folder.mkdir()
    old = (QCoreApplication.organizationName(), QCoreApplication.applicationName(), QSettings.defaultFormat())
    QCoreApplication.setOrganizationName("WorkbenchTests")
    QCoreApplication.setApplicationName("WorkbenchTests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    yield folder
    QCoreApplication.setOrganizationName(old[0])
    QCoreApplication.setApplicationName(old[1])
    QSettings.setDefaultFormat(old[2])


def _flush_deletes():
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication

    for _ in range(3):
        QApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@pytest.fixture
def make_workbench(qtbot, tmp_db, tmp_qsettings, request):
    """``make_workbench(show=True, restore=True)`` -> a MainWindow on the temp database.

    At teardown every window made is closed (which cancels its runs and waits for the worker
    processes) and deleted; any top-level widget created during the test that is still alive
    afterwards fails the test (a dialog or window leaked)."""
    from PySide6.QtWidgets import QApplication

    from workbench.gui import errors
    from workbench.gui.main_window import MainWindow

    _flush_deletes()
    before = {id(w) for w in QApplication.topLevelWidgets()}
    windows = []

    def make(show: bool = True, restore: bool = True, **kwargs) -> MainWindow:
        window = MainWindow(db=tmp_db, restore=restore, **kwargs)
        window.confirm_on_close = False
        qtbot.addWidget(window)
        windows.append(window)
        if show:
            window.show()
            qtbot.waitExposed(window)
        return window

    yield make

    errors.close_all_error_dialogs()
    while windows:
        window = windows.pop()
        window.close()
        window.deleteLater()
        del window          # (a loop variable would keep the last window alive)
    _flush_deletes()
    # Our windows are gone: keep pytest-qt from closing them a second time.
    registered = getattr(request.node, "qt_widgets", None)
    if registered:
        alive = []
        for ref, func in registered:
            widget = ref()
            try:
                if widget is not None:
                    widget.objectName()
                    alive.append((ref, func))
            except RuntimeError:
                pass
        request.node.qt_widgets = alive
    leaked = [w for w in QApplication.topLevelWidgets() if id(w) not in before]
    leaked = [w for w in leaked if not _is_pytest_qt_widget(w, request)]
    if leaked:
        names = ", ".join(f"{type(w).__name__}({w.objectName()!r}, visible={w.isVisible()})" for w in leaked)
        for w in leaked:
            w.close()
            w.deleteLater()
        _flush_deletes()
        pytest.fail(f"leaked top-level widgets after closing the workbench: {names}")


def _is_pytest_qt_widget(widget, request) -> bool:
    for ref, _func in getattr(request.node, "qt_widgets", None) or []:
        if ref() is widget:
            return True
    return False


@pytest.fixture
def catch_errors(monkeypatch):
    """Patch the GUI's error dialog: returns the list of (message, details) it was asked to show."""
    from workbench.gui import errors

    shown: list[tuple[str, str | None]] = []

    def fake_show_error(message, details=None, parent=None, title="Workbench"):
        shown.append((message, details))
        return None

    monkeypatch.setattr(errors, "show_error", fake_show_error)
    return shown
