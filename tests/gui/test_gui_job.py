"""The whole job in the GUI: evaluation/calibration data and where to save the optimized model
(Run dock -> RunSpec), saving a stored run's model (File > Save optimized model), opening the
report just written. No worker process is started: the queue is replaced where a run would start."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.gui.bridge import Job
from workbench.spec import PluginStep


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **(arrays or {"x_test": np.zeros((4, 64), np.float32), "y_test": np.zeros(4, np.int64)}))
    return path


def _record_enqueue(monkeypatch, window) -> list:
    queued = []

    def fake_enqueue(specs, labels=None, group="", **_preflight):
        queued.append((list(specs), list(labels or [])))
        return [Job(i, s, label, group) for i, (s, label) in enumerate(zip(specs, labels or specs))]

    monkeypatch.setattr(window.bridge, "enqueue", fake_enqueue)
    return queued


def _demo_window(make_workbench, qtbot):
    # (a helper, not a fixture: a fixture's cached value would keep the window alive past the
    # leak check of make_workbench)
    w = make_workbench()
    w.bridge.inspect = lambda spec, timeout_s=300.0: 0      # no worker process: stays "inspecting"
    w.open_model("demo:digits-cnn")
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=5_000)
    return w


def test_data_file_goes_into_the_spec_and_is_remembered(make_workbench, qtbot, tmp_path):
    data = _npz(tmp_path / "eval.npz")
    w = make_workbench()
    w.open_model("demo:digits-cnn")
    field = w.run_panel.data_field
    # a demo brings its own data: the empty field says so
    assert field.note.isVisible() and "demo's own data (digits.npz)" in field.note.text()
    field.set_path(str(data))
    assert field.problem() is None and not field.note.isVisible()
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=5_000)
    spec = w.build_spec(plugins=[])
    assert spec.data == str(data.resolve())
    w.close()

    w2 = make_workbench()
    assert w2.run_panel.data_field.path() == str(data)
    w2.run_panel.data_field.edit.clear()
    assert w2.run_panel.data_field.path() is None
    assert "demo's own data" in w2.run_panel.data_field.note.text()      # the demo was reopened too
    w2.run_panel.set_model_source(str(tmp_path / "model.onnx"))          # a file brings no data
    assert "synthetic inputs" in w2.run_panel.data_field.note.text()


@pytest.mark.parametrize("make_file, message", [
    (lambda d: d / "missing.npz", "data file not found"),
    (lambda d: d, "is a folder, not an .npz file"),
    (lambda d: (d / "x.npz").write_bytes(b"plain text, not a zip") and d / "x.npz", "is not an .npz archive"),
    (lambda d: _npz(d / "other.npz", weights=np.ones(3)), "expected x_test (or x_train)"),
])
def test_a_bad_data_file_is_one_inline_line_and_blocks_run(make_workbench, qtbot, tmp_path, catch_errors, make_file, message):
    w = _demo_window(make_workbench, qtbot)
    folder = tmp_path / "data"
    folder.mkdir()
    w.run_panel.data_field.set_path(str(make_file(folder)))
    note = w.run_panel.data_field.note
    assert note.isVisible() and message in note.text() and "\n" not in note.text()
    assert not w.run_panel.run_button.isEnabled() and not w.run_action.isEnabled()
    assert message in w.run_panel.problem_label.text()
    assert w.start("run") == [] and message in catch_errors[0][0]
    w.run_panel.data_field.clear_button.click()
    assert w.run_panel.run_button.isEnabled()


def test_a_data_file_that_disappears_is_caught_when_run_is_pressed(make_workbench, qtbot, tmp_path, catch_errors):
    w = _demo_window(make_workbench, qtbot)
    data = _npz(tmp_path / "eval.npz")
    w.run_panel.data_field.set_path(str(data))
    assert w.run_panel.run_button.isEnabled()
    data.unlink()
    assert w.start("run") == []
    assert "data file not found" in catch_errors[0][0]


def test_save_model_field_checks_the_suffix_and_the_chain_format(make_workbench, qtbot, tmp_path):
    w = _demo_window(make_workbench, qtbot)
    save = w.run_panel.save_field
    save.set_path(str(tmp_path / "model.txt"))
    assert "save as .pt (TorchScript), .pt2 (torch.export) or .onnx" in save.note.text()
    assert not w.run_panel.run_button.isEnabled()
    save.set_path(str(tmp_path / "model.pt"))
    assert save.problem() is None
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=5_000)
    assert w.build_spec(plugins=[PluginStep("fuse")]).save_model == str((tmp_path / "model.pt").resolve())
    # a chain that ends in ONNX cannot be saved as TorchScript: said before anything runs
    w.plugin_panel.set_checked("onnx_export")
    qtbot.waitUntil(lambda: not w.run_panel.run_button.isEnabled(), timeout=5_000)
    assert "will be ONNX: save it as .onnx" in w.run_panel.problem_label.text()
    save.set_path(str(tmp_path / "model.onnx"))
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=5_000)
    assert w.build_spec().save_model.endswith("model.onnx")


def _stored_run(store, spec_dict: dict, chain: str) -> int:
    run_id = store.create_run(spec_dict, chain, "torch")
    store.finish_run(run_id, "done", {"latency": {"median_ms": 1.0, "median_ci_ms": [1.0, 1.0]}})
    return run_id


def test_save_optimized_model_copies_the_stored_artifact(make_workbench, qtbot, tmp_path, monkeypatch):
    w = _demo_window(make_workbench, qtbot)
    queued = _record_enqueue(monkeypatch, w)
    spec = w.build_spec(plugins=[PluginStep("fuse")])
    run_id = _stored_run(w.store, spec.to_dict(), "fuse")
    artifact = tmp_path / "kept" / "model.pt"
    artifact.parent.mkdir()
    artifact.write_bytes(b"torchscript bytes")
    w.store.add_artifact(run_id, {"kind": "torchscript", "path": str(artifact), "bytes": 17})
    w.results_split.runs_changed(True)
    w.select_runs([run_id])
    target = tmp_path / "out" / "mine.pt"
    message = w.save_optimized_model(str(target))
    assert target.read_bytes() == b"torchscript bytes"
    assert message.startswith(f"Saved run #{run_id}'s optimized model to")
    assert w.statusBar().currentMessage() == message
    assert queued == []


def test_save_optimized_model_queues_the_run_again_when_nothing_was_kept(make_workbench, qtbot, tmp_path, monkeypatch):
    w = _demo_window(make_workbench, qtbot)
    queued = _record_enqueue(monkeypatch, w)
    spec = w.build_spec(plugins=[PluginStep("prune", {"amount": 0.3})])
    run_id = _stored_run(w.store, spec.to_dict(), "prune:amount=0.3")
    w.results_split.runs_changed(True)
    w.select_runs([run_id])
    target = tmp_path / "pruned.pt2"
    message = w.save_optimized_model(str(target))
    assert "kept no saved model: queued it again" in message and str(target) in message
    (specs, labels), = queued
    assert labels == ["save: prune:amount=0.3"]
    assert specs[0].save_model == str(target.resolve()) and str(specs[0].plugins[0]) == "prune:amount=0.3"


def test_save_optimized_model_explains_what_is_missing(make_workbench, qtbot, tmp_path, catch_errors, monkeypatch):
    w = _demo_window(make_workbench, qtbot)
    _record_enqueue(monkeypatch, w)
    assert w.save_optimized_model(str(tmp_path / "x.pt")) is None
    assert "Select one run in the Results table first" in catch_errors[-1][0]
    spec = w.build_spec(plugins=[PluginStep("onnx_export")])
    run_id = _stored_run(w.store, spec.to_dict(), "onnx_export")
    w.results_split.runs_changed(True)
    w.select_runs([run_id])
    assert w.save_optimized_model(str(tmp_path / "x.pt")) is None       # its model is ONNX
    assert "will be ONNX: save it as .onnx" in catch_errors[-1][0]
    assert w.save_optimized_model(str(tmp_path / "x.doc")) is None
    assert "save as .pt" in catch_errors[-1][0]
    assert all("\n" not in message for message, _ in catch_errors)


def test_open_report_after_an_export(make_workbench, monkeypatch, tmp_path):
    import workbench.gui.main_window as main_window

    opened = []

    class FakeDesktop:
        @staticmethod
        def openUrl(url):  # noqa: N802 (Qt API)
            opened.append(url.toLocalFile())
            return True

    monkeypatch.setattr(main_window, "QDesktopServices", FakeDesktop)
    w = make_workbench()
    assert not w.open_report_button.isVisible() and not w.open_report()
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    w._report_done(str(report))               # what bridge.reportDone calls
    assert w.open_report_button.isVisible()
    assert "Report written" in w.statusBar().currentMessage()
    w.open_report_button.click()
    assert opened == [str(report.resolve())]
