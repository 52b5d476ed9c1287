"""The columns of the Results table: what each shows, how it sorts, its tooltip. No Qt here: the
table model (``table.py``) reads these."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from ... import format as fmt
from ...results.compare import verdict_text
from ...results.stats import NOISE_RULE
from ...results.store import RunRecord
from ...results.verdict import BASELINE, FAILED, LOSS, NOISE, WIN, default_gate, fidelity_score


def energy_text(joules: float | None) -> str:
    if joules is None:
        return "—"
    if joules < 1e-3:
        return f"{joules * 1e6:.3g} µJ"
    if joules < 1:
        return f"{joules * 1e3:.3g} mJ"
    return f"{joules:.3g} J"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def model_name(model: str | None) -> str:
    if not model:
        return "—"
    return model if model.startswith("demo:") else os.path.basename(model.rstrip("/")) or model


def _throughput(value: float | None) -> str:
    return "—" if value is None else f"{fmt.count(value)}/s"


def _perplexity_text(row: dict) -> str:
    ppl = row.get("perplexity")
    if ppl is None:
        return "—"
    delta = row.get("perplexity_delta_pct")
    return f"{ppl:.4g}" + (f" ({delta:+.1f} %)" if delta is not None and row["chain"] != "baseline" else "")


# Sorting the verdict column: wins first, then noise, losses, baselines, failures.
VERDICT_RANK = {WIN: 0, NOISE: 1, LOSS: 2, BASELINE: 3, FAILED: 4}


def is_baseline(row: dict) -> bool:
    return row["chain"] == "baseline" and row["status"] == "done"


# Short runtime names for the speed-up cell ("2.94× vs ORT fp32"); the tooltip gives the full ones.
RUNTIME_SHORT = {"onnxruntime": "ORT", "torch": "torch"}


def runtime_short(runtime: str | None) -> str:
    return RUNTIME_SHORT.get(runtime or "", runtime or "?")


def speedup_text(row: dict) -> str:
    """The speed-up alone ("3.19×"): its interval and the verdict are in the tooltip and the next column.
    A cross-runtime chain (a torch model measured on ONNX Runtime) shows both ratios, each named by its
    reference: "3.06× vs torch · 2.94× vs ORT fp32" (the original; the fp32 model on the same runtime)."""
    runtime_ratio = row.get("runtime_speedup")
    if row["speedup"] is None and runtime_ratio is None:
        return "baseline" if is_baseline(row) else "—"
    parts = []
    if row["speedup"] is not None:
        parts.append(fmt.ratio(row["speedup"]) + (f" vs {runtime_short(row.get('baseline_runtime'))}"
                                                  if row.get("cross_runtime") and row.get("baseline_runtime") else ""))
    if runtime_ratio is not None:
        parts.append(f"{fmt.ratio(runtime_ratio)} vs {runtime_short(row.get('runtime'))} fp32")
    return " · ".join(parts)


def _ratio_line(ratio: float, ci, significant: bool | None, reference: str) -> str:
    noise = ("outside the noise: the interval clears 1× and the run-to-run band"
             if significant else f"inside the noise: {NOISE_RULE}")
    interval = f", 95 % interval [{ci[0]:.3f}×, {ci[1]:.3f}×]" if ci else ""
    return f"speed-up {ratio:.3f}× vs {reference}{interval}\n{noise}"


def verdict_cell(row: dict) -> str:
    """The core's verdict with its mark (✓ win, ✗ loss, ~ noise), as the CLI prints it."""
    verdict = row.get("verdict")
    return verdict_text(row) if verdict else "—"


def gate_text(row: dict) -> str:
    """What the verdict gated the outputs on, and where this run stands."""
    kind, score = fidelity_score(row)
    gate = f"{100 * default_gate(row):g} %"
    if kind is None:
        return f"fidelity gate: top-1 agreement (or cosine) ≥ {gate}; not measured for this run"
    ok = (row.get("verdict") or {}).get("fidelity_ok")
    where = "passes" if ok else "below the gate" if ok is False else "not judged"
    return f"fidelity gate: {kind} ≥ {gate}; this run {100 * score:.1f} % ({where})"


