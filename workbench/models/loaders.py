"""Load a model from a file (or the demo catalog) safely, with one clear error per bad input.

Formats: TorchScript archives, ``torch.export`` programs (.pt2), ONNX, a state_dict
(.pt/.pth/.safetensors) plus a ``package.module:callable`` factory, a fully pickled
``nn.Module`` (only with ``trust_pickle``), a Hugging Face folder (``hf_load.py``), and
``demo:NAME``. Nothing is unpickled with code execution unless the user opted in: ``torch.load``
always runs with ``weights_only=True`` first.

A file is identified by its content before it is loaded (``identify_file``), so a message says
what the file really is. Advice to trust a pickle is only given for a file that parses as a
pickle and names Python classes or functions; no library's advice to switch a safety off
(``weights_only=False``, ``allow_pickle=True``) is ever passed on (``error_detail``).
"""
from __future__ import annotations

import importlib
import io
import os
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelLoadError
from ..spec import InputSpec
from .formats import TORCH_SUFFIXES
from .hf_load import hf_folder_of, load_hf_folder
from .loaded import TRUST_HINT, LoadedModel, error_detail  # noqa: F401 (re-exported)

FACTORY_HINT = "Pass --factory package.module:callable that builds the module to load them into"
SUPPORTED = ("TorchScript (.pt/.ts), torch.export (.pt2), ONNX (.onnx), state_dict (.pt/.pth/.safetensors) "
             "with --factory, pickled nn.Module with --trust-pickle, a Hugging Face folder, demo:NAME")


# What each content kind is, in words, and the suffix a file of that kind should have.
KINDS = {
    "torchscript": ("a TorchScript archive", ".pt"),
    "pt2": ("a torch.export program", ".pt2"),
    "torch_zip": ("a PyTorch checkpoint (torch.save archive)", ".pt"),
    "pickle": ("a Python pickle (e.g. a torch.save file in the old format)", ".pt"),
    "onnx": ("an ONNX file", ".onnx"),
    "safetensors": ("a safetensors file", ".safetensors"),
    "npz": ("a NumPy .npz archive (data, not a model: pass it with --data)", None),
    "zip": ("a zip archive with no model inside (no data.pkl, TorchScript code or torch.export program)", None),
    "broken_zip": ("a truncated or corrupt zip archive", None),
}


def load_model(source: str, factory: str | None = None, trust_pickle: bool = False,
               on_step: Callable[[str], None] | None = None, *, trust_remote_code: bool = False,
               task: str = "auto") -> LoadedModel:
    """Load ``source``; ``on_step(words)`` hears which step runs code from the model (e.g.
    'importing the factory pkg.mod:fn'), so a failure without context can say where it happened.
    A folder (or its config.json) is a Hugging Face model: ``hf_load`` opens it as ``task``."""
    if source.startswith("demo:"):
        return _load_demo(source[5:])
    path = Path(source).expanduser()
    folder = hf_folder_of(path)
    if folder is not None:
        return load_hf_folder(folder, trust_pickle, trust_remote_code, task, on_step)
    _check_readable(path)
    suffix = path.suffix.lower()
    kind = identify_file(path)
    if kind == "onnx":
        if suffix in TORCH_SUFFIXES:
            raise ModelLoadError(f"{path.name} is an ONNX file, not a PyTorch file; rename it {path.stem}.onnx")
        return _load_onnx(path)
    if suffix == ".onnx":
        if kind == "unknown":
            return _load_onnx(path)     # says why it does not parse
        raise ModelLoadError(f"{path.name} is not an ONNX file: it is {_what(kind)}"
                             + (f"; rename it {path.stem}{KINDS[kind][1]}" if KINDS[kind][1] else ""))
    if kind == "pt2" or (suffix == ".pt2" and kind == "unknown"):
        return _load_exported_program(path)
    if kind == "safetensors" or (suffix == ".safetensors" and kind == "unknown"):
        return _load_state_dict(_read_safetensors(path), path, factory, on_step)
    if kind in ("torchscript", "torch_zip", "pickle"):
        return _load_torch_file(path, kind, factory, trust_pickle, on_step)
    what = f"it is {_what(kind)}" if kind != "unknown" else _sniff(path)
    if suffix in TORCH_SUFFIXES:
        raise ModelLoadError(f"{path.name} is not a PyTorch file: {what}")
    if kind != "unknown":
        raise ModelLoadError(f"{path.name} is not a model file: {what}. Supported: {SUPPORTED}")
    raise ModelLoadError(f"unrecognized model format: {path.name}. Supported: {SUPPORTED}")


