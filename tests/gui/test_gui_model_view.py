"""The Model dock's layer table: name, type, output shape, parameters and FLOPs per layer; FLOPs
with the batch they assume (and 'partial'); an older stored description without shapes."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Signal

from workbench.gui.docks.model_panel import LAYER_COLUMNS, ModelPanel, flops_text, shape_text

pytest.importorskip("pytestqt")


class FakeBridge(QObject):
    inspectFinished = Signal(int, object)
    inspectFailed = Signal(int, str, str)

    def __init__(self) -> None:
        super().__init__()
        self.token = 0

    def inspect(self, spec) -> int:
        self.token += 1
        self.spec = spec
        return self.token


CNN_INFO = {
    "source": "demo:digits-cnn", "format": "demo", "parameters": 372_682, "bytes": 1_500_000,
    "inputs": [{"shape": [-1, 1, 8, 8], "dtype": "float32", "name": "x"}], "input_fixed_by_model": True,
    "flops": 18_953_216, "flops_batch": 1, "flops_partial": False, "flops_uncounted": [], "layers_total": 3,
    "shapes_from": "one forward pass on the example input", "layer_counts": {"Conv2d": 1, "MaxPool2d": 1, "Linear": 1},
    "layers": [{"name": "features.0.0", "type": "Conv2d", "params": 576, "output_shapes": [[1, 64, 8, 8]], "flops": 73_728},
               {"name": "features.2", "type": "MaxPool2d", "params": 0, "output_shapes": [[1, 128, 4, 4]], "flops": 0},
               {"name": "classifier", "type": "Linear", "params": 2570, "output_shapes": [[1, 10]], "flops": 5120}],
    "notes": []}


@pytest.fixture
def panel(qtbot):
    bridge = FakeBridge()
    widget = ModelPanel(bridge)
    qtbot.addWidget(widget)
    widget.resize(420, 700)
    widget.open_source("demo:digits-cnn")
    return widget, bridge


def _table(widget: ModelPanel) -> list[list[str]]:
    table = widget.layers_list
    return [[table.topLevelItem(r).text(c) for c in range(table.columnCount())] for r in range(table.topLevelItemCount())]


def test_the_layer_table_shows_shapes_params_and_flops(panel):
    widget, bridge = panel
    bridge.inspectFinished.emit(bridge.token, CNN_INFO)
    assert [widget.layers_list.headerItem().text(c) for c in range(5)] == LAYER_COLUMNS
    assert _table(widget) == [["features.0.0", "Conv2d", "1×64×8×8", "576", "73.73k"],
                              ["features.2", "MaxPool2d", "1×128×4×4", "0", "—"],
                              ["classifier", "Linear", "1×10", "2.57k", "5.12k"]]
    assert widget.flops_value.text() == "18.95M per forward at batch 1"
    assert "batch 1" in widget.layers_caption.text() and widget.layer_tabs.currentIndex() == 0


def test_flops_say_their_batch_and_when_they_are_partial():
    assert flops_text({"flops": 6_400, "flops_batch": 64})[0] == "6.40k per forward at batch 64 (100 per sample)"
    text, tip = flops_text({"flops": 1000, "flops_batch": 1, "flops_partial": True, "flops_uncounted": ["Einsum", "LSTM"]})
    assert text == "≥ 1.00k per forward at batch 1 (partial: Einsum, LSTM not counted)" and "lower bound" in tip
    assert flops_text({"flops": None})[0] == "— (not counted)"
    assert shape_text([[2, 3], []]) == "2×3, scalar" and shape_text([["batch", 256]]) == "batch×256"
    assert shape_text(None) == "—"


def test_an_older_description_without_shapes_still_shows(panel):
    widget, bridge = panel
    old = {k: v for k, v in CNN_INFO.items() if k not in ("flops_batch", "flops_partial", "flops_uncounted",
                                                          "layers_total", "shapes_from")}
    old["layers"] = [{"name": "conv", "type": "Conv2d", "params": 576}]
    old["notes"] = ["layer output shapes: not available for TorchScript (its layers run inside compiled code)"]
    bridge.inspectFinished.emit(bridge.token, old)
    assert _table(widget) == [["conv", "Conv2d", "—", "576", "—"]]
    assert widget.flops_value.text() == "18.95M per forward"
    assert "not available for TorchScript" in widget.layers_caption.text()
    assert widget.notes_label.isHidden()                 # said once, under the table


def test_a_capped_table_says_so(panel):
    widget, bridge = panel
    bridge.inspectFinished.emit(bridge.token, dict(CNN_INFO, layers_total=1234))
    assert "first 3 of 1234 layers" in widget.layers_caption.text()


def test_entered_inputs_describe_the_layers_at_them(panel):
    """A model that declares no inputs has no shapes until the user gives one; then its layers are
    described at it, and what a run sends stays the user's input."""
    widget, bridge = panel
    bare = dict(CNN_INFO, source="model.pt", format="state_dict", inputs=[], input_fixed_by_model=False,
                flops=None, flops_batch=None, shapes_from=None,
                layers=[{"name": "fc", "type": "Linear", "params": 650, "output_shapes": None, "flops": None}])
    bridge.inspectFinished.emit(bridge.token, bare)
    assert _table(widget) == [["fc", "Linear", "—", "650", "—"]]
    widget.inputs_edit.setText("2x64")
    widget.inputs_edit.editingFinished.emit()
    assert [str(s) for s in bridge.spec.inputs] == ["2x64:float32"] and "describing the layers" in widget.layers_caption.text()
    described = dict(bare, inputs=[{"shape": [2, 64], "dtype": "float32", "name": None}], flops=2 * 2 * 64 * 10,
                     flops_batch=2, shapes_from="one forward pass on the example input",
                     layers=[{"name": "fc", "type": "Linear", "params": 650, "output_shapes": [[2, 10]], "flops": 2560}])
    bridge.inspectFinished.emit(bridge.token, described)
    assert _table(widget) == [["fc", "Linear", "2×10", "650", "2.56k"]]
    assert widget.flops_value.text() == "2.56k per forward at batch 2 (1.28k per sample)"
    assert [str(s) for s in widget.inputs()] == ["2x64:float32"] and widget.info()["inputs"] == []
    calls = bridge.token
    widget.inputs_edit.editingFinished.emit()                # the same inputs: nothing to do again
    assert bridge.token == calls


@pytest.mark.slow
def test_the_model_dock_describes_the_demo_cnn_in_a_worker(make_workbench, qtbot, catch_errors):
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    qtbot.waitUntil(lambda: w.model_panel.info() is not None or bool(catch_errors), timeout=120_000)
    assert not catch_errors, catch_errors
    rows = {row[0]: row for row in _table(w.model_panel)}
    assert rows["features.0.0"][1:3] == ["Conv2d", "1×64×8×8"]
    assert rows["classifier"][2] == "1×10"
    assert w.model_panel.flops_value.text().endswith("per forward at batch 1")
    assert w.model_panel.layers_list.height() >= 120     # a usable table, not a sliver
