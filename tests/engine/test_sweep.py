"""Sweep planning (expansion, validation up front, baselines first), the run loop (repeats interleaved,
failed points recorded, interruption) and --resume; measured by a fake session that stores real
runs without starting workers (tests/sweep_fixtures.py)."""
from __future__ import annotations

import threading

import pytest

from sweep_fixtures import FakeSession, specs_run
from workbench.engine.executors import LocalExecutor
from workbench.engine.sweep import claim_for_resume, create, parse_axis, plan_sweep, run_sweep
from workbench.errors import SpecError
from workbench.results.sweeps import get_sweep, list_sweeps
from workbench.spec import PluginStep, RunSpec

PRUNE = "prune:method=structured,finetune=off"


def base(*plugins: str, **settings) -> RunSpec:
    return RunSpec(model="demo:digits-cnn", plugins=[PluginStep.parse(p) for p in plugins], iters=5, duration_s=0.05,
                   threads=1, **settings)


def run(store, plan, session, cancel=None):
    sweep_id = create(store, plan)
    return run_sweep(store, sweep_id, LocalExecutor(session), cancel or threading.Event())


def test_grid_expands_with_each_baseline_once_and_first(store):
    plan = plan_sweep(store, base(PRUNE), ["prune.amount=0.1,0.3,0.5", "batch=1,8"])
    roles = [(p["role"], p["spec"]["batch"], [s["params"].get("amount") for s in p["spec"]["plugins"]])
             for p in plan["points"]]
    assert roles[:2] == [("baseline", 1, []), ("baseline", 8, [])]     # one per batch, before any point
    assert roles[2:] == [("point", b, [a]) for a in (0.1, 0.3, 0.5) for b in (1, 8)]   # first axis slowest
    assert plan["grid_points"] == 6
    by_index = {p["index"]: p for p in plan["points"]}
    assert all(by_index[p["baseline"]]["spec"]["batch"] == p["spec"]["batch"] for p in plan["points"][2:])
    assert plan["points"][0]["values"] == {"batch": 1}          # a baseline carries no plugin value


def test_a_plugin_axis_adds_its_plugin_to_the_chain(store):
    plan = plan_sweep(store, base(), ["quantize.method=dynamic_int8,weight_only_int8"])
    chains = [[(s["name"], s["params"]) for s in p["spec"]["plugins"]] for p in plan["points"]]
    assert chains == [[], [("quantize", {"method": "dynamic_int8"})], [("quantize", {"method": "weight_only_int8"})]]


@pytest.mark.parametrize("grid, words", [
    (["foo=1,2"], "'foo' is not a run setting"),                         # not a setting ...
    (["prune.amout=0.1"], "prune has no parameter 'amout'"),             # ... nor a plugin parameter
    (["prun.amount=0.1"], "'prun' is no plugin"),
    (["batch="], "has no values"),                                       # an empty value list
    (["batch=1,,2"], "empty value"),
    (["batch=1,8,1"], "lists 1 twice"),                                  # a duplicate value
    (["prune.amount=0.5,0.50"], "twice"),                                # ... also once parsed
    (["batch=1", "batch=8"], "given twice"),                             # a duplicate axis
    (["batch=x"], "not an integer"),
    (["batch"], "expected NAME=V1,V2"),
])
def test_bad_axes_are_refused_with_one_line(store, grid, words):
    with pytest.raises(SpecError, match=words) as caught:
        plan_sweep(store, base(PRUNE), grid)
    assert "\n" not in str(caught.value)


def test_more_than_1000_points_need_yes(store):
    grid = ["batch=" + ",".join(map(str, range(1, 42))), "threads=" + ",".join(map(str, range(1, 26)))]
    with pytest.raises(SpecError, match=r"1025 points \(41 × 25\), more than 1000: pass --yes"):
        plan_sweep(store, base(), grid)
    assert plan_sweep(store, base(), grid, yes=True)["grid_points"] == 1025


def test_an_invalid_point_is_reported_before_anything_runs(store):
    session = FakeSession(store)
    with pytest.raises(SpecError) as caught:     # int4 needs CUDA: only that point is invalid
        plan_sweep(store, base(), ["quantize.method=dynamic_int8,int4"])
    message = str(caught.value)
    assert message.startswith("1 of 2 sweep points are invalid, nothing was run: point 2 (quantize.method=int4)")
    assert "cuda" in message.lower()
    assert session.ran == [] and store.list_runs() == [] and list_sweeps(store) == []


@pytest.mark.parametrize("kwargs, words", [
    ({"grid": ["batch=1"], "repeat": 0}, "--repeat must be an integer >= 1"),
    ({"grid": ["power_limit=200"]}, "power_limit needs a GPU run"),
    ({"grid": [], "all_combinations": True}, "needs plugins"),
    ({"grid": []}, "needs at least one --grid"),
])
def test_other_refusals(store, kwargs, words):
    with pytest.raises(SpecError, match=words):
        plan_sweep(store, base(), **kwargs)


def test_save_model_and_combinations_with_plugin_axes_are_refused(store, tmp_path):
    with pytest.raises(SpecError, match="does not save models"):
        plan_sweep(store, base(save_model=str(tmp_path / "m.pt")), ["batch=1,2"])
    with pytest.raises(SpecError, match="plugin-parameter axis is not supported"):
        plan_sweep(store, base(PRUNE, "fuse:method=conv_bn"), ["prune.amount=0.2"], all_combinations=True)