def _what(kind: str) -> str:
    return KINDS[kind][0]


# -- what a file is, from its bytes -------------------------------------------------------------
def identify_file(path: Path) -> str:
    """torchscript | pt2 | torch_zip | pickle | onnx | safetensors | npz | zip | broken_zip | unknown."""
    with open(path, "rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "broken_zip"
        return _zip_kind(names)
    if head.startswith(b"PK\x03\x04"):
        return "broken_zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:   # PROTO opcode, protocol 2-5
        return "pickle"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if _looks_like_onnx(path):
        return "onnx"
    return "unknown"


def _zip_kind(names: list[str]) -> str:
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n == "archive_format" or n.endswith("/archive_format") for n in names):
        return "pt2"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch_zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


# Magic numbers of files people mistake for models, to say what a file looks like instead.
_MAGIC = ((b"\x1f\x8b", "gzip-compressed data"), (b"\x89HDF", "an HDF5 file (a Keras .h5 model?)"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"%PDF", "a PDF document"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"GGUF", "a GGUF (llama.cpp) model"))


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"it is {what}"
    if head[4:8] == b"TFL3":
        return "it is a TensorFlow Lite model"
    if all(32 <= b < 127 or b in b"\r\n\t" for b in head):
        return "it is a text file"
    return ("it is not a zip archive (torch.save, TorchScript) nor an old-style torch.save file; the file is "
            "truncated, corrupt or in another format")


# -- files --------------------------------------------------------------------------------------
def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():   # not reached from load_model (folders are HF models); kept for direct callers
        raise ModelLoadError(f"{path} is a folder, not a model file")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"cannot read {path}: permission denied")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes)")


def _looks_like_onnx(path: Path) -> bool:
    """Parses as an ONNX ModelProto with an IR version and a graph (protobuf parses much junk)."""
    try:
        import onnx
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    graph = model.graph if model.HasField("graph") else None
    return model.ir_version > 0 and graph is not None and (len(graph.node) > 0 or len(graph.output) > 0)


# -- demo ---------------------------------------------------------------------------------------
def _load_demo(name: str) -> LoadedModel:
    from . import demos
    try:
        entry = demos.get_demo(name)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(str(exc).strip("'\"")) from None
    if entry.kind == "hf":      # demo:tiny-lm: a Hugging Face folder, opened as any other one
        try:
            folder = demos.hf_demo_folder(name)
        except FileNotFoundError as exc:
            raise ModelLoadError(str(exc)) from None
        return load_hf_folder(folder)
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
                             f"{error_detail(exc)}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: the ONNX graph fails onnx.checker: {error_detail(exc)}") from None
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
        raise ModelLoadError(f"{path.name} is not a loadable torch.export program (.pt2): "
                             f"{error_detail(exc)}") from None
    inputs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            val = node.meta.get("val")
            if val is not None and hasattr(val, "shape"):
                shape = [int(d) if isinstance(d, int) else -1 for d in val.shape]
                inputs.append(InputSpec(shape, str(val.dtype).replace("torch.", ""), node.name))
    return LoadedModel(program.module(), "pt2", "torch", inputs, bool(inputs))


