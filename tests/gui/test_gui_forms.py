"""Schema-generated forms, the plugin panel (broken plugins, order, inline chain validation) and
the error dialog. Fast: no worker process is started here."""
from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench.errors import PluginError
from workbench.gui.docks.param_form import ParamForm
from workbench.gui.docks.plugin_panel import PluginPanel
from workbench.plugin_api import Param, Plugin, PluginInfo, discover_plugins

SCHEMA = (
    Param("count", "int", 3, "how many", minimum=1, maximum=10),
    Param("open_int", "int", 0, "unbounded integer"),
    Param("exclusive_int", "int", 5, "strictly between 0 and 10", minimum=0, maximum=10,
          exclusive_min=True, exclusive_max=True),
    Param("amount", "float", 0.5, "fraction strictly inside (0, 1)", minimum=0.0, maximum=1.0,
          exclusive_min=True, exclusive_max=True),
    Param("lr", "float", 1e-3, "tiny positive number", minimum=0.0, exclusive_min=True),
    Param("scale", "float", -2.5, "any number"),
    Param("enabled", "bool", True, "switch"),
    Param("note", "str", "", "free text"),
    Param("mode", "choice", "b", "pick one", choices=("a", "b", "c")),
)


def test_form_builds_the_right_widget_per_type(qtbot):
    form = ParamForm(SCHEMA, plugin_name="demo")
    qtbot.addWidget(form)
    kinds = {"count": QSpinBox, "open_int": QSpinBox, "exclusive_int": QSpinBox, "amount": QDoubleSpinBox,
             "lr": QDoubleSpinBox, "scale": QDoubleSpinBox, "enabled": QCheckBox, "note": QLineEdit,
             "mode": QComboBox}
    for name, kind in kinds.items():
        assert isinstance(form.editors[name], kind), name
    # defaults
    assert form.values() == {p.name: p.default for p in SCHEMA}
    # ranges from the schema, exclusive bounds honoured
    count = form.editors["count"]
    assert (count.minimum(), count.maximum()) == (1, 10)
    excl = form.editors["exclusive_int"]
    assert (excl.minimum(), excl.maximum()) == (1, 9)
    amount = form.editors["amount"]
    assert 0.0 < amount.minimum() < 1e-3 and 0.999 < amount.maximum() < 1.0
    assert form.editors["lr"].minimum() > 0
    # choices and tooltips from the help text
    combo = form.editors["mode"]
    assert [combo.itemText(i) for i in range(combo.count())] == ["a", "b", "c"]
    for p in SCHEMA:
        assert p.help in form.editors[p.name].toolTip()
    assert "[1, 10]" in count.toolTip()


def test_form_round_trips_values_of_every_type(qtbot):
    form = ParamForm(SCHEMA, plugin_name="demo")
    qtbot.addWidget(form)
    values = {"count": 7, "open_int": -123456, "exclusive_int": 9, "amount": 0.125, "lr": 2.5e-5,
              "scale": 1234.5678, "enabled": False, "note": "keep this, please", "mode": "c"}
    with qtbot.waitSignal(form.valuesChanged):
        form.set_values(values)
    assert form.values() == values
    # and back again through set_values(values()) without drift
    form.set_values(form.values())
    assert form.values() == values
    # the values are what the plugin machinery accepts
    for p in SCHEMA:
        assert p.validate(values[p.name]) == values[p.name]
    # CLI-style strings are parsed by the same schema
    form.set_values({"count": "4", "amount": "0.75", "enabled": "yes", "mode": "a"})
    assert form.values()["count"] == 4 and form.values()["amount"] == 0.75
    assert form.values()["enabled"] is True and form.values()["mode"] == "a"
    assert form.changed_values() == {k: v for k, v in form.values().items()
                                     if v != {p.name: p.default for p in SCHEMA}[k]}


def test_form_rejects_bad_values_with_a_clear_message(qtbot):
    form = ParamForm(SCHEMA, plugin_name="demo")
    qtbot.addWidget(form)
    with pytest.raises(PluginError, match="outside"):
        form.set_values({"amount": 1.0})
    with pytest.raises(PluginError, match="not one of"):
        form.set_values({"mode": "z"})
    with pytest.raises(PluginError, match="unknown parameter"):
        form.set_values({"nope": 1})
    problems = form.set_values({"count": 99, "mode": "a"}, strict=False)
    assert len(problems) == 1 and "count" in problems[0]
    assert form.values()["mode"] == "a"


