"""Hostile inputs against the worker and the session (issue 10): files that are not what their name
says, models that misbehave in the worker process, data files that cannot be used. Each test
reproduces one way a run used to go wrong and checks the message the user now gets."""
from __future__ import annotations

import os
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from workbench.errors import ModelLoadError, SpecError, WorkbenchError
from workbench.engine.session import Session
from workbench.models.loaders import load_model
from workbench.spec import InputSpec, RunSpec

from core_fixtures import process_alive

# The tests read /proc and signal process groups.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux only")

QUICK = dict(iters=5, duration_s=0.05, warmup_min_iters=2, warmup_max_s=0.1, threads=1, timeout_s=120)

# Factories the worker imports (via PYTHONPATH). Every model holds Linear(4, 3) so one state_dict fits.
MISBEHAVING = textwrap.dedent('''
    import os, subprocess, sys, threading, time
    import torch
    from torch import nn

    class _Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.fc(x)

    class LeavesThread(_Base):
        def forward(self, x):
            if self.calls == 0:
                threading.Thread(target=time.sleep, args=(600,), name="model-poller").start()
            return super().forward(x)

    class DiesAfterReportingItsResult(_Base):
        """Has the worker SIGKILLed the moment its result is written (whatever could happen at exit)."""
        def forward(self, x):
            if self.calls == 0:
                import gc, signal

                class KillAfterResult:
                    def __init__(self, file):
                        self.file = file
                    def write(self, line):
                        self.file.write(line)
                        if '"type": "result"' in line:
                            self.file.flush()
                            os.kill(os.getpid(), signal.SIGKILL)
                    def flush(self):
                        self.file.flush()
                    def close(self):
                        self.file.close()

                for obj in gc.get_objects():
                    if type(obj).__name__ == "EventWriter":   # (the worker runs as __main__)
                        obj._file = KillAfterResult(obj._file)
            return super().forward(x)

    class WritesToStrayFds(_Base):
        def forward(self, x):
            for fd in (1, 3, 4, 5):
                try:
                    os.write(fd, b'{"type": "latency_batch"}\\nnot an event\\n')
                except OSError:
                    pass
            return super().forward(x)

    class WritesToEveryPipe(_Base):
        """Writes malformed events to every pipe it holds, wherever the event channel is."""
        def forward(self, x):
            if self.calls == 0:
                import stat
                for name in os.listdir("/proc/self/fd"):
                    fd = int(name)
                    try:
                        if fd != 0 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                            os.write(fd, b'{"type": "phase"}\\n'
                                         b'{"type": "latency_batch", "phase": "measure"}\\nnot json')
                    except OSError:
                        pass
            return super().forward(x)

    class RaisesMemoryError(_Base):
        def forward(self, x):
            raise MemoryError()

    class CpuAllocatorOom(_Base):
        def forward(self, x):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough "
                               "memory: you tried to allocate 1099511627776 bytes.")

    class OwnBug(_Base):
        def forward(self, x):
            return {}["missing_key"]

    class SetsThreads(_Base):
        def forward(self, x):
            torch.set_num_threads(2)
            return super().forward(x)

    class SpawnsChild(_Base):
        def forward(self, x):
            if self.calls == 0:
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                with open(os.environ["WB_CHILD_PID_FILE"], "w") as f:
                    f.write(str(child.pid))
            return super().forward(x)

    class Chatty(_Base):
        def forward(self, x):
            if self.calls == 0:
                print("FIRST WORDS", file=sys.stderr)
            print("chatter " * 8192, file=sys.stderr)     # 64 KiB a call
            if self.calls == 40:
                print("LAST WORDS", file=sys.stderr, flush=True)
                os._exit(7)
            return super().forward(x)

    class ReturnsNone(_Base):
        def forward(self, x):
            super().forward(x)
            return None

    class ReturnsListOfFloats(_Base):
        def forward(self, x):
            return [float(v) for v in super().forward(x).sum(1)]

    class ChangesOutputShape(_Base):
        def forward(self, x):
            return super().forward(x)[:, : 1 + self.calls % 3]

    class Exits(_Base):
        exit_on_call = 1

        def forward(self, x):
            if self.calls + 1 >= self.exit_on_call:
                sys.exit(3)
            return super().forward(x)

    class ExitsOnCall2(Exits):
        exit_on_call = 2

    class ExitsOnCall6(Exits):
        exit_on_call = 6

    def _factory(cls):
        return lambda: cls()

    leaves_thread = _factory(LeavesThread)
    dies_after_reporting_its_result = _factory(DiesAfterReportingItsResult)
    writes_to_stray_fds = _factory(WritesToStrayFds)
    writes_to_every_pipe = _factory(WritesToEveryPipe)
    raises_memory_error = _factory(RaisesMemoryError)
    cpu_allocator_oom = _factory(CpuAllocatorOom)
    own_bug = _factory(OwnBug)
    sets_threads = _factory(SetsThreads)
    spawns_child = _factory(SpawnsChild)
    chatty = _factory(Chatty)
    returns_none = _factory(ReturnsNone)
    returns_list_of_floats = _factory(ReturnsListOfFloats)
    changes_output_shape = _factory(ChangesOutputShape)
    exits = _factory(Exits)
    exits_on_call_2 = _factory(ExitsOnCall2)
    exits_on_call_6 = _factory(ExitsOnCall6)
    tiny = _factory(_Base)
''')


