"""Why a run is faster, slower or different: the report's "explain" section of each run.

``attach_explanations`` adds ``run["explain"]`` to every run of a report, read from what the run
stored (``results.explain``: its per-op profile, its per-layer comparison, its sensitivity scans)
and from its language-model figures (``result["generation"]``, ``result["lm_fidelity"]``), so a
report explains a result the way the GUI's Profile and Layers tabs do. The rows here are shared
by the HTML and PDF renderers (``explain_render``, which also draws the drift chart); the JSON is the dict itself
(``docs/report.schema.json``, ``$defs/explain``).
"""
from __future__ import annotations

from typing import Any

from .. import format as fmt
from ..results.explain import stored_layers, stored_profile, stored_scans
from ..results.profile_diff import ProfileMismatch, check_comparable, diff_profiles, explain_diff, top_ops

TOP_OPS = 15            # ops listed per profile
DIFF_OPS = 10           # changed ops listed per profile diff
TOP_LAYERS = 15         # the most-drifted layers listed (and charted) per run
SCAN_LAYERS = 5         # the most sensitive layers listed per stored scan
SHAPES_CHARS = 60


def attach_explanations(store: Any, records: list, runs: list[dict]) -> None:
    """``run["explain"]`` for each report run (``records`` in the same order as ``runs``)."""
    for record, run in zip(records, runs):
        baseline = None
        if run.get("baseline_id") is not None:
            try:
                baseline = store.get_run(run["baseline_id"])
            except Exception:  # noqa: BLE001 - a deleted baseline only loses the diff
                baseline = None
        run["explain"] = explain_entry(store, record, baseline)


def explain_entry(store: Any, record: Any, baseline: Any | None) -> dict:
    result = (record.result or {}) if record.status == "done" else {}
    return {"profile": _profile(record), "profile_diff": _profile_diff(record, baseline),
            "layers": _layers(store, record) if record.status == "done" else None,
            "scans": _scans(store, record.id), "generation": _generation(result.get("generation")),
            "lm_fidelity": _lm(result.get("lm_fidelity"))}


def has_explanation(run: dict) -> bool:
    e = run.get("explain") or {}
    return any(e.get(k) for k in ("profile", "profile_diff", "layers", "scans", "generation", "lm_fidelity"))


# -- the data model ------------------------------------------------------------------------------
def _profile(record: Any) -> dict | None:
    profile = stored_profile(record)
    if profile is None:
        return None
    if profile.get("error"):
        return {"error": str(profile["error"]), "source": None, "iterations": None, "time_basis": None,
                "total_us": None, "ops_total": None, "top_ops": [], "notes": []}
    ops = [{"op": str(r.get("op")), "time_us": r.get("time_us"), "share": r.get("share"), "calls": r.get("calls"),
            "shapes": _shapes(r)} for r in top_ops(profile, TOP_OPS)]
    return {"error": None, "source": profile.get("source"), "iterations": profile.get("iterations"),
            "time_basis": profile.get("time_basis"), "total_us": profile.get("total_us"),
            "ops_total": profile.get("ops_total", len(profile.get("ops") or [])), "top_ops": ops,
            "notes": [str(n) for n in profile.get("notes") or []]}


def _shapes(row: dict) -> str | None:
    text = ((row.get("shapes") or [{}])[0] or {}).get("shapes")
    if not text:
        return None
    return text if len(text) <= SHAPES_CHARS else text[:SHAPES_CHARS - 1] + "…"


def _profile_diff(record: Any, baseline: Any | None) -> dict | None:
    if baseline is None or baseline.id == record.id:
        return None
    after, before = stored_profile(record), stored_profile(baseline)
    if not after or not before or after.get("error") or before.get("error"):
        return None
    try:
        notes = check_comparable(baseline, record)
    except ProfileMismatch:
        return None
    diff = diff_profiles(before, after)
    sentence = explain_diff(diff, f"baseline #{baseline.id}", f"#{record.id}")
    timed = ((baseline.result or {}).get("latency") or {}).get("median_ms"), \
        ((record.result or {}).get("latency") or {}).get("median_ms")
    if all(timed) and diff["change_us"] and (timed[1] > timed[0]) != (diff["change_us"] > 0):
        notes.append("the timed p50 and the profile disagree on which run is faster: the profile covers a few "
                     "iterations only (and the profiler's own overhead); trust the timed figures")
    moved = [r for r in diff["ops"] if r["group"] != "unchanged"][:DIFF_OPS]
    return {"baseline_id": baseline.id, "sentence": sentence, "ratio": diff["ratio"], "change_us": diff["change_us"],
            "total_before_us": diff["total_before_us"], "total_after_us": diff["total_after_us"],
            "ops": [{k: r[k] for k in ("op", "group", "before_us", "after_us", "change_us", "share_of_change",
                                       "calls_before", "calls_after")} for r in moved],
            "groups": diff["groups"], "notes": notes}


