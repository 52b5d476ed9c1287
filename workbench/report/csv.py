"""CSV export: one row per run, a stable column set (``CSV_COLUMNS``, in this order).

Values are raw numbers in the unit the column name says (``_ms`` milliseconds, ``_bytes`` bytes,
``_j`` joules, ratios and fractions as plain numbers, e.g. ``top1_agreement`` 0.994); an empty
cell means "not measured / not applicable"; booleans are ``true``/``false``; lists are joined
with `` | ``; ``plugins`` is JSON. Floats are written with ``repr`` so they read back exactly.
New columns are only ever appended at the end; ``docs/examples/README.md`` lists them too.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from ..results.stats import NOISE_RULE

Getter = Callable[[dict, dict], Any]


def _m(key: str) -> Getter:
    return lambda run, report: run["metrics"].get(key)


def _lat(key: str) -> Getter:
    return lambda run, report: (run["latency"] or {}).get(key)


def _cmp(key: str) -> Getter:
    return lambda run, report: (run["comparison"] or {}).get(key)


def _ci(part: int, key: str, section: str) -> Getter:
    def get(run: dict, report: dict) -> Any:
        pair = (run[section] or {}).get(key)
        return pair[part] if pair else None
    return get


def _fid(key: str) -> Getter:
    return lambda run, report: (run["fidelity"] or {}).get(key)


def _ex(section: str, key: str) -> Getter:
    return lambda run, report: (((run.get("explain") or {}).get(section)) or {}).get(key)


# (column, description, getter)
CSV_COLUMNS: list[tuple[str, str, Getter]] = [
    ("id", "run id in the results store", lambda r, _: r["id"]),
    ("label", "run name, or '#id chain'", lambda r, _: r["label"]),
    ("status", "done | failed | cancelled | running", lambda r, _: r["status"]),
    ("model", "model file or demo:NAME", lambda r, _: r["model"]),
    ("chain", "plugin chain as given ('baseline' = no plugins)", lambda r, _: r["chain"]),
    ("plugins", "JSON list of {plugin, params} with every resolved parameter",
     lambda r, _: json.dumps([{"plugin": p["plugin"], "params": p["params"]} for p in r["plugins"]], sort_keys=True)),
    ("runtime", "torch | onnxruntime", lambda r, _: r["runtime"]),
    ("device", "cpu | cuda[:N]", lambda r, _: r["device"]),
    ("dtype", "model compute dtype", lambda r, _: r["dtype"]),
    ("batch", "batch size", lambda r, _: r["batch"]),
    ("threads", "intra-op CPU threads used", lambda r, _: r["threads"]),
    ("created_at", "ISO 8601 UTC", lambda r, _: r["created_at"]),
    ("is_baseline", "true when the run has no plugins", lambda r, _: r["is_baseline"]),
    ("baseline_id", "the baseline run the comparison columns refer to", lambda r, _: r["baseline_id"]),
    ("best", "true for the report's best variant", lambda r, _: r["best"]),
    ("eligible", "qualified for 'best' under the report's criterion", lambda r, _: r["eligible"]),
    ("pareto", "on the latency-vs-fidelity Pareto front of its model", lambda r, _: r["pareto"]),
    ("n", "timed iterations", _lat("n")),
    ("p50_ms", "median latency per batch", _lat("p50_ms")),
    ("p50_ci_low_ms", "95 % CI of the median, low", _ci(0, "p50_ci_ms", "latency")),
    ("p50_ci_high_ms", "95 % CI of the median, high", _ci(1, "p50_ci_ms", "latency")),
    ("p90_ms", "90th percentile (empty below 64 samples)", _lat("p90_ms")),
    ("p95_ms", "95th percentile (empty below 132 samples)", _lat("p95_ms")),
    ("p99_ms", "99th percentile (empty below 662 samples)", _lat("p99_ms")),
    ("mean_ms", "mean latency", _lat("mean_ms")),
    ("std_ms", "standard deviation", _lat("std_ms")),
    ("min_ms", "fastest iteration", _lat("min_ms")),
    ("max_ms", "slowest iteration", _lat("max_ms")),
    ("iqr_ms", "interquartile range", _lat("iqr_ms")),
    ("throughput_per_s", "samples per second (batch / median)", _lat("throughput_per_s")),
    ("speedup", "baseline p50 / this p50 (> 1 = faster)", _cmp("speedup")),
    ("speedup_ci_low", "95 % interval of the speed-up, low", _ci(0, "speedup_ci", "comparison")),
    ("speedup_ci_high", "95 % interval of the speed-up, high", _ci(1, "speedup_ci", "comparison")),
    ("speedup_significant", "false: inside the noise, " + NOISE_RULE, _cmp("speedup_significant")),
    ("parameters", "parameters of the measured (optimized) model",
     lambda r, _: (r["optimized_model_info"] or r["model_info"] or {}).get("parameters")),
    ("size_bytes", "serialized weights of the measured model", _m("size_bytes")),
    ("baseline_size_bytes", "serialized weights of the baseline model", _cmp("baseline_size_bytes")),
    ("size_ratio", "size_bytes / baseline_size_bytes", _cmp("size_ratio")),
    ("compression_efficiency", "1 - size_ratio", _cmp("compression_efficiency")),
    ("flops", "FLOPs per forward of the measured model",
     lambda r, _: (r["optimized_model_info"] or r["model_info"] or {}).get("flops")),
    ("top1_agreement", "fraction of samples with the unoptimized model's argmax", _fid("top1_agreement")),
    ("accuracy", "accuracy vs labels (when the data has labels)", _fid("accuracy")),
    ("reference_accuracy", "the unoptimized model's accuracy on the same data", _fid("reference_accuracy")),
    ("cosine", "mean cosine similarity of outputs to the unoptimized model's", _fid("cosine")),
    ("max_abs_error", "largest absolute output difference", _fid("max_abs_error")),
    ("host_peak_rss_bytes", "worker process peak resident memory",
     lambda r, _: r["memory"]["host_peak_rss_bytes"]),
    ("gpu_mem_peak_bytes", "GPU memory peak (worker process, else device)",
     lambda r, _: r["memory"]["gpu_proc_mem_peak_bytes"] or r["memory"]["gpu_mem_used_peak_bytes"]),
    ("gpu_power_mean_w", "mean GPU power in the timed window", lambda r, _: r["power"]["gpu_power_mean_w"]),
    ("energy_j_per_inference", "GPU energy per batch inference", lambda r, _: r["energy"]["joules_per_inference"]),
    ("energy_method", "how energy was measured, or why not",
     lambda r, _: r["energy"]["method"] or r["energy"]["note"]),
    ("error", "why the run failed or was cancelled", lambda r, _: (r["failure"] or {}).get("reason")),
    ("warnings", "noise, sampling and telemetry warnings", lambda r, _: r["warnings"]),
    ("flags", "problems found in the outputs (NaN/Inf...)", lambda r, _: r["flags"]),
    ("command", "the workbench bench command that reproduces the run", lambda r, _: r["command"]),
    ("baseline_runtime", "the runtime of the baseline run (the model's own: torch, or onnxruntime for .onnx)",
     _cmp("baseline_runtime")),
    ("runtime_baseline_id", "cross-runtime chains: the fp32 model on this run's runtime (onnx_export alone)",
     lambda r, _: r.get("runtime_baseline_id")),
    ("runtime_speedup", "runtime_baseline p50 / this p50: what the steps after the conversion did",
     _cmp("runtime_speedup")),
    ("runtime_speedup_ci_low", "95 % interval of runtime_speedup, low", _ci(0, "runtime_speedup_ci", "comparison")),
    ("runtime_speedup_ci_high", "95 % interval of runtime_speedup, high", _ci(1, "runtime_speedup_ci", "comparison")),
    ("runtime_speedup_significant", "false: inside the noise", _cmp("runtime_speedup_significant")),
    ("profile_total_us", "profiled op time per iteration, microseconds (--profile runs)", _ex("profile", "total_us")),
    ("profile_top_op", "the op with the most self time in the profile",
     lambda r, _: ((((r.get("explain") or {}).get("profile") or {}).get("top_ops") or [{}])[0]).get("op")),
    ("profile_explanation", "why the run is faster/slower than its baseline, from both profiles",
     _ex("profile_diff", "sentence")),
    ("layers_most_drift", "the layer whose output drifted most from the unoptimized model's",
     lambda r, _: ((((r.get("explain") or {}).get("layers") or {}).get("rows") or [{}])[0]).get("name")),
    ("layers_max_relative_error", "that layer's output relative error",
     lambda r, _: ((((r.get("explain") or {}).get("layers") or {}).get("rows") or [{}])[0]).get("relative_error")),
    ("ttft_ms", "generate runs: time to first token", _ex("generation", "ttft_ms")),
    ("prefill_speedup", "generate runs: baseline prefill median / this one (speedup is per decoded token)",
     _cmp("prefill_speedup")),
    ("decode_tokens_per_s", "generate runs: decode throughput, tokens/s", _ex("generation", "decode_tokens_per_s")),
    ("token_p50_ms", "generate runs: median per-token decode latency", _ex("generation", "token_p50_ms")),
    ("token_p99_ms", "generate runs: 99th-percentile per-token decode latency", _ex("generation", "token_p99_ms")),
    ("kv_cache_bytes", "generate runs: KV-cache size", _ex("generation", "kv_cache_bytes")),
    ("perplexity", "language models: perplexity on held-out text", _ex("lm_fidelity", "perplexity")),
    ("reference_perplexity", "the unoptimized model's perplexity on the same text",
     _ex("lm_fidelity", "reference_perplexity")),
    ("perplexity_delta_pct", "100 × (perplexity − reference) / reference", _ex("lm_fidelity", "perplexity_delta_pct")),
    ("next_token_agreement", "fraction of positions with the unoptimized model's next token",
     _ex("lm_fidelity", "next_token_agreement")),
]
COLUMN_NAMES = [name for name, _, _ in CSV_COLUMNS]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " | ".join(str(v) for v in value)
    return str(value)


def rows(report: dict) -> list[dict[str, str]]:
    return [{name: cell(get(run, report)) for name, _, get in CSV_COLUMNS} for run in report["runs"]]


def render_csv(report: dict) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMN_NAMES, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows(report))
    return buffer.getvalue().encode("utf-8")
