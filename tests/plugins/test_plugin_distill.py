"""The distill plugin: width/depth/factory students, KD training, data-free mode, cancellation."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import PluginError, RunCancelled
from workbench.models.info import count_parameters
from workbench.plugin_api import PluginContext
from workbench_plugins.distill import DATA_FREE_TOKENS, NO_DATA_MESSAGE, NO_TEXT_MESSAGE, Distill

ROOT = Path(__file__).resolve().parents[2]
BATCH = 16


# ---------------------------------------------------------------------------------------------
# The bundled demo models and data
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_data(data) -> dict:
    """A subset for the tests that only check mechanics (fast)."""
    return {"x_train": data["x_train"][:256], "y_train": data["y_train"][:256],
            "x_test": data["x_test"][:128], "y_test": data["y_test"][:128]}


def _context(data, events=None, seed=0, cancelled=None) -> PluginContext:
    ctx = PluginContext(device="cpu", dtype="float32", example_inputs=[torch.randn(BATCH, 1, 8, 8)],
                        data=data, seed=seed, workdir=Path("."))
    if events is not None:
        ctx.emit = lambda kind, payload: events.append((kind, dict(payload)))
    if cancelled is not None:
        ctx.cancelled = cancelled
    return ctx


def tiny_student() -> nn.Module:
    """Used through factory=<this module>:tiny_student."""
    return nn.Sequential(nn.Flatten(1), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


# ---------------------------------------------------------------------------------------------
# Width student on the CNN demo
# ---------------------------------------------------------------------------------------------
def test_width_student_learns_from_the_cnn(cnn, data):
    teacher_state = {k: v.clone() for k, v in cnn.state_dict().items()}
    events: list = []
    student, report = Distill(student="width", width=0.5, epochs=3, lr=2e-3).run(
        cnn, _context(data, events))

    t_convs = [m.out_channels for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    s_convs = [m.out_channels for m in student.modules() if isinstance(m, nn.Conv2d)]
    assert s_convs == [c // 2 for c in t_convs]
    assert count_parameters(cnn) >= 2 * count_parameters(student)
    assert report.params_before == count_parameters(cnn)
    assert report.params_after == count_parameters(student)
    assert report.extra["teacher_params"] >= 2 * report.extra["student_params"]
    with torch.no_grad():
        assert student(torch.randn(BATCH, 1, 8, 8)).shape == (BATCH, 10)
    assert not student.training

    teacher_acc, student_acc = report.extra["teacher_accuracy"], report.extra["student_accuracy"]
    assert teacher_acc > 0.9
    assert student_acc > 0.8 and student_acc >= teacher_acc - 0.08
    assert report.extra["data_free"] is False
    assert report.extra["epochs"] == 3 and len(report.extra["loss_curve"]) == 3
    assert report.extra["final_loss"] == report.extra["loss_curve"][-1]
    assert report.extra["loss_curve"][-1] < report.extra["loss_curve"][0]

    train = [p for kind, p in events if kind == "train"]
    assert {"step", "epoch", "loss", "student_accuracy"} <= set(train[0])
    assert [p["step"] for p in train] == list(range(1, len(train) + 1))
    assert len(train) == report.extra["steps"] >= 3 * 10
    losses = [p["loss"] for p in train]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])           # decreasing trend
    epoch_ends = [p for p in train if p["student_accuracy"] is not None]
    assert [p["epoch"] for p in epoch_ends] == [1, 2, 3]
    assert epoch_ends[-1]["student_accuracy"] == pytest.approx(student_acc)
    # the teacher is frozen
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key


def test_width_student_reinitialised_and_seeded(cnn, small_data):
    runs = [Distill(student="width", width=0.5, inherit=False, epochs=1).run(cnn, _context(small_data))
            for _ in range(2)]
    (s1, r1), (s2, r2) = runs
    assert r1.extra["loss_curve"] == r2.extra["loss_curve"]
    for a, b in zip(s1.state_dict().values(), s2.state_dict().values()):
        assert torch.equal(a, b)
    assert any("re-initialised" in note for note in r1.notes)
    _, r3 = Distill(student="width", width=0.5, inherit=False, epochs=1).run(cnn, _context(small_data, seed=1))
    assert r3.extra["loss_curve"] != r1.extra["loss_curve"]


# ---------------------------------------------------------------------------------------------
# Depth and factory students
# ---------------------------------------------------------------------------------------------
def test_depth_student_on_the_transformer(transformer, small_data):
    blocks = len(transformer.blocks)
    student, report = Distill(student="depth", depth=1, epochs=1).run(transformer, _context(small_data))
    assert len(student.blocks) == 1 and len(transformer.blocks) == blocks >= 2
    assert report.params_after < report.params_before
    assert report.layers_changed == [f"blocks: {blocks}→1 blocks"]
    with torch.no_grad():
        assert student(torch.randn(BATCH, 1, 8, 8)).shape == (BATCH, 10)
    assert student.blocks[0].attn.q_proj.weight.shape == transformer.blocks[0].attn.q_proj.weight.shape
    assert getattr(student, "depth", 1) == 1          # the model's own bookkeeping follows


def test_depth_errors(transformer, cnn, small_data):
    blocks = len(transformer.blocks)
    with pytest.raises(PluginError, match=rf"depth={blocks} keeps all {blocks} blocks"):
        Distill(student="depth", depth=blocks, epochs=1).run(transformer, _context(small_data))
    with pytest.raises(PluginError, match="identical blocks"):
        Distill(student="depth", depth=1, epochs=1).run(cnn, _context(small_data))


def test_factory_student(cnn, small_data):
    spec = f"{__name__}:tiny_student"
    student, report = Distill(student="factory", factory=spec, epochs=1).run(cnn, _context(small_data))
    assert count_parameters(student) == count_parameters(tiny_student())
    assert report.layers_changed == [f"student built by {spec}"]


@pytest.mark.parametrize("spec", ["no_such_package.models:make_student", f"{__name__}:missing_fn",
                                  "workbench.models.info:count_parameters"])
def test_factory_bad_string_is_a_clear_error(cnn, small_data, spec):
    with pytest.raises(PluginError, match=f"factory '{spec}'"):
        Distill(student="factory", factory=spec, epochs=1).run(cnn, _context(small_data))


@pytest.mark.parametrize("spec", ["", "no_colon_here", "a.b:", ":fn"])
def test_factory_malformed_string_rejected_at_construction(spec):
    with pytest.raises(PluginError, match="factory"):
        Distill(student="factory", factory=spec)


# ---------------------------------------------------------------------------------------------
# Data handling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [None, "test_only"])
def test_no_training_data_is_a_clear_error(cnn, small_data, given):
    data = None if given is None else {"x_test": small_data["x_test"], "y_test": small_data["y_test"]}
    with pytest.raises(PluginError) as err:
        Distill(epochs=1).run(cnn, _context(data))
    assert str(err.value) == NO_DATA_MESSAGE
    assert "--data file.npz with x_train[, y_train]" in str(err.value) and "synthetic=true" in str(err.value)


def test_synthetic_is_flagged_data_free(cnn):
    events: list = []
    student, report = Distill(synthetic=True, synthetic_samples=256, epochs=2).run(cnn, _context(None, events))
    assert report.extra["data_free"] is True
    assert any("data-free" in note for note in report.notes) and "data-free" in report.summary
    assert report.extra["student_accuracy"] is None and report.extra["teacher_accuracy"] is None
    assert report.extra["train_samples"] == 256 and len(report.extra["loss_curve"]) == 2
    assert any(kind == "train" for kind, _ in events)
    assert student(torch.randn(BATCH, 1, 8, 8)).shape == (BATCH, 10)


def test_unlabelled_data_uses_pure_distillation(cnn, small_data):
    data = {"x_train": small_data["x_train"], "x_test": small_data["x_test"]}
    _, report = Distill(epochs=1).run(cnn, _context(data))
    assert report.extra["student_accuracy"] is None
    assert 0.0 <= report.extra["agreement"] <= 1.0
    assert any("alpha unused" in note for note in report.notes)


def test_kd_alone_transfers_the_teacher(cnn, data):
    """No labels: only the teacher's soft targets can teach a fresh MLP to agree with it."""
    unlabelled = {"x_train": data["x_train"], "x_test": data["x_test"]}
    spec = f"{__name__}:tiny_student"
    _, report = Distill(student="factory", factory=spec, epochs=8, lr=1e-2).run(cnn, _context(unlabelled))
    assert report.extra["agreement"] > 0.8           # an untrained MLP agrees on ~10 %
    assert report.extra["loss_curve"][-1] < 0.5 * report.extra["loss_curve"][0]


