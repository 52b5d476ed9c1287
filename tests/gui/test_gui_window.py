"""The main window without long runs: docks, shortcuts, settings, recent files, drag and drop,
bad inputs (corrupt/missing files, bad input specs, invalid chains), start-up time, no torch."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget

from gui_probe import run_gui_probe
from workbench.telemetry.nvml import gpu_devices



def test_window_has_every_dock_and_the_shortcuts(make_workbench):
    w = make_workbench()
    titles = {d.windowTitle() for d in w.findChildren(QDockWidget)}
    assert titles == {"Model", "Plugins", "Run", "Live", "Results", "Log"}
    assert w.open_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Open)
    assert w.run_action.shortcut() == QKeySequence("Ctrl+R")
    assert QKeySequence("Esc") in w.cancel_action.shortcuts()
    assert QKeySequence("Ctrl+.") in w.cancel_action.shortcuts()
    assert w.export_action.shortcut() == QKeySequence("Ctrl+E")
    assert w.export_action.isEnabled()
    # nothing to run yet: the run buttons say why
    assert not w.run_panel.run_button.isEnabled()
    assert "open a model" in w.run_panel.problem_label.text()
    assert not w.run_panel.cancel_button.isEnabled()


def test_keyboard_shortcuts_reach_their_actions(make_workbench, qtbot, catch_errors):
    w = make_workbench()
    hits = []
    for action, name in ((w.cancel_action, "cancel"), (w.run_action, "run"), (w.pair_action, "pair")):
        action.setEnabled(True)
        action.triggered.connect(lambda _c=False, n=name: hits.append(n))
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    qtbot.keyClick(w, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(w, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(w, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert hits == ["cancel", "cancel", "run", "pair"]
    # without a model, Run explains instead of failing silently
    assert catch_errors and "open a model first" in catch_errors[0][0]


def test_cli_without_arguments_opens_the_gui(monkeypatch, tmp_path):
    import workbench.gui.app as app
    from workbench import cli

    calls = []
    monkeypatch.setattr(app, "main", lambda db=None, open_model=None: calls.append((db, open_model)) or 0)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read here")          # an empty file is refused before the GUI opens
    db = str(tmp_path / "x.sqlite")
    assert cli.main([]) == 0
    assert cli.main(["--db", db]) == 0
    assert cli.main([str(model), "--db", db]) == 0          # `workbench MODEL` opens it in the GUI
    assert cli.main(["gui", "demo:digits-cnn"]) == 0
    assert calls == [(None, None), (db, None), (db, str(model)), (None, "demo:digits-cnn")]


def test_theme_follows_the_color_scheme(qapp):
    from PySide6.QtGui import QPalette

    from workbench.gui.app import apply_theme

    old_palette, old_style = qapp.palette(), qapp.style().name()
    try:
        assert apply_theme(qapp, "dark") == "dark"
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 128
        assert apply_theme(qapp, "light") == "light"
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() > 128
    finally:
        qapp.setStyle(old_style)
        qapp.setPalette(old_palette)


def test_unchecked_boxes_stay_visible_on_the_dark_palette(qtbot):
    from PySide6.QtWidgets import QCheckBox, QStyleFactory

    from workbench.gui.app import WorkbenchStyle, dark_palette

    def indicator_contrast(style) -> int:
        box = QCheckBox("")
        qtbot.addWidget(box)
        box.setStyle(style)
        box.setPalette(dark_palette())
        box.resize(40, 24)
        image = box.grab().toImage()
        background = dark_palette().color(dark_palette().ColorRole.Window).lightness()
        return max(abs(image.pixelColor(x, y).lightness() - background)
                   for x in range(image.width()) for y in range(image.height()))

    fusion, ours = QStyleFactory.create("Fusion"), WorkbenchStyle()
    assert indicator_contrast(fusion) < 30          # Fusion's own frame all but vanishes ...
    assert indicator_contrast(ours) > 60            # ... ours is drawn in the placeholder-text grey


def test_settings_and_layout_are_remembered(make_workbench, tmp_path):
    w = make_workbench()
    w.run_panel.iters_spin.setValue(321)
    w.run_panel.duration_spin.setValue(0.75)
    w.run_panel.threads_spin.setValue(1)
    w.plugin_panel.set_checked("prune")
    w.plugin_panel.form("prune").set_values({"amount": 0.3, "method": "unstructured"})
    w.log_dock.hide()
    # (never below the window's minimum width: the docks' contents and the Run column decide it)
    size = (max(760, w.minimumSizeHint().width()), 640)
    w.resize(*size)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07garbage")
    w.recent.add(str(model))
    w.close()

    w2 = make_workbench()
    assert w2.run_panel.iters_spin.value() == 321
    assert w2.run_panel.duration_spin.value() == 0.75
    assert w2.run_panel.threads_spin.value() == 1
    assert w2.plugin_panel.checked() == ["prune"]
    assert w2.plugin_panel.form("prune").values()["amount"] == 0.3
    assert w2.plugin_panel.form("prune").values()["method"] == "unstructured"
    assert not w2.log_dock.isVisible()
    assert (w2.width(), w2.height()) == size
    assert w2.recent_files() == [str(model)]
    w2._fill_recent_menu()
    assert any(a.toolTip() == str(model) for a in w2.recent_menu.actions())


def test_missing_file_shows_a_clear_message(make_workbench, catch_errors, tmp_path):
    w = make_workbench()
    w.open_model(str(tmp_path / "nothere.onnx"))
    assert catch_errors and catch_errors[0][0].startswith("Model file not found")
    assert w.model_panel.source() is None


@pytest.mark.slow
def test_corrupt_model_file_shows_the_error_dialog(make_workbench, catch_errors, tmp_path, qtbot):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx protobuf \x00\xff\xfe" * 50)
    w = make_workbench()
    w.open_model(str(bad))
    assert w.model_panel.busy_bar.isVisible() or catch_errors   # described in the background
    qtbot.waitUntil(lambda: len(catch_errors) >= 1, timeout=90_000)
    message, _details = catch_errors[0]
    assert message.startswith("Could not load broken.onnx:")
    assert "is not a readable ONNX file" in message or "fails onnx.checker" in message
    assert w.model_panel.error_label.isVisible()
    assert "Could not load the model" in w.model_panel.error_label.text()
    assert not w.run_panel.run_button.isEnabled()
    assert "could not be loaded" in w.run_panel.problem_label.text()
    assert not w.model_panel.busy_bar.isVisible()


def test_dropping_a_file_opens_it(make_workbench, qtbot, tmp_path):
    model = tmp_path / "dropped.onnx"
    model.write_bytes(b"junk")
    w = make_workbench()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(model))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    w.dropEvent(event)
    assert event.isAccepted()
    qtbot.waitUntil(lambda: w.model_panel.source() == str(model))
    assert w.recent_files()[0] == str(model)
    assert w.windowTitle().startswith("dropped.onnx")


def _onnx_with_dynamic_input(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "features"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "features"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.mark.slow
def test_bad_input_spec_text_is_explained_and_blocks_runs(make_workbench, qtbot, tmp_path, catch_errors):
    path = tmp_path / "dyn.onnx"
    _onnx_with_dynamic_input(path)
    w = make_workbench()
    w.open_model(str(path))
    qtbot.waitUntil(lambda: w.model_panel.info() is not None or bool(catch_errors), timeout=90_000)
    assert not catch_errors, catch_errors
    edit = w.model_panel.inputs_edit
    assert not edit.isReadOnly()                      # the model leaves dimensions open
    assert edit.text() == "x=-1x-1:float32"
    edit.setText("x=1xabc:float32")
    assert "bad input spec" in w.model_panel.inputs_hint.text()
    assert not w.run_panel.run_button.isEnabled()
    assert "bad input spec" in w.run_panel.problem_label.text()
    edit.setText("x=4x16:float32")
    assert w.run_panel.run_button.isEnabled()
    spec = w.build_spec()
    assert [str(i) for i in spec.inputs] == ["x=4x16:float32"]
    # a chain that needs torch on an ONNX model is refused inline
    w.plugin_panel.set_checked("prune")
    qtbot.waitUntil(lambda: "Invalid chain" in w.plugin_panel.chain_label.text())
    assert "needs a torch model but gets onnx" in w.plugin_panel.chain_label.text()
    assert not w.run_panel.run_button.isEnabled()


def test_invalid_chain_order_is_marked_and_disables_run(make_workbench, qtbot):
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=5_000)
    panel = w.plugin_panel
    panel.set_checked("onnx_export")
    panel.set_checked("prune")
    panel.move("onnx_export", 0)
    panel.move("prune", 1)
    qtbot.waitUntil(lambda: "Invalid chain" in panel.chain_label.text())
    assert "step 2 (prune) needs a torch model but gets onnx" in panel.chain_label.text()
    assert panel.item("prune").foreground().color().name() == "#d32f2f"
    assert not w.run_panel.run_button.isEnabled()
    assert not w.run_panel.pair_button.isEnabled()
    assert not w.run_action.isEnabled()
    assert "invalid plugin chain" in w.run_panel.problem_label.text()
    # fixing the order (prune first, then export) makes it valid again
    panel.move("prune", 0)
    qtbot.waitUntil(lambda: panel.chain_label.text().startswith("✓"))
    assert w.run_panel.run_button.isEnabled() and w.run_panel.pair_button.isEnabled()
    # the torch runtime cannot run a chain that ends in ONNX
    w.run_panel.runtime_combo.setCurrentIndex(w.run_panel.runtime_combo.findData("torch"))
    qtbot.waitUntil(lambda: "Invalid chain" in panel.chain_label.text())
    assert "run it with --runtime onnxruntime" in panel.chain_label.text()
    assert not w.run_panel.run_button.isEnabled()


def test_start_refuses_invalid_chain_with_a_message(make_workbench, catch_errors, qtbot):
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    w.plugin_panel.set_checked("onnx_export")
    w.run_panel.runtime_combo.setCurrentIndex(w.run_panel.runtime_combo.findData("torch"))
    assert w.start("run") == []
    assert catch_errors and "invalid plugin chain" in catch_errors[0][0]
    assert not w.bridge.is_busy()


_PROBE = """
    app.processEvents()
    shown = time.perf_counter() - t0
    w.open_model("demo:digits-cnn")
    deadline = time.monotonic() + 60
    while w.model_panel.is_busy() and time.monotonic() < deadline:
        app.processEvents(); time.sleep(0.01)
    print(json.dumps({"shown_s": shown, "torch": "torch" in sys.modules,
                      "info": w.model_panel.info() is not None, "error": w.model_panel.load_error()}))