def test_repeats_run_in_rounds_with_baselines_first(store):
    session = FakeSession(store)
    plan = plan_sweep(store, base(PRUNE), ["prune.amount=0.3,0.6"], repeat=3)
    record = run(store, plan, session)
    assert record.status == "done" and record.counts()["done"] == 9
    assert specs_run(session) == ["b1 baseline", "b1 prune=0.3", "b1 prune=0.6"] * 3    # interleaved, not 3 × each
    assert len({p.run_id for p in record.points}) == 9
    # each round's baseline checks the points compared with it on the loaded model before it is timed
    amounts = [[v.plugins[0].params["amount"] for v in checked] for checked in session.checked]
    assert amounts == [[0.3, 0.6], [], []] * 3


def test_points_refused_on_the_loaded_model_are_not_started(store):
    refuse = lambda spec: "prune structured: no layers" if spec.plugins[0].params["amount"] == 0.6 else None  # noqa: E731
    session = FakeSession(store, refuse_variant=refuse)
    record = run(store, plan_sweep(store, base(PRUNE), ["prune.amount=0.3,0.6"], repeat=2), session)
    assert specs_run(session) == ["b1 baseline", "b1 prune=0.3"] * 2      # 0.6 never started
    refused = [p for p in record.points if p.status == "failed"]
    assert len(refused) == 2 and all(p.error == "prune structured: no layers" and p.run_id is None for p in refused)


def test_with_a_stored_baseline_repeat_1_measures_only_the_points(store):
    session = FakeSession(store)
    run(store, plan_sweep(store, base(PRUNE), ["prune.amount=0.3"]), session)
    assert specs_run(session) == ["b1 baseline", "b1 prune=0.3"]
    run(store, plan_sweep(store, base(PRUNE), ["prune.amount=0.5"]), session)    # plan_runs reuses the baseline
    assert specs_run(session)[2:] == ["b1 prune=0.5"]


def test_a_failed_point_is_recorded_and_the_sweep_goes_on(store):
    session = FakeSession(store, fail_when=lambda s: "out of memory at batch 8" if s.batch == 8 else None)
    record = run(store, plan_sweep(store, base(), ["batch=1,8,16"]), session)
    assert record.status == "done" and specs_run(session) == ["b1 baseline", "b8 baseline", "b16 baseline"]
    failed = [p for p in record.points if p.status == "failed"]
    assert len(failed) == 1 and failed[0].error == "out of memory at batch 8" and failed[0].run_id is not None
    assert record.counts() == {"pending": 0, "running": 0, "done": 2, "failed": 1, "cancelled": 0}


def test_an_interrupted_sweep_resumes_with_only_the_unfinished_runs(store):
    session = FakeSession(store, stop_after=3)       # Ctrl-C during the 3rd run
    cancel = threading.Event()
    plan = plan_sweep(store, base(PRUNE), ["prune.amount=0.3,0.6"], repeat=2)
    record = run(store, plan, session, cancel)
    assert record.status == "interrupted" and f"--resume {record.id}" in record.error
    assert record.counts()["done"] == 2 and record.counts()["pending"] + record.counts()["cancelled"] == 4
    resumed = FakeSession(store)
    claim_for_resume(store, record.id)
    again = run_sweep(store, record.id, LocalExecutor(resumed), threading.Event())
    assert again.status == "done" and again.counts()["done"] == 6
    assert specs_run(resumed) == ["b1 prune=0.6", "b1 baseline", "b1 prune=0.3", "b1 prune=0.6"]
    with pytest.raises(SpecError, match="nothing left to run"):
        claim_for_resume(store, record.id)


def test_a_running_sweep_cannot_be_resumed_twice(store):
    sweep_id = create(store, plan_sweep(store, base(), ["batch=1,2"]))   # owned by this (live) process
    with pytest.raises(SpecError, match="still running"):
        claim_for_resume(store, sweep_id)
    assert get_sweep(store, sweep_id).status == "running"


def test_all_combinations_plans_every_sub_chain_after_the_baseline(store):
    plan = plan_sweep(store, base("fuse:method=conv_bn", PRUNE), ["batch=1,8"], all_combinations=True)
    combos = [(p["role"], p["spec"]["batch"], p["combo"]) for p in plan["points"]]
    assert combos[:2] == [("baseline", 1, []), ("baseline", 8, [])]
    assert combos[2:] == [("point", b, c) for b in (1, 8) for c in (["fuse"], ["prune"], ["fuse", "prune"])]


def test_parse_axis_types_values():
    assert parse_axis("batch=1, 8 ,32").values == [1, 8, 32]
    assert parse_axis("prune.amount=0.1,0.5").values == [0.1, 0.5]
    assert parse_axis("dtype=float32,bfloat16").kind == "setting"
    assert parse_axis("power_limit=250,300").kind == "gpu"


def test_a_sub_chain_that_cannot_run_alone_is_left_out_with_the_reason(store):
    plan = plan_sweep(store, base("onnx_export", "fuse:method=onnxruntime"), [], all_combinations=True)
    assert [(p["role"], p["combo"]) for p in plan["points"]] == [
        ("baseline", []), ("point", ["onnx_export"]), ("point", ["onnx_export", "fuse"])]   # onnx_export alone: once
    assert len(plan["skipped"]) == 1 and plan["skipped"][0].startswith("chain: fuse: ")
    assert "needs an ONNX model" in plan["skipped"][0]
