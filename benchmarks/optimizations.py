"""Every optimization on both demo models, on this machine's CPU: one row per variant.

Latency p50 as a ratio to the baseline run of the same model (with the ratio's 95 % CI), size
ratio, and fidelity (top-1 agreement with the unoptimized model and accuracy on the held-out
digits). Each variant runs in its own worker process exactly as `workbench bench` would; the
baseline is measured first and again last, and ratios use the first (the second shows drift).

    python benchmarks/optimizations.py [--duration 3] [--threads 2] [--only cnn|transformer] [--out DIR]
    python benchmarks/optimizations.py --smoke [--out DIR]

``--smoke`` checks every variant's chain against the installed plugins (names, parameters, devices:
no run needed), then runs digits-cnn's baseline, ``SMOKE_VARIANT`` and the drift-check baseline with
the smallest settings, and reads the JSON back.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SMOKE_DEMO, SMOKE_DURATION_S, SMOKE_ITERS, SMOKE_THREADS, SMOKE_WARMUP,  # noqa: E402
                     add_smoke_arguments, load_json, output_dir, positive_number, print_table, smoke_passed,
                     smoke_require, write_results)

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

SMOKE_VARIANT = ["fuse:method=conv_bn"]   # quick (no training), has a target line, a plugin report

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
    add_smoke_arguments(parser)
    args = parser.parse_args()
    out_folder = output_dir(args, "optimizations")

    from workbench.results.compare import comparison_row
    from workbench.engine.session import Session
    from workbench.spec import PluginStep, RunSpec
    from workbench.results.store import ResultsStore

    plan = VARIANTS
    settings = {"threads": args.threads, "iters": 300, "duration_s": args.duration}
    if args.smoke:
        check_variants()
        plan = {SMOKE_DEMO: [SMOKE_VARIANT]}
        args.threads, args.duration, args.only = SMOKE_THREADS, SMOKE_DURATION_S, None
        settings = {"threads": SMOKE_THREADS, "iters": SMOKE_ITERS, "duration_s": SMOKE_DURATION_S, **SMOKE_WARMUP}
    workdir = tempfile.TemporaryDirectory(prefix="wb-opt-")
    session = Session(ResultsStore(Path(workdir.name) / "runs.sqlite"))
    rows, records = [], []
    for model, variants in plan.items():
        if args.only and not model.endswith(args.only):
            continue

        def run(chain):
            spec = RunSpec(model=f"demo:{model}", plugins=[PluginStep.parse(p) for p in chain],
                           label=" + ".join(chain) or "baseline", **settings)
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
            nan = float("nan")
            speedup, err = item.get("speedup"), item["fidelity"].get("max_abs_error")
            print(f"target {item['model']} {item['variant']}: {item['target']} → measured "
                  f"{nan if speedup is None else speedup:.2f}× speed-up, accuracy "
                  f"{100 * (item['fidelity'].get('accuracy') or 0):.1f}% (baseline "
                  f"{100 * (item['fidelity'].get('reference_accuracy') or 0):.1f}%), max |err| "
                  f"{nan if err is None else err:.2e}, params {item.get('params')} vs "
                  f"{item.get('base_params')}")
    session.store.close()
    workdir.cleanup()
    path = write_results("optimizations", {"threads": args.threads, "duration_s": args.duration, "smoke": args.smoke,
                                           "variants": records}, out_folder)
    print(f"wrote {path}")
    if args.smoke:
        check_smoke(path, expected=3)   # baseline, the variant, baseline again
    return 0


def check_variants() -> None:
    """Every chain in VARIANTS still valid for the installed plugins, as ``workbench bench`` checks it
    before a run (plugin names, parameter names and values, device support); no torch, no run."""
    from workbench.engine.plan import check_chain
    from workbench.errors import WorkbenchError
    from workbench.spec import PluginStep, RunSpec
    problems = []
    for model, variants in VARIANTS.items():
        for chain in variants:
            try:
                spec = RunSpec(model=f"demo:{model}", plugins=[PluginStep.parse(p) for p in chain])
                spec.validate()
                check_chain(spec)
            except WorkbenchError as exc:
                problems.append(f"{model}: {' + '.join(chain)}: {exc}")
    smoke_require(not problems, "variants no longer valid:\n  " + "\n  ".join(problems))
    print(f"all {sum(map(len, VARIANTS.values()))} variant chains valid", flush=True)


def check_smoke(path: Path, expected: int) -> None:
    """The JSON just written: baseline, variant and drift check all done, with a latency and a speed-up."""
    data = load_json(path, ["machine", "threads", "duration_s", "variants"])
    items = data["variants"]
    smoke_require(len(items) == expected, f"{len(items)} variants written, expected {expected}")
    for item in items:
        for key in ("model", "variant", "status", "p50_ms", "fidelity", "plugin_reports"):
            smoke_require(key in item, f"{item.get('variant')}: no {key!r}")
        smoke_require(item["status"] == "done", f"{item['variant']}: {item['status']} ({item.get('error')})")
        smoke_require(positive_number(item["p50_ms"]), f"{item['variant']}: p50_ms = {item['p50_ms']!r}")
        top1 = item["fidelity"].get("top1_agreement")
        smoke_require(isinstance(top1, (int, float)) and 0 <= top1 <= 1, f"{item['variant']}: top-1 agreement {top1!r}")
    for item in items[1:]:
        smoke_require(positive_number(item.get("speedup")) and math.isfinite(item["speedup"]),
                      f"{item['variant']}: speedup = {item.get('speedup')!r}")
    smoke_require(items[1]["plugin_reports"], f"{items[1]['variant']}: no plugin report")
    smoke_passed(f"{path}: {len(items)} runs done, latencies and speed-ups positive")


if __name__ == "__main__":
    sys.exit(main())