def verdict_tip(row: dict) -> str:
    """The full verdict, the speed-up's interval and the fidelity gate, for the speed-up and verdict cells."""
    lines = [verdict_cell(row)]
    cross = row.get("cross_runtime") and row.get("baseline_runtime")
    if row["speedup"] is not None and row.get("speedup_ci"):
        reference = f"baseline #{row['baseline_id']}" + (f" (the original on {row['baseline_runtime']})"
                                                         if cross else "")
        lines.append(_ratio_line(row["speedup"], row["speedup_ci"], row["speedup_significant"], reference))
    if row.get("prefill_speedup") is not None:      # a generate run: the speed-up above is per decoded token
        ci = row.get("prefill_speedup_ci")
        lines.append(f"that speed-up is per decoded token; prefill (time to first token): "
                     f"{row['prefill_speedup']:.3f}×" + (f", 95 % interval [{ci[0]:.3f}×, {ci[1]:.3f}×]" if ci else ""))
    if row.get("runtime_speedup") is not None:      # what the steps after the conversion did
        lines.append(_ratio_line(row["runtime_speedup"], row.get("runtime_speedup_ci"),
                                 row.get("runtime_speedup_significant"),
                                 f"#{row['runtime_baseline_id']} (the fp32 model on {row['runtime']}, same runtime)"))
    if row["speedup"] is None and is_baseline(row):
        lines.append("plugin-free run: the baseline of runs with the same model, runtime, device and batch")
    lines.append(gate_text(row))
    if (row.get("verdict") or {}).get("level") == LOSS and (row.get("verdict") or {}).get("fidelity_ok") is False:
        lines.append("a variant that changed the outputs this much is not a win at any speed")
    return "\n".join(lines)


def _verdict_sort(row: dict) -> tuple:
    level = (row.get("verdict") or {}).get("level", FAILED)
    return (VERDICT_RANK.get(level, len(VERDICT_RANK)), -(row["speedup"] or 0.0))


@dataclass
class Column:
    key: str
    header: str
    text: Callable[[dict, RunRecord], str]
    sort: Callable[[dict, RunRecord], Any]
    numeric: bool = False
    tip: str = ""
    max_width: int | None = None    # wider text is elided (the tooltip or a wider column shows it)


def _c(key: str, header: str, text: Callable, sort: Callable, numeric: bool = False, tip: str = "",
       max_width: int | None = None) -> Column:
    return Column(key, header, text, sort, numeric, tip, max_width)


