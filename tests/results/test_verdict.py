"""The one verdict (workbench.results.verdict): speed-up and fidelity judged together, so a model
that got faster and lost its accuracy is a failure, and every face shows the same words."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.errors import SpecError
from workbench.results.verdict import parse_min_fidelity, verdict_for


def row(**changes) -> dict:
    base = {"status": "done", "chain": "prune", "baseline_id": 1, "speedup": 2.6, "speedup_ci": (2.5, 2.7),
            "speedup_significant": True, "top1_agreement": 1.0, "cosine": 1.0, "accuracy": 0.997,
            "baseline_accuracy": 0.997, "nonfinite_outputs": 0}
    return {**base, **changes}


def test_faster_with_unchanged_outputs_is_a_win():
    verdict = verdict_for(row())
    assert (verdict.level, verdict.text) == ("win", "2.60× faster, outputs unchanged")


def test_a_ruined_model_is_a_loss_however_fast():
    verdict = verdict_for(row(speedup=3.19, top1_agreement=0.10, cosine=0.3, accuracy=0.100))
    assert verdict.level == "loss" and verdict.fidelity_ok is False
    assert verdict.text == "3.19× faster but accuracy −89.7 pts"


def test_small_fidelity_cost_within_the_gate_is_named_and_still_a_win():
    verdict = verdict_for(row(speedup=1.65, top1_agreement=0.995, cosine=0.999, accuracy=0.994))
    assert verdict.level == "win" and verdict.text == "1.65× faster, accuracy −0.3 pts"


def test_without_labels_the_gated_figure_is_named():
    verdict = verdict_for(row(accuracy=None, baseline_accuracy=None, top1_agreement=0.9, cosine=0.95))
    assert verdict.level == "loss" and verdict.text == "2.60× faster but top-1 agreement 90.0 % (gate 99 %)"
    embedding = verdict_for(row(accuracy=None, baseline_accuracy=None, top1_agreement=None, cosine=0.998))
    assert embedding.level == "win" and "cosine 0.9980" in embedding.text


def test_inside_the_noise_is_neither_win_nor_loss_and_slower_is_a_loss():
    noisy = verdict_for(row(speedup=1.01, speedup_ci=(0.99, 1.03), speedup_significant=False))
    assert noisy.level == "noise" and noisy.text.startswith("inside the noise (1.01×)")
    slower = verdict_for(row(speedup=0.77, speedup_ci=(0.75, 0.79)))
    assert slower.level == "loss" and slower.text == "0.77× (slower), outputs unchanged"


def test_nan_outputs_fail_the_gate_and_the_gate_is_settable():
    assert verdict_for(row(nonfinite_outputs=12)).level == "loss"
    lenient = verdict_for(row(top1_agreement=0.9, cosine=0.95, accuracy=None, baseline_accuracy=None), 0.85)
    assert lenient.level == "win"
    assert verdict_for(row(status="failed")).level == "failed"


@pytest.mark.parametrize("text, value", [("0.99", 0.99), ("99", 0.99), ("99%", 0.99), ("0", 0.0)])
def test_gate_parsing(text, value):
    assert parse_min_fidelity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["nan", "abc", "-1", "150%"])
def test_bad_gates_are_refused(text):
    with pytest.raises(SpecError):
        parse_min_fidelity(text)


def test_cli_shows_a_collapsed_pruned_cnn_as_a_failure(tmp_path):
    """The issue's case, for real: structured pruning of half the demo CNN's channels without
    fine-tuning is ~2-3x faster and ruins the classifier; bench, compare and JSON all say so."""
    db = tmp_path / "runs.sqlite"
    quick = ["--iters", "20", "--duration", "0.2", "--threads", "1", "--db", str(db)]
    bench = subprocess.run([sys.executable, "-m", "workbench", "bench", "demo:digits-cnn", "-p",
                            "prune:method=structured,amount=0.5,finetune_epochs=0", *quick, "--json", "-"],
                           capture_output=True, text=True, timeout=600)
    assert bench.returncode == 0, bench.stderr
    record = json.loads(bench.stdout)
    verdict = record["comparison"]["verdict"]
    assert verdict["level"] == "loss" and verdict["fidelity_ok"] is False
    assert "but accuracy −" in verdict["text"]
    assert "verdict   ✗" in bench.stderr and "but accuracy −" in bench.stderr
    table = subprocess.run([sys.executable, "-m", "workbench", "compare", str(record["id"] - 1), str(record["id"]),
                            "--db", str(db)], capture_output=True, text=True, timeout=120)
    assert "✗" in table.stdout and "below the fidelity gate" in table.stdout
    lenient = subprocess.run([sys.executable, "-m", "workbench", "compare", str(record["id"]), "--min-fidelity", "0",
                              "--db", str(db), "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(lenient.stdout)[0]["verdict"]["fidelity_ok"] is True