def _layers(store: Any, record: Any) -> dict | None:
    layers = stored_layers(store, record)
    if not layers:
        return None
    if "rows" not in layers:
        why = layers.get("unavailable") or layers.get("error") or "no per-layer rows stored"
        return {"unavailable": str(why), "samples": None, "inputs": None, "layers_total": 0, "rows": [],
                "notes": [str(n) for n in layers.get("notes") or []]}
    rows = [r for r in layers.get("rows") or [] if isinstance(r, dict) and (r.get("leaf") or r.get("weight"))]
    ranked = sorted(rows, key=_drift_rank)[:TOP_LAYERS]
    return {"unavailable": None, "samples": layers.get("samples"), "inputs": layers.get("inputs"),
            "layers_total": len(rows), "rows": [_layer_row(r) for r in ranked],
            "notes": [str(n) for n in layers.get("notes") or []]}


def _drift_rank(row: dict) -> tuple:
    """Largest output drift first, then changed shapes, then the largest weight change."""
    drift = row.get("drift") or {}
    rel = drift.get("relative_error")
    weight = (row.get("weight") or {}).get("relative")
    if rel is not None:
        return (0, -rel, -(weight or 0.0))
    if "shape_changed" in drift:
        return (1, 0.0, -(weight or 0.0))
    return (2, 0.0, -(weight or 0.0))


def _layer_row(row: dict) -> dict:
    drift = row.get("drift") or {}
    weight = row.get("weight") or {}
    shape = drift.get("shape_changed")
    return {"name": str(row.get("name")), "type": row.get("type_after") or row.get("type"),
            "relative_error": drift.get("relative_error"), "cosine": drift.get("cosine"),
            "shape_changed": " → ".join("×".join(map(str, s)) for s in shape) if shape else None,
            "weight_kind": weight.get("kind"), "weight_relative": weight.get("relative"),
            "weight_mean_abs": weight.get("mean_abs"), "weight_max_abs": weight.get("max_abs"),
            "params_before": row.get("params_before"), "params_after": row.get("params_after")}


def _scans(store: Any, run_id: int) -> list[dict]:
    out = []
    for saved in stored_scans(store, run_id):
        scan = saved.get("scan") or {}
        by_name = {layer.get("name"): layer for layer in scan.get("layers") or [] if isinstance(layer, dict)}
        ranking = [name for name in scan.get("ranking") or [] if name in by_name][:SCAN_LAYERS]
        suggestion = scan.get("suggestion") or {}
        out.append({"step": str(saved.get("step")), "metric": scan.get("metric"),
                    "all_layers_drop": suggestion.get("all_layers_drop"),
                    "layers": [{"name": str(n), "drop": by_name[n].get("drop"),
                                "output_error": by_name[n].get("output_error")} for n in ranking],
                    "suggested_skip": [str(s) for s in suggestion.get("skip") or []],
                    "suggested_drop": suggestion.get("drop")})
    return out


def _generation(gen: dict | None) -> dict | None:
    if not isinstance(gen, dict) or not gen:
        return None
    decode, prefill = gen.get("decode_token") or {}, gen.get("prefill") or {}
    return {"prompt_tokens": gen.get("prompt_tokens"), "new_tokens": gen.get("new_tokens"), "batch": gen.get("batch"),
            "ttft_ms": gen.get("ttft_ms"), "prefill_p50_ms": prefill.get("median_ms"),
            "decode_tokens_per_s": gen.get("decode_tokens_per_s"), "e2e_tokens_per_s": gen.get("e2e_tokens_per_s"),
            "token_p50_ms": decode.get("median_ms"), "token_p90_ms": decode.get("p90_ms"),
            "token_p99_ms": decode.get("p99_ms"), "kv_cache_bytes": gen.get("kv_cache_bytes"),
            "peak_memory_bytes": gen.get("peak_memory_bytes"), "energy_j_per_token": gen.get("energy_j_per_token")}


def _lm(lm: dict | None) -> dict | None:
    if not isinstance(lm, dict) or not lm:
        return None
    return {k: lm.get(k) for k in ("perplexity", "reference_perplexity", "perplexity_delta_pct",
                                   "next_token_agreement", "kl_divergence", "continuation_agreement", "eval_tokens")}


# -- words and numbers (HTML and PDF lay these out) -------------------------------------------------
def us(value: float | None) -> str:
    if value is None:
        return "—"
    return ("−" if value < 0 else "") + fmt.ms(abs(value) / 1000)


