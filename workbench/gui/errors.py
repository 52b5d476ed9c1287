"""Errors as a dialog: a one-line message, an expandable details section, never a raw traceback.

``show_error`` is the one entry point the rest of the GUI calls (tests patch it).
``install_excepthook`` routes unhandled exceptions - from Qt slots, from the GUI thread, and from
background threads - into that dialog instead of crashing the application.
"""
from __future__ import annotations

import sys
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QStyle, QVBoxLayout, QWidget)

from ..errors import WorkbenchError


def one_line(message: str, limit: int = 300) -> str:
    """The first non-empty line of ``message``, shortened: what the dialog shows in bold."""
    for line in str(message).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return "Unknown error"


def split_message(message: str, details: str | None = None) -> tuple[str, str | None]:
    """A long/multi-line message keeps its first line as the summary; the rest joins the details."""
    summary = one_line(message)
    rest = str(message).strip()
    extra = rest if rest != summary else ""
    parts = [p for p in (extra, details or "") if p and p.strip()]
    return summary, ("\n\n".join(parts) if parts else None)


def describe_exception(exc: BaseException) -> tuple[str, str | None]:
    """(one-line message, details) for an exception. Expected errors carry no traceback."""
    if isinstance(exc, WorkbenchError):
        return split_message(str(exc))
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return split_message(f"Unexpected error: {text}", details)


class ErrorDialog(QDialog):
    """Message in bold on one line, "Show details" reveals the rest (copyable)."""

    def __init__(self, message: str, details: str | None = None, title: str = "Workbench",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("ErrorDialog")
        summary, details = split_message(message, details)
        self.message = summary
        self.details = details

        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical).pixmap(40, 40))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.message_label = QLabel(summary)
        self.message_label.setObjectName("errorMessage")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.message_label.font()
        font.setBold(True)
        self.message_label.setFont(font)
        self.message_label.setMinimumWidth(380)

        top = QHBoxLayout()
        top.addWidget(icon)
        top.addWidget(self.message_label, 1)

        self.details_edit = QPlainTextEdit(details or "")
        self.details_edit.setReadOnly(True)
        self.details_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details_edit.setMinimumHeight(180)
        mono = self.details_edit.font()
        mono.setFamily("monospace")
        mono.setStyleHint(mono.StyleHint.Monospace)
        self.details_edit.setFont(mono)
        self.details_edit.setVisible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        self.details_button = QPushButton("Show details")
        self.details_button.setCheckable(True)
        self.details_button.setEnabled(bool(details))
        self.details_button.toggled.connect(self._toggle_details)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy the message and details to the clipboard")
        copy.clicked.connect(self._copy)
        buttons.addButton(self.details_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details_edit, 1)
        layout.addWidget(buttons)

    def _toggle_details(self, shown: bool) -> None:
        self.details_edit.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()

    def _copy(self) -> None:
        text = self.message + ("\n\n" + self.details if self.details else "")
        QGuiApplication.clipboard().setText(text)

    def full_text(self) -> str:
        return self.message + ("\n\n" + self.details if self.details else "")


_open_dialogs: list[ErrorDialog] = []


def show_error(message: str, details: str | None = None, parent: QWidget | None = None,
               title: str = "Workbench") -> ErrorDialog:
    """Show the error dialog without blocking the event loop (window-modal, returns at once).

    Identical messages already on screen are not stacked again (an error repeating in a loop
    must not bury the window under dialogs).
    """
    summary, _ = split_message(message, details)
    for dialog in list(_open_dialogs):
        if dialog.message == summary and dialog.isVisible():
            dialog.raise_()
            return dialog
    dialog = ErrorDialog(message, details, title, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    _open_dialogs.append(dialog)
    dialog.finished.connect(lambda _r, d=dialog: _open_dialogs.remove(d) if d in _open_dialogs else None)
    dialog.open()
    return dialog


def show_exception(exc: BaseException, parent: QWidget | None = None, context: str = "") -> ErrorDialog:
    message, details = describe_exception(exc)
    if context:
        message = f"{context}: {message}"
    # Always go through the module attribute so tests (and the excepthook) see a patched function.
    return sys.modules[__name__].show_error(message, details, parent)


def close_all_error_dialogs() -> None:
    for dialog in list(_open_dialogs):
        dialog.close()


# ---------------------------------------------------------------------------------------------
# Global exception hooks
# ---------------------------------------------------------------------------------------------
class _Relay(QObject):
    """Carries exceptions from any thread to the GUI thread (queued signal)."""

    raised = Signal(object, object, object)

    def __init__(self, parent_getter: Callable[[], QWidget | None]) -> None:
        super().__init__()
        self._parent_getter = parent_getter
        self.raised.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self.shown = 0

    @Slot(object, object, object)
    def _show(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            exc = exc_type()
        if tb is not None and exc.__traceback__ is None:
            exc = exc.with_traceback(tb)
        self.shown += 1
        show_exception(exc, self._parent_getter())


_hook_state: dict[str, Any] = {}


def install_excepthook(parent_getter: Callable[[], QWidget | None] = lambda: None) -> Callable:
    """Replace ``sys.excepthook`` (and ``threading.excepthook``) so that an unhandled exception
    shows the error dialog (and is printed to stderr) instead of ending the application.

    Returns the hook; ``uninstall_excepthook`` restores the previous ones.
    """
    relay = _Relay(parent_getter)
    previous = sys.excepthook
    previous_thread = threading.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        try:
            if QApplication.instance() is None:
                return
            if threading.current_thread() is threading.main_thread():
                # Defer: the hook may run in the middle of a paint or a slot.
                QTimer.singleShot(0, lambda: relay._show(exc_type, exc, tb))
            else:
                relay.raised.emit(exc_type, exc, tb)
        except Exception:  # the hook itself must never raise
            pass

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook
    _hook_state.update(relay=relay, previous=previous, previous_thread=previous_thread, hook=hook)
    return hook


def uninstall_excepthook() -> None:
    if not _hook_state:
        return
    if sys.excepthook is _hook_state["hook"]:
        sys.excepthook = _hook_state["previous"]
    threading.excepthook = _hook_state["previous_thread"]
    _hook_state.clear()
