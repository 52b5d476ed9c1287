"""The torch -> ONNX conversion step, inserted automatically where a chain needs ONNX."""
from __future__ import annotations

import contextlib
import io
import re
from typing import Any, Iterator

from ..errors import PluginError
from ..format import nbytes
from .api import Param, Plugin, PluginContext, PluginReport

# Terminal colour codes (torch.onnx colours its messages): never shown to the user or stored.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_STEPS = {"1/3": "torch.export could not capture the model", "2/3": "the graph could not be decomposed for ONNX",
          "3/3": "the exported program could not be translated to ONNX"}
NO_CACHE_NOTE = ("exported without the KV cache (use_cache=False): the ONNX model takes input_ids + attention_mask "
                 "and returns the logits only, so generating with it recomputes the whole sequence for every token")


class ExportFailure(Exception):
    """The exporters' full messages (colour codes stripped): the cause behind the one-line PluginError,
    shown with the traceback in the log and under --debug."""


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def exporter_reason(exc: BaseException) -> str:
    """One line saying why torch.onnx / torch.export failed: the stage, the root exception and the
    line of the model that raised it (torch.onnx's own message starts with generic advice)."""
    text = strip_ansi(str(exc)).strip()
    step = re.search(r"This is step (\d/3)", text)
    stage = _STEPS.get(step.group(1)) if step else None
    summary = re.search(r"## Exception summary\s*\n+(.*?)(?:\n\s*\n|⬆️|\Z)", text, re.S)
    head = summary.group(1).strip() if summary else next((line for line in text.splitlines() if line.strip()), "")
    root = re.match(r"<class '(?:[\w.]*\.)?(\w+)'>:\s*(.*)", head, re.S)
    head = f"{root.group(1)}: {root.group(2)}" if root else (f"{type(exc).__name__}: {head}" if head else
                                                             type(exc).__name__)
    head = " ".join(head.split())
    where = re.search(r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)',
                      text)
    location = ""
    if where:
        path, line, function, code = where.groups()
        location = f" (at {path.rsplit('/', 1)[-1]}:{line} in {function}: `{code.strip()[:120]}`)"
    reason = (f"{stage}: " if stage else "") + (head[:300] + ("…" if len(head) > 300 else "")) + location
    return reason


def causal_lm_config(module: Any) -> Any:
    """The config of the transformers model inside ``module`` (an HFForward) when it generates with a
    KV cache (a causal LM; an encoder's config may carry use_cache too, unused)."""
    inner = getattr(module, "model", module)
    config = getattr(inner, "config", None)
    can_generate = getattr(inner, "can_generate", None)
    if getattr(config, "use_cache", None) is None or not callable(can_generate):
        return None
    try:
        return config if can_generate() else None
    except Exception:   # a remote-code model's own can_generate
        return None


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
    reasons = "; ".join(f"{label}: {exporter_reason(exc)}" for label, exc in failures)
    full = "\n\n".join(f"=== {label}: {type(exc).__name__} ===\n{strip_ansi(str(exc))}" for label, exc in failures)
    raise PluginError("could not export the model to ONNX: " + reasons) from \
        ExportFailure(full).with_traceback(failures[0][1].__traceback__)


class OnnxExport(Plugin):
    name = "onnx_export"
    summary = "Convert a PyTorch model to ONNX (torch.onnx.export) so ONNX Runtime can run it."
    params_schema = (
        Param("opset", "int", 18, "ONNX opset version to export", minimum=13, maximum=23),
        Param("dynamic_batch", "bool", True, "Export with a dynamic batch dimension"),
        Param("with_cache", "bool", False,
              "Causal LMs: export with the KV cache (past_key_values inputs, present outputs). Not supported "
              "yet: refused. Without it (the default) the ONNX model returns logits only"),
    )
    accepts = ("torch",)
    produces = "onnx"

    def check(self, model_format: str, device: str) -> None:
        if self.params["with_cache"]:
            raise PluginError("onnx_export with_cache=true is not supported: exporting a causal LM with its KV "
                              "cache needs past_key_values inputs and present outputs, which Workbench does not "
                              "build yet; use with_cache=false (the default: input_ids + attention_mask -> logits)")

    def apply(self, model: Any, context: PluginContext) -> tuple[Any, PluginReport]:
        self.check("torch", context.device)
        context.progress(0.0, "exporting to ONNX")
        has_cache = causal_lm_config(model) is not None
        proto = export_to_onnx(model, context.example_inputs, context.input_names or None,
                               opset=self.params["opset"], dynamic_batch=self.params["dynamic_batch"])
        size = proto.ByteSize()
        context.progress(1.0, "exported")
        return proto, PluginReport(
            plugin=self.name, summary=(f"exported to ONNX opset {self.params['opset']} ({nbytes(size)})"
                                       + (", without the KV cache" if has_cache else "")),
            bytes_after=size, layers_changed=[], notes=[NO_CACHE_NOTE] if has_cache else [], changed=True,
            extra={"nodes": len(proto.graph.node), "kv_cache": False if has_cache else None,
                   "outputs": [o.name for o in proto.graph.output]})