def calls_text(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def profile_caption(p: dict) -> str:
    if p["error"]:
        return f"The per-op profile failed: {p['error']}"
    shown = len(p["top_ops"])
    more = f" (the {shown} costliest of {p['ops_total']})" if (p["ops_total"] or 0) > shown else ""
    return (f"{p['source']}, {p['iterations']} iterations after timing ({p['time_basis']} time): "
            f"{us(p['total_us'])} of op time per iteration{more}.")


def profile_table(p: dict) -> tuple[list[str], list[list[str]]]:
    head = ["op", "self time / iter", "% of total", "calls / iter", "input shapes (costliest)"]
    rows = [[r["op"], us(r["time_us"]), fmt.pct(r["share"]), calls_text(r["calls"]), r["shapes"] or ""]
            for r in p["top_ops"]]
    return head, rows


def diff_table(d: dict, run_id: int) -> tuple[list[str], list[list[str]]]:
    head = ["change", "op", f"#{d['baseline_id']}", f"#{run_id}", "Δ / iter", "of change", "calls / iter"]
    rows = [[r["group"], r["op"], us(r["before_us"]), us(r["after_us"]),
             ("+" if r["change_us"] > 0 else "") + us(r["change_us"]), fmt.pct(r["share_of_change"], 0),
             f"{calls_text(r['calls_before'])} → {calls_text(r['calls_after'])}"] for r in d["ops"]]
    return head, rows


def weight_text(row: dict) -> str:
    kind = row["weight_kind"]
    if not kind:
        return "—"
    if kind == "quantized":
        return (f"quantized: |w − q(w)| {fmt.num(row['weight_mean_abs'], '.2g')} mean / "
                f"{fmt.num(row['weight_max_abs'], '.2g')} max; ‖w − q(w)‖/‖w‖ {fmt.num(row['weight_relative'], '.3g')}")
    return f"{kind}: ‖Δw‖/‖w‖ {fmt.num(row['weight_relative'], '.3g')}"


def params_text(before: Any, after: Any) -> str:
    if before is None and after is None:
        return "—"
    return fmt.count(before) if before == after else f"{fmt.count(before)} → {fmt.count(after)}"


def layers_caption(layers: dict) -> str:
    if layers["unavailable"]:
        return f"No per-layer comparison: {layers['unavailable']}"
    shown = len(layers["rows"])
    return (f"Each layer's output vs the unoptimized model's on {layers['samples']} samples "
            f"({layers['inputs'] or 'the run inputs'}): the {shown} most-drifted of {layers['layers_total']} layers. "
            "Weights: quantized = ε_q = |w − q(w)| (mean, max) and ‖w − q(w)‖/‖w‖; pruned = ‖Δw‖/‖w‖.")


def layers_table(layers: dict) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "type", "output rel. error", "cosine", "weight error", "params before → after"]
    rows = [[r["name"], r["type"] or "", r["shape_changed"] and f"shape {r['shape_changed']}"
             or fmt.num(r["relative_error"], ".3e"), fmt.num(r["cosine"], ".5f"), weight_text(r),
             params_text(r["params_before"], r["params_after"])] for r in layers["rows"]]
    return head, rows


def scan_lines(scans: list[dict]) -> list[str]:
    lines = []
    for s in scans:
        ranked = ", ".join(f"{layer['name']} ({fmt.num(layer['drop'], '.3g')})" for layer in s["layers"]) or "none"
        line = f"sensitivity scan {s['step']} ({s['metric']} drop per layer): most sensitive {ranked}"
        if s["suggested_skip"]:
            line += (f"; skipping {', '.join(s['suggested_skip'])} leaves a drop of {fmt.num(s['suggested_drop'], '.3g')}"
                     f" (all layers {fmt.num(s['all_layers_drop'], '.3g')})")
        lines.append(line)
    return lines


def generation_rows(g: dict) -> list[tuple[str, str]]:
    rows = [("prompt → new tokens (batch)", f"{g['prompt_tokens']} → {g['new_tokens']} (batch {g['batch']})"),
            ("time to first token (TTFT)", fmt.ms(g["ttft_ms"])),
            ("decode throughput", f"{fmt.num(g['decode_tokens_per_s'], ',.1f')} tokens/s"),
            ("end-to-end throughput", f"{fmt.num(g['e2e_tokens_per_s'], ',.1f')} tokens/s"),
            ("per-token latency p50 / p90 / p99",
             " / ".join(fmt.ms(g[k]) for k in ("token_p50_ms", "token_p90_ms", "token_p99_ms"))),
            ("KV cache", fmt.nbytes(g["kv_cache_bytes"]))]
    if g["peak_memory_bytes"] is not None:
        rows.append(("peak memory", fmt.nbytes(g["peak_memory_bytes"])))
    if g["energy_j_per_token"] is not None:
        rows.append(("energy per token", f"{g['energy_j_per_token'] * 1e3:.3g} mJ"))
    return rows


def lm_rows(lm: dict) -> list[tuple[str, str]]:
    delta = lm["perplexity_delta_pct"]
    change = "" if delta is None else f" (Δ {delta:+.2f} %)".replace("-", "−")
    rows = [("perplexity before → after", f"{fmt.num(lm['reference_perplexity'], '.4g')} → "
                                          f"{fmt.num(lm['perplexity'], '.4g')}{change}"),
            ("next-token agreement", fmt.pct(lm["next_token_agreement"], 2)),
            ("KL divergence", f"{fmt.num(lm['kl_divergence'], '.3g')} nats")]
    if lm["continuation_agreement"] is not None:
        rows.append(("continuation agreement", fmt.pct(lm["continuation_agreement"], 2)))
    rows.append(("held-out tokens", str(lm["eval_tokens"] if lm["eval_tokens"] is not None else "—")))
    return rows