@pytest.fixture
def misbehaving(tmp_path, monkeypatch):
    """Writes the factories module and its weights; the worker finds the module on PYTHONPATH."""
    import torch
    from torch import nn
    (tmp_path / "wb_misbehaving.py").write_text(MISBEHAVING)
    (tmp_path / "wb_exit_at_import.py").write_text("import sys\nsys.exit(5)\ndef make():\n    pass\n")
    weights = tmp_path / "weights.pt"
    state = {f"fc.{k}": v for k, v in nn.Linear(4, 3).state_dict().items()}
    torch.save(state, weights)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return weights


def _run(store, weights, factory, shape="2x4", **overrides):
    spec = RunSpec(model=str(weights), factory=f"wb_misbehaving:{factory}", inputs=[InputSpec.parse(shape)],
                   **{**QUICK, **overrides})
    return Session(store).run(spec)


# -- item 1: identify files by content before any advice about pickles ---------------------------
def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


_NOISE = np.random.default_rng(10).bytes(4096)


@pytest.mark.parametrize("content", [
    _NOISE,                                         # random bytes
    b"\x80\x02" + _NOISE,                           # random bytes that start like a pickle
    b"\x80\x04\x95" + bytes(range(256)) * 8,        # ... like a protocol-4 pickle frame
], ids=["random", "pickle-protocol-byte", "pickle-frame"])
@pytest.mark.parametrize("trust", [False, True])
def test_random_bytes_named_pt_are_not_called_a_pickle(tmp_path, content, trust):
    path = tmp_path / "random.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(path), trust_pickle=trust)
    message = str(caught.value)
    assert "not a PyTorch file" in message
    # (the GUI offers its "trust this file" box when a message speaks of pickles)
    assert "trust" not in message.lower() and "pickle" not in message.lower()
    assert "weights_only" not in message     # torch's own advice to switch the safety off


def test_onnx_file_named_pt_is_told_to_be_renamed(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(_onnx_bytes())
    with pytest.raises(ModelLoadError, match=r"model.pt is an ONNX file.*rename it model.onnx") as caught:
        load_model(str(path))
    assert "trust" not in str(caught.value).lower()


def test_npz_named_pt_is_recognised_as_data(tmp_path):
    path = tmp_path / "arrays.pt"
    with open(path, "wb") as f:
        np.savez(f, x_test=np.zeros((2, 4), np.float32))
    with pytest.raises(ModelLoadError, match=r"NumPy \.npz archive.*--data"):
        load_model(str(path))


def test_torch_checkpoint_named_onnx_says_what_it_is(tmp_path):
    import torch
    path = tmp_path / "weights.onnx"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ModelLoadError, match=r"weights.onnx is not an ONNX file: it is a PyTorch checkpoint"):
        load_model(str(path))


def test_a_real_pickle_of_code_still_asks_for_trust_and_names_its_classes(tmp_path):
    import torch
    path = tmp_path / "full.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    with pytest.raises(ModelLoadError, match=r"pickled Python objects.*torch\.nn\.modules.*--trust-pickle"):
        load_model(str(path))
    legacy = tmp_path / "legacy_full.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelLoadError, match=r"pickled Python objects.*--trust-pickle"):
        load_model(str(legacy))
    assert load_model(str(legacy), trust_pickle=True).format == "pickle"


