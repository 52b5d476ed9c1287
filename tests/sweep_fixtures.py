"""A stand-in for ``engine.session.Session`` in sweep tests: it stores real runs in the real store (the
records, latencies and results the analysis reads), but computes them from the spec instead of
starting a worker, so a sweep of a dozen points costs milliseconds.

The "model": latency per call = (1 ms + 0.05 ms x batch) x (1 - prune amount) / (1.25 if fused),
times a per-process factor (the run-to-run noise, ``process_noise``); top-1 agreement falls with
the pruning amount (1 - amount^2) and fusing leaves it unchanged.
"""
from __future__ import annotations

import threading

import numpy as np

from workbench.results.stats import compute_latency_stats
from workbench.results.store import ResultsStore
from workbench.spec import RunSpec


def true_latency_ms(spec: RunSpec) -> float:
    ms = 1.0 + 0.05 * (spec.batch or 1)
    for step in spec.plugins:
        if step.name == "prune":
            ms *= 1.0 - float(step.params.get("amount", 0.5))
        if step.name == "fuse":
            ms /= 1.25
    return ms


def true_fidelity(spec: RunSpec) -> float:
    amount = next((float(s.params.get("amount", 0.5)) for s in spec.plugins if s.name == "prune"), 0.0)
    return 1.0 - amount ** 2


class FakeSession:
    """``run(spec, on_event, cancel)`` like ``Session.run``. ``fail_when(spec)`` -> a reason makes that
    run fail; ``stop_after`` sets the caller's cancel event during that many-th run (a Ctrl-C)."""

    def __init__(self, store: ResultsStore, process_noise: float = 0.01, fail_when=None, stop_after: int | None = None,
                 samples: int = 60, refuse_variant=None) -> None:
        self.store = store
        self.rng = np.random.default_rng(0)
        self.process_noise = process_noise
        self.fail_when = fail_when or (lambda spec: None)
        self.stop_after = stop_after
        self.samples = samples
        self.ran: list[RunSpec] = []
        self.checked: list[list[RunSpec]] = []      # check_variants of each run, in order
        self.refuse_variant = refuse_variant or (lambda spec: None)   # what a baseline's worker would refuse

    def run(self, spec: RunSpec, on_event=None, cancel: threading.Event | None = None, check_variants=(),
            required=None):
        self.ran.append(spec)
        self.checked.append(list(check_variants))
        run_id = self.store.create_run(spec.to_dict(), spec.describe_chain(), spec.resolved_runtime(),
                                       {"host": {"cpu_model": "fake"}})
        if self.stop_after is not None and len(self.ran) >= self.stop_after and cancel is not None:
            cancel.set()
            self.store.finish_run(run_id, "cancelled", {"partial": True}, "cancelled by the user (Ctrl-C)")
            return self.store.get_run(run_id)
        reason = self.fail_when(spec)
        if reason:
            self.store.finish_run(run_id, "failed", {"partial": True}, reason)
            return self.store.get_run(run_id)
        factor = float(np.exp(self.rng.normal(0.0, self.process_noise))) if self.process_noise else 1.0
        center_ns = true_latency_ms(spec) * factor * 1e6
        values = (center_ns * (1 + 0.002 * self.rng.standard_normal(self.samples))).astype(np.int64)
        self.store.add_latencies(run_id, "measure", 0, values.tolist())
        latency = compute_latency_stats(values, batch=spec.batch or 1).to_dict()
        fidelity = true_fidelity(spec)
        result = {"latency": latency, "threads": spec.threads or 1,
                  "fidelity": {"top1_agreement": fidelity, "cosine": fidelity, "accuracy": 0.99 * fidelity,
                               "reference_accuracy": 0.99}}
        self.store.finish_run(run_id, "done", result)
        record = self.store.get_run(run_id)
        record.variant_refusals = [self.refuse_variant(v) for v in check_variants]
        return record


def specs_run(session: FakeSession) -> list[str]:
    """What the fake session ran, as short labels: 'b1 baseline', 'b8 prune=0.3'."""
    out = []
    for spec in session.ran:
        chain = ",".join(f"{s.name}={s.params.get('amount', '')}".rstrip("=") for s in spec.plugins) or "baseline"
        out.append(f"b{spec.batch or 1} {chain}")
    return out
