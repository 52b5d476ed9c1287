"""onnx_export on causal LMs (GPT-2, Llama with grouped-query attention) without the KV cache, run
by ONNX Runtime (with the cache: test_onnx_kv_cache.py); the exporter's failures in one line
without colour codes; load errors that keep the key names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.errors import PluginError
from workbench.plugin_api import PluginContext, build_chain
from workbench.plugin_api.onnx_export import ExportFailure, OnnxExport, export_to_onnx, exporter_reason
from workbench.spec import PluginStep

VOCAB, SEQ = 300, 12


def _causal_lm(kind: str):
    import transformers

    from workbench.models.hf import HFForward
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, n_inner=64,
                                         vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    else:   # grouped-query attention: 4 query heads share 2 key/value heads
        config = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                                          vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    return HFForward(model.eval(), "causal-lm")


def _tokens(batch: int = 2, padded: bool = True) -> list[torch.Tensor]:
    ids = torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(batch + padded))
    mask = torch.ones_like(ids)
    if padded:
        mask[1:, :3] = 0        # a left-padded row: the mask must reach the exported graph
    return [ids, mask]


@pytest.mark.parametrize("kind,dynamic_batch", [("gpt2", True), ("llama", False)])   # static: a cheaper export
def test_causal_lm_exports_without_cache_and_runs_on_onnxruntime(kind, dynamic_batch, tmp_path):
    import onnxruntime as ort
    model = _causal_lm(kind)
    inputs = _tokens()
    context = PluginContext(device="cpu", dtype="float32", example_inputs=inputs, data=None, seed=0,
                            workdir=Path(tmp_path), input_names=["input_ids", "attention_mask"])
    proto, report = OnnxExport(dynamic_batch=dynamic_batch).run(model, context)
    assert report.extra["kv_cache"] is False and report.changed is True
    assert report.summary.endswith("without the KV cache")
    assert any("use_cache=False" in note for note in report.notes)
    assert model.model.config.use_cache is True, "the model's config was left changed"
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    assert len(proto.graph.output) == 1           # logits only: no present key/values
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    # the mask is a real input of the graph, not a constant: another mask (and batch size) gives other logits
    for ids, mask in (inputs, _tokens(batch=3 if dynamic_batch else 2, padded=False)):
        logits = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        with torch.no_grad():
            expected = model(ids, mask).numpy()
        assert logits.shape == (len(ids), SEQ, VOCAB)
        real = mask.numpy().astype(bool)          # a padded position's logits mean nothing
        np.testing.assert_allclose(logits[real], expected[real], atol=1e-4, rtol=1e-4)


def test_export_with_cache_is_decided_by_the_model():
    """with_cache=true passes the chain check without a model (the loaded model decides: a causal LM
    exports its cache, anything else is refused; tests/plugins/test_onnx_kv_cache.py)."""
    chain = build_chain([PluginStep("onnx_export", {"with_cache": True})], "torch", "cpu", "onnxruntime")
    assert chain[0].name == "onnx_export" and chain[0].plugin.params["with_cache"] is True
    with pytest.raises(PluginError, match=r"with_cache=true needs a causal language model.*with_cache=false"):
        build_chain([PluginStep("onnx_export", {"with_cache": True})], "torch", "cpu", "onnxruntime",
                    model=torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# one-line errors
# ---------------------------------------------------------------------------------------------
# The shape of torch.onnx's own message (torch 2.13), colour codes included.
_DYNAMO_MESSAGE = (
    "Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of exporting the model to ONNX. "
    "Next steps:\n- Modify the model code for `torch.export.export` to succeed.\n- Create an issue in the PyTorch "
    "GitHub repository against the \x1b[96m*torch.export*\x1b[0m component.\n\n## Exception summary\n\n"
    "<class 'torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode'>: Could not guard on "
    "data-dependent expression Eq(u0, 1) (unhinted: Eq(u0, 1)).\n\nconsider using data-dependent friendly APIs\n"
    "The following call raised this error:\n  File \"/models/net.py\", line 5, in forward\n"
    "    if x.sum() > 0: return x.nonzero()\n\n\n(Refer to the full stack trace above for more information.)")


def test_exporter_reason_is_one_line_with_the_real_cause():
    reason = exporter_reason(RuntimeError(_DYNAMO_MESSAGE))
    assert "\x1b" not in reason and "\n" not in reason
    assert reason.startswith("torch.export could not capture the model: GuardOnDataDependentSymNode: Could not "
                             "guard on data-dependent expression Eq(u0, 1)")
    assert reason.endswith("(at net.py:5 in forward: `if x.sum() > 0: return x.nonzero()`)")


def test_a_failed_export_is_one_line_and_keeps_the_full_text_as_its_cause():
    class NoOnnxOp(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x).real     # no ONNX op, in either exporter

    with pytest.raises(PluginError) as caught:
        export_to_onnx(NoOnnxOp(), [torch.randn(2, 3, 3)])
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith("could not export the model to ONNX: dynamo exporter: ")
    assert "linalg_eig" in message and "; TorchScript exporter: UnsupportedOperatorError" in message
    cause = caught.value.__cause__
    assert isinstance(cause, ExportFailure) and cause.__traceback__ is not None
    assert "## Exception summary" in str(cause) and "\x1b" not in str(cause)


def test_weights_that_do_not_fit_keep_the_key_names():
    from workbench.models.loaders import error_detail
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError) as caught:
        model.load_state_dict({"0.weight": torch.zeros(2, 2), "head.bias": torch.zeros(1)})
    detail = error_detail(caught.value)
    assert "\n" not in detail
    assert 'Missing key(s) in state_dict: "0.bias"' in detail
    assert 'Unexpected key(s) in state_dict: "head.bias"' in detail
    assert error_detail(RuntimeError("\x1b[31mbad\x1b[0m file\nsecond line")) == "bad file"
