"""Load a model from a file (or the demo catalog) safely, with one clear error per bad input.

Formats: TorchScript archives, ``torch.export`` programs (.pt2), ONNX, a state_dict
(.pt/.pth/.safetensors) plus a ``package.module:callable`` factory, a fully pickled
``nn.Module`` (only with ``trust_pickle``), and ``demo:NAME``. Nothing is unpickled with code
execution unless the user opted in: ``torch.load`` always runs with ``weights_only=True`` first.
"""
from __future__ import annotations

import importlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..spec import InputSpec

TRUST_HINT = ("Loading it would execute code from the file. If you trust it, re-run with "
              "--trust-pickle (GUI: tick 'Trust this file (runs code from it)').")
SUPPORTED = ("TorchScript (.pt/.ts), torch.export (.pt2), ONNX (.onnx), state_dict (.pt/.pth/.safetensors) "
             "with --factory, pickled nn.Module with --trust-pickle, demo:NAME")


@dataclass
class LoadedModel:
    model: Any                          # torch nn.Module / ScriptModule, or onnx.ModelProto
    format: str                         # torchscript | pt2 | onnx | state_dict | pickle | demo
    kind: str                           # "torch" | "onnx": what runtimes and plugins see
    inputs: list[InputSpec]             # known input specs (may be empty: the user must give --input)
    input_fixed_by_model: bool
    data: dict | None = None            # eval/train arrays shipped with the model (demos)
    default_batch: int | None = None
    notes: list[str] = field(default_factory=list)


def load_model(source: str, factory: str | None = None, trust_pickle: bool = False) -> LoadedModel:
    if source.startswith("demo:"):
        return _load_demo(source[5:])
    path = Path(source).expanduser()
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _load_onnx(path)
    if suffix == ".pt2":
        return _load_exported_program(path)
    if suffix == ".safetensors":
        return _load_state_dict(_read_safetensors(path), path, factory)
    if suffix in (".pt", ".pth", ".ts", ".torchscript", ".bin", ".ckpt") or zipfile.is_zipfile(path):
        return _load_torch_file(path, factory, trust_pickle)
    if _looks_like_onnx(path):
        return _load_onnx(path)
    raise ModelLoadError(f"unrecognized model format: {path.name}. Supported: {SUPPORTED}")


# -- files --------------------------------------------------------------------------------------
def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a model file")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"cannot read {path}: permission denied")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes)")


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx
        onnx.load(str(path), load_external_data=False)
        return True
    except Exception:
        return False


# -- demo ---------------------------------------------------------------------------------------
def _load_demo(name: str) -> LoadedModel:
    from . import demos
    try:
        entry = demos.get_demo(name)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(str(exc).strip("'\"")) from None
    module = demos.build_demo_module(name)
    data = demos.load_eval_data(demos.assets_dir() / entry.data)
    shape = [-1] + list(entry.input_shape[1:])
    return LoadedModel(module, "demo", "torch", [InputSpec(shape, entry.input_dtype, "x")], True,
                       data=data, default_batch=DEMO_DEFAULT_BATCH)


# Demos are measured at batch 64 unless --batch says otherwise: the size at which their
# optimization targets are stated and compute (not Python overhead) dominates.
DEMO_DEFAULT_BATCH = 64


# -- ONNX ---------------------------------------------------------------------------------------
def _load_onnx(path: Path) -> LoadedModel:
    import onnx
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a readable ONNX file (truncated or another format?): "
                             f"{_first_line(exc)}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: the ONNX graph fails onnx.checker: {_first_line(exc)}") from None
    notes = []
    moved = constants_to_initializers(model)
    if moved:
        notes.append(f"{moved} weight tensors came from Constant nodes; moved to initializers")
    inputs, fixed = onnx_input_specs(model)
    return LoadedModel(model, "onnx", "onnx", inputs, fixed, notes=notes)


def onnx_input_specs(model: Any) -> tuple[list[InputSpec], bool]:
    """Graph inputs that are not initializers, with symbolic dims as -1."""
    from onnx import helper
    initializers = {t.name for t in model.graph.initializer}
    specs, fixed = [], True
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = []
        for d in tensor.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(-1)
                fixed = False
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
        specs.append(InputSpec(dims, dtype if dtype in _NP_DTYPES else "float32", value.name))
    return specs, fixed


_NP_DTYPES = {"float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"}


