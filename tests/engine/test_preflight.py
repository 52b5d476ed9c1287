"""A baseline's worker checks its variants on the loaded model before timing anything (issue 13):
a variant refused only once the model is seen (TorchScript has no Python layers to prune) no longer
costs a measured baseline, and all-combinations skips the refused ones with the reason."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core_fixtures import make_tiny_models
from workbench.errors import VariantsRefused
from workbench.spec import InputSpec, PluginStep, RunSpec

FAST = ("--duration", "0.2", "--iters", "20", "--threads", "1")
ONE = ("--input", "1x64:float32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def wb(*args, db):
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--db", str(db), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_refused_variant_times_no_baseline(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    proc = wb("bench", tiny["torchscript"], "-p", "prune:method=structured", *ONE, *FAST, db=db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "TorchScript model has no Python layers" in error[0]
    assert "Traceback" not in proc.stderr
    listing = json.loads(wb("runs", "--json", "-", db=db).stdout or "[]")
    assert listing == []          # nothing was timed, nothing kept


def test_all_combinations_skip_refused_variants(tmp_path, tiny):
    db = tmp_path / "db.sqlite"
    out = tmp_path / "out.json"
    proc = wb("bench", tiny["pt2"], "--all-combinations", "-p", "prune:method=structured",
              "-p", "prune:method=unstructured,amount=0.5", "--input", "4x64:float32", *FAST, "--json", out, db=db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2 and all("prune:method=structured" in line for line in skipped), proc.stderr
    runs = json.loads(out.read_text())["runs"]
    chains = [[step["name"] + ":" + step["params"]["method"] for step in run["spec"]["plugins"]] for run in runs]
    assert chains == [[], ["prune:unstructured"]]
    assert all(run["status"] == "done" for run in runs)


def test_session_reports_refusals_aligned_with_variants(tmp_path, tiny):
    from workbench.engine.runner import run_planned
    from workbench.engine.session import Session
    from workbench.results.store import ResultsStore
    store = ResultsStore(tmp_path / "db.sqlite")
    base = RunSpec(model=str(tiny["torchscript"]), inputs=[InputSpec([1, 64], "float32")], duration_s=0.2,
                   iters=20, threads=1)
    refused = RunSpec.from_dict({**base.to_dict(), "plugins": [{"name": "prune", "params": {"method": "structured"}}]})
    with pytest.raises(VariantsRefused, match="no Python layers"):
        run_planned(Session(store), [base, refused])
    assert store.list_runs() == []
    ok = RunSpec.from_dict({**base.to_dict(), "plugins": [{"name": "onnx_export", "params": {}}],
                            "runtime": "onnxruntime"})
    records, skipped = run_planned(Session(store), [base, refused, ok], require_last=False)
    assert [r.status for r in records] == ["done", "done"] and records[0].variant_refusals[1] is None
    assert len(skipped) == 1 and skipped[0].startswith("prune:method=structured: prune structured")


def test_a_refused_variant_run_alone_is_refused_not_failed(tmp_path, tiny):
    """With a stored baseline the variant runs alone (no preflight): its worker refuses the chain on
    the loaded model before timing anything, and the answer is the same one-line refusal, no run kept."""
    from workbench.engine.session import Session
    from workbench.results.store import ResultsStore
    store = ResultsStore(tmp_path / "db.sqlite")
    spec = RunSpec(model=str(tiny["torchscript"]), inputs=[InputSpec([1, 64], "float32")], duration_s=0.2,
                   iters=20, threads=1, plugins=[PluginStep("prune", {"method": "structured"})])
    with pytest.raises(VariantsRefused, match="TorchScript model has no Python layers") as info:
        Session(store).run(spec)
    assert "\n" not in str(info.value)
    assert store.list_runs() == []
    store.close()
