"""Reports: the data model, every format (HTML, PDF, CSV, JSON), the CLI, and one real benchmark.

The stores here hold real-looking runs: latencies drawn from a seeded log-normal distribution
and summarised with the real ``compute_latency_stats``, telemetry samples at 10 Hz summarised
with the session's own ``_telemetry_summary``/``energy_per_inference``, results shaped exactly
like ``worker.run_job`` + ``Session.run`` produce them (failed runs like the session stores them).
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.report import FORMATS, build_report, write_report
from workbench.spec import PluginStep, RunSpec
from workbench.results.stats import compute_latency_stats
from workbench.results.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "report.schema.json"

MIB = 2 ** 20


# ---------------------------------------------------------------------------------------------
# Real-looking runs
# ---------------------------------------------------------------------------------------------
def _environment(gpu: bool) -> dict:
    from workbench.engine.environment import collect_environment
    env = collect_environment(include_gpu=False)
    env["worker"] = {"torch": "2.13.0+cpu", "torch_cuda": None, "cuda_available": gpu, "numpy": np.__version__,
                     "onnxruntime": "1.32.0"}
    if gpu:
        env["gpu"] = {"nvml": "ok", "driver_version": "550.54.15", "cuda_driver_version": 12040,
                      "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 85 * 2 ** 30}]}
    return env


def _model_info(model: str, params: int, nbytes: int, flops: int | None) -> dict:
    return {"source": model, "format": "demo", "parameters": params, "bytes": nbytes,
            "inputs": [{"shape": [-1, 1, 8, 8], "dtype": "float32", "name": "x"}], "input_fixed_by_model": True,
            "flops": flops, "layer_counts": {"Conv2d": 3, "BatchNorm2d": 3, "ReLU": 3, "Linear": 1},
            "layers": [{"name": "features.0.0", "type": "Conv2d", "params": 640}], "notes": []}


def _samples(t0: float, seconds: float, rss_mib: float, gpu: bool, rng: np.random.Generator,
             power_w: float = 180.0) -> list:
    from workbench.telemetry.sampler import TelemetrySample
    out = []
    energy = 1_000_000.0
    for i in range(int(seconds * 10)):
        t = t0 + i * 0.1
        power = power_w + rng.normal(0, 4) if gpu else None
        if gpu:
            energy += power * 100.0          # mJ over 0.1 s
        out.append(TelemetrySample(
            t=t, rss_bytes=int((rss_mib + min(i, 20) * 2 + rng.normal(0, 0.5)) * MIB), cpu_percent=95 + rng.normal(0, 3),
            gpu_power_w=power, gpu_power_avg_w=power, gpu_energy_mj=energy if gpu else None,
            gpu_mem_used_bytes=int(2.1 * 2 ** 30) if gpu else None, gpu_mem_total_bytes=80 * 2 ** 30 if gpu else None,
            gpu_proc_mem_bytes=int(0.6 * 2 ** 30) if gpu else None, gpu_util_pct=88.0 if gpu else None,
            gpu_mem_util_pct=30.0 if gpu else None, sm_clock_mhz=1980.0 if gpu else None,
            temperature_c=55.0 if gpu else None, clock_event_reasons=0 if gpu else None))
    return out


def _resolved_params(step: PluginStep) -> dict:
    """What Plugin.run records in its report: every parameter, typed, defaults filled in."""
    from workbench.plugin_api import get_plugin_class
    try:
        return get_plugin_class(step.name).resolve_params(step.params)
    except WorkbenchError:          # plugin not installed in this checkout: the given values
        return dict(step.params)


def add_run(store: ResultsStore, *, model: str = "demo:digits-cnn", plugins: list[str] = (),
            median_ms: float = 2.0, sigma: float = 0.05, n: int = 700, top1: float = 1.0,
            accuracy: float = 0.97, size_bytes: int = 1_600_000, params: int = 390_000,
            status: str = "done", error: str | None = None, gpu: bool = False, seed: int = 0,
            label: str | None = None, batch: int = 64, power_w: float = 180.0, runtime: str = "torch") -> int:
    """Store one run the way Session.run does (create → latencies/samples/events → finish)."""
    from workbench.engine.session import _telemetry_summary
    rng = np.random.default_rng(seed)
    spec = RunSpec(model=model, plugins=[PluginStep.parse(p) for p in plugins], device="cuda" if gpu else "cpu",
                   iters=n, duration_s=1.0, label=label, seed=0)
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime())
    env = _environment(gpu)
    store.update_environment(run_id, env)
    t0 = time.monotonic()
    if status != "done":
        samples = _samples(t0, 1.5, 300, gpu, rng)
        store.add_samples(run_id, [s.to_dict() for s in samples])
        events = [{"type": "phase", "phase": "load", "message": f"loading {model}", "t": t0},
                  {"type": "phase", "phase": "reference", "message": "reference outputs of the unoptimized model",
                   "t": t0 + 0.5}]
        for index, step in enumerate(spec.plugins):         # every step but the last completed
            events.append({"type": "phase", "phase": "optimize", "t": t0 + 0.6 + index * 0.2,
                           "message": f"step {index + 1}/{len(spec.plugins)}: {step.name}"})
            if index < len(spec.plugins) - 1:
                events.append({"type": "plugin_report", "t": t0 + 0.7 + index * 0.2, "report": {
                    "plugin": step.name, "summary": f"{step.name} done", "params": _resolved_params(step),
                    "params_before": 390_000, "params_after": 200_000, "bytes_before": 1_600_000,
                    "bytes_after": 800_000, "flops_before": None, "flops_after": None, "sparsity": None,
                    "layers_changed": [], "seconds": 0.2, "notes": [], "extra": {}, "auto_inserted": False}})
        events.append({"type": "error", "kind": "exception", "message": error, "t": t0 + 1.4})
        store.add_events(run_id, events)
        detail = (f"Traceback (most recent call last):\n  File \"workbench/worker.py\", line 170, in run_job\n"
                  f"    model, report = step.plugin.run(model, context)\n{error}\n") if status == "failed" else None
        store.finish_run(run_id, status, {"telemetry_status": {"nvml": "disabled (no GPU selected)", "power_source": None,
                                                               "gpu_name": None, "other_gpu_processes": [],
                                                               "warnings": [], "unsupported_metrics": []},
                                          "partial": True}, error, detail)
        return run_id

    ns = (rng.lognormal(np.log(median_ms), sigma, size=n) * 1e6).astype(np.int64)
    warm = (rng.lognormal(np.log(median_ms * 1.3), sigma, size=10) * 1e6).astype(np.int64)
    store.add_latencies(run_id, "cold", 0, [int(ns[0] * 20)])
    store.add_latencies(run_id, "warmup", 0, warm.tolist())
    for start in range(0, n, 256):                           # batched like the session's writer
        store.add_latencies(run_id, "measure", start, ns[start:start + 256].tolist())
    stats = compute_latency_stats(ns, batch=batch, seed=0)
    load_s = 1.2
    t_start = t0 + load_s
    t_end = t_start + ns.sum() / 1e9
    samples = _samples(t0, load_s + ns.sum() / 1e9 + 0.3, 280 + size_bytes / MIB, gpu, rng, power_w)
    store.add_samples(run_id, [s.to_dict() for s in samples])

    reports = []
    opt_info = None
    base_bytes, base_params = 1_600_000, 390_000
    for step in spec.plugins:
        reports.append({"plugin": step.name, "summary": f"{step.name}: {base_params} → {params} parameters",
                        "params": _resolved_params(step),
                        "params_before": base_params, "params_after": params, "bytes_before": base_bytes,
                        "bytes_after": size_bytes, "flops_before": 5_000_000, "flops_after": 2_600_000,
                        "sparsity": None, "layers_changed": ["features.0.0", "features.1.0"], "seconds": 0.42,
                        "notes": ["importance: l1"], "extra": {}, "auto_inserted": False})
    if spec.plugins:
        opt_info = _model_info(model, params, size_bytes, 2_600_000)
    status_dict = {"nvml": "ok" if gpu else "disabled (no GPU selected)", "power_source": "instant" if gpu else None,
                   "gpu_name": "NVIDIA H100 80GB HBM3" if gpu else None, "other_gpu_processes": [],
                   "warnings": [], "unsupported_metrics": []}
    result = {
        "latency": stats.to_dict(), "cold_ms": ns[0] * 20 / 1e6,
        "warmup": {"iterations": 10, "stable": True},
        "window": {"t_start": t_start, "t_end": t_end, "iterations": n},
        "gc_disabled_while_timing": True,
        "fidelity": {"samples": 360, "cosine": 1.0 if top1 == 1.0 else 0.995, "max_abs_error": 0.0 if top1 == 1.0 else 0.12,
                     "mean_abs_error": 0.0 if top1 == 1.0 else 0.01, "top1_agreement": top1, "accuracy": accuracy,
                     "reference_accuracy": 0.97, "nonfinite_outputs": 0, "exact": top1 == 1.0 and not plugins},
        "fidelity_inputs": "bundled test set (360 samples)",
        "inputs": [f"x={batch}x1x8x8:float32"],
        "model_info": _model_info(model, base_params, base_bytes, 5_000_000),
        "optimized_model_info": opt_info,
        "plugin_reports": reports,
        "runtime": {"runtime": "torch", "torch": "2.13.0+cpu", "threads": 2, "interop_threads": 2,
                    "device": spec.device, "dtype": "float32"},
        "runtime_name": runtime, "device_memory": {"torch_peak_allocated_bytes": 300 * MIB,
                                                   "torch_peak_reserved_bytes": 400 * MIB} if gpu else {},
        "threads": 2, "artifact": None, "notes": [], "flags": [],
    }
    sampler = SimpleNamespace(samples=samples, rate_hz=10.0, status=status_dict, cpu_seconds=0.01)
    result.update(_telemetry_summary(sampler, result))      # exactly what Session.run adds
    store.finish_run(run_id, "done", result)
    return run_id


@pytest.fixture
def runs(store):
    """A baseline, two variants (one a real 1.9× speed-up, one inside the noise), one that is fastest
    but fails the 99 % agreement gate, and a failed run."""
    ids = {}
    ids["base"] = add_run(store, median_ms=2.0, seed=1)
    ids["prune"] = add_run(store, plugins=["prune:method=structured,amount=0.5"], median_ms=1.05, seed=2,
                           size_bytes=420_000, params=100_000, top1=0.994, accuracy=0.965)
    ids["noise"] = add_run(store, plugins=["fuse:method=conv_bn"], median_ms=1.98, sigma=0.3, seed=3,
                           size_bytes=1_590_000, top1=1.0)
    ids["lossy"] = add_run(store, plugins=["prune:method=structured,amount=0.9"], median_ms=0.6, seed=4,
                           size_bytes=80_000, params=20_000, top1=0.71, accuracy=0.70)
    ids["failed"] = add_run(store, plugins=["quantize:method=static_int8"], status="failed",
                            error="PluginError: plugin quantize failed: RuntimeError: no calibration data", seed=5)
    return ids


# ---------------------------------------------------------------------------------------------
# The data model
# ---------------------------------------------------------------------------------------------
def test_build_report_picks_best_and_flags_noise(store, runs):
    report = build_report(store, list(runs.values()))
    summary = report["summary"]
    assert summary["best_run_id"] == runs["prune"]          # lossy is faster but fails the 99 % gate
    assert summary["baseline_id"] == runs["base"]
    assert 1.7 < summary["speedup"] < 2.1 and summary["speedup_significant"] is True
    assert summary["noise_warning"] is None
    assert summary["compression_efficiency"] == pytest.approx(1 - 420_000 / 1_600_000)
    assert summary["fidelity_cost"]["top1_disagreement"] == pytest.approx(0.006)
    assert summary["fidelity_cost"]["accuracy_delta"] == pytest.approx(-0.005)
    by_id = {r["id"]: r for r in report["runs"]}
    noise = by_id[runs["noise"]]
    assert noise["comparison"]["speedup_significant"] is False
    assert any("inside the noise" in w for w in noise["warnings"])
    assert any(f"#{runs['noise']}" in w and "noise" in w for w in summary["warnings"])
    assert not any(f"#{runs['prune']} " in w and "noise" in w for w in summary["warnings"])
    lossy = by_id[runs["lossy"]]
    assert not lossy["eligible"] and "71.00 % < 99 %" in lossy["excluded_because"]
    failed = by_id[runs["failed"]]
    assert failed["failure"]["reason"].startswith("PluginError: plugin quantize failed")
    assert "Traceback" in failed["failure"]["detail"]
    assert failed["plugins"][0]["applied"] is False and failed["plugins"][0]["given_params"] == {"method": "static_int8"}
    prune_step = by_id[runs["prune"]]["plugins"][0]
    assert prune_step["given_params"] == {"method": "structured", "amount": "0.5"}
    assert prune_step["params"]["amount"] == 0.5 and "importance" in prune_step["params"]   # defaults shown too
    assert by_id[runs["prune"]]["pareto"] and by_id[runs["lossy"]]["pareto"]
    assert not noise["pareto"]                                 # slower than the baseline at equal fidelity
    json.dumps(report, allow_nan=False)                         # strict JSON


def test_failure_keeps_the_completed_steps_and_the_phase(store):
    run = add_run(store, plugins=["prune:amount=0.5", "quantize:method=static_int8"], status="failed",
                  error="PluginError: plugin quantize failed: RuntimeError: no calibration data")
    entry = build_report(store, [run])["runs"][0]
    assert entry["failure"]["phase"] == "optimize step 2/2: quantize"
    assert [(p["plugin"], p["applied"]) for p in entry["plugins"]] == [("prune", True), ("quantize", False)]
    assert entry["plugins"][0]["summary"] == "prune done"


def test_criteria(store, runs):
    ids = list(runs.values())
    assert build_report(store, ids, "size")["summary"]["best_run_id"] == runs["prune"]
    assert build_report(store, ids, "size:0.5")["summary"]["best_run_id"] == runs["lossy"]
    assert build_report(store, ids, "p50:70%")["summary"]["best_run_id"] == runs["lossy"]
    assert build_report(store, ids, "throughput")["summary"]["best_run_id"] == runs["prune"]
    assert build_report(store, ids, "fidelity")["summary"]["best_run_id"] == runs["noise"]
    energy = build_report(store, ids, "energy")["summary"]     # CPU runs: no energy anywhere
    assert energy["best_run_id"] is None and "energy" in energy["reason"]
    with pytest.raises(WorkbenchError, match="unknown report criterion"):
        build_report(store, ids, "prettiest")


def test_energy_criterion_on_gpu_runs(store):
    base = add_run(store, gpu=True, median_ms=1.0, seed=1, power_w=200)
    a = add_run(store, gpu=True, plugins=["quantize:method=fp16"], median_ms=0.6, seed=2, power_w=260)
    b = add_run(store, gpu=True, plugins=["prune:amount=0.3"], median_ms=0.7, seed=3, power_w=150)
    report = build_report(store, [base, a, b], "energy")
    by_id = {r["id"]: r for r in report["runs"]}
    e = {i: by_id[i]["metrics"]["energy_j_per_inference"] for i in (base, a, b)}
    assert all(v is not None and v > 0 for v in e.values())
    assert report["summary"]["best_run_id"] == min((a, b), key=e.get)
    assert report["summary"]["energy_j_per_inference"] == pytest.approx(e[report["summary"]["best_run_id"]])
    assert by_id[a]["comparison"]["energy_ratio"] == pytest.approx(e[a] / e[base])
    assert report["summary"]["best_run_id"] != build_report(store, [base, a, b])["summary"]["best_run_id"]


def test_several_models_are_ranked_against_their_own_baselines(store):
    """Absolute latencies of different models do not compare: a transformer variant at 1.8 ms is not
    'better' than a CNN variant at 4 ms when the CNN's baseline took 10 ms and the transformer's 2 ms."""
    cnn = add_run(store, median_ms=10.0, seed=1)
    cnn_v = add_run(store, plugins=["prune:amount=0.5"], median_ms=4.0, seed=2, top1=0.995)
    tf = add_run(store, model="demo:digits-transformer", median_ms=2.0, seed=3)
    tf_v = add_run(store, model="demo:digits-transformer", plugins=["quantize:method=dynamic_int8"], median_ms=1.8,
                   seed=4, top1=0.998)
    summary = build_report(store, [cnn, cnn_v, tf, tf_v])["summary"]
    assert summary["compared_by"] == "p50_ratio" and summary["best_run_id"] == cnn_v
    assert "ranked against its own baseline" in summary["reason"]
    groups = {g["model"]: g for g in summary["groups"]}
    assert groups["demo:digits-cnn"]["best_run_id"] == cnn_v and groups["demo:digits-transformer"]["best_run_id"] == tf_v
    assert groups["demo:digits-transformer"]["run_ids"] == [tf, tf_v]
    # one model: absolute numbers
    one = build_report(store, [tf, tf_v])["summary"]
    assert one["compared_by"] == "p50_ms" and one["best_run_id"] == tf_v and len(one["groups"]) == 1


def test_noise_warning_for_best_variant(store):
    base = add_run(store, median_ms=2.0, sigma=0.3, seed=1)
    v = add_run(store, plugins=["fuse:method=conv_bn"], median_ms=1.97, sigma=0.3, seed=2)
    summary = build_report(store, [base, v])["summary"]
    assert summary["best_run_id"] == v
    assert summary["speedup_significant"] is False
    lo, hi = summary["speedup_ci"]
    assert lo <= 1.0 <= hi
    assert "inside the noise" in summary["noise_warning"] and "run-to-run noise" in summary["noise_warning"]


def test_unknown_run_and_format(store, runs, tmp_path):
    with pytest.raises(WorkbenchError, match="no run with id 999"):
        write_report(store, [runs["base"], 999], tmp_path / "r.html")
    with pytest.raises(WorkbenchError, match="integers"):
        build_report(store, ["one"])
    with pytest.raises(WorkbenchError, match="at least one run"):
        write_report(store, [], tmp_path / "r.html")
    with pytest.raises(WorkbenchError) as err:
        write_report(store, [runs["base"]], tmp_path / "r.docx")
    for suffix in (".html", ".pdf", ".csv", ".json"):
        assert suffix in str(err.value)
    assert not (tmp_path / "r.docx").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(WorkbenchError, match="cannot write the report"):
        write_report(store, [runs["base"]], tmp_path / "a-file" / "r.csv")
    assert set(FORMATS) >= {".html", ".pdf", ".csv", ".json"}


# ---------------------------------------------------------------------------------------------
# The formats
# ---------------------------------------------------------------------------------------------
class _Links(HTMLParser):
    """Every src/href (any tag, SVG's xlink:href included), the text, and the tags seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.tags: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data", "poster") and value is not None:
                self.links.append((tag, name, value))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def _render(store, ids, tmp_path, suffix, criterion="p50") -> Path:
    path = write_report(store, ids, tmp_path / f"report{suffix}", criterion=criterion)
    assert path == (tmp_path / f"report{suffix}").resolve() and path.stat().st_size > 0
    return path


def test_html_is_self_contained_and_complete(store, runs, tmp_path):
    from workbench.format import ms
    ids = list(runs.values())
    raw = _render(store, ids, tmp_path, ".html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(raw)
    parser.close()
    assert raw.startswith("<!doctype html>")
    assert parser.tags.get("svg", 0) == 4                  # latency, vs baseline, pareto, telemetry: all inline
    assert "img" not in parser.tags and "script" not in parser.tags and "link" not in parser.tags
    for tag, attr, value in parser.links:                 # in-page anchors only
        assert value.startswith("#"), (tag, attr, value)
    assert "http://" not in raw and "https://" not in raw and "@import" not in raw   # not even namespaces
    text = " ".join(parser.text)
    report = build_report(store, ids)
    anchors = {v for _, _, v in parser.links}
    for run in report["runs"]:
        assert f"#run-{run['id']}" in anchors and f'id="run-{run["id"]}"' in raw
        assert run["chain"] in text
        assert run["command"] in text
        if run["status"] == "done":
            assert ms(run["latency"]["p50_ms"]) in text     # the numbers are there, as printed
            assert ms(run["latency"]["p99_ms"]) in text
    assert "PluginError: plugin quantize failed: RuntimeError: no calibration data" in text
    assert "Traceback" in text
    assert "Best variant" in text and f"#{runs['prune']}" in text
    assert "inside the noise" in text
    assert "1.91×" in text or "1.90×" in text or "1.92×" in text     # the summary's speed-up
    assert "73.8%" in text                                            # compression efficiency 1 - 420k/1.6M
    assert "RunSpec JSON" in text and "Environment fingerprint" in text


def test_json_validates_against_schema(store, runs, tmp_path):
    import jsonschema
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    ids = list(runs.values())
    data = json.loads(_render(store, ids, tmp_path, ".json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["run_ids"] == ids and [r["id"] for r in data["runs"]] == ids
    assert data["summary"]["best_run_id"] == runs["prune"]
    # GPU runs (power, energy, GPU memory) and the other criteria validate too.
    gpu = [add_run(store, gpu=True, seed=9), add_run(store, gpu=True, plugins=["quantize:method=fp16"], seed=10,
                                                     median_ms=1.2)]
    for criterion in ("energy", "size:0", "throughput"):
        jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(build_report(store, ids + gpu, criterion))))
    # The schema is strict about the report's own objects: a renamed field would fail.
    data["summary"]["speed_up"] = data["summary"].pop("speedup")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


def test_csv_round_trips(store, runs, tmp_path):
    from workbench.report.csv import COLUMN_NAMES
    ids = list(runs.values())
    raw = _render(store, ids, tmp_path, ".csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert list(rows[0].keys()) == COLUMN_NAMES
    assert [int(r["id"]) for r in rows] == ids
    report = build_report(store, ids)
    for row, run in zip(rows, report["runs"]):
        assert row["status"] == run["status"] and row["chain"] == run["chain"]
        if run["status"] == "done":
            assert float(row["p50_ms"]) == run["latency"]["p50_ms"]          # repr: exact
            assert float(row["p50_ci_low_ms"]) == run["latency"]["p50_ci_ms"][0]
            assert int(row["size_bytes"]) == run["metrics"]["size_bytes"]
        assert json.loads(row["plugins"]) == [{"plugin": p["plugin"], "params": p["params"]} for p in run["plugins"]]
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[runs["prune"]]["best"] == "true" and by_id[runs["base"]]["best"] == "false"
    assert by_id[runs["noise"]]["speedup_significant"] == "false"
    assert by_id[runs["failed"]]["error"].startswith("PluginError") and by_id[runs["failed"]]["p50_ms"] == ""
    from test_spec_to_command import _parse_back     # a test module beside this one (the benchmark skips it)
    assert _parse_back(by_id[runs["prune"]]["command"]) == RunSpec.from_dict(store.get_run(runs["prune"]).spec)
    # write what was read: byte-identical
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=COLUMN_NAMES, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    assert out.getvalue().encode("utf-8") == raw


def test_csv_columns_are_documented():
    import re
    from workbench.report.csv import CSV_COLUMNS
    documented = re.findall(r"^\| \d+ \| `([a-z0-9_]+)` \|", (ROOT / "docs" / "examples" / "README.md").read_text(),
                            flags=re.M)
    assert documented == [name for name, _, _ in CSV_COLUMNS]


def test_pdf_pages_and_text(store, runs, tmp_path):
    from pypdf import PdfReader
    ids = list(runs.values())
    reader = PdfReader(_render(store, ids, tmp_path, ".pdf"))
    # summary, comparison, 4 charts, one page per run, environment fingerprints
    assert len(reader.pages) == 1 + 1 + 4 + len(ids) + 1
    pages = [p.extract_text() for p in reader.pages]
    assert "Best variant: #%d" % runs["prune"] in pages[0] and "Summary" in pages[0]
    assert "inside the noise" in pages[0]
    assert "Comparison" in pages[1] and all(f"#{i}" in pages[1] for i in ids)
    assert [p.split("\n", 1)[0] for p in pages[2:6]] == [
        "Charts · Latency distributions", "Charts · Key metrics vs baseline", "Charts · Latency vs fidelity",
        "Charts · Telemetry over the run"]
    for page, run_id in zip(pages[6:6 + len(ids)], ids):
        assert page.startswith(f"Run #{run_id} ")
        assert "workbench bench demo:digits-cnn" in page and "RunSpec JSON" in page
    assert "no calibration data" in pages[6 + ids.index(runs["failed"])]
    assert "Reproducibility" in pages[-1]
    assert all(f"page {i} of {len(pages)}" in p for i, p in enumerate(pages, 1))
    outline = [o.title for o in reader.outline if not isinstance(o, list)]
    assert outline[:3] == ["Summary", "Comparison", "Charts"] and outline[-1] == "Reproducibility"
    assert reader.metadata.title.startswith("Workbench report")


def test_single_run_and_no_baseline(store, tmp_path):
    """A variant whose baseline is not stored, alone: no ratios, a warning, every format still renders."""
    from pypdf import PdfReader
    run = add_run(store, plugins=["prune:amount=0.3"], seed=3)
    report = build_report(store, [run])
    assert report["runs"][0]["comparison"] is None and report["summary"]["speedup"] is None
    assert any("no baseline" in w for w in report["summary"]["warnings"])
    for suffix in (".html", ".pdf", ".csv", ".json"):
        _render(store, [run], tmp_path, suffix)
    # the vs-baseline chart is left out, so one chart page fewer
    assert len(PdfReader(tmp_path / "report.pdf").pages) == 1 + 1 + 3 + 1 + 1


def test_only_failed_runs(store, tmp_path):
    run = add_run(store, status="failed", error="the worker was killed (SIGKILL); most often the system ran out of "
                                                "memory (OOM killer)")
    cancelled = add_run(store, status="cancelled", error="cancelled by the user")
    report = build_report(store, [run, cancelled])
    assert report["summary"]["best_run_id"] is None and "no run qualifies" in report["summary"]["reason"]
    html = _render(store, [run, cancelled], tmp_path, ".html").read_text()
    assert "OOM killer" in html and "cancelled by the user" in html
    _render(store, [run, cancelled], tmp_path, ".pdf")


def test_baseline_from_the_store_not_in_the_selection(store, runs):
    report = build_report(store, [runs["prune"]])
    run = report["runs"][0]
    assert run["baseline_id"] == runs["base"] and run["baseline_in_report"] is False
    assert run["comparison"]["speedup"] > 1.7


def test_report_module_imports_no_qt():
    code = ("import sys, workbench.report, workbench.report.html, workbench.report.pdf, workbench.report.charts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', "
            "'matplotlib.pyplot', 'workbench.gui')]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _workbench() -> list[str]:
    """The installed ``workbench`` command (pip install -e .), else the module."""
    import shutil
    exe = shutil.which("workbench")
    return [exe] if exe else [sys.executable, "-m", "workbench.cli"]


def test_cli_report(store, runs, tmp_path):
    ids = [str(runs["base"]), str(runs["prune"])]
    for suffix in (".html", ".json", ".pdf", ".csv"):
        out = tmp_path / f"x{suffix}"
        proc = subprocess.run([*_workbench(), "--db", str(store.path), "report", *ids,
                               "-o", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"wrote {out.resolve()}"
        assert out.stat().st_size > 1000
    proc = subprocess.run([*_workbench(), "--db", str(store.path), "report", "1", "999",
                           "-o", str(tmp_path / "y.html")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no run with id 999" in proc.stderr
    proc = subprocess.run([*_workbench(), "--db", str(store.path), "report", "1",
                           "-o", str(tmp_path / "y.docx")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and ".pdf" in proc.stderr and not (tmp_path / "y.docx").exists()
    proc = subprocess.run([*_workbench(), "--db", str(store.path), "report", *ids,
                           "--criterion", "size", "-o", str(tmp_path / "z.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "z.json").read_text())["criterion"]["name"] == "size"


# ---------------------------------------------------------------------------------------------
# End to end: real benchmarks of a demo model
# ---------------------------------------------------------------------------------------------
def _demos_missing() -> str | None:
    try:
        from workbench.models.demos import assets_dir, get_demo
        from workbench.plugin_api import discover_plugins
    except ImportError as exc:
        return f"demo catalog not available: {exc}"
    entry = get_demo("digits-cnn")
    for name in (entry.weights, entry.data):
        if not (assets_dir() / name).is_file():
            return f"demo asset {assets_dir() / name} missing (python -m workbench.assets.make_demos)"
    info = discover_plugins().get("fuse")
    if info is None or not info.ok:
        return f"fuse plugin not available: {getattr(info, 'error', 'not installed')}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_demos_missing() is not None, reason=str(_demos_missing()))
def test_end_to_end_real_runs(tmp_path):
    from pypdf import PdfReader
    from workbench.engine.session import Session
    store = ResultsStore(tmp_path / "runs.sqlite")
    session = Session(store)
    common = dict(model="demo:digits-cnn", iters=20, duration_s=0.2, warmup_max_s=0.5, batch=16)
    base = session.run(RunSpec(**common))
    fused = session.run(RunSpec(**common, plugins=[PluginStep("fuse", {"method": "conv_bn"})]))
    assert base.status == "done", base.error
    assert fused.status == "done", fused.error
    ids = [base.id, fused.id]
    report = build_report(store, ids)
    run = report["runs"][1]
    assert run["baseline_id"] == base.id and run["comparison"]["speedup"] is not None
    assert run["plugins"][0]["plugin"] == "fuse" and run["plugins"][0]["applied"]
    assert run["plugins"][0]["params"]["method"] == "conv_bn"
    assert run["fidelity"]["top1_agreement"] is not None and run["series"]["latency_quantiles_ms"]
    assert report["summary"]["best_run_id"] == fused.id or "agreement" in report["summary"]["reason"]
    # warmup_max_s has no CLI option: the report says so, and the command gets everything else right
    assert run["command_exact"] is False and "warmup_max_s=0.5" in run["command_notes"][0]
    stored = RunSpec.from_dict(store.get_run(fused.id).spec)
    from test_spec_to_command import _parse_back
    assert _parse_back(run["command"]) == RunSpec.from_dict({**stored.to_dict(), "warmup_max_s": 3.0})
    import jsonschema
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(
        json.loads(_render(store, ids, tmp_path, ".json").read_text()))
    html = _render(store, ids, tmp_path, ".html").read_text()
    assert "fuse:method=conv_bn" in html
    assert len(PdfReader(_render(store, ids, tmp_path, ".pdf")).pages) >= 1 + 1 + 3 + 2 + 1
    rows = list(csv.DictReader(io.StringIO(_render(store, ids, tmp_path, ".csv").read_text(), newline="")))
    assert [int(r["id"]) for r in rows] == ids
    store.close()


def test_a_cross_runtime_chain_shows_both_ratios_in_every_format(store, tmp_path):
    """onnx_export → int8 on ONNX Runtime: vs the PyTorch original (what the user came with) and vs the
    fp32 model on ONNX Runtime (what the quantization did), each with its CI (issue 13 F)."""
    import jsonschema
    base = add_run(store, median_ms=4.0, seed=1)
    fp32 = add_run(store, plugins=["onnx_export"], median_ms=2.0, seed=2, runtime="onnxruntime")
    int8 = add_run(store, plugins=["onnx_export", "quantize:method=dynamic_int8"], median_ms=1.0, seed=3,
                   runtime="onnxruntime", top1=0.995)
    report = build_report(store, [base, fp32, int8])
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(json.loads(json.dumps(report)))
    run = report["runs"][2]
    comp = run["comparison"]
    assert run["baseline_id"] == base and run["runtime_baseline_id"] == fp32 and comp["cross_runtime"] is True
    assert comp["speedup"] == pytest.approx(4.0, rel=0.05) and comp["runtime_speedup"] == pytest.approx(2.0, rel=0.05)
    assert comp["runtime_speedup_ci"][0] < comp["runtime_speedup"] < comp["runtime_speedup_ci"][1]
    conversion = report["runs"][1]["comparison"]
    assert conversion["speedup"] == pytest.approx(2.0, rel=0.05) and conversion["runtime_speedup"] is None
    html = _render(store, [base, fp32, int8], tmp_path, ".html").read_text(encoding="utf-8")
    assert f"vs torch; {comp['runtime_speedup']:.2f}×" in html and f"vs fp32 #{fp32} (same runtime)" in html
    with open(_render(store, [base, fp32, int8], tmp_path, ".csv"), newline="", encoding="utf-8") as handle:
        row = list(csv.DictReader(handle))[2]
    assert float(row["runtime_speedup"]) == pytest.approx(comp["runtime_speedup"])
    assert row["runtime_baseline_id"] == str(fp32) and row["baseline_runtime"] == "torch"
    assert float(row["runtime_speedup_ci_low"]) == pytest.approx(comp["runtime_speedup_ci"][0])
