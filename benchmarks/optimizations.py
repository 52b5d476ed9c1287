"""Every optimization on both demo models, on this machine's CPU: one row per variant.

Latency p50 as a ratio to the baseline run of the same model (with the ratio's 95 % CI), size
ratio, and fidelity (top-1 agreement with the unoptimized model and accuracy on the held-out
digits). Each variant runs in its own worker process exactly as `workbench bench` would; the
baseline is measured first and again last, and ratios use the first (the second shows drift).

    python benchmarks/optimizations.py [--duration 3] [--threads 2] [--only cnn|transformer]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402

VARIANTS = {
    "digits-transformer": [
        ["quantize:method=dynamic_int8"],
        ["quantize:method=weight_only_int8"],
        ["quantize:method=bf16"],
        ["distill:student=depth,depth=1,epochs=20"],
        ["onnx_export", "quantize:method=dynamic_int8"],   # ONNX Runtime's own int8 path
    ],
    "digits-cnn": [
        ["fuse:method=conv_bn"],
        ["prune:method=structured,amount=0.5"],
        ["prune:method=structured,amount=0.5,finetune_epochs=5", "fuse:method=conv_bn"],
        ["prune:method=unstructured,amount=0.5"],
        ["quantize:method=static_int8"],
        ["distill:student=width,width=0.5,epochs=20"],
    ],
}

TARGETS = {
    ("digits-transformer", "quantize:method=dynamic_int8"): "≥ 2× faster, accuracy within 1 point",
    ("digits-cnn", "prune:method=structured,amount=0.5"): "≥ 1.6× faster",
    ("digits-cnn", "fuse:method=conv_bn"): "no slower, outputs equal within 1e-4",
    ("digits-cnn", "distill:student=width,width=0.5,epochs=20"): "≥ 2× fewer params, accuracy within 3 points",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["cnn", "transformer"])
    args = parser.parse_args()

    from workbench.results.compare import comparison_row
    from workbench.engine.session import Session
    from workbench.spec import PluginStep, RunSpec
    from workbench.results.store import ResultsStore

    session = Session(ResultsStore(Path(tempfile.mkdtemp(prefix="wb-opt-")) / "runs.sqlite"))
    rows, records = [], []
    for model, variants in VARIANTS.items():
        if args.only and not model.endswith(args.only):
            continue

        def run(chain):
            spec = RunSpec(model=f"demo:{model}", plugins=[PluginStep.parse(p) for p in chain], threads=args.threads,
                           iters=300, duration_s=args.duration, label=" + ".join(chain) or "baseline")
            print(f"… {model}: {spec.label}", file=sys.stderr, flush=True)
            return session.run(spec)

        baseline = run([])
        measured = [(["baseline"], baseline, None)]
        for chain in variants:
            record = run(chain)
            measured.append((chain, record, comparison_row(record, baseline) if record.status == "done" else None))
        again = run([])
        measured.append((["baseline (again, drift check)"], again, comparison_row(again, baseline)))
        for chain, record, row in measured:
            label = " + ".join(chain)
            fid = record.result.get("fidelity") or {}
            reports = record.result.get("plugin_reports") or []
            item = {"model": model, "variant": label, "status": record.status, "error": record.error,
                    "p50_ms": (record.result.get("latency") or {}).get("median_ms"), "fidelity": fid,
                    "plugin_reports": [{k: r.get(k) for k in ("plugin", "summary", "params_before", "params_after",
                                                              "bytes_before", "bytes_after", "sparsity", "seconds")}
                                       for r in reports],
                    "target": TARGETS.get((model, label))}
            if row:
                item.update(speedup=row["speedup"], speedup_ci=row["speedup_ci"],
                            significant=row["speedup_significant"], size_ratio=row["size_ratio"],
                            params=row["params"], base_params=(baseline.result.get("model_info") or {}).get("parameters"))
            records.append(item)
            if record.status != "done":
                rows.append([model, label, record.status, "", "", "", "", "", (record.error or "")[:60]])
                continue
            speed = "1.00×" if row is None else (
                f"{row['speedup']:.2f}× [{row['speedup_ci'][0]:.2f}, {row['speedup_ci'][1]:.2f}]")
            size = "1.00×" if row is None else f"{row['size_ratio']:.2f}×" if row["size_ratio"] else "—"
            params = item.get("params") or (record.result.get("model_info") or {}).get("parameters")
            rows.append([model, label, "done", f"{item['p50_ms']:.3f}", speed, size, f"{params:,}" if params else "—",
                         f"{100 * fid['top1_agreement']:.1f}%" if fid.get("top1_agreement") is not None else "—",
                         f"{100 * fid['accuracy']:.1f}%" if fid.get("accuracy") is not None else "—"])
    print_table(["model", "variant", "status", "p50 ms", "speed-up [95% CI]", "size", "params", "top-1 agree",
                 "accuracy"], rows)
    print()
    for item in records:
        if item.get("target"):
            print(f"target {item['model']} {item['variant']}: {item['target']} → measured "
                  f"{item.get('speedup', float('nan')):.2f}× speed-up, accuracy "
                  f"{100 * (item['fidelity'].get('accuracy') or 0):.1f}% (baseline "
                  f"{100 * (item['fidelity'].get('reference_accuracy') or 0):.1f}%), max |err| "
                  f"{item['fidelity'].get('max_abs_error', float('nan')):.2e}, params {item.get('params')} vs "
                  f"{item.get('base_params')}")
    path = write_results("optimizations", {"threads": args.threads, "duration_s": args.duration, "variants": records})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
