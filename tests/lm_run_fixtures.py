"""A causal language model's run stored the way the worker stores one (no worker process): its
``fidelity.top1_agreement`` is its next-token agreement (``worker.lm_fidelity``), beside
``lm_fidelity``. Used by the GUI's and the report's chart tests."""
from __future__ import annotations

import numpy as np

from workbench.results.stats import compute_latency_stats
from workbench.results.store import ResultsStore
from workbench.spec import PluginStep, RunSpec


def add_lm_run(store: ResultsStore, plugins=(), median_ms: float = 2.0, agreement: float = 1.0, seed: int = 0) -> int:
    spec = RunSpec(model="demo:tiny-lm", plugins=[PluginStep.parse(p) for p in plugins], scenario="forward")
    run_id = store.create_run(spec.to_dict(), spec.describe_chain(), "torch")
    ns = (np.random.default_rng(seed).lognormal(np.log(median_ms), 0.05, 400) * 1e6).astype(np.int64)
    store.add_latencies(run_id, "measure", 0, ns.tolist())
    store.finish_run(run_id, "done", {
        "latency": compute_latency_stats(ns, batch=1, seed=0).to_dict(), "threads": 1, "runtime_name": "torch",
        "fidelity": {"samples": 512, "cosine": 0.99, "max_abs_error": 0.1, "mean_abs_error": 0.01,
                     "top1_agreement": agreement, "accuracy": None, "nonfinite_outputs": 0},
        "lm_fidelity": {"perplexity": 20.0 / agreement, "reference_perplexity": 20.0,
                        "perplexity_delta_pct": 100 * (1 / agreement - 1), "next_token_agreement": agreement,
                        "kl_divergence": 0.01, "continuation_agreement": None, "eval_tokens": 512}})
    return run_id
