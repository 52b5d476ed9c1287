"""GPU power caps and locked SM clocks as sweep axes (``power_limit=`` W, ``sm_clock=`` MHz), through NVML.

Changing either is a privileged NVML call (root, or a driver set up to allow it): ``check_gpu_axes``
asks NVML before anything runs and refuses the axis with NVML's own reason when it is not
permitted or a value is outside what the GPU accepts. ``applied_gpu_settings`` sets a point's values
and restores the previous ones when the point ends, whatever ends it; the previous values are
written to a journal file first, so a process killed mid-sweep (no ``finally`` runs) leaves a note
that ``restore_leftover_settings`` (called at the start of every sweep) acts on.

NVML cannot read back locked clocks, so "restored" for ``sm_clock`` means NVML's reset to the
driver's default clock management.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import SpecError, WorkbenchError
from .nvml import NvmlUnavailable, _err_text, _load

GPU_AXES = {"power_limit": "W", "sm_clock": "MHz"}
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_CLOCK_SM = 1
JOURNAL_NAME = "gpu-restore.json"


def default_journal() -> Path:
    """Per machine, not per database: GPU settings belong to the machine."""
    from platformdirs import user_data_dir
    return Path(user_data_dir("workbench", appauthor=False)) / JOURNAL_NAME


def _why(nv: Any, exc: BaseException, what: str) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(nv, "NVML_ERROR_NO_PERMISSION", _NVML_ERROR_NO_PERMISSION):
        return (f"{what} is not permitted here (NVML: {_err_text(exc)}): it needs root, or a driver that allows "
                "it (nvidia-smi -pm 1 / the admin's settings); run as root or drop the axis")
    if code == getattr(nv, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED):
        return f"{what} is not supported by this GPU or driver (NVML: {_err_text(exc)}); drop the axis"
    return f"{what} failed (NVML: {_err_text(exc)})"


class _Gpu:
    """NVML initialised for one GPU, shut down on exit."""

    def __init__(self, index: int, nvml_module: Any = None) -> None:
        try:
            self.nv = _load(nvml_module)
            self.nv.nvmlInit()
        except NvmlUnavailable as exc:
            raise SpecError(f"GPU axes need NVML: {exc}") from None
        except Exception as exc:
            raise SpecError(f"GPU axes need NVML, and nvmlInit failed: {_err_text(exc)}") from None
        try:
            self.handle = self.nv.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:
            self.close()
            raise SpecError(f"no GPU with NVML index {index}: {_err_text(exc)}") from None
        self.index = index

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:
            pass

    def __enter__(self) -> "_Gpu":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the GPU accepts ------------------------------------------------------------------
    def power_range_w(self) -> tuple[float, float]:
        low, high = self.nv.nvmlDeviceGetPowerManagementLimitConstraints(self.handle)
        return low / 1000.0, high / 1000.0

    def power_limit_w(self) -> float:
        return self.nv.nvmlDeviceGetPowerManagementLimit(self.handle) / 1000.0

    def sm_clock_range(self) -> tuple[int, int]:
        high = int(self.nv.nvmlDeviceGetMaxClockInfo(self.handle, getattr(self.nv, "NVML_CLOCK_SM", _NVML_CLOCK_SM)))
        low = high
        try:   # the lowest supported graphics clock, where the driver lists them
            for memory_clock in self.nv.nvmlDeviceGetSupportedMemoryClocks(self.handle):
                clocks = self.nv.nvmlDeviceGetSupportedGraphicsClocks(self.handle, memory_clock)
                low = min([low, *clocks])
        except Exception:
            low = 0
        return int(low), high

    # -- changes -------------------------------------------------------------------------------
    def set_power_limit(self, watts: float) -> None:
        self.nv.nvmlDeviceSetPowerManagementLimit(self.handle, int(round(watts * 1000)))

    def lock_sm_clock(self, mhz: int) -> None:
        self.nv.nvmlDeviceSetGpuLockedClocks(self.handle, int(mhz), int(mhz))

    def reset_sm_clock(self) -> None:
        self.nv.nvmlDeviceResetGpuLockedClocks(self.handle)


def check_gpu_axes(values: dict[str, list], index: int, nvml_module: Any = None) -> None:
    """Refuse GPU axes that cannot be applied here, before anything runs (``SpecError`` with the
    reason): no NVML, a value outside the GPU's range, or no permission to change the setting
    (probed by setting the current power limit again, and by locking the first clock and resetting)."""
    wanted = {k: v for k, v in values.items() if v}
    if not wanted:
        return
    with _Gpu(index, nvml_module) as gpu:
        nv = gpu.nv
        if "power_limit" in wanted:
            try:
                low, high = gpu.power_range_w()
                current = gpu.power_limit_w()
            except Exception as exc:
                raise SpecError("--grid power_limit: " + _why(nv, exc, "reading the power limit")) from None
            outside = [w for w in wanted["power_limit"] if not low <= w <= high]
            if outside:
                raise SpecError(f"--grid power_limit: {', '.join(f'{w:g}' for w in outside)} W outside what GPU "
                                f"{index} accepts ({low:g}-{high:g} W)")
            try:
                gpu.set_power_limit(current)     # no change: does NVML let us?
            except Exception as exc:
                raise SpecError("--grid power_limit: " + _why(nv, exc, "setting the power limit")) from None
        if "sm_clock" in wanted:
            try:
                low, high = gpu.sm_clock_range()
            except Exception as exc:
                raise SpecError("--grid sm_clock: " + _why(nv, exc, "reading the SM clocks")) from None
            outside = [c for c in wanted["sm_clock"] if not low <= c <= high]
            if outside:
                raise SpecError(f"--grid sm_clock: {', '.join(str(c) for c in outside)} MHz outside what GPU "
                                f"{index} supports ({low}-{high} MHz)")
            try:
                gpu.lock_sm_clock(wanted["sm_clock"][0])
                gpu.reset_sm_clock()
            except Exception as exc:
                raise SpecError("--grid sm_clock: " + _why(nv, exc, "locking the SM clock")) from None


def _save_journal(journal: Path, entries: list[dict]) -> None:
    if not entries:
        journal.unlink(missing_ok=True)
        return
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = journal.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, journal)      # whole or not at all


def _read_journal(journal: Path) -> list[dict]:
    try:
        data = json.loads(journal.read_text())
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("index"), int)] if isinstance(data, list) else []


def _write_journal(journal: Path, entry: dict) -> None:
    _save_journal(journal, [e for e in _read_journal(journal) if e.get("index") != entry["index"]] + [entry])


def _drop_from_journal(journal: Path, index: int) -> None:
    _save_journal(journal, [e for e in _read_journal(journal) if e.get("index") != index])


def _restore(gpu: _Gpu, entry: dict) -> list[str]:
    """Put back what ``entry`` recorded; returns what could not be restored (one line each)."""
    problems = []
    if entry.get("power_limit_w") is not None:
        try:
            gpu.set_power_limit(entry["power_limit_w"])
        except Exception as exc:
            problems.append(f"GPU {gpu.index}: power limit not restored to {entry['power_limit_w']:g} W: "
                            f"{_err_text(exc)}")
    if entry.get("sm_clock_locked"):
        try:
            gpu.reset_sm_clock()
        except Exception as exc:
            problems.append(f"GPU {gpu.index}: locked SM clocks not reset: {_err_text(exc)}")
    return problems


def restore_leftover_settings(journal: Path | None = None, nvml_module: Any = None) -> list[str]:
    """Undo settings a killed sweep left on the GPUs (its journal entries); returns one line per
    GPU put back (or not). Nothing to do (the usual case) costs one file check."""
    journal = journal or default_journal()
    messages = []
    for entry in _read_journal(journal):
        try:
            with _Gpu(entry["index"], nvml_module) as gpu:
                problems = _restore(gpu, entry)
        except SpecError as exc:
            problems = [str(exc)]
        if problems:
            messages.extend(problems)
        else:
            what = [f"power limit {entry['power_limit_w']:g} W"] if entry.get("power_limit_w") is not None else []
            what += ["default clocks"] if entry.get("sm_clock_locked") else []
            messages.append(f"GPU {entry['index']}: restored {' and '.join(what)} left by an interrupted sweep")
        _drop_from_journal(journal, entry["index"])
    return messages


@contextmanager
def applied_gpu_settings(settings: dict, index: int, journal: Path | None = None,
                         nvml_module: Any = None) -> Iterator[dict]:
    """Apply ``{"power_limit": W, "sm_clock": MHz}`` (either may be missing) to GPU ``index`` for the
    body, then restore. Yields what was applied and the previous values (stored with the run).
    Raises ``WorkbenchError`` with NVML's reason when a setting cannot be applied."""
    settings = {k: v for k, v in (settings or {}).items() if k in GPU_AXES and v is not None}
    if not settings:
        yield {}
        return
    journal = journal or default_journal()
    with _Gpu(index, nvml_module) as gpu:
        entry: dict[str, Any] = {"index": index, "pid": os.getpid(), "power_limit_w": None, "sm_clock_locked": False}
        try:
            if "power_limit" in settings:
                entry["power_limit_w"] = gpu.power_limit_w()
            entry["sm_clock_locked"] = "sm_clock" in settings
            _write_journal(journal, entry)     # before any change: a crash now still gets undone
            if "power_limit" in settings:
                gpu.set_power_limit(float(settings["power_limit"]))
            if "sm_clock" in settings:
                gpu.lock_sm_clock(int(settings["sm_clock"]))
        except Exception as exc:
            _restore(gpu, entry)
            _drop_from_journal(journal, index)
            what = "setting the power limit" if "power_limit" in settings else "locking the SM clock"
            raise WorkbenchError(_why(gpu.nv, exc, what)) from None
        try:
            yield {"gpu_index": index, "applied": dict(settings),
                   "previous": {"power_limit_w": entry["power_limit_w"]} if entry["power_limit_w"] is not None else {}}
        finally:
            problems = _restore(gpu, entry)
            if not problems:
                _drop_from_journal(journal, index)   # else the journal keeps it for the next start


def nvml_index_for_device(device: str, nvml_module: Any = None) -> int:
    """The NVML index of CUDA ``device`` (``cuda``, ``cuda:N``), through ``CUDA_VISIBLE_DEVICES`` when
    it is set (a Ray task's GPU is the one Ray made visible)."""
    from .nvml import gpu_environment, nvml_index_for_cuda
    cuda = int(device.split(":")[1]) if ":" in device else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return cuda
    found = nvml_index_for_cuda(cuda, visible, gpu_environment(nvml_module).get("gpus") or [])
    return cuda if found is None else found
