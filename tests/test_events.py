"""The event protocol: every event a real run streams (worker's and parent's) matches its
declaration in workbench/events.py, and docs/architecture.md shows the declared table."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench import events
from workbench.engine.session import Session
from workbench.spec import PluginStep, RunSpec

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(iters=5, duration_s=0.05, warmup_min_iters=2, warmup_max_s=0.1, threads=1, timeout_s=300)


def test_every_event_of_a_real_run_matches_its_declaration(store, tmp_path):
    """A demo run with a plugin, a saved model and a training plugin's events would be ideal;
    a fuse step and --save-model cover plugin_report, model_info (both stages) and artifact."""
    streamed: list[dict] = []
    spec = RunSpec(model="demo:digits-cnn", plugins=[PluginStep("fuse", {"method": "conv_bn"})],
                   save_model=str(tmp_path / "fused.pt"), **QUICK)
    record = Session(store).run(spec, on_event=streamed.append)
    assert record.status == "done", record.error
    kinds = {e["type"] for e in streamed}
    assert kinds >= {"run_created", "telemetry_status", "started", "phase", "model_info", "plugin_report",
                     "artifact", "latency_batch", "measure_window", "result", "run_finished"}
    for event in streamed:
        source = events.KINDS[event["type"]].source
        assert events.problem(event, source) is None, event
        assert event.get("run_id") == record.id          # the parent stamps every event
    stored = store.events(record.id)
    assert stored and all(events.problem(e, events.KINDS[e["type"]].source) is None for e in stored)


@pytest.mark.parametrize("event, why", [
    ({"type": "phase", "t": 1.0}, "phase event without 'phase'"),
    ({"type": "latency_batch", "t": 1.0, "phase": "measure", "values_ns": [1, "2"]}, "is not int list"),
    ({"type": "progress", "t": 1.0, "phase": "measure", "fraction": 0.5, "step": "one"}, "'step' is not int"),
    ({"type": "run_finished", "t": 1.0, "run_id": 1, "status": "done"}, "a worker may not send"),
    ({"type": "phase", "phase": "load"}, "without a time"),
])
def test_a_malformed_event_is_named(event, why):
    assert why in events.problem(event)


def test_plugin_events_need_only_the_envelope_but_the_parent_declares_all_of_its_own():
    assert events.problem({"type": "my_plugin_metric", "t": 2.0, "x": 1}) is None
    assert "undeclared" in events.problem({"type": "surprise", "t": 2.0}, events.PARENT)


def test_the_architecture_document_shows_the_declared_event_table():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert events.markdown_table() in doc, "regenerate the table: python -c 'from workbench import events; " \
                                           "print(events.markdown_table())'"
