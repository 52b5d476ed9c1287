"""One interface for every execution backend: prepare once, then call repeatedly."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


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

    def memory(self) -> dict:
        """Peak memory the runtime itself can report (torch CUDA allocator)."""
        return {}

    def timing_context(self) -> Callable[[], Any]:
        """A context manager factory wrapped around the whole timing loop (e.g. no_grad)."""
        import contextlib
        return contextlib.nullcontext


def first_output(outputs: Any) -> Any:
    """The first tensor of whatever a model returns (tensor, tuple, list, dict, ModelOutput)."""
    if isinstance(outputs, (list, tuple)):
        return first_output(outputs[0]) if outputs else None
    if isinstance(outputs, dict):
        return first_output(next(iter(outputs.values()))) if outputs else None
    if hasattr(outputs, "to_tuple"):
        return first_output(outputs.to_tuple())
    return outputs