@pytest.mark.parametrize("content, message", [
    (_NOISE, "not an .npz archive"),
    (b"\x80\x04" + _NOISE[:100], "not an .npz archive"),
    (b"\x93NUMPY\x01\x00" + _NOISE[:100], r"a single \.npy array"),
], ids=["random", "pickle", "npy"])
def test_random_npz_is_not_offered_allow_pickle(tmp_path, content, message):
    from workbench.worker.inputs import load_npz
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message) as caught:
        load_npz(str(path))
    assert "allow_pickle" not in str(caught.value) and "pickle" not in str(caught.value).replace(
        "a Python pickle", "")


def test_npz_with_an_object_array_is_refused_without_unsafe_advice(tmp_path):
    from workbench.worker.inputs import load_npz
    path = tmp_path / "objects.npz"
    np.savez(path, x_test=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(SpecError, match=r"x_test .*Python objects.*numeric") as caught:
        load_npz(str(path))
    assert "allow_pickle" not in str(caught.value)


def test_zip_that_is_not_npz(tmp_path):
    from workbench.worker.inputs import load_npz
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(SpecError, match=r"not an \.npz archive.*readme.txt"):
        load_npz(str(path))


# -- item 2: a model that leaves threads running ---------------------------------------------------
def test_model_leaving_a_thread_running_keeps_its_result(store, misbehaving):
    started = time.monotonic()
    record = _run(store, misbehaving, "leaves_thread")
    assert record.status == "done", record.error
    assert record.result["latency"]["n"] >= 5
    assert any("model-poller" in note and "thread" in note for note in record.result["notes"])
    assert time.monotonic() - started < 60


def test_result_is_kept_when_the_worker_dies_after_reporting_it(store, misbehaving):
    record = _run(store, misbehaving, "dies_after_reporting_its_result")
    assert record.status == "done", record.error
    assert record.result["latency"]["n"] >= 5
    assert any("after reporting its result" in note and "SIGKILL" in note and "kept" in note
               for note in record.result["notes"]), record.result["notes"]


# -- item 4: the event channel is private, and the parent validates what it reads ------------------
def test_model_writing_to_stray_fds_does_not_reach_the_event_channel(store, misbehaving):
    record = _run(store, misbehaving, "writes_to_stray_fds")
    assert record.status == "done", record.error
    assert not any("event channel" in note for note in record.result["notes"])
    assert "not an event" in (store.artifacts_root / f"run-{record.id}" / "worker.log").read_text()


def test_malformed_lines_on_the_event_channel_are_a_warning_not_a_crash(store, misbehaving):
    record = _run(store, misbehaving, "writes_to_every_pipe")
    assert record.status == "done", record.error
    warnings = [n for n in record.result["notes"] if "event channel" in n]
    assert warnings and "ignored 3 malformed lines" in warnings[0], record.result["notes"]


def test_event_declarations_validate_each_kind():
    from workbench import events
    assert events.problem({"type": "phase", "phase": "load", "message": "", "t": 1.0}) is None
    assert "phase" in events.problem({"type": "phase", "t": 1.0})
    assert "values_ns" in events.problem({"type": "latency_batch", "phase": "measure", "t": 1.0})
    assert events.problem({"type": "latency_batch", "phase": "measure", "values_ns": [1, "x"], "t": 1})
    assert events.problem({"type": "result", "result": [], "t": 1.0})
    assert events.problem(["not", "a", "dict"])
    assert events.problem({"phase": "load"})            # no type
    assert events.problem({"type": "error", "message": "m", "kind": "x"})   # no time
    assert events.problem({"type": "train", "step": 1, "t": 0.5}) is None
    assert events.problem({"type": "a_plugins_own_kind", "t": 0.5}) is None
    assert set(events.WORKER_EVENTS) >= {"started", "phase", "latency_batch", "result", "error"}


# -- item 5: only blame the inputs when the error is about the inputs -----------------------------
@pytest.mark.parametrize("factory, shape, says, not_says", [
    ("raises_memory_error", "2x4", "out of memory", "rejected inputs"),
    ("cpu_allocator_oom", "2x4", "out of memory", "rejected inputs"),
    ("own_bug", "2x4", "KeyError: 'missing_key'", "rejected inputs"),
    ("tiny", "2x5", "rejected inputs of shape 2x5", None),       # a real mismatch still blames them
])
def test_model_errors_blame_the_inputs_only_when_they_are_at_fault(store, misbehaving, factory, shape,
                                                                  says, not_says):
    record = _run(store, misbehaving, factory, shape=shape)
    assert record.status == "failed"
    assert says in record.error
    assert not_says is None or not_says not in record.error


# -- item 6: threads in force while timing -------------------------------------------------------
def test_threads_changed_by_the_model_are_recorded(store, misbehaving):
    record = _run(store, misbehaving, "sets_threads", threads=1)
    assert record.status == "done", record.error
    assert record.result["threads"] == 2 and record.result["runtime"]["threads"] == 2
    assert any("threads" in note and "2" in note and "1" in note for note in record.result["notes"])


# -- item 7: no process outlives the run ------------------------------------------------------------
def test_child_process_spawned_by_the_model_is_ended(store, misbehaving, tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("WB_CHILD_PID_FILE", str(pid_file))
    record = _run(store, misbehaving, "spawns_child")
    assert record.status == "done", record.error
    child = int(pid_file.read_text())
    for _ in range(50):
        if not process_alive(child):
            break
        time.sleep(0.1)
    assert not process_alive(child)
    assert any("process" in note for note in record.result["notes"])


# -- item 8: the worker log is capped -----------------------------------------------------------
def test_worker_log_keeps_head_and_tail_of_a_chatty_model(store, misbehaving, monkeypatch):
    from workbench.engine import process as worker_process
    monkeypatch.setattr(worker_process, "LOG_HEAD_BYTES", 32 * 1024)
    monkeypatch.setattr(worker_process, "LOG_TAIL_BYTES", 32 * 1024)
    record = _run(store, misbehaving, "chatty", iters=1000, duration_s=5)
    assert record.status == "failed" and "code 7" in record.error
    assert "LAST WORDS" in record.error_detail
    log = store.artifacts_root / f"run-{record.id}" / "worker.log"
    text = log.read_text()
    assert log.stat().st_size < 70 * 1024
    assert "FIRST WORDS" in text and "LAST WORDS" in text
    assert "bytes of worker output dropped" in text


# -- item 10: what the model returns, and empty data -------------------------------------------
@pytest.mark.parametrize("factory, message", [
    ("returns_none", "the model returned None; Workbench measures models that return a tensor"),
    ("returns_list_of_floats", "the model returned a list whose first value is a float"),
    ("changes_output_shape", "the model's output shape changed between calls"),
])
def test_unusable_outputs_are_explained(store, misbehaving, factory, message):
    record = _run(store, misbehaving, factory)
    assert record.status == "failed"
    assert message in record.error
    assert "Error:" not in record.error.split(";")[0]     # no raw Python exception as the message


def test_empty_x_test_is_explained(tmp_path):
    from workbench.worker.inputs import load_npz
    path = tmp_path / "empty.npz"
    np.savez(path, x_test=np.zeros((0, 4), np.float32))
    with pytest.raises(SpecError, match=r"x_test in empty.npz has 0 samples"):
        load_npz(str(path))


def test_fidelity_output_shape_change_is_a_workbench_error():
    from workbench.worker.fidelity import compare_outputs
    with pytest.raises(WorkbenchError, match=r"optimized model's outputs have shape \(2, 4\).*\(2, 3\)"):
        compare_outputs(np.zeros((2, 3)), np.zeros((2, 4)))


# -- item 11a: sys.exit names where it happened ------------------------------------------------------
def test_sys_exit_while_importing_the_factory_names_the_factory(store, misbehaving):
    spec = RunSpec(model=str(misbehaving), factory="wb_exit_at_import:make", inputs=[InputSpec.parse("2x4")],
                   **QUICK)
    record = Session(store).run(spec)
    assert record.status == "failed"
    assert "sys.exit(5)" in record.error and "while importing the factory wb_exit_at_import:make" in record.error


@pytest.mark.parametrize("factory, where", [
    ("exits", "describing the model (one call on zeros, to count its FLOPs)"),   # its first call
    ("exits_on_call_2", "computing the reference outputs"),
    ("exits_on_call_6", "measuring"),      # 1 call to describe it, 4 batches of reference outputs
])
def test_sys_exit_while_running_names_the_phase(store, misbehaving, factory, where):
    record = _run(store, misbehaving, factory)
    assert record.status == "failed"
    assert f"the model called sys.exit(3) while {where}" in record.error


def test_inspect_survives_sys_exit_at_import(store, misbehaving):
    spec = RunSpec(model=str(misbehaving), factory="wb_exit_at_import:make")
    with pytest.raises(WorkbenchError, match="while importing the factory wb_exit_at_import:make"):
        Session(store).inspect(spec)
