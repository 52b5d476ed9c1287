"""``workbench`` (no arguments): the QApplication, the system-following theme, the main window."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QPen
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleFactory

APP_NAME = "Workbench"
ORG_NAME = "Workbench"


def color_scheme(app: QGuiApplication | None = None) -> str:
    """'dark', 'light' or 'unknown', as the platform reports it (Qt >= 6.5)."""
    app = app or QGuiApplication.instance()
    try:
        scheme = app.styleHints().colorScheme()
    except AttributeError:
        return "unknown"
    if scheme == Qt.ColorScheme.Dark:
        return "dark"
    if scheme == Qt.ColorScheme.Light:
        return "light"
    return "unknown"


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor(45, 45, 48), QColor(30, 30, 32), QColor(230, 230, 230)
    disabled = QColor(128, 128, 128)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor(40, 40, 43))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor(60, 60, 64))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(150, 150, 150))
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, QColor(55, 55, 58))
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 80, 80))
    p.setColor(QPalette.ColorRole.Link, QColor(90, 160, 255))
    p.setColor(QPalette.ColorRole.Highlight, QColor(42, 110, 200))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Light, QColor(70, 70, 74))
    p.setColor(QPalette.ColorRole.Midlight, QColor(62, 62, 66))
    p.setColor(QPalette.ColorRole.Mid, QColor(50, 50, 54))
    p.setColor(QPalette.ColorRole.Dark, QColor(25, 25, 27))
    p.setColor(QPalette.ColorRole.Shadow, QColor(0, 0, 0))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


_CHECK_INDICATORS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox,
                     QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)


class WorkbenchStyle(QProxyStyle):
    """Fusion, plus a visible frame around check boxes on a dark palette: Fusion outlines them
    in a darker shade of the window colour, which vanishes on a dark background."""

    def __init__(self) -> None:
        super().__init__(QStyleFactory.create("Fusion"))

    def drawPrimitive(self, element, option, painter, widget=None) -> None:  # noqa: N802 - Qt naming
        super().drawPrimitive(element, option, painter, widget)
        if element in _CHECK_INDICATORS and option.palette.color(QPalette.ColorRole.Window).lightness() < 128:
            painter.save()
            painter.setPen(QPen(option.palette.color(QPalette.ColorRole.PlaceholderText), 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(option.rect.adjusted(0, 0, -1, -1), 1.5, 1.5)
            painter.restore()


def apply_theme(app: QApplication, scheme: str | None = None) -> str:
    """Follow the system: a dark palette when the platform says dark, the style's own otherwise.

    ``WORKBENCH_THEME=dark|light`` overrides (useful where the platform reports nothing)."""
    scheme = (os.environ.get("WORKBENCH_THEME") or scheme or color_scheme(app)).lower()
    if not isinstance(app.style(), WorkbenchStyle):
        app.setStyle(WorkbenchStyle())      # the application owns the style from here on
    if scheme == "dark":
        app.setPalette(dark_palette())
    else:
        app.setPalette(app.style().standardPalette())
        scheme = "light"
    return scheme


def create_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv[:1])
    QCoreApplication.setOrganizationName(ORG_NAME)
    QCoreApplication.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    apply_theme(app)
    try:   # re-theme live when the user switches the system between light and dark
        app.styleHints().colorSchemeChanged.connect(lambda scheme: apply_theme(app))
    except AttributeError:
        pass
    return app


def freeze_startup_objects() -> None:
    """Move everything built so far (Qt wrappers, pyqtgraph items, the window) out of the garbage
    collector's reach: they live as long as the app, and a full collection traversing them took
    27 ms of the GUI thread while a fast run streamed. Called once, after the window is built."""
    import gc
    gc.collect()
    gc.freeze()


def main(db: str | Path | None = None, open_model: str | None = None) -> int:
    """Open the main window on the results store ``db`` (default: $WORKBENCH_DB or the per-user
    data dir) and run the event loop. Returns the exit code."""
    app = create_application()
    from . import errors
    from .main_window import MainWindow

    window = None
    try:
        window = MainWindow(db=db)
    except Exception as exc:
        message, details = errors.describe_exception(exc)
        dialog = errors.ErrorDialog(f"Workbench cannot start: {message}", details)
        dialog.exec()
        return 1
    errors.install_excepthook(lambda: window)
    window.show()
    freeze_startup_objects()
    if open_model:
        window.open_model(open_model)
    try:
        code = app.exec()
    finally:
        errors.uninstall_excepthook()
        # Delete the window before the QApplication goes away (PySide teardown order).
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        del window
    return code


if __name__ == "__main__":
    sys.exit(main())
