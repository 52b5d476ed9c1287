"""The GUI's language-model controls: the Run dock's Language model group (shown for token models,
copied into the RunSpec like the CLI's options), opening Hugging Face folders, and the generation /
perplexity columns of the Results table. Fast: no worker process starts here."""
from __future__ import annotations

import json

from workbench.gui.docks.lm_options import LanguageModelOptions, takes_tokens
from workbench.gui.results.columns import COLUMN_INDEX, COLUMNS, LANGUAGE_MODEL_COLUMNS
from workbench.models.formats import is_model_file
from workbench.spec import RunSpec

CAUSAL = {"hf": {"task": "causal-lm"}, "inputs": [{"name": "input_ids", "shape": [-1, 16], "dtype": "int64"},
                                          {"name": "attention_mask", "shape": [-1, 16], "dtype": "int64"}]}
ENCODER = dict(CAUSAL, hf={"task": "feature-extraction"})     # as ModelInfo.hf describes them
IMAGE = {"task": None, "inputs": [{"name": "x", "shape": [-1, 1, 8, 8], "dtype": "float32"}]}


def test_group_shows_for_token_models_only(qtbot):
    group = LanguageModelOptions()
    qtbot.addWidget(group)
    assert takes_tokens(CAUSAL) and takes_tokens(ENCODER) and not takes_tokens(IMAGE) and not takes_tokens(None)
    group.set_model_info(IMAGE)
    spec = group.fill(RunSpec(model="m"))
    assert not group.for_tokens and spec.scenario == "auto" and spec.text is None      # untouched
    group.set_model_info(CAUSAL)
    assert group.for_tokens and group.generates()
    assert group.gen_len_spin.isEnabled() and not group.seq_len_spin.isEnabled()


def test_values_reach_the_spec_like_the_cli_options(qtbot, tmp_path):
    group = LanguageModelOptions()
    qtbot.addWidget(group)
    group.set_model_info(CAUSAL)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text to read\n")
    group.scenario_combo.setCurrentIndex(group.scenario_combo.findData("generate"))
    group.prompt_len_spin.setValue(12)
    group.gen_len_spin.setValue(5)
    group.prompt_edit.setText("Once upon a time")
    group.text_field.set_path(str(corpus))
    spec = group.fill(RunSpec(model="m"))
    spec.validate()
    assert (spec.scenario, spec.prompt_len, spec.gen_len, spec.prompt, spec.text) == \
        ("generate", 12, 5, "Once upon a time", str(corpus.resolve()))
    assert group.problem() is None
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    group.text_field.set_path(str(empty))
    assert "empty" in group.problem()


def test_encoders_cannot_pick_generate(qtbot):
    group = LanguageModelOptions()
    qtbot.addWidget(group)
    group.set_model_info(CAUSAL)
    group.scenario_combo.setCurrentIndex(group.scenario_combo.findData("generate"))
    group.set_model_info(ENCODER)
    generate = group.scenario_combo.model().item(group.scenario_combo.findData("generate"))
    assert not generate.isEnabled() and group.scenario() == "auto" and not group.generates()
    assert group.seq_len_spin.isEnabled() and not group.gen_len_spin.isEnabled()


def test_folders_with_a_config_open_as_models(make_workbench, tmp_path):
    folder = tmp_path / "my-llama"
    folder.mkdir()
    w = make_workbench()
    w.open_model(str(folder))                       # no config.json: refused in one line
    assert w.model_panel.source() is None
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert is_model_file(folder)
    assert w.open_folder_action.shortcut().toString() == "Ctrl+Shift+O"


def test_language_model_columns_appear_with_their_figures(make_workbench, tmp_db):
    from workbench.results.store import ResultsStore
    w = make_workbench()
    hidden = [w.results.table.isColumnHidden(COLUMN_INDEX[k]) for k in LANGUAGE_MODEL_COLUMNS]
    assert all(hidden)                              # no language-model run stored yet
    store = ResultsStore(tmp_db)
    run_id = store.create_run(RunSpec(model="demo:tiny-lm", scenario="generate").to_dict(), "baseline", "torch")
    store.finish_run(run_id, "done", {"latency": {"median_ms": 2.0, "n": 10, "batch": 1},
                                      "generation": {"ttft_ms": 5.0, "decode_tokens_per_s": 400.0},
                                      "lm_fidelity": {"perplexity": 12.5}})
    w.results.refresh()
    row = w.results.model.comparison(0)
    shown = {k: not w.results.table.isColumnHidden(COLUMN_INDEX[k]) for k in LANGUAGE_MODEL_COLUMNS}
    # Which figures the comparison row carries decides which columns show.
    for key, field in LANGUAGE_MODEL_COLUMNS.items():
        assert shown[key] == (row.get(field) is not None), key
    assert COLUMNS[COLUMN_INDEX["ppl"]].text(dict(row, perplexity=12.5, perplexity_delta_pct=1.5,
                                                  chain="quantize"), None) == "12.5 (+1.5 %)"


def test_live_dock_plots_latency_per_token_with_the_prefill_marked(qtbot):
    from workbench.gui.live.plots import LivePlots
    live = LivePlots()
    qtbot.addWidget(live)
    live.reset("tiny-lm · generate")
    assert live.token_view.isHidden()                   # nothing generated yet: no empty panel
    live.handle_event({"type": "generation", "phase": "warmup", "repetition": 0, "prefill_ns": 9_000_000,
                       "decode_ns": [50_000_000] * 3})      # a slow warm-up: not in the medians
    for rep, decode in enumerate(([2_000_000, 3_000_000, 4_000_000], [2_000_000, 5_000_000, 4_000_000])):
        live.handle_event({"type": "generation", "phase": "measure", "repetition": rep,
                           "prefill_ns": 6_000_000 + rep * 2_000_000, "decode_ns": decode})
    live.flush()
    view = live.token_view
    assert not view.isHidden() and view.generation_count() == 3
    prefill, decode = view.medians()
    assert prefill == 7.0 and list(decode) == [2.0, 4.0, 4.0]
    assert list(view.median_curve.getData()[0]) == [1, 2, 3]         # decode steps after the prefill at 0
    assert "prefill 7" in view.prefill_label.toPlainText()
    live.reset("next run")
    assert live.token_view.isHidden() and live.token_view.generation_count() == 0
