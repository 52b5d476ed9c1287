"""A plugin from another distribution is found through the entry-point group, used in a run, and a
broken one is listed with its error instead of breaking the app."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core_fixtures import make_tiny_models

PLUGIN_SRC = Path(__file__).parents[1] / "example_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN_SRC)], check=True, capture_output=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def wb(env, *args):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_third_party_plugin_is_discovered_and_broken_one_reported(installed, tmp_path):
    listing = json.loads(wb(installed, "--db", tmp_path / "db.sqlite", "plugins", "--json").stdout)
    assert listing["scale_outputs"]["params"][0]["name"] == "factor"
    assert "error" in listing["broken_example"] and "does_not_exist" in listing["broken_example"]["error"]
    text = wb(installed, "--db", tmp_path / "db.sqlite", "plugins").stdout
    assert "broken_example  [failed to load from wb-example-plugin" in text


def test_third_party_plugin_runs_in_a_chain(installed, tmp_path):
    tiny = make_tiny_models(tmp_path)
    db = tmp_path / "db.sqlite"
    out = tmp_path / "run.json"
    proc = wb(installed, "--db", db, "bench", tiny["torchscript"], "--input", "4x64", "--iters", 20,
              "--duration", 0.1, "--plugin", "scale_outputs:factor=3", "--json", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(out.read_text())
    assert record["result"]["plugin_reports"][0]["summary"] == "outputs × 3"
    fidelity = record["result"]["fidelity"]
    # Scaling by 3 keeps direction (cosine 1, same argmax) but moves values: fidelity sees it.
    assert fidelity["cosine"] == pytest.approx(1.0, abs=1e-6) and fidelity["top1_agreement"] == 1.0
    assert fidelity["max_abs_error"] > 0 and not fidelity["exact"]
    assert "measuring it first" in proc.stderr     # the baseline was run automatically
    assert record["comparison"]["baseline_id"] == 1
    bad = wb(installed, "--db", db, "bench", tiny["torchscript"], "--input", "4x64",
             "--plugin", "scale_outputs:factor=0")
    assert bad.returncode == 2 and "scale_outputs:factor: 0.0 is outside (0, inf]" in bad.stderr
