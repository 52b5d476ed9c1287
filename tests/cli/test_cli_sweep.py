"""``workbench sweep / sweeps / show-sweep / report --sweep``: one real sweep (the baseline and two
pruning amounts, each in its own worker), then its views; and every bad input refused in one line,
exit 2, before anything is stored."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--iters", "5", "--duration", "0.05", "--threads", "1"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep: demo:digits-cnn, structured pruning at 0.2 and 0.5 (the baseline measured first)."""
    db = tmp_path_factory.mktemp("sweep") / "runs.sqlite"
    proc = subprocess.run([sys.executable, "-m", "workbench", "sweep", "demo:digits-cnn", "-p",
                           "prune:method=structured,finetune=off", "--grid", "prune.amount=0.2,0.5", *FAST,
                           "--db", str(db), "--json", "-"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return db, json.loads(proc.stdout), proc.stderr


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_sweep_runs_the_baseline_first_and_one_run_per_point(swept):
    db, analysis, stderr = swept
    points = analysis["points"]
    assert [(p["role"], p["values"]) for p in points] == [
        ("baseline", {}), ("point", {"prune.amount": 0.2}), ("point", {"prune.amount": 0.5})]
    assert [len(p["run_ids"]) for p in points] == [1, 1, 1] and points[0]["run_ids"][0] < points[1]["run_ids"][0]
    for p in points[1:]:
        assert p["speedup"] > 0 and p["rule"] == "constant band" and p["baseline_run_ids"] == points[0]["run_ids"]
        assert p["fidelity_kind"] == "top-1 agreement" and p["fidelity"] < 1.0      # pruning changed the outputs
    assert analysis["noise"]["rule"] == "constant band" and analysis["status"] == "done"
    assert "sweep 1: 2 point(s) + 1 baseline(s) × 1 repeat(s) = 3 run(s)" in stderr
    assert "noise rule: --repeat 1 (fewer than 3 worker processes per point)" in stderr     # the text view too


def test_sweeps_and_show_sweep(swept, capsys):
    db, _, _ = swept
    code, out, _ = run_cli(capsys, "sweeps", "--db", str(db))
    assert code == 0 and "prune.amount[2]" in out and "3/3" in out
    code, out, _ = run_cli(capsys, "show-sweep", "1", "--db", str(db))
    assert code == 0 and "±2 % constant" in out and "noise rule:" in out and "frontier" in out
    code, out, _ = run_cli(capsys, "show-sweep", "1", "--db", str(db), "--json", "-")
    assert json.loads(out)["id"] == 1


def test_report_sweep_in_html_csv_and_json(swept, capsys, tmp_path):
    import jsonschema
    from referencing import Registry, Resource
    db, analysis, _ = swept
    for suffix in ("html", "csv", "json"):
        code, _, err = run_cli(capsys, "report", "--sweep", "1", "-o", str(tmp_path / f"s.{suffix}"), "--db", str(db))
        assert code == 0, err
    page = (tmp_path / "s.html").read_text()
    assert page.index('<section id="sweep">') < page.index('<section id="summary">')     # the sweep first
    assert "<svg" in page[page.index('<section id="sweep">'):] and "noise rule: --repeat 1" in page
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["role"] for r in rows] == ["baseline", "point", "point"] and rows[1]["prune.amount"] == "0.2"
    assert rows[1]["noise_rule"] == "constant band" and float(rows[2]["speedup"]) > 0
    document = json.loads((tmp_path / "s.json").read_text())
    schemas = [json.loads((ROOT / "docs" / name).read_text()) for name in ("report.schema.json",
                                                                           "sweep-report.schema.json")]
    registry = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in schemas])
    jsonschema.Draft202012Validator(schemas[1], registry=registry).validate(document)
    assert sorted(document["report"]["run_ids"]) == sorted(i for p in analysis["points"] for i in p["run_ids"])
    code, _, err = run_cli(capsys, "report", "--sweep", "1", "-o", str(tmp_path / "s.pdf"), "--db", str(db))
    assert code == 2 and "a sweep report is written as .html" in err


def test_resuming_a_finished_sweep_runs_nothing(swept, capsys):
    db, _, _ = swept
    code, _, err = run_cli(capsys, "sweep", "--resume", "1", "--db", str(db))
    assert code == 2 and "nothing left to run" in err


@pytest.fixture
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.fixture
def disconnected_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(is_initialized=lambda: False))


@pytest.mark.parametrize("argv, words, fixture", [
    (["--grid", "warp=1,2"], "'warp' is not a run setting", None),                 # not a setting or parameter
    (["--grid", "prune.speed=1"], "prune has no parameter 'speed'", None),
    (["--grid", "batch="], "has no values", None),                                  # an empty value list
    (["--grid", "batch=1,8,1"], "lists 1 twice", None),                             # a duplicate value
    (["--grid", "batch=" + ",".join(map(str, range(1, 42))), "--grid", "threads=" + ",".join(map(str, range(1, 26)))],
     "more than 1000: pass --yes", None),                                           # > 1000 points without --yes
    (["--grid", "batch=1", "--executor", "ray"], r"pip install 'workbench\[ray\]'", "no_ray"),   # Ray missing
    (["--grid", "batch=1", "--executor", "ray", "--address", "127.0.0.1:1"],
     "no Ray cluster reachable at 127.0.0.1:1", "disconnected_ray"),               # no cluster there
    (["--grid", "batch=1", "--executor", "ray", "--require", "tpu=v5"], "bad --require", "disconnected_ray"),
    (["--grid", "quantize.method=dynamic_int8,int4"], r"point 2 \(quantize.method=int4\)", None),   # invalid point
    (["--grid", "batch=1", "--latency-budget", "soon"], "bad --latency-budget", None),
])
def test_bad_input_is_refused_before_anything_is_stored(tmp_path, capsys, request, argv, words, fixture):
    if fixture:
        request.getfixturevalue(fixture)
    db = tmp_path / "runs.sqlite"
    code, _, err = run_cli(capsys, "sweep", "demo:digits-cnn", *argv, "--db", str(db))
    assert code == 2 and err.count("\n") == 1
    assert re.search(words, err), err
    code, out, _ = run_cli(capsys, "sweeps", "--db", str(db))
    assert "no sweeps stored" in out
    code, out, _ = run_cli(capsys, "runs", "--db", str(db))
    assert "no runs stored" in out


@pytest.mark.parametrize("argv, words", [
    (["sweep", "demo:digits-cnn", "--resume", "1"], "drop MODEL and --grid"),
    (["sweep"], "give a model and at least one --grid"),
    (["sweep", "--resume", "7"], "no sweep with id 7"),
    (["show-sweep", "7"], "no sweep with id 7"),
    (["report", "--sweep", "7", "-o", "x.html"], "no sweep with id 7"),
    (["report", "-o", "x.html"], "give the run ids to report"),
])
def test_usage_errors(tmp_path, capsys, argv, words):
    code, _, err = run_cli(capsys, *argv, "--db", str(tmp_path / "runs.sqlite"))
    assert code == 2 and words in err
