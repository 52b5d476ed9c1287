"""One interface for every execution backend: prepare once, then call repeatedly."""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from ...errors import InputShapeError, ModelOutputError, ModelRuntimeError, WorkbenchError
from ...models.outputs import first_output


class Runtime:
    """A model bound to a device with its inputs in place, ready to be called in a timing loop.

    ``call()`` runs one inference on the prepared inputs and must not copy outputs to the host
    (that would be timed too). ``timer_kind`` tells the measurement loop how to time a call:
    "cpu" (perf_counter_ns around the call) or "cuda" (CUDA events on the current stream).
    """

    name = "base"
    timer_kind = "cpu"

    def __init__(self, device: str, dtype: str, threads: int | None) -> None:
        self.device = device
        self.dtype = dtype
        self.threads = threads

    def prepare(self, model: Any, inputs: list[np.ndarray]) -> None:
        raise NotImplementedError

    def call(self) -> Any:
        raise NotImplementedError

    def infer(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Run on new host inputs and return the first output as float numpy (for fidelity)."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on CPU)."""

    def info(self) -> dict:
        """What was actually used: threads, providers, versions."""
        return {}

    def threads_in_force(self) -> int | None:
        """The intra-op threads in force right now (the model may have changed them), if known."""
        return self.threads

    def memory(self) -> dict:
        """Peak memory the runtime itself can report (torch CUDA allocator)."""
        return {}

    def timing_context(self) -> Callable[[], Any]:
        """A context manager factory wrapped around the whole timing loop (e.g. no_grad)."""
        import contextlib
        return contextlib.nullcontext


def output_array(outputs: Any) -> np.ndarray:
    """The first output of a model as float numpy, or a ModelOutputError saying what it returned."""
    first = first_output(outputs)
    if hasattr(first, "detach") and hasattr(first, "cpu"):     # a torch tensor
        return first.detach().float().cpu().numpy()
    if isinstance(first, np.ndarray) and first.dtype.kind in "biuf":
        return first.astype(np.float32)
    if outputs is None:
        what = "None"
    elif first is outputs:
        what = f"a {type(outputs).__name__}"
    elif first is None and not outputs:
        what = f"an empty {type(outputs).__name__}"
    else:
        what = f"a {type(outputs).__name__} whose first value is a {type(first).__name__}"
    raise ModelOutputError(f"the model returned {what}; Workbench measures models that return a tensor "
                           "(or a tuple/dict whose first value is a tensor)")


# What an error says when the inputs are at fault: shapes, sizes, ranks, dtypes, argument counts.
_INPUT_MISMATCH = re.compile(
    r"shape|size mismatch|sizes? of tensor|must match the size|dimension|\bdims?\b|\brank\b|dtype|"
    r"scalar type|expected (?:\w+ )?input|input type|cannot be multiplied|positional argument|"
    r"invalid_argument|index out of range in self", re.IGNORECASE)
_OUT_OF_MEMORY = re.compile(r"out of memory|not enough memory|can't allocate memory|cannot allocate memory|"
                            r"failed to allocate|bad_alloc|std::bad_alloc", re.IGNORECASE)


def model_call_error(exc: BaseException, given: str, expected: str | None = None,
                     calls_before: int = 0) -> WorkbenchError:
    """What to tell the user when calling the model raised ``exc``: out of memory, the inputs
    (only when the error is about them), or the model's own error, as it is."""
    text = _first_line(exc)
    after = f" after {calls_before} successful call{'s' if calls_before != 1 else ''}" if calls_before else ""
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or _OUT_OF_MEMORY.search(str(exc)):
        return ModelRuntimeError(f"the model ran out of memory on inputs {given}{after}: {text}. "
                                 "Try a smaller --batch, or free memory used by other processes")
    if _INPUT_MISMATCH.search(str(exc)):
        expects = f" (the model expects {expected})" if expected else ""
        return InputShapeError(f"the model rejected inputs of shape {given}{expects}{after}: {text}")
    return ModelRuntimeError(f"the model raised {type(exc).__name__}: {text} (on inputs {given}{after}); "
                             "the error comes from the model's code or a library it calls, not from the inputs' shape")


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) if "ONNXRuntimeError" in str(exc) else str(exc).strip()
    text = text.splitlines()[0][:400] if text else ""
    return text or type(exc).__name__
