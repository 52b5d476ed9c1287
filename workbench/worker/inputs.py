"""Model inputs for a run: eval data when there is some, else seeded synthetic tensors."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputShapeError, SpecError
from ..models.loaders import error_detail
from ..spec import InputSpec

FIDELITY_SYNTHETIC_BATCHES = 4


@dataclass
class RunInputs:
    specs: list[InputSpec]            # concrete shapes
    measure: list[np.ndarray]         # one batch, the exact arrays that are timed
    fidelity: list[np.ndarray]        # N samples compared against the reference model
    labels: np.ndarray | None
    source: str                       # "eval data (x_test, 360 samples)" / "synthetic (seed 0)"


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz data file. The file is identified first, and nothing in it is ever
    unpickled: an array of Python objects is refused, whatever it holds."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(f"data file not found: {p}")
    _check_npz(p)
    try:
        with np.load(p, allow_pickle=False) as archive:
            data = {k: archive[k] for k in archive.files}
    except Exception as exc:
        raise SpecError(f"{p.name} is a damaged .npz archive (truncated?): {error_detail(exc)}") from None
    if "x_test" not in data and "x" in data:
        data["x_test"] = data.pop("x")
        if "y" in data:
            data["y_test"] = data.pop("y")
    if "x_test" not in data and "x_train" not in data:
        raise SpecError(f"{p.name} has arrays {sorted(data)}; expected x_test (or x) and optionally "
                        "y_test, x_train, y_train")
    _check_samples(data, p.name)
    return data


NPZ_HELP = "Workbench reads .npz files written by np.savez(path, x_test=..., y_test=...)"


def _check_npz(p: Path) -> None:
    """Refuse, in words, anything that is not a zip archive of numeric .npy arrays."""
    with open(p, "rb") as f:
        head = f.read(8)
    if not zipfile.is_zipfile(p):
        if head.startswith(b"\x93NUMPY"):
            raise SpecError(f"{p.name} is a single .npy array, not an .npz archive. {NPZ_HELP}")
        what = "it is a Python pickle" if head[:1] == b"\x80" else "it is not a zip archive of .npy arrays"
        raise SpecError(f"{p.name} is not an .npz archive ({what}). {NPZ_HELP}")
    try:
        with zipfile.ZipFile(p) as archive:
            others = [n for n in archive.namelist() if not n.endswith(".npy")]
            if others:
                raise SpecError(f"{p.name} is a zip archive but not an .npz archive: it holds "
                                f"{', '.join(others[:3])} (an .npz holds only .npy arrays). {NPZ_HELP}")
            for name in archive.namelist():
                with archive.open(name) as member:
                    dtype = _npy_dtype(member)
                if dtype is None:
                    raise SpecError(f"{name} in {p.name} is not a valid .npy array (damaged archive?)")
                if dtype.hasobject:
                    key = name[:-4]
                    raise SpecError(f"{key} in {p.name} is an array of Python objects; Workbench loads only "
                                    "numeric arrays (objects would have to be unpickled). Save it as numbers, "
                                    f"e.g. np.savez(..., {key}=np.asarray({key}, dtype='float32'))")
    except (zipfile.BadZipFile, OSError) as exc:
        raise SpecError(f"{p.name} is a damaged .npz archive: {error_detail(exc)}") from None


def _npy_dtype(member) -> np.dtype | None:
    """The dtype in an .npy header, read without loading (or unpickling) the array."""
    from numpy.lib import format as npy
    try:
        version = npy.read_magic(member)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        _shape, _order, dtype = read_header(member)
    except Exception:
        return None
    return dtype


def _check_samples(data: dict[str, np.ndarray], name: str) -> None:
    """Every array needs a sample axis with at least one sample; labels need one per sample."""
    for key in ("x_test", "y_test", "x_train", "y_train"):
        if key not in data:
            continue
        array = data[key]
        if array.ndim == 0:
            raise SpecError(f"{key} in {name} is a single value; it needs one row per sample")
        if len(array) == 0:
            raise SpecError(f"{key} in {name} has 0 samples; it needs at least one"
                            + (" (or leave out --data to measure on synthetic inputs)" if key == "x_test" else ""))
    for x, y in (("x_test", "y_test"), ("x_train", "y_train")):
        if x in data and y in data and len(data[x]) != len(data[y]):
            raise SpecError(f"{name} has {len(data[x])} samples in {x} but {len(data[y])} labels in {y}")


def resolve_specs(given: list[InputSpec], from_model: list[InputSpec], batch: int | None) -> list[InputSpec]:
    specs = given or from_model
    if not specs:
        raise InputShapeError("this model does not declare its inputs: pass --input SHAPE:DTYPE "
                              "(e.g. --input 1x3x224x224:float32), once per input")
    if given and from_model and len(given) != len(from_model):
        raise InputShapeError(f"the model has {len(from_model)} input(s) "
                              f"({', '.join(str(s) for s in from_model)}) but {len(given)} --input were given")
    concrete = []
    for i, spec in enumerate(specs):
        if any(d == -1 for d in spec.shape[1:]):
            raise InputShapeError(f"input {spec.name or i} has dynamic dimensions besides the batch "
                                  f"({spec}); pass --input {spec.name + '=' if spec.name else ''}SHAPE:DTYPE")
        name = spec.name or (from_model[i].name if i < len(from_model) else None)
        concrete.append(InputSpec(spec.concrete_shape(batch), spec.dtype, name))
    return concrete


def synthetic(specs: list[InputSpec], seed: int, batches: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape = list(spec.shape)
        shape[0] *= batches
        if spec.dtype.startswith("float") or spec.dtype == "bfloat16":
            arrays.append(rng.standard_normal(shape).astype("float32" if spec.dtype == "bfloat16" else spec.dtype))
        elif spec.dtype == "bool":
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        else:  # integer inputs are usually indices: keep them small so any vocabulary accepts them
            arrays.append(rng.integers(0, 10, shape).astype(spec.dtype))
    return arrays


def build_inputs(specs: list[InputSpec], data: dict | None, seed: int) -> RunInputs:
    batch = specs[0].shape[0]
    if data is not None and "x_test" in data and len(specs) == 1:
        x = np.asarray(data["x_test"])
        want = tuple(specs[0].shape[1:])
        if tuple(x.shape[1:]) != want:
            raise InputShapeError(f"eval data x_test has samples of shape {list(x.shape[1:])} but the model "
                                  f"input is {list(want)} (per sample)")
        x = x.astype(specs[0].dtype if specs[0].dtype != "bfloat16" else "float32")
        reps = -(-batch // len(x))
        measure = np.concatenate([x] * reps)[:batch] if reps > 1 else x[:batch]
        labels = data.get("y_test")
        return RunInputs(specs, [np.ascontiguousarray(measure)], [x],
                         None if labels is None else np.asarray(labels), f"eval data (x_test, {len(x)} samples)")
    measure = synthetic(specs, seed)
    fidelity = synthetic(specs, seed + 1, FIDELITY_SYNTHETIC_BATCHES)
    return RunInputs(specs, measure, fidelity, None, f"synthetic (seeded normal, seed {seed})")


def batched(arrays: list[np.ndarray], size: int):
    """Yield slices of the fidelity inputs in run-sized batches (the model may fix its batch)."""
    n = len(arrays[0])
    for start in range(0, n, size):
        chunk = [a[start:start + size] for a in arrays]
        if len(chunk[0]) < size:   # pad the last batch for models with a fixed batch size
            pad = size - len(chunk[0])
            chunk = [np.concatenate([c, np.repeat(c[-1:], pad, axis=0)]) for c in chunk]
            yield chunk, size - pad
        else:
            yield chunk, size