"""


@pytest.mark.slow
def test_window_opens_a_demo_and_never_imports_torch(tmp_path):
    """In a fresh interpreter (this test process may have imported torch for other tests).

    How fast the window opens is a measurement, not a test: benchmarks/gui_startup.py times it.
    """
    result = run_gui_probe(_PROBE, tmp_path, timeout=180)
    assert result["torch"] is False
    assert result["error"] is None or "weights for demo" in result["error"], result


def test_device_list_has_one_entry_per_visible_gpu_in_cuda_numbering():
    gpus = [{"index": 0, "name": "NVIDIA A", "uuid": "GPU-aaaa", "memory_total_bytes": 80 * 2**30},
            {"index": 1, "name": "NVIDIA B", "uuid": "GPU-bbbb", "memory_total_bytes": 40 * 2**30}]
    env = {"nvml": "ok", "gpus": gpus, "cuda_visible_devices": None}
    assert gpu_devices(env) == ([("GPU 0: NVIDIA A, 80 GiB", "cuda:0"), ("GPU 1: NVIDIA B, 40 GiB", "cuda:1")], None)
    env["cuda_visible_devices"] = "GPU-bbbb"       # one GPU by UUID: it becomes cuda:0
    assert gpu_devices(env) == ([("GPU 0: NVIDIA B, 40 GiB", "cuda:0")], None)
    env["cuda_visible_devices"] = "1,0"
    assert [label for label, _ in gpu_devices(env)[0]] == ["GPU 0: NVIDIA B, 40 GiB", "GPU 1: NVIDIA A, 80 GiB"]
    assert gpu_devices({"nvml": "unavailable: NVML Shared Library Not Found", "gpus": []}) == \
        ([], "No NVIDIA GPU: NVML unavailable: NVML Shared Library Not Found")
    assert gpu_devices({"nvml": "ok", "gpus": [{"index": 0, "error": "GPU is lost"}]}) == \
        ([], "No NVIDIA GPU found by NVML")