def test_mismatched_data_shape_is_a_clear_error(cnn):
    data = {"x_train": np.zeros((32, 3, 8, 8), np.float32)}
    with pytest.raises(PluginError, match=r"x_train samples have shape \(3, 8, 8\)"):
        Distill(epochs=1).run(cnn, _context(data))


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers: depth student, token data, refusals
# ---------------------------------------------------------------------------------------------
VOCAB, SEQ = 256, 12


def _hf(kind: str):
    transformers = pytest.importorskip("transformers")
    from workbench.models.hf import HFForward
    torch.manual_seed(0)
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
        return HFForward(transformers.LlamaForCausalLM(config), "causal-lm")
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return HFForward(transformers.BertModel(config), "feature-extraction")


def _token_context(with_data: bool = True) -> PluginContext:
    """context.data as the worker gives it for a text model: int64 token windows and their masks."""
    stream = np.tile(np.arange(40) * 7 % VOCAB, 40)
    windows = np.stack([stream[i:i + SEQ] for i in range(0, 40 * 5, 5)]).astype(np.int64)
    data = {"x_train": windows[:32], "attention_mask_train": np.ones_like(windows[:32]),
            "x_test": windows[32:], "attention_mask_test": np.ones_like(windows[32:])} if with_data else None
    ids = torch.as_tensor(windows[:2])
    return PluginContext(device="cpu", dtype="float32", example_inputs=[ids, torch.ones_like(ids)], data=data,
                         seed=0, workdir=Path("."))


