"""`workbench bench --all-combinations`: the same plan the GUI's "Run all combinations" uses
(engine.plan.combinations_plan), measured in order and compared in one table with verdicts."""
from __future__ import annotations

import json
import subprocess
import sys


def test_all_combinations_measures_each_plugin_alone_and_the_chain(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.run([sys.executable, "-m", "workbench", "bench", "demo:digits-cnn", "-p", "fuse:method=conv_bn",
                           "-p", "prune:method=structured,amount=0.3,finetune=off", "--all-combinations", "--iters", "5",
                           "--duration", "0.05", "--threads", "1", "--db", str(db), "--json", "-"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    runs = document["runs"]
    assert [r["chain"] for r in runs] == ["baseline", "fuse:method=conv_bn", "prune:method=structured,amount=0.3,finetune=off",
                                          "fuse:method=conv_bn → prune:method=structured,amount=0.3,finetune=off"]
    assert all(r["status"] == "done" for r in runs)
    assert {r["comparison"]["baseline_id"] for r in runs[1:]} == {runs[0]["id"]}
    assert "verdict" in proc.stderr and "speed-up [95% CI]" in proc.stderr   # the table, beside the JSON
    # each plugin's contribution: with it vs without it, over the two pairs the plan measured
    speed = {r["id"]: r["comparison"]["speedup"] for r in runs}
    fuse, prune, both = (runs[i]["id"] for i in (1, 2, 3))
    contributions = {c["plugin"]: c for c in document["contributions"]}
    assert contributions["fuse"]["pairs"] == 2
    assert abs(contributions["fuse"]["speedup_factor"] - (speed[fuse] * speed[both] / speed[prune]) ** 0.5) < 1e-9
    assert "contribution of prune" in proc.stderr


def test_all_combinations_refuses_no_baseline(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workbench", "bench", "demo:digits-cnn", "-p", "fuse:method=conv_bn",
                           "--all-combinations", "--no-baseline", "--db", str(tmp_path / "x.sqlite")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "drop --no-baseline" in proc.stderr
