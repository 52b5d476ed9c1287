"""The torch -> ONNX conversion step, inserted automatically where a chain needs ONNX."""
from __future__ import annotations

import io
from typing import Any

from ..errors import PluginError
from ..format import nbytes
from .api import Param, Plugin, PluginContext, PluginReport


def export_to_onnx(module: Any, example_inputs: list, input_names: list[str] | None = None,
                   opset: int = 18, dynamic_batch: bool = True) -> Any:
    """Export a torch module to an ``onnx.ModelProto`` (dynamo exporter, TorchScript fallback)."""
    import onnx
    import torch

    names = input_names or [f"input_{i}" for i in range(len(example_inputs))]
    args = tuple(example_inputs)
    errors = []
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
            with torch.no_grad():
                program = torch.onnx.export(module, args, None if dynamo else buffer,
                                            dynamo=dynamo, **kwargs)
            if dynamo:
                program.optimize()
                return program.model_proto
            return onnx.load_from_string(buffer.getvalue())
        except Exception as exc:  # try the other exporter before giving up
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}")
    raise PluginError("could not export the model to ONNX: " + "; ".join(errors))


class OnnxExport(Plugin):
    name = "onnx_export"
    summary = "Convert a PyTorch model to ONNX (torch.onnx.export) so ONNX Runtime can run it."
    params_schema = (
        Param("opset", "int", 18, "ONNX opset version to export", minimum=13, maximum=23),
        Param("dynamic_batch", "bool", True, "Export with a dynamic batch dimension"),
    )
    accepts = ("torch",)
    produces = "onnx"

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        context.progress(0.0, "exporting to ONNX")
        proto = export_to_onnx(model, context.example_inputs, context.input_names or None,
                               opset=self.params["opset"], dynamic_batch=self.params["dynamic_batch"])
        size = proto.ByteSize()
        context.progress(1.0, "exported")
        return proto, PluginReport(
            plugin=self.name, summary=f"exported to ONNX opset {self.params['opset']} ({nbytes(size)})",
            bytes_after=size, layers_changed=[], extra={"nodes": len(proto.graph.node)})
