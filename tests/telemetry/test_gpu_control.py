"""power_limit= / sm_clock= sweep axes through NVML (the fake in tests/fake_pynvml.py, given the
control calls here): refused with NVML's reason where not permitted or out of range, applied around
a point, restored afterwards even when the point raises, and undone at the next start when the
process was killed before it could restore."""
from __future__ import annotations

import json
import threading

import pytest

from fake_pynvml import NVMLError, FakeNvml
from sweep_fixtures import FakeSession
from workbench.engine.executors import LocalExecutor, PointTask, run_point
from workbench.engine.sweep import create, plan_sweep, run_sweep
from workbench.errors import SpecError, WorkbenchError
from workbench.spec import RunSpec
from workbench.telemetry.gpu_control import applied_gpu_settings, check_gpu_axes, restore_leftover_settings

NVML_ERROR_NO_PERMISSION = 4


class ControlledNvml(FakeNvml):
    """The fake GPU with the privileged calls: a power limit within 200-700 W, locked SM clocks."""

    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION

    def __init__(self, permitted: bool = True, supported: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.permitted, self.supported = permitted, supported
        self.limit_mw, self.locked = 700_000, None
        self.changes: list[tuple] = []

    def _privileged(self, name):
        self._enter(name)
        if not self.supported:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        if not self.permitted:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)

    def nvmlDeviceGetPowerManagementLimit(self, h):
        self._enter("nvmlDeviceGetPowerManagementLimit", h)
        return self.limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h):
        self._enter("nvmlDeviceGetPowerManagementLimitConstraints", h)
        return 200_000, 700_000

    def nvmlDeviceSetPowerManagementLimit(self, h, mw):
        self._privileged("nvmlDeviceSetPowerManagementLimit")
        self.limit_mw = mw
        self.changes.append(("power", mw))

    def nvmlDeviceGetSupportedMemoryClocks(self, h):
        return [2619]

    def nvmlDeviceGetSupportedGraphicsClocks(self, h, memory_clock):
        return [1980, 1500, 1005, 345]

    def nvmlDeviceSetGpuLockedClocks(self, h, low, high):
        self._privileged("nvmlDeviceSetGpuLockedClocks")
        self.locked = (low, high)
        self.changes.append(("lock", low))

    def nvmlDeviceResetGpuLockedClocks(self, h):
        self._privileged("nvmlDeviceResetGpuLockedClocks")
        self.locked = None
        self.changes.append(("reset",))


def test_settings_within_range_are_accepted_when_permitted():
    nv = ControlledNvml()
    check_gpu_axes({"power_limit": [250.0, 400.0], "sm_clock": [1005, 1500]}, 0, nv)
    assert nv.limit_mw == 700_000 and nv.locked is None       # the permission probes changed nothing


@pytest.mark.parametrize("nv, values, words", [
    (ControlledNvml(permitted=False), {"power_limit": [250.0]}, "not permitted here .*needs root"),
    (ControlledNvml(permitted=False), {"sm_clock": [1005]}, "not permitted here"),
    (ControlledNvml(supported=False), {"power_limit": [250.0]}, "not supported by this GPU"),
    (ControlledNvml(), {"power_limit": [150.0, 250.0]}, r"150 W outside what GPU 0 accepts \(200-700 W\)"),
    (ControlledNvml(), {"sm_clock": [2100]}, r"2100 MHz outside what GPU 0 supports \(345-1980 MHz\)"),
    (ControlledNvml(init_error=NVMLError(9)), {"power_limit": [250.0]}, "need NVML, and nvmlInit failed"),
])
def test_axes_that_cannot_be_applied_are_refused_with_the_reason(nv, values, words):
    with pytest.raises(SpecError, match=words):
        check_gpu_axes(values, 0, nv)


def test_settings_are_applied_for_the_point_and_restored_even_when_it_raises(tmp_path):
    nv, journal = ControlledNvml(), tmp_path / "gpu-restore.json"
    with pytest.raises(RuntimeError):
        with applied_gpu_settings({"power_limit": 300.0, "sm_clock": 1500}, 0, journal, nv) as applied:
            assert nv.limit_mw == 300_000 and nv.locked == (1500, 1500)
            assert json.loads(journal.read_text())[0]["power_limit_w"] == 700.0      # written before the change
            assert applied["previous"] == {"power_limit_w": 700.0}
            raise RuntimeError("the point crashed")
    assert nv.limit_mw == 700_000 and nv.locked is None and not journal.exists()


def test_a_killed_sweep_is_undone_at_the_next_start(tmp_path):
    nv, journal = ControlledNvml(), tmp_path / "gpu-restore.json"
    settings = applied_gpu_settings({"power_limit": 250.0}, 0, journal, nv)
    settings.__enter__()                # ... and the process dies here: no __exit__, no finally
    assert nv.limit_mw == 250_000
    messages = restore_leftover_settings(journal, nv)
    assert messages == ["GPU 0: restored power limit 700 W left by an interrupted sweep"]
    assert nv.limit_mw == 700_000 and not journal.exists()
    assert restore_leftover_settings(journal, nv) == []


def test_refused_at_run_time_nothing_runs_and_nothing_is_left_changed(tmp_path, store):
    nv = ControlledNvml(permitted=False)
    session = FakeSession(store)
    task = PointTask(1, 0, 0, RunSpec(model="demo:digits-cnn", device="cuda").to_dict(), {"power_limit": 300.0})
    with pytest.raises(WorkbenchError, match="not permitted"):
        run_point(session, task, journal=tmp_path / "j.json", nvml_module=nv)
    assert session.ran == [] and nv.limit_mw == 700_000 and not (tmp_path / "j.json").exists()


def test_a_power_limit_sweep_applies_each_value_around_its_point(store, tmp_path, monkeypatch):
    nv = ControlledNvml()
    spec = RunSpec(model="demo:digits-cnn", device="cuda", threads=1)
    plan = plan_sweep(store, spec, ["power_limit=250,400"], nvml_module=nv)
    assert [p["gpu"] for p in plan["points"]] == [{"power_limit": 250.0}, {"power_limit": 400.0}]
    seen = []

    class Recording(FakeSession):
        def run(self, spec, on_event=None, cancel=None, **checks):
            seen.append(nv.limit_mw)        # what the GPU is set to while the point is measured
            return super().run(spec, on_event, cancel, **checks)

    import workbench.engine.executors as executors
    original = executors.run_point
    monkeypatch.setattr(executors, "run_point", lambda session, task, cancel=None, on_event=None:
                        original(session, task, cancel, on_event, tmp_path / "j.json", nv))
    record = run_sweep(store, create(store, plan), LocalExecutor(Recording(store)), threading.Event())
    assert seen == [250_000, 400_000] and nv.limit_mw == 700_000
    env = store.get_run(record.points[0].run_id).environment["gpu_settings"]
    assert env["applied"] == {"power_limit": 250.0} and env["previous"] == {"power_limit_w": 700.0}
