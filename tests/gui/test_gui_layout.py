"""A layout that fits: at 1280x720, 1600x1000 and 1920x1080 the window's key controls are fully
on screen (inside the window, not clipped by a dock, a scroll area or a neighbour) with the default
layout, while a model is being inspected, and with every plugin's form open."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QApplication

SIZES = [(1280, 720), (1600, 1000), (1920, 1080)]


def fully_visible(widget, window) -> str | None:
    """Why ``widget`` is not fully visible in ``window`` (None: it is)."""
    if not widget.isVisible():
        return "hidden"
    shown = widget.visibleRegion().boundingRect()
    if shown != widget.rect():
        return f"clipped: {shown.getRect()} of {widget.rect().getRect()}"
    top_left = widget.mapTo(window, QPoint(0, 0))
    if not window.rect().contains(QRect(top_left, widget.size())):
        return f"outside the window: {(top_left.x(), top_left.y(), widget.width(), widget.height())}"
    return None


def _window_at(make_workbench, qtbot, size):
    w = make_workbench(show=False)
    w.bridge.inspect = lambda spec, timeout_s=300.0: 0        # "inspecting" until the test ends
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: not w._sizes_pending)
    QApplication.processEvents()
    assert (w.width(), w.height()) == size
    return w


def _key_widgets(w) -> dict:
    rp = w.run_panel
    return {"Open": w.model_panel.open_button, "Run": rp.run_button, "Cancel": rp.cancel_button,
            "data path": rp.data_field.edit, "data browse": rp.data_field.browse_button,
            "save path": rp.save_field.edit, "save browse": rp.save_field.browse_button,
            "queue": rp.queue_list, "plugin list": w.plugin_panel.list,
            "move up": w.plugin_panel.up_button, "move down": w.plugin_panel.down_button}


def _problems(w, queue: bool = True) -> dict:
    QApplication.processEvents()
    widgets = _key_widgets(w)
    if not queue:
        del widgets["queue"]
    return {name: why for name, widget in widgets.items() if (why := fully_visible(widget, w))}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_key_controls_are_fully_visible(make_workbench, qtbot, size):
    w = _window_at(make_workbench, qtbot, size)
    assert _problems(w) == {}
    # while a model is being inspected (its busy line used to push Open… out of the dock)
    w.open_model("demo:digits-cnn")
    assert w.model_panel.is_busy() and w.model_panel.busy_bar.isVisible()
    assert _problems(w) == {}
    # data and save-model errors are inline lines: the fields and buttons stay in place and visible
    # (at 720 px the queue may then scroll: the Run column is as tall as the screen)
    w.run_panel.data_field.set_path("/no/such/data.npz")
    w.run_panel.save_field.set_path("/tmp/model.txt")
    for note in (w.run_panel.data_field.note, w.run_panel.save_field.note):
        assert fully_visible(note, w) is None
    assert _problems(w, queue=size[1] > 720) == {}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_open_plugin_forms_never_overflow_the_plugins_dock_sideways(make_workbench, qtbot, size):
    w = _window_at(make_workbench, qtbot, size)
    panel = w.plugin_panel
    for name in ("quantize", "fuse", "prune", "distill"):
        panel.set_checked(name)
    panel.form("fuse").set_values({"method": "torch_compile", "mode": "max-autotune-no-cudagraphs"})
    panel.form("quantize").set_values({"method": "static_int8"})
    qtbot.waitUntil(lambda: all(panel.boxes[n].isVisible() for n in ("quantize", "fuse", "prune", "distill")))
    QApplication.processEvents()
    area = w.plugins_dock.widget()
    assert not area.horizontalScrollBar().isVisible()
    assert panel.width() <= area.viewport().width()
    for name, box in panel.boxes.items():
        if box.isVisible():
            right = box.mapTo(panel, QPoint(box.width(), 0)).x()
            assert right <= area.viewport().width(), name
    assert _problems(w) == {}


def test_default_layout_puts_run_in_a_full_height_column(make_workbench, qtbot):
    w = _window_at(make_workbench, qtbot, (1280, 720))
    run, model, results = w.run_dock.geometry(), w.model_dock.geometry(), w.results_dock.geometry()
    assert run.left() > model.right() and run.left() > results.right()
    assert run.top() <= model.top() and run.bottom() >= results.bottom()
    assert w.live_dock.isVisible() and w.results_dock.isVisible()
    w.reset_layout()
    qtbot.waitUntil(lambda: not w._sizes_pending)
    assert _problems(w) == {}
