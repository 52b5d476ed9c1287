"""The torch -> ONNX conversion step, inserted automatically where a chain needs ONNX."""
from __future__ import annotations

import contextlib
import io
from typing import Any, Iterator

from ..format import nbytes
from .api import Param, Plugin, PluginContext, PluginReport
from .onnx_cache_export import causal_lm_config, export_with_cache, refuse_without_cache
# ExportFailure, exporter_reason and strip_ansi are imported from here by plugins and tests
from .onnx_export_errors import ExportFailure, export_failure, exporter_reason, strip_ansi  # noqa: F401

NO_CACHE_NOTE = ("exported without the KV cache (use_cache=False): the ONNX model takes input_ids + attention_mask "
                 "and returns the logits only, so generating with it recomputes the whole sequence for every token; "
                 "onnx_export:with_cache=true exports the cache too")


@contextlib.contextmanager
def _without_kv_cache(module: Any) -> Iterator[bool]:
    """use_cache=False for the export (the wrapper returns logits only: a cache would be traced for
    nothing, or break the exporter); restored afterwards. Yields whether the model has a cache."""
    config = causal_lm_config(module)
    if config is None:
        yield False
        return
    before = config.use_cache
    config.use_cache = False
    try:
        yield True
    finally:
        config.use_cache = before


def export_to_onnx(module: Any, example_inputs: list, input_names: list[str] | None = None,
                   opset: int = 18, dynamic_batch: bool = True) -> Any:
    """Export a torch module to an ``onnx.ModelProto`` (dynamo exporter, TorchScript fallback).
    A transformers model with a KV cache is exported without it (see ``NO_CACHE_NOTE``)."""
    import onnx
    import torch

    names = input_names or [f"input_{i}" for i in range(len(example_inputs))]
    args = tuple(example_inputs)
    failures: list[tuple[str, BaseException]] = []
    with _without_kv_cache(module):
        for dynamo in (True, False):
            buffer = io.BytesIO()
            try:
                kwargs: dict[str, Any] = dict(input_names=names, output_names=["output"], opset_version=opset)
                if dynamic_batch:
                    if dynamo:
                        batch = torch.export.Dim("batch", min=1, max=65536)
                        kwargs["dynamic_shapes"] = tuple({0: batch} for _ in args)
                    else:
                        kwargs["dynamic_axes"] = {n: {0: "batch"} for n in names + ["output"]}
                if dynamo:
                    kwargs["verbose"] = False      # its progress lines are not ours to print
                with torch.no_grad():
                    program = torch.onnx.export(module, args, None if dynamo else buffer,
                                                dynamo=dynamo, **kwargs)
                if dynamo:
                    program.optimize()
                    return program.model_proto
                return onnx.load_from_string(buffer.getvalue())
            except Exception as exc:  # try the other exporter before giving up
                failures.append(("dynamo exporter" if dynamo else "TorchScript exporter", exc))
    raise export_failure(failures, "could not export the model to ONNX")


class OnnxExport(Plugin):
    name = "onnx_export"
    summary = "Convert a PyTorch model to ONNX (torch.onnx.export) so ONNX Runtime can run it."
    params_schema = (
        Param("opset", "int", 18, "ONNX opset version to export", minimum=13, maximum=23),
        Param("dynamic_batch", "bool", True, "Export with a dynamic batch dimension"),
        Param("with_cache", "bool", False,
              "Causal LMs: export with the KV cache (past_key_values inputs, present outputs), so ONNX Runtime "
              "generates token by token (--scenario generate). Without it (the default) the ONNX model returns "
              "logits only"),
    )
    accepts = ("torch",)
    produces = "onnx"

    def check_model(self, model: Any, model_format: str) -> None:
        if self.params["with_cache"]:
            refuse_without_cache(model)

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        self.check_model(model, "torch")
        with_cache = self.params["with_cache"]
        context.progress(0.0, "exporting to ONNX" + (" with the KV cache" if with_cache else ""))
        has_cache = causal_lm_config(model) is not None
        opset = self.params["opset"]
        if with_cache:
            proto, layout = export_with_cache(model, context.example_inputs, opset, self.params["dynamic_batch"])
            how = f", with the KV cache ({layout.layers} layers, past_key_values inputs/present outputs)"
            notes = [layout.note()]
        else:
            proto = export_to_onnx(model, context.example_inputs, context.input_names or None,
                                   opset=opset, dynamic_batch=self.params["dynamic_batch"])
            how, notes = (", without the KV cache", [NO_CACHE_NOTE]) if has_cache else ("", [])
        size = proto.ByteSize()
        context.progress(1.0, "exported")
        return proto, PluginReport(
            plugin=self.name, summary=f"exported to ONNX opset {opset} ({nbytes(size)})" + how,
            bytes_after=size, layers_changed=[], notes=notes, changed=True,
            extra={"nodes": len(proto.graph.node), "kv_cache": with_cache if has_cache else None,
                   "outputs": [o.name for o in proto.graph.output]})