def test_language_model_depth_student_keeps_every_other_layer_and_reopens(one_thread, tmp_path):
    import transformers
    from workbench.models.hf import HFForward
    teacher = _hf("llama")
    ctx = _token_context()
    student, report = Distill(epochs=3, lr=3e-3).run(teacher, ctx)          # student=auto: depth
    assert report.extra["student"] == "depth" and report.layers_changed == ["model.layers: 4→2 layers (kept 0, 2)"]
    assert student.model.config.num_hidden_layers == 2 and teacher.model.config.num_hidden_layers == 4
    assert [layer.self_attn.layer_idx for layer in student.model.model.layers] == [0, 1]   # KV-cache slots
    curve = report.extra["loss_curve"]
    assert len(curve) == 3 and curve[-1] < curve[0]
    assert report.extra["student_accuracy"] is not None and 0.0 <= report.extra["agreement"] <= 1.0
    assert "next-token accuracy" in report.summary and report.extra["data_free"] is False
    ids, mask = ctx.example_inputs
    student.model.save_pretrained(tmp_path)
    reopened = HFForward(transformers.AutoModelForCausalLM.from_pretrained(tmp_path), "causal-lm")
    with torch.no_grad():
        assert torch.allclose(reopened(ids, mask), student(ids, mask), atol=1e-5)
        assert student.model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=False).shape == (2, SEQ + 2)


def test_embedding_student_matches_the_teacher_by_cosine(one_thread):
    teacher = _hf("bert")
    student, report = Distill(student="depth", depth=1, epochs=2, lr=3e-3).run(teacher, _token_context())
    assert student.model.config.num_hidden_layers == 1
    assert report.extra["loss_curve"][-1] < report.extra["loss_curve"][0]
    assert 0.9 < report.extra["output_cosine"] <= 1.0 and "output cosine" in report.summary


def test_width_student_of_a_transformer_has_fewer_heads(one_thread):
    student, report = Distill(student="width", width=0.5, epochs=1).run(_hf("llama"), _token_context())
    assert student.model.config.num_attention_heads == 2 and student.model.config.intermediate_size == 64


def test_token_models_refuse_data_free_and_textless_distillation():
    teacher = _hf("bert")
    with pytest.raises(PluginError) as caught:
        Distill(synthetic=True).check_model(teacher, "torch")          # up front, before anything runs
    assert str(caught.value) == DATA_FREE_TOKENS and "random ids are not language" in DATA_FREE_TOKENS
    with pytest.raises(PluginError, match="needs training text"):
        Distill().run(teacher, _token_context(with_data=False))
    assert str(NO_TEXT_MESSAGE).startswith("distillation of a text model needs training text")
    # any model that takes token ids: random ids teach nothing
    embed = nn.Sequential(nn.Embedding(VOCAB, 16), nn.Flatten(1), nn.Linear(16 * SEQ, 4))
    ids = torch.randint(0, VOCAB, (4, SEQ))
    ctx = PluginContext(device="cpu", dtype="float32", example_inputs=[ids], data=None, seed=0, workdir=Path("."))
    with pytest.raises(PluginError, match="data-free distillation .* token ids is refused"):
        Distill(synthetic=True).run(embed, ctx)


# ---------------------------------------------------------------------------------------------
# Cancellation
# ---------------------------------------------------------------------------------------------
def test_cancel_stops_training_quickly(cnn, data):
    """``cancelled`` turns True after a few training steps: run() raises RunCancelled within a
    step (well under a second) and nothing more is trained or emitted."""
    state = {"calls": 0, "steps_seen": 0, "flagged_at": None}
    events: list = []
    cancel_after_steps = 3

    def emit(kind, payload):
        events.append((kind, dict(payload)))
        state["steps_seen"] = payload["step"]

    def cancelled() -> bool:
        state["calls"] += 1
        if state["steps_seen"] >= cancel_after_steps:
            if state["flagged_at"] is None:
                state["flagged_at"] = time.perf_counter()
            return True
        return False

    ctx = _context(data, cancelled=cancelled)
    ctx.emit = emit
    with pytest.raises(RunCancelled):
        Distill(epochs=50).run(cnn, ctx)
    stopped = time.perf_counter()
    assert state["flagged_at"] is not None
    assert stopped - state["flagged_at"] < 1.0
    steps = [p["step"] for kind, p in events if kind == "train"]
    assert steps == list(range(1, cancel_after_steps + 1))     # checked every step: stopped at once
    assert ctx.cancelled() is True