def test_typing_in_a_spin_box_updates_the_value(qtbot):
    form = ParamForm(SCHEMA)
    qtbot.addWidget(form)
    box = form.editors["lr"]
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "1e-4")
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert form.values()["lr"] == pytest.approx(1e-4)
    spin = form.editors["count"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "8")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert form.values()["count"] == 8


def test_forms_of_every_discovered_plugin_round_trip(qtbot):
    registry = discover_plugins()
    usable = {name: info for name, info in registry.items() if info.ok}
    assert usable, "no plugin could be loaded"
    for name, info in usable.items():
        form = ParamForm(info.cls.params_schema, plugin_name=name, plugin=info.cls)
        qtbot.addWidget(form)
        assert form.values() == info.cls.resolve_params({}), name
        form.set_values(form.values())
        shown = {key: value for key, value in form.values().items() if key in form.shown_params()}
        assert info.cls.resolve_params(shown) == form.values()


class _Good(Plugin):
    name = "good"
    summary = "a plugin that loads"
    params_schema = (Param("level", "int", 1, "how hard", minimum=0, maximum=3),)
    accepts = ("torch",)


class _NeedsOnnx(Plugin):
    name = "needs_onnx"
    summary = "works on ONNX models only"
    accepts = ("onnx",)


class _GpuOnly(Plugin):
    name = "gpu_only"
    summary = "runs on CUDA only"
    devices = ("cuda",)


def _registry():
    return {
        "good": PluginInfo("good", _Good, "tests"),
        "broken": PluginInfo("broken", None, "thirdparty-dist", "ImportError: No module named 'nothere'"),
        "needs_onnx": PluginInfo("needs_onnx", _NeedsOnnx, "tests"),
        "gpu_only": PluginInfo("gpu_only", _GpuOnly, "tests"),
    }


@pytest.fixture
def fake_registry(monkeypatch):
    import workbench.plugin_api.registry as plugins
    registry = _registry()
    monkeypatch.setattr(plugins, "_registry", {**plugins.discover_plugins(), **registry})
    return registry


def test_broken_plugin_is_greyed_out_with_its_error(qtbot, fake_registry):
    panel = PluginPanel(fake_registry)
    qtbot.addWidget(panel)
    item = panel.item("broken")
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert not item.flags() & Qt.ItemFlag.ItemIsUserCheckable
    assert "No module named 'nothere'" in item.toolTip()
    assert "failed to load" in item.text()
    with pytest.raises(ValueError, match="failed to load"):
        panel.set_checked("broken")
    assert "broken" not in panel.forms


def test_checked_plugin_expands_into_its_form_and_order_follows_moves(qtbot, fake_registry):
    panel = PluginPanel(fake_registry)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.boxes["good"].isVisible()
    panel.set_checked("good")
    qtbot.waitUntil(lambda: panel.boxes["good"].isVisible())
    panel.form("good").set_values({"level": 3})
    qtbot.waitUntil(lambda: [str(s) for s in panel.steps()] == ["good:level=3"])
    panel.set_checked("gpu_only")
    panel.move("gpu_only", 0)
    qtbot.waitUntil(lambda: panel.boxes["gpu_only"].title() == "1. gpu_only")
    assert [s.name for s in panel.steps()] == ["gpu_only", "good"]
    assert panel.boxes["good"].title() == "2. good"
    # the ▲/▼ buttons move the selected plugin
    panel.list.setCurrentRow(panel.order().index("gpu_only"))
    panel.down_button.click()
    qtbot.waitUntil(lambda: [s.name for s in panel.steps()] == ["good", "gpu_only"])


def test_invalid_chain_is_marked_inline(qtbot, fake_registry):
    panel = PluginPanel(fake_registry)
    qtbot.addWidget(panel)
    panel.set_checked("gpu_only")
    assert panel.validate_now() is not None
    assert "cannot run on cpu" in panel.chain_label.text()
    assert "Invalid chain" in panel.chain_label.text()
    assert panel.item("gpu_only").foreground().color().name() == "#d32f2f"
    panel.set_context("torch", "cuda:0", "auto")
    assert panel.validate_now() is None
    assert panel.chain_label.text().startswith("✓")
    panel.set_checked("gpu_only", False)
    panel.set_checked("needs_onnx")
    panel.set_context("onnx", "cpu", "auto")
    assert panel.validate_now() is None
    panel.set_context("torch", "cpu", "torch")
    # a torch model gets onnx_export inserted, but the torch runtime cannot run the ONNX result
    assert "ONNX" in panel.validate_now()


