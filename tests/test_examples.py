"""Every script in benchmarks/ and docs/examples/ runs, in its quick ``--smoke`` mode.

pyqtgraph's habit (``examples/test_examples.py`` runs every example): scripts outside the package
break silently when the package moves under them, because nothing else runs them. Each case runs
one script in a fresh interpreter with ``--smoke --out <tmp>``, as a user would, and checks the
files it wrote there; the committed results beside the scripts must not change. The scripts check
their own output too (and say "smoke check passed"); the checks here are independent of theirs.

Timeouts are safety nets against a hang, not thresholds: nothing here asserts how long a script took.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300           # per script; a smoke run takes seconds (about 20 s on a loaded 2-core machine)


# -- what each script must write into --out (checked here, not by the script) --
def _json(path: Path, keys: list[str]) -> dict:
    assert path.is_file() and path.stat().st_size > 0, f"{path.name} missing or empty"
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    missing = [k for k in keys if k not in data]
    assert not missing, f"{path.name}: missing keys {missing}"
    return data


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _html(path: Path) -> str:
    assert path.is_file() and path.stat().st_size > 1000, f"{path.name} missing or nearly empty"
    text = path.read_text(encoding="utf-8")
    assert "<html" in text[:500].lower() and "</html>" in text[-200:].lower(), f"{path.name} is not a whole page"
    return text


def _pdf(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, f"{path.name} missing or nearly empty"
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:], f"{path.name} is not a whole PDF"


def check_harness_accuracy(out: Path) -> None:
    data = _json(out / "harness_accuracy.json", ["machine", "threads", "rounds", "duration_s", "cases"])
    assert data["rounds"] == 1 and data["threads"] == 1
    cases = data["cases"]
    assert [c["case"].split(" ")[0] for c in cases] == ["demo:digits-cnn", "no-op"]
    for case in cases:
        for key in ("ours_median_ms", "timer_median_ms", "loop_median_ms", "ratio", "difference_us"):
            assert key in case, f"{case['case']}: no {key}"
        assert all(_positive(case[k]) for k in ("ours_median_ms", "timer_median_ms", "loop_median_ms")), case
    assert _positive(cases[0]["timer_fresh_process_median_ms"])


def check_optimizations(out: Path) -> None:
    data = _json(out / "optimizations.json", ["machine", "threads", "duration_s", "variants"])
    variants = data["variants"]
    assert [v["variant"] for v in variants] == ["baseline", "fuse:method=conv_bn", "baseline (again, drift check)"]
    for v in variants:
        assert v["status"] == "done", (v["variant"], v["error"])
        assert _positive(v["p50_ms"]) and v["fidelity"].get("top1_agreement") is not None, v
    assert all(_positive(v["speedup"]) for v in variants[1:])
    assert variants[1]["plugin_reports"] and variants[1]["plugin_reports"][0]["plugin"] == "fuse"


def check_report_speed(out: Path) -> None:
    data = _json(out / "report_speed.json", ["runs", "target_s", "build_report_s", "results", "machine"])
    assert [r["format"] for r in data["results"]] == ["html", "pdf", "csv", "json"]
    assert all(_positive(r["cold_s"]) and _positive(r["warm_median_s"]) and _positive(r["bytes"])
               for r in data["results"])
    runs = data["runs"]
    report = _json(out / "report.json", ["format", "version", "run_ids", "runs"])
    assert len(report["runs"]) == runs
    with open(out / "report.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "id" and len(rows) == runs + 1
    _html(out / "report.html")
    _pdf(out / "report.pdf")


def check_example_report(out: Path) -> None:
    text = _html(out / "example-report.html")
    for label in ("cnn baseline", "cnn pruned + fused", "cnn fused", "cnn, wrong input shape"):
        assert label in text, f"the report does not name {label!r}"
    _pdf(out / "example-report.pdf")


def check_gui_startup(out: Path) -> None:
    data = _json(out / "gui_startup.json", ["machine", "summary", "rounds"])
    assert data["summary"]["rounds"] == len(data["rounds"]) == 1
    assert _positive(data["summary"]["median_s"])
    assert data["summary"]["torch_imported"] is False, "the GUI must open without torch"


def check_gui_responsiveness(out: Path) -> None:
    data = _json(out / "gui_responsiveness.json", ["stall", "p50", "plot_1m", "gui_runs", "headless_runs",
                                                   "click_to_first_iteration"])
    assert len(data["gui_runs"]) == len(data["headless_runs"]) == 1
    assert all(_positive(r["p50_ms"]) for r in data["gui_runs"] + data["headless_runs"])
    clicks = data["click_to_first_iteration"]["clicks"]
    assert [c["worker"] for c in clicks] == ["cold", "warm"]
    assert all(_positive(c["first_iteration_s"]) for c in clicks)
    assert [c["worker_start"]["prewarmed"] for c in clicks] == [False, True]
    assert "Run click -> first timed iteration" in (out / "gui_responsiveness.txt").read_text(encoding="utf-8")


def check_layer_scan(out: Path) -> None:
    data = _json(out / "layer_scan.json", ["machine", "model", "rounds", "median_wall_s", "target_s"])
    first = data["rounds"][0]
    assert len(data["rounds"]) == 1 and _positive(data["median_wall_s"]) and _positive(first["scan_s"])
    assert first["layers"] == 14 and first["how"] == "skip" and first["suggestion"]["skip"]


def check_profile_overhead(out: Path) -> None:
    data = _json(out / "profile_overhead.json", ["machine", "runs", "ratio", "band", "within_band"])
    assert [r["profile"] for r in data["runs"]] == [False, True]
    assert all(_positive(r["p50_ms"]) for r in data["runs"]) and _positive(data["runs"][1]["profile_s"])


def check_model_zoo(out: Path) -> None:
    data = _json(out / "model_zoo.json", ["machine", "settings", "cells"])
    cells = {(c["arch"], c["format"], " → ".join(c["chain"])): c for c in data["cells"]}
    ran = cells[("lstm", "state_dict", "quantize:method=dynamic_int8")]
    assert ran["status"] == "ok" and _positive(ran["speedup"]) and ran["baseline_id"], ran
    assert ran["layers"], "the plugin report's layers changed"
    refused = cells[("lstm", "state_dict", "quantize:method=int4")]
    assert refused["status"] == "refused" and refused["when"] == "before the run" and "cuda" in refused["reason"].lower()
    assert "model-zoo:begin" in (out / "compatibility.md").read_text(encoding="utf-8")



def check_llm(out: Path) -> None:
    data = _json(out / "llm.json", ["machine", "threads", "rows", "generate_vs_hf", "targets"])
    rows = data["rows"]
    assert [r["variant"] for r in rows] == ["fp32", "dynamic_int8", "fp32", "prune structured 30 %"]
    for row in rows[:3]:
        assert row["status"] == "done" and _positive(row["decode_tok_s"]) and _positive(row["ttft_ms"]), row
        assert row["kv_cache_bytes"] == row["kv_cache_expected_bytes"] > 0, row
    assert _positive(rows[1]["speedup"]) and rows[1]["perplexity_delta_pct"] is not None
    versus = data["generate_vs_hf"]
    assert _positive(versus["ours_median"]) and _positive(versus["generate_median"])

def check_telemetry_overhead(out: Path) -> None:
    data = _json(out / "telemetry_overhead.json", ["machine", "rows", "goal_share"])
    assert [r["rate_hz"] for r in data["rows"]] == [10.0, 50.0]
    assert all(r["samples"] > 1 and r["cpu_s"] > 0 and r["nvml"] == "ok" for r in data["rows"]), data["rows"]


def check_sweeps(out: Path) -> None:
    data = _json(out / "sweeps.json", ["machine", "settings", "overhead", "noise"])
    assert all(_positive(v) for v in data["overhead"]["sweep_wall_s"] + data["overhead"]["bench_wall_s"])
    assert data["noise"]["rule"] == "between-process" and data["noise"]["constant_band_pct"] == 2
    assert [p["processes"] for p in data["noise"]["points"]] == [3]


# script (relative to the repo) -> (checks of its --out folder, committed files it must leave alone)
SCRIPTS = {
    "benchmarks/sweeps.py": (check_sweeps, ["benchmarks/results/sweeps.json"]),
    "benchmarks/telemetry_overhead.py": (check_telemetry_overhead, ["benchmarks/results/telemetry_overhead.json"]),
    "benchmarks/harness_accuracy.py": (check_harness_accuracy, ["benchmarks/results/harness_accuracy.json"]),
    "benchmarks/optimizations.py": (check_optimizations, ["benchmarks/results/optimizations.json"]),
    "benchmarks/report_speed.py": (check_report_speed, ["benchmarks/results/report_speed.json"]),
    "benchmarks/llm.py": (check_llm, ["benchmarks/results/llm.json"]),
    "benchmarks/model_zoo.py": (check_model_zoo, ["benchmarks/results/model_zoo.json", "docs/compatibility.md"]),
    "docs/examples/make_example_report.py": (check_example_report, ["docs/examples/example-report.html",
                                                                     "docs/examples/example-report.pdf"]),
    "benchmarks/gui_startup.py": (check_gui_startup, ["benchmarks/results/gui_startup.json"]),
    "benchmarks/layer_scan.py": (check_layer_scan, ["benchmarks/results/layer_scan.json"]),
    "benchmarks/profile_overhead.py": (check_profile_overhead, ["benchmarks/results/profile_overhead.json"]),
    "benchmarks/gui_responsiveness.py": (check_gui_responsiveness, ["benchmarks/results/gui_responsiveness.json",
                                                                    "benchmarks/results/gui_responsiveness.txt"]),
}
# Scripts another engineer looks after: run the same way once they take --smoke and --out, skipped until then.
OWNED_ELSEWHERE = {"docs/make_screenshot.py", "docs/make_explain_screenshots.py"}   # screenshot makers: need a screen


def discovered() -> list[str]:
    found = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "docs" / "examples").glob("*.py"),
             *(ROOT / "docs").glob("make_*.py")]
    return sorted(p.relative_to(ROOT).as_posix() for p in found if not p.name.startswith("_"))


def _supports_smoke(script: str) -> bool:
    source = (ROOT / script).read_text(encoding="utf-8")
    return '"--smoke"' in source and '"--out"' in source


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_every_script_is_covered():
    """A new script in benchmarks/ or docs/examples/ gets a --smoke mode and a case here."""
    unknown = [s for s in discovered() if s not in SCRIPTS and s not in OWNED_ELSEWHERE]
    assert not unknown, f"add a --smoke mode and a case in tests/test_examples.py for {unknown}"
    assert all((ROOT / s).is_file() for s in SCRIPTS), "a script listed here is gone"


@pytest.mark.slow
@pytest.mark.extended           # ~5 CPU-minutes in all: run by .ci/run after the main suite
@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("script", discovered())
def test_script_smoke(script, tmp_path):
    if script not in SCRIPTS and not _supports_smoke(script):
        pytest.skip(f"{script} has no --smoke/--out mode yet (owned by the GUI benchmarks' engineer)")
    check, committed = SCRIPTS.get(script, (None, []))
    before = {name: _digest(ROOT / name) for name in committed}
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_BENCH_OUT"}
    env.update(QT_QPA_PLATFORM="offscreen", WORKBENCH_DB=str(tmp_path / "default.sqlite"), PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, str(ROOT / script), "--smoke", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    log = f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert done.returncode == 0, log
    if check is None:    # a script that took up --smoke later: it ran and wrote something
        assert any(p.is_file() and p.stat().st_size for p in out.rglob("*")), f"nothing written\n{log}"
    else:
        assert "smoke check passed" in done.stdout, log
        check(out)
    assert {name: _digest(ROOT / name) for name in committed} == before, "a committed result file changed"
