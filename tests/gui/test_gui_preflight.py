"""Run ▸ Baseline + variant in the GUI checks the variant on the loaded model before the baseline is
timed, as ``workbench bench`` does (engine.runner.run_planned): a TorchScript file has no Python
layers to prune, so a structured prune is refused in the baseline's worker, nothing is timed or
kept, and the reason is shown in one line (queue, status line, one dialog without a traceback).
A real worker process runs here (the preflight lives in it)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Written in a child process: the GUI's test process never imports torch.
MAKE_TORCHSCRIPT = """
import sys, torch
from torch import nn
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
torch.jit.save(torch.jit.trace(model, torch.randn(1, 64)), sys.argv[1])
"""


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchscript") / "tiny.ts"
    subprocess.run([sys.executable, "-c", MAKE_TORCHSCRIPT, str(path)], check=True, timeout=120)
    return path


def _open_torchscript(w, qtbot, path):
    """The TorchScript file opened, its input shape entered, short runs."""
    w.open_model(str(path))
    qtbot.waitUntil(lambda: w.model_panel.info() is not None, timeout=120_000)   # the field is read-only until then
    w.model_panel.inputs_edit.setText("1x64:float32")
    w.run_panel.iters_spin.setValue(20)
    w.run_panel.duration_spin.setValue(0.2)
    return w


def test_a_variant_refused_on_the_loaded_model_times_no_baseline(make_workbench, qtbot, catch_errors,
                                                                 torchscript_file):
    w = _open_torchscript(make_workbench(), qtbot, torchscript_file)
    w.plugin_panel.set_checked("prune")
    w.plugin_panel.form("prune").set_values({"method": "structured"})
    qtbot.waitUntil(lambda: w.run_panel.pair_button.isEnabled(), timeout=120_000)
    messages: list[str] = []
    w.runs.statusMessage.connect(lambda text, _ms: messages.append(text))

    jobs = w.start("pair")
    assert [j.label for j in jobs] == ["baseline", jobs[1].spec.describe_chain()]
    qtbot.waitUntil(lambda: all(j.finished for j in jobs), timeout=120_000)
    baseline, variant = jobs
    assert [j.status for j in jobs] == ["refused", "refused"], [(j.status, j.message) for j in jobs]
    assert "TorchScript model has no Python layers" in baseline.message
    assert baseline.run_id is None and baseline.detail is None
    assert w.store.list_runs() == []                                   # nothing timed, nothing kept

    # one line everywhere: the queue, the Run dock's status line, the status bar, one dialog
    qtbot.waitUntil(lambda: "refused:" in w.run_panel.queue_list.item(1).text(), timeout=5_000)
    queue_lines = [w.run_panel.queue_list.item(i).text() for i in range(w.run_panel.queue_list.count())]
    assert all("⊘" in line and "no Python layers" in line for line in queue_lines), queue_lines
    assert "refused" in w.run_panel.status_label.text() and "no Python layers" in w.run_panel.status_label.text()
    assert any(m.startswith("Nothing was timed:") and "no Python layers" in m for m in messages), messages
    assert len(catch_errors) == 1, catch_errors
    message, details = catch_errors[0]
    assert message.startswith("Nothing was run:") and "\n" not in message and not details
    assert "Traceback" not in w.log.text.toPlainText()


def test_a_plain_run_refused_beside_a_stored_baseline_is_refused_not_failed(make_workbench, qtbot, catch_errors,
                                                                            torchscript_file):
    """With the baseline stored, Run queues the variant alone; its own worker refuses the chain on the
    loaded model: refused in one line, no failed run kept, no traceback."""
    w = _open_torchscript(make_workbench(), qtbot, torchscript_file)
    qtbot.waitUntil(lambda: w.run_panel.run_button.isEnabled(), timeout=120_000)
    baseline = w.start("run")
    qtbot.waitUntil(lambda: all(j.finished for j in baseline), timeout=120_000)
    assert [j.status for j in baseline] == ["done"], [(j.status, j.message) for j in baseline]

    w.plugin_panel.set_checked("prune")
    w.plugin_panel.form("prune").set_values({"method": "structured"})
    messages: list[str] = []
    w.runs.statusMessage.connect(lambda text, _ms: messages.append(text))
    jobs = w.start("run")
    assert len(jobs) == 1, catch_errors                                # the stored baseline is reused
    qtbot.waitUntil(lambda: jobs[0].finished, timeout=120_000)
    assert jobs[0].status == "refused" and "no Python layers" in jobs[0].message, (jobs[0].status, jobs[0].message)
    assert [r.chain for r in w.store.list_runs()] == ["baseline"]      # no failed run kept
    assert any(m.startswith("Nothing was timed:") for m in messages), messages
    assert len(catch_errors) == 1 and catch_errors[0][0].startswith("Nothing was run:") and not catch_errors[0][1]
    assert "Traceback" not in w.log.text.toPlainText()