COLUMNS: list[Column] = [
    _c("id", "ID", lambda r, run: str(r["id"]), lambda r, run: r["id"], True),
    _c("name", "Name", lambda r, run: r["name"] or "", lambda r, run: (r["name"] or "").lower(),
       tip="Double-click or F2 to rename", max_width=140),
    _c("model", "Model", lambda r, run: model_name(r["model"]), lambda r, run: model_name(r["model"]).lower(),
       max_width=160),
    _c("chain", "Chain", lambda r, run: r["chain"], lambda r, run: r["chain"], max_width=150),
    _c("status", "Status", lambda r, run: r["status"], lambda r, run: r["status"]),
    _c("device", "Device", lambda r, run: r["device"] or "—", lambda r, run: r["device"] or ""),
    _c("runtime", "Runtime", lambda r, run: r["runtime"] or "—", lambda r, run: r["runtime"] or ""),
    _c("duration", "Duration",
       lambda r, run: _duration(run.finished_at - run.created_at if run.finished_at else None),
       lambda r, run: (run.finished_at - run.created_at) if run.finished_at else None, True,
       "Wall-clock time of the whole run (load, optimize, measure)"),
    _c("p50", "p50", lambda r, run: fmt.ms(r["p50_ms"]) + (" (partial)" if r.get("partial") else ""),
       lambda r, run: r["p50_ms"], True,
       "Median latency per iteration (one batch); 'partial': of the iterations timed before the run stopped"),
    _c("p99", "p99", lambda r, run: fmt.ms(r["p99_ms"]), lambda r, run: r["p99_ms"], True,
       "99th percentile latency (reported only with ≥ 662 iterations)"),
    _c("throughput", "Throughput", lambda r, run: _throughput(r["throughput"]), lambda r, run: r["throughput"], True,
       "Samples per second: batch / median latency"),
    _c("speedup", "Speed-up", lambda r, run: speedup_text(r), lambda r, run: r["speedup"], True,
       "Baseline median / this run's median. Coloured by the verdict: green a win, red a loss "
       "(slower, or outputs below the fidelity gate however fast), grey inside the noise"),
    _c("verdict", "Verdict", lambda r, run: verdict_cell(r), lambda r, run: _verdict_sort(r),
       tip="The speed-up and the fidelity judged together (the same verdict as the CLI and the reports)",
       max_width=260),
    _c("rss", "Peak RSS", lambda r, run: fmt.nbytes(r["peak_rss_bytes"]), lambda r, run: r["peak_rss_bytes"], True,
       "Peak resident memory of the worker process"),
    _c("gpu_mem", "GPU memory", lambda r, run: fmt.nbytes(r["gpu_mem_peak_bytes"]),
       lambda r, run: r["gpu_mem_peak_bytes"], True, "Peak GPU memory of the worker (device-wide if not listed)"),
    _c("power", "Power", lambda r, run: fmt.num(r["power_w"], ".3g", " W"), lambda r, run: r["power_w"], True,
       "Mean GPU power during the timed window"),
    _c("energy", "Energy/inference", lambda r, run: energy_text(r["energy_j_per_inference"]),
       lambda r, run: r["energy_j_per_inference"], True, "GPU energy per iteration (one batch)"),
    _c("size", "Size", lambda r, run: fmt.nbytes(r["size_bytes"])
       + (f" ({fmt.ratio(r['size_ratio'])})" if r.get("size_ratio") is not None and r["chain"] != "baseline" else ""),
       lambda r, run: r["size_bytes"], True, "Serialized weights (ratio vs the unoptimized model)"),
    _c("top1", "Agreement", lambda r, run: fmt.pct(r["top1_agreement"]), lambda r, run: r["top1_agreement"],
       True, "Top-1 agreement: the fraction of samples whose predicted class matches the unoptimized model's; "
       "for a language model, the next-token agreement (the fraction of positions where it predicts the "
       "unoptimized model's token)"),
    _c("accuracy", "Accuracy", lambda r, run: fmt.pct(r["accuracy"]), lambda r, run: r["accuracy"], True,
       "Accuracy on the labelled evaluation data, when the data has labels"),
    _c("cosine", "Cosine", lambda r, run: fmt.num(r.get("cosine"), ".4f"), lambda r, run: r.get("cosine"), True,
       "Cosine similarity of the outputs to the unoptimized model's (the gate when there are no classes)"),
    # Language models (generate scenario): time to first token, decode speed, perplexity.
    _c("ttft", "TTFT", lambda r, run: fmt.ms(r.get("ttft_ms")), lambda r, run: r.get("ttft_ms"), True,
       "Time to first token: the prefill of the prompt (generate scenario)"),
    _c("tok_s", "Decode tok/s", lambda r, run: fmt.num(r.get("decode_tok_s"), ".4g"),
       lambda r, run: r.get("decode_tok_s"), True, "Tokens per second while decoding (KV cache on)"),
    _c("ppl", "Perplexity", lambda r, run: _perplexity_text(r), lambda r, run: r.get("perplexity"), True,
       "Perplexity on held-out text (Δ vs the unoptimized model); lower is better"),
    _c("next_tok", "Next-token", lambda r, run: fmt.pct(r.get("next_token_agreement")),
       lambda r, run: r.get("next_token_agreement"), True,
       "Next-token agreement: the fraction of positions where the variant predicts the unoptimized model's token"),
    _c("tags", "Tags", lambda r, run: ", ".join(r["tags"] or ()), lambda r, run: ", ".join(r["tags"] or ()),
       max_width=160),
]
# What tells the truth at a glance comes first and fits a narrow table (speed-up, its verdict, what it
# cost in fidelity); the numbers behind it follow, context columns last.
PRIORITY = ("id", "chain", "speedup", "verdict", "top1", "accuracy")
_ORDER = PRIORITY + ("ppl", "next_tok", "p50", "p99", "throughput", "ttft", "tok_s", "size", "name", "status", "cosine", "rss", "gpu_mem", "power",
                     "energy", "model", "device", "runtime", "duration", "tags")
COLUMNS.sort(key=lambda c: _ORDER.index(c.key) if c.key in _ORDER else len(_ORDER))
COLUMN_INDEX = {c.key: i for i, c in enumerate(COLUMNS)}
# Shown once some run has the figure (comparison-row field), hidden otherwise.
LANGUAGE_MODEL_COLUMNS = {"ttft": "ttft_ms", "tok_s": "decode_tok_s", "ppl": "perplexity",
                          "next_tok": "next_token_agreement"}