def constants_to_initializers(model: Any) -> int:
    """Turn weight-bearing ``Constant`` / constant ``ConstantOfShape`` nodes into initializers.

    Many exporters emit weights this way; moving them makes the graph look like every other
    ONNX file to the rest of the tool (parameter counts, ORT quantization, which only quantizes
    initializers). Small scalars stay as nodes. Returns how many tensors moved.
    """
    import numpy as np
    from onnx import helper, numpy_helper
    graph = model.graph
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    keep, moved = [], 0
    for node in graph.node:
        array = None
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            array = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "ConstantOfShape" and node.input and node.input[0] in known:
            fill = np.zeros(1, dtype=np.float32)
            for attr in node.attribute:
                if attr.name == "value":
                    fill = numpy_helper.to_array(attr.t)
            array = np.full(tuple(int(d) for d in known[node.input[0]]), fill.reshape(-1)[0], dtype=fill.dtype)
        if array is not None:
            known[node.output[0]] = array
            if array.size > 1:
                graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
                moved += 1
                continue
        keep.append(node)
    if moved:
        del graph.node[:]
        graph.node.extend(keep)
        # IR < 4 requires every initializer to be a graph input too.
        if model.ir_version < 4:
            inputs = {i.name for i in graph.input}
            for t in graph.initializer:
                if t.name not in inputs:
                    graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return moved


# -- torch files --------------------------------------------------------------------------------
def _load_exported_program(path: Path) -> LoadedModel:
    import torch
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a loadable torch.export program (.pt2): {_first_line(exc)}") from None
    inputs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is not None and hasattr(val, "shape"):
                shape = [int(d) if isinstance(d, int) else -1 for d in val.shape]
                inputs.append(InputSpec(shape, str(val.dtype).replace("torch.", ""), node.name))
    return LoadedModel(program.module(), "pt2", "torch", inputs, bool(inputs))


def _is_torchscript_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _load_torch_file(path: Path, factory: str | None, trust_pickle: bool) -> LoadedModel:
    import pickle

    import torch
    if zipfile.is_zipfile(path) and _is_torchscript_archive(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path.name}: TorchScript archive failed to load: {_first_line(exc)}") from None
        return LoadedModel(module.eval(), "torchscript", "torch", [], False)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Unsupported global" not in str(exc):
            raise ModelLoadError(f"{path.name} is not a PyTorch file (truncated or corrupt?): {_first_line(exc)}") from None
        if not trust_pickle:
            raise ModelLoadError(f"{path.name} contains pickled Python objects (a full model, not just weights). "
                                 + TRUST_HINT) from None
        obj = _load_trusted_pickle(path)
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a PyTorch file (truncated or corrupt?): {_first_line(exc)}") from None
    if isinstance(obj, torch.nn.Module):
        return LoadedModel(obj.eval(), "pickle", "torch", [], False,
                           notes=["loaded with --trust-pickle (code from the file was executed)"])
    state = _state_dict_of(obj)
    if state is None:
        raise ModelLoadError(f"{path.name} holds a {type(obj).__name__}, not a model or a state_dict")
    return _load_state_dict(state, path, factory)


def _load_trusted_pickle(path: Path) -> Any:
    import torch
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: unpickling failed (its classes must be importable): "
                             f"{_first_line(exc)}") from None


def _state_dict_of(obj: Any) -> dict | None:
    import torch
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint layouts
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    return None


def _read_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
        return load_file(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a valid safetensors file (truncated?): {_first_line(exc)}") from None


def _load_state_dict(state: dict, path: Path, factory: str | None) -> LoadedModel:
    if not factory:
        raise ModelLoadError(f"{path.name} holds only weights (a state_dict with {len(state)} tensors). "
                             "Pass --factory package.module:callable that builds the module to load them into")
    module = build_from_factory(factory)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"the weights in {path.name} do not fit the module built by {factory}: "
                             f"{_first_line(exc)}") from None
    return LoadedModel(module.eval(), "state_dict", "torch", [], False)


def build_from_factory(factory: str) -> Any:
    """Import ``package.module:callable`` and call it with no arguments."""
    import torch
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"bad factory {factory!r}: expected package.module:callable")
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot import factory {factory!r}: {type(exc).__name__}: {exc}") from None
    try:
        module = target()
    except Exception as exc:
        raise ModelLoadError(f"factory {factory!r} raised {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"factory {factory!r} returned {type(module).__name__}, not a torch.nn.Module")
    return module


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
