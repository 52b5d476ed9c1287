"""The Run dock's "Language model" group: scenario (forward / generate), prompt and generation
lengths, a text file or an inline prompt. Shown only for models that take token ids; the values
go into the RunSpec exactly as the CLI's --scenario/--prompt-len/--gen-len/--seq-len/--text/--prompt."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLineEdit, QSpinBox, QWidget

from ...spec import DEFAULT_GEN_LEN, DEFAULT_PROMPT_LEN, RunSpec
from .param_form import PathField

TEXT_FILTER = "Text files (*.txt *.md);;All files (*)"
SCENARIO_TIPS = {
    "auto": "generate for causal language models, one forward pass per iteration otherwise",
    "forward": "one forward pass over the whole sequence per timed iteration",
    "generate": "greedy generation with the KV cache: prefill (time to first token) and every decode step timed",
}
CORPUS_NOTE = "none: the bundled corpus (held-out part for perplexity)"


def text_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be used as --text (None: it can)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return f"text file not found: {p}"
    if p.stat().st_size == 0:
        return f"{p.name} is empty: give a file with some text"
    return None


def model_task(info: dict | None) -> str | None:
    """The Hugging Face task of a described model (``ModelInfo.hf``), None for other models."""
    hf = (info or {}).get("hf") or {}
    return hf.get("task") or (info or {}).get("task")


def takes_tokens(info: dict | None) -> bool:
    """True for a model whose inputs are token ids (an HF language model or encoder)."""
    if not info:
        return False
    if model_task(info) in ("causal-lm", "masked-lm", "feature-extraction", "sequence-classification",
                            "token-classification"):
        return True
    return any((i.get("name") or "") == "input_ids" for i in info.get("inputs") or [])


class LanguageModelOptions(QGroupBox):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Language model", parent)
        self.setObjectName("lmOptions")
        self.scenario_combo = QComboBox()
        self.scenario_combo.setObjectName("scenarioCombo")
        for name, tip in SCENARIO_TIPS.items():
            self.scenario_combo.addItem(name, name)
            self.scenario_combo.setItemData(self.scenario_combo.count() - 1, tip, 3)   # ToolTipRole
        self.scenario_combo.setToolTip("; ".join(f"{k}: {v}" for k, v in SCENARIO_TIPS.items()))
        self.prompt_len_spin = self._spin("promptLen", 0, f"model default ({DEFAULT_PROMPT_LEN})",
                                          "Prompt tokens for the generate scenario (time to first token)")
        self.gen_len_spin = self._spin("genLen", 1, None, "New tokens generated, exactly (EOS ignored)")
        self.gen_len_spin.setValue(DEFAULT_GEN_LEN)
        self.seq_len_spin = self._spin("seqLen", 0, "model default",
                                       "Tokens per sequence for forward runs")
        self.prompt_edit = QLineEdit()
        self.prompt_edit.setObjectName("promptEdit")
        self.prompt_edit.setPlaceholderText("prompt (optional): text to generate from")
        self.prompt_edit.setAcceptDrops(False)
        self.text_field = PathField("text file (.txt) for inputs and perplexity", TEXT_FILTER, text_file_problem)
        self.text_field.setObjectName("textField")
        self.text_field.set_empty_note(CORPUS_NOTE)
        self.text_field.setToolTip("UTF-8 text (the CLI's --text): the inputs, the calibration data and the "
                                   "held-out text perplexity is measured on")
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Scenario", self.scenario_combo)
        form.addRow("Prompt len", self.prompt_len_spin)
        form.addRow("New tokens", self.gen_len_spin)
        form.addRow("Seq len", self.seq_len_spin)
        form.addRow("Prompt", self.prompt_edit)
        form.addRow("Text", self.text_field)
        self.scenario_combo.currentIndexChanged.connect(self._scenario_picked)
        self.prompt_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.text_field.changed.connect(self.changed)
        self._task: str | None = None
        self.for_tokens = False      # the open model takes token ids: the group applies
        self.hide()

    def _spin(self, name: str, low: int, special: str | None, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(name)
        spin.setRange(low, 1_000_000)
        if special:
            spin.setSpecialValueText(special)
        spin.setToolTip(tip)
        spin.valueChanged.connect(lambda _v: self.changed.emit())
        return spin

    # -- the model -----------------------------------------------------------------------------
    def set_model_info(self, info: dict | None) -> None:
        """Show the group for token models; offer generate only where the model can generate."""
        self.for_tokens = takes_tokens(info)
        self.setVisible(self.for_tokens)
        self._task = model_task(info)
        generate = self.scenario_combo.findData("generate")
        item = self.scenario_combo.model().item(generate)
        can_generate = self._task in (None, "causal-lm")
        item.setEnabled(can_generate)
        if not can_generate and self.scenario() == "generate":
            self.scenario_combo.setCurrentIndex(self.scenario_combo.findData("auto"))
        self._update_enabled()

    def scenario(self) -> str:
        return self.scenario_combo.currentData() or "auto"

    def generates(self) -> bool:
        scenario = self.scenario()
        return scenario == "generate" or (scenario == "auto" and self._task == "causal-lm")

    def _scenario_picked(self, _index: int) -> None:
        self._update_enabled()
        self.changed.emit()

    def _update_enabled(self) -> None:
        """Generation lengths apply to generate, the sequence length to forward (no signal: the
        Run dock calls set_model_info on every change, so this must not start another round)."""
        generating = self.generates()
        for widget in (self.prompt_len_spin, self.gen_len_spin, self.prompt_edit):
            widget.setEnabled(generating)
        self.seq_len_spin.setEnabled(not generating)

    def problem(self) -> str | None:
        return f"text file: {self.text_field.problem()}" if self.for_tokens and self.text_field.problem() else None

    # -- RunSpec ---------------------------------------------------------------------------------
    def fill(self, spec: RunSpec) -> RunSpec:
        """Copy the group's settings into ``spec`` (nothing for models that take no tokens)."""
        if not self.for_tokens:
            return spec
        spec.scenario = self.scenario()
        spec.prompt_len = self.prompt_len_spin.value() or None
        spec.gen_len = self.gen_len_spin.value()
        spec.seq_len = self.seq_len_spin.value() or None
        spec.prompt = self.prompt_edit.text().strip() or None
        text = self.text_field.path()
        spec.text = str(Path(text).expanduser().resolve()) if text else None
        return spec

    def state(self) -> dict[str, Any]:
        return {"scenario": self.scenario(), "prompt_len": self.prompt_len_spin.value(),
                "gen_len": self.gen_len_spin.value(), "seq_len": self.seq_len_spin.value()}

    def restore_state(self, state: dict[str, Any]) -> None:
        index = self.scenario_combo.findData(state.get("scenario"))
        if index >= 0:
            self.scenario_combo.setCurrentIndex(index)
        for spin, key in ((self.prompt_len_spin, "prompt_len"), (self.gen_len_spin, "gen_len"),
                          (self.seq_len_spin, "seq_len")):
            try:
                spin.setValue(int(state[key]))
            except (KeyError, TypeError, ValueError):
                pass