def _load_torch_file(path: Path, kind: str, factory: str | None, trust_pickle: bool,
                     on_step: Callable[[str], None] | None) -> LoadedModel:
    import torch
    if kind == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path.name}: TorchScript archive failed to load: {error_detail(exc)}") from None
        return LoadedModel(module.eval(), "torchscript", "torch", [], False)
    scan = scan_pickle(path, kind)
    if not scan.valid:
        raise ModelLoadError(f"{path.name} is not a PyTorch file: it begins like a torch.save file but its "
                             "content does not parse (truncated or corrupt?)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        code = _code_globals(scan.globals)
        if not code:    # a valid pickle of weights only: what failed is not about code
            raise ModelLoadError(f"{path.name} is not a loadable PyTorch file (truncated or corrupt?): "
                                 f"{error_detail(exc)}") from None
        if not trust_pickle:
            raise ModelLoadError(f"{path.name} contains pickled Python objects (a full model, not just weights: "
                                 f"{', '.join(code[:3])}{', ...' if len(code) > 3 else ''}). " + TRUST_HINT) from None
        if on_step:
            on_step(f"unpickling {path.name} (--trust-pickle: its code runs)")
        obj = _load_trusted_pickle(path)
    if isinstance(obj, torch.nn.Module):
        return LoadedModel(obj.eval(), "pickle", "torch", [], False,
                           notes=["loaded with --trust-pickle (code from the file was executed)"])
    state = _state_dict_of(obj)
    if state is None:
        raise ModelLoadError(f"{path.name} holds a {type(obj).__name__}, not a model or a state_dict")
    return _load_state_dict(state, path, factory, on_step)


@dataclass
class PickleScan:
    valid: bool             # the (first) pickle parses to its STOP with a consistent stack
    globals: list[str]      # "module.name" of every class/function it references


def scan_pickle(path: Path, kind: str) -> PickleScan:
    """Parse the pickle in ``path`` without running it: torch.save's data.pkl for a zip, else the
    pickles at the start of the file (the old torch.save format writes several, then raw bytes)."""
    try:
        if kind == "torch_zip":
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
                return _scan_stream(io.BytesIO(archive.read(name)))
        with open(path, "rb") as stream:
            return _scan_stream(stream)
    except (OSError, zipfile.BadZipFile, StopIteration):
        return PickleScan(False, [])


def _scan_stream(stream: Any) -> PickleScan:
    found: list[str] = []
    for index in range(8):
        start = stream.tell()
        if stream.read(1) != b"\x80":
            break
        stream.seek(start)
        try:
            pickletools.dis(stream, out=_NullWriter())     # validates opcodes and the stack
        except Exception:
            if index == 0:
                return PickleScan(False, [])
            break
        end = stream.tell()
        stream.seek(start)
        found += _pickle_globals(stream)
        stream.seek(end)
    return PickleScan(True, list(dict.fromkeys(found)))


class _NullWriter:
    def write(self, text: str) -> None:
        pass


def _pickle_globals(data: Any) -> list[str]:
    """The globals a (valid) pickle references: GLOBAL args, and STACK_GLOBAL's two last strings."""
    names, strings, memo = [], [], {}
    for op, arg, _pos in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str) and op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            strings.append(arg)
        elif op.name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
            strings.append(memo[arg])
    return names


def _code_globals(names: list[str]) -> list[str]:
    """The globals torch's weights-only unpickler refuses: the classes/functions that make a
    pickle more than weights."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals, _get_user_allowed_globals
        allowed = set(_get_allowed_globals()) | set(_get_user_allowed_globals())
    except Exception:   # a private API: without it, every global counts
        allowed = set()
    # Protocol-2 pickles spell builtins as __builtin__ (torch maps it back).
    return [n for n in names if n not in allowed and n.replace("__builtin__.", "builtins.") not in allowed]


def _load_trusted_pickle(path: Path) -> Any:
    import torch
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"{path.name}: unpickling failed (its classes must be importable): "
                             f"{error_detail(exc)}") from None


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
        raise ModelLoadError(f"{path.name} is not a valid safetensors file (truncated?): {error_detail(exc)}") from None


def _load_state_dict(state: dict, path: Path, factory: str | None,
                     on_step: Callable[[str], None] | None = None) -> LoadedModel:
    if not factory:
        raise ModelLoadError(f"{path.name} holds only weights (a state_dict with {len(state)} tensors). "
                             + FACTORY_HINT)
    module = build_from_factory(factory, on_step)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"the weights in {path.name} do not fit the module built by {factory}: "
                             f"{error_detail(exc)}") from None
    return LoadedModel(module.eval(), "state_dict", "torch", [], False)


def build_from_factory(factory: str, on_step: Callable[[str], None] | None = None) -> Any:
    """Import ``package.module:callable`` and call it with no arguments."""
    import torch
    step = on_step or (lambda words: None)
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise ModelLoadError(f"bad factory {factory!r}: expected package.module:callable")
    try:
        step(f"importing the factory {factory}")
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot import factory {factory!r}: {type(exc).__name__}: {exc}") from None
    try:
        step(f"calling the factory {factory}")
        module = target()
    except Exception as exc:
        raise ModelLoadError(f"factory {factory!r} raised {type(exc).__name__}: {error_detail(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(f"factory {factory!r} returned {type(module).__name__}, not a torch.nn.Module")
    return module