def test_error_dialog_shows_one_line_and_expandable_details(qtbot):
    from workbench.gui.errors import ErrorDialog, describe_exception

    dialog = ErrorDialog("Could not load x.onnx: truncated file\nsecond line", "Traceback: here")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.message_label.text() == "Could not load x.onnx: truncated file"
    assert not dialog.details_edit.isVisible()
    dialog.details_button.click()
    assert dialog.details_edit.isVisible()
    assert "second line" in dialog.details_edit.toPlainText()
    assert "Traceback: here" in dialog.details_edit.toPlainText()
    # expected errors carry no traceback; bugs do
    from workbench.errors import ModelLoadError
    assert describe_exception(ModelLoadError("bad file"))[1] is None
    try:
        raise KeyError("boom")
    except KeyError as exc:
        message, details = describe_exception(exc)
    assert message.startswith("Unexpected error: KeyError") and "Traceback" in details


def test_excepthook_shows_the_dialog_instead_of_crashing(qtbot, catch_errors):
    from workbench.gui import errors

    previous = sys.excepthook
    hook = errors.install_excepthook()
    try:
        assert sys.excepthook is hook
        try:
            raise RuntimeError("something broke in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        qtbot.waitUntil(lambda: len(catch_errors) == 1)
        message, details = catch_errors[0]
        assert message == "Unexpected error: RuntimeError: something broke in a slot"
        assert "Traceback" in details and "test_excepthook" in details
        # from a background thread too (delivered to the GUI thread)
        import threading

        def fail():
            raise ValueError("from a thread")

        t = threading.Thread(target=fail)
        t.start()
        t.join()
        qtbot.waitUntil(lambda: len(catch_errors) == 2)
        assert "ValueError: from a thread" in catch_errors[1][0]
    finally:
        errors.uninstall_excepthook()
    assert sys.excepthook is previous


# -- forms that only offer what applies ------------------------------------------------------------
def _plugin_form(qtbot, name):
    cls = discover_plugins()[name].cls
    form = ParamForm(cls.params_schema, plugin_name=name, plugin=cls)
    qtbot.addWidget(form)
    form.show()
    return form


def _shown(form):
    return {name for name, editor in form.editors.items() if editor.isVisible()}


def test_a_form_shows_only_the_parameters_of_the_chosen_method(qtbot):
    fuse = _plugin_form(qtbot, "fuse")
    assert _shown(fuse) == {"method"}                                  # conv_bn: no mode/freezing/level
    assert not fuse.labels["mode"].isVisible()
    fuse.set_values({"method": "torch_compile"})
    assert _shown(fuse) == {"method", "mode", "freezing"}
    fuse.set_values({"method": "onnxruntime"})
    assert _shown(fuse) == {"method", "level"}
    quantize = _plugin_form(qtbot, "quantize")
    common = {"method", "skip", "quantize_tied"}                       # every method's
    assert _shown(quantize) == common                                  # dynamic_int8: no samples, no group
    quantize.editors["method"].setCurrentText("static_int8")
    assert _shown(quantize) == common | {"calibration_samples"}
    quantize.editors["method"].setCurrentText("int4")
    assert _shown(quantize) == common | {"group_size"}


def test_hidden_values_are_kept_but_never_sent(qtbot):
    fuse = _plugin_form(qtbot, "fuse")
    fuse.set_values({"method": "torch_compile", "mode": "max-autotune-no-cudagraphs"})
    assert fuse.changed_values() == {"method": "torch_compile", "mode": "max-autotune-no-cudagraphs"}
    fuse.set_values({"method": "conv_bn"})
    assert fuse.changed_values() == {}                                 # the CLI would refuse mode here
    assert fuse.values()["mode"] == "max-autotune-no-cudagraphs"      # remembered for later
    fuse.set_values({"method": "torch_compile"})
    assert fuse.changed_values()["mode"] == "max-autotune-no-cudagraphs"


def test_methods_the_machine_cannot_run_are_greyed_out_with_the_reason(qtbot):
    quantize = _plugin_form(qtbot, "quantize")
    combo = quantize.editors["method"]
    assert all(quantize.method_enabled(m) for m in ("int4", "fp16"))   # not known yet: all offered
    quantize.set_available_devices(["cpu"])
    assert not quantize.method_enabled("int4") and not quantize.method_enabled("fp16")
    assert quantize.method_enabled("dynamic_int8") and quantize.method_enabled("bf16")
    tip = combo.itemData(combo.findText("fp16"), Qt.ItemDataRole.ToolTipRole)
    assert tip == "fp16 needs a CUDA GPU; none was found on this machine"
    assert combo.itemData(combo.findText("bf16"), Qt.ItemDataRole.ToolTipRole) is None
    quantize.set_available_devices(["cpu", "cuda"])
    assert quantize.method_enabled("fp16")
    # a plugin without a method choice is left alone
    _plugin_form(qtbot, "onnx_export").set_available_devices(["cpu"])


def test_the_gpu_probe_result_decides_which_methods_are_offered(make_workbench, qtbot):
    w = make_workbench()
    quantize = w.plugin_panel.form("quantize")
    w.runs._gpus_found({"nvml": "unavailable: NVML Shared Library Not Found", "gpus": []})
    assert w.run_panel.device_kinds() == ["cpu"]
    assert not quantize.method_enabled("fp16")
    assert "No NVIDIA GPU" in w.run_panel.device_note.text()
    gpu = {"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1", "memory_total_bytes": 80 * 2**30}
    w.runs._gpus_found({"nvml": "ok", "gpus": [gpu], "cuda_visible_devices": None})
    assert w.run_panel.device_kinds() == ["cpu", "cuda"]
    assert quantize.method_enabled("fp16") and quantize.method_enabled("int4")


def test_the_plugin_panel_sends_only_what_applies(qtbot):
    panel = PluginPanel()
    qtbot.addWidget(panel)
    panel.set_checked("fuse")
    panel.form("fuse").set_values({"method": "torch_compile", "mode": "reduce-overhead"})
    qtbot.waitUntil(lambda: [str(s) for s in panel.steps()] == ["fuse:method=torch_compile,mode=reduce-overhead"])
    panel.form("fuse").set_values({"method": "onnxruntime", "level": "basic"})
    qtbot.waitUntil(lambda: [str(s) for s in panel.steps()] == ["fuse:method=onnxruntime,level=basic"])


# -- the wheel never changes an input it is not focused on -----------------------------------------------
def _wheel(widget, steps: int = -3) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    center = QPointF(widget.rect().center())
    event = QWheelEvent(center, QPointF(widget.mapToGlobal(center.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_scrolling_over_an_unfocused_input_scrolls_the_dock_instead(qtbot):
    from PySide6.QtWidgets import QScrollArea

    from workbench.gui.docks.param_form import guard_wheel

    fuse_cls = discover_plugins()["fuse"].cls
    form = ParamForm(fuse_cls.params_schema, plugin_name="fuse", plugin=fuse_cls)
    form.set_values({"method": "torch_compile"})
    form.setMinimumHeight(900)                        # taller than the area: it can scroll
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(form)
    area.resize(300, 200)
    qtbot.addWidget(area)
    area.show()
    qtbot.waitExposed(area)
    assert guard_wheel(area) >= 2                     # the method and mode combo boxes
    combo = form.editors["mode"]
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus
    _wheel(combo)
    assert combo.currentText() == "default"           # the parameter did not change ...
    assert area.verticalScrollBar().value() > 0       # ... the dock scrolled
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo, steps=-1)
    assert combo.currentText() != "default"           # clicked into: the wheel is the user's choice


def test_every_input_in_the_docks_is_guarded(make_workbench):
    from PySide6.QtWidgets import QAbstractSpinBox, QComboBox

    w = make_workbench()
    for dock in w.docks():
        for widget in dock.widget().findChildren(QAbstractSpinBox) + dock.widget().findChildren(QComboBox):
            assert widget.focusPolicy() == Qt.FocusPolicy.StrongFocus, (dock.windowTitle(), widget)
    spin = w.run_panel.iters_spin
    before = spin.value()
    _wheel(spin)
    assert spin.value() == before
