"""Every plugin method on real architectures, in every format: the compatibility table.

ResNet-18/50, MobileNetV2, ViT-S/16, ConvNeXt-T, BERT-base, DistilBERT, GPT-2, a Llama with
grouped-query attention, the Whisper-tiny encoder and an LSTM (``_zoo_factories.py``: transformers
configs, random weights), each as state_dict + factory, TorchScript, ``.pt2``, ONNX and a Hugging
Face folder where one applies, × every plugin method that applies on the device. Each cell runs in
a worker exactly as ``workbench bench`` would (baselines planned by ``engine.plan``: the exact one
for the same work, both references for an ONNX chain), or is refused before anything runs.

    python benchmarks/model_zoo.py [--quick | --full] [--only gpt2,lstm] [--formats onnx] [--methods quantize]
    python benchmarks/model_zoo.py --rerun failed,refused      # after plugins changed
    python benchmarks/model_zoo.py --render                    # docs/compatibility.md from the JSON
    python benchmarks/model_zoo.py --smoke [--out DIR]

Resumable: every cell is written to ``results/model_zoo.json`` (``model_zoo_full.json`` for
``--full``) as soon as it is done, and a later invocation skips the cells already there (``--rerun``
names the statuses to measure again); the model files and the results store live in ``--work``
(default: the user cache folder), so baselines of the same work are reused across invocations.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (RESULTS_DIR, SMOKE_THREADS, add_smoke_arguments, load_json, machine,  # noqa: E402
                     output_dir, smoke_passed, smoke_require)
from _zoo_factories import ARCHS, IMAGE  # noqa: E402
from _zoo_render import DOC_PATH, render_doc  # noqa: E402

HERE = Path(__file__).resolve().parent
FORMATS = ("state_dict", "torchscript", "pt2", "onnx", "hf")
# Every method that applies on a CPU; cuda adds int4 and fp16. Cheap settings: this is about what works.
CPU_CHAINS = [
    ["quantize:method=dynamic_int8"], ["quantize:method=static_int8,calibration_samples=16"],
    ["quantize:method=weight_only_int8"], ["quantize:method=bf16"],
    ["prune:method=structured,amount=0.3,finetune=off"], ["prune:method=unstructured,amount=0.5,finetune=off"],
    ["fuse:method=conv_bn"], ["fuse:method=torch_compile"],
    ["distill:student=width,width=0.5,epochs=1,batch_size=8"], ["distill:student=depth,depth=1,epochs=1,batch_size=8"],
    ["onnx_export"], ["onnx_export", "quantize:method=dynamic_int8"],
    ["onnx_export", "quantize:method=static_int8,calibration_samples=16"], ["onnx_export", "fuse:method=onnxruntime"],
    # causal LMs: the ONNX model keeps the KV cache (past_key_values in, present out)
    ["onnx_export:with_cache=true"], ["onnx_export:with_cache=true", "quantize:method=dynamic_int8"],
    # what an ONNX file takes directly
    ["quantize:method=dynamic_int8"], ["fuse:method=onnxruntime"],
]
CUDA_CHAINS = [["quantize:method=int4"], ["quantize:method=fp16"]]
SMOKE_CHAINS = [["quantize:method=dynamic_int8"], ["quantize:method=int4"]]
SETTINGS = {
    "smoke": dict(iters=5, duration_s=0.02, warmup_min_iters=1, warmup_max_s=0.1, timeout_s=120),
    "quick": dict(iters=30, duration_s=0.3, warmup_min_iters=3, warmup_max_s=1.0, timeout_s=900),
    "full": dict(iters=100, duration_s=2.0, warmup_min_iters=10, warmup_max_s=5.0, timeout_s=1800),
}


# -- model files ------------------------------------------------------------------------------------
def model_files(arch: str, size: str, folder: Path, formats: tuple[str, ...]) -> dict[str, dict]:
    """``{format: {"path": ..., "factory": ..., "inputs": [...]} | {"unavailable": why}}``; files are
    written once per size and reused (``manifest.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    missing = [f for f in formats if f not in manifest or ("path" in manifest[f]
                                                            and not Path(manifest[f]["path"]).exists())]
    if missing:
        manifest.update(_write_files(arch, size, folder, missing))
        manifest_path.write_text(json.dumps(manifest, indent=1))
    return {f: manifest[f] for f in formats}


def _write_files(arch: str, size: str, folder: Path, formats: list[str]) -> dict[str, dict]:
    import torch
    from _zoo_factories import build, example_inputs
    from workbench.errors import WorkbenchError
    from workbench.models.loaders import error_detail
    try:
        module, hf_model = build(arch, size)
        example = example_inputs(arch, size)
    except Exception as exc:      # the architecture itself could not be built: every format says why
        return {fmt: {"unavailable": f"could not build {arch}: {type(exc).__name__}: {error_detail(exc)}"}
                for fmt in formats}
    inputs = ARCHS[arch].inputs(size)
    names = [text.split("=")[0] for text in inputs]
    out: dict[str, dict] = {}
    for fmt in formats:
        path = folder / {"state_dict": f"{arch}.state_dict.pt", "torchscript": f"{arch}.ts", "pt2": f"{arch}.pt2",
                         "onnx": f"{arch}.onnx", "hf": f"{arch}-hf"}[fmt]
        try:
            if fmt == "state_dict":
                torch.save(module.state_dict(), path)
                out[fmt] = {"path": str(path), "factory": f"_zoo_factories:{size}_{arch}", "inputs": inputs}
            elif fmt == "torchscript":
                with torch.no_grad():
                    torch.jit.trace(module, tuple(example), strict=False, check_trace=False).save(str(path))
                out[fmt] = {"path": str(path), "inputs": inputs}
            elif fmt == "pt2":
                torch.export.save(torch.export.export(module, tuple(example)), str(path))
                out[fmt] = {"path": str(path)}
            elif fmt == "onnx":
                import onnx
                from workbench.plugin_api.onnx_export import export_to_onnx
                onnx.save(export_to_onnx(module, example, names), str(path))
                out[fmt] = {"path": str(path)}
            elif hf_model is None:
                out[fmt] = {"unavailable": f"no Hugging Face folder: {ARCHS[arch].no_folder}"}
            else:
                hf_model.save_pretrained(str(path))
                out[fmt] = {"path": str(path)}
        except (Exception, WorkbenchError) as exc:   # a format this architecture cannot be written in
            out[fmt] = {"unavailable": f"could not write {fmt}: {type(exc).__name__}: {error_detail(exc)}"}
    return out


def data_file(arch: str, size: str, folder: Path) -> str | None:
    """An .npz of seeded inputs (x_train for calibration and distillation, x_test for fidelity)."""
    import numpy as np
    path = folder / f"{arch}.data.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        shape = [int(d) for d in ARCHS[arch].inputs(size)[0].split("=")[1].split(":")[0].split("x")][1:]
        if ARCHS[arch].kind == "text":
            draw = lambda n: rng.integers(0, 10, [n] + shape).astype("int64")    # noqa: E731
        else:
            draw = lambda n: rng.standard_normal([n] + shape).astype("float32")  # noqa: E731
        np.savez(path, x_train=draw(32), x_test=draw(8))
    return str(path)


# -- one cell -------------------------------------------------------------------------------------
def cell_spec(arch: str, size: str, fmt: str, files: dict, chain: list[str], args) -> "RunSpec":
    from workbench.spec import InputSpec, PluginStep, RunSpec
    entry = files[fmt]
    settings = dict(SETTINGS[size])
    if args.iters:
        settings["iters"] = args.iters
    spec = RunSpec(model=entry["path"], factory=entry.get("factory"), plugins=[PluginStep.parse(p) for p in chain],
                   inputs=[InputSpec.parse(t) for t in entry.get("inputs", [])], batch=1, threads=args.threads,
                   device=args.device, scenario="forward", label=f"{arch} {fmt} {' → '.join(chain) or 'baseline'}",
                   **settings)
    if fmt == "hf" and ARCHS[arch].kind == "text":
        from _zoo_factories import SEQ
        spec.seq_len = SEQ[size]
    elif fmt != "hf":
        spec.data = data_file(arch, size, Path(entry["path"]).parent)
    return spec


class Stopped(Exception):
    """Ctrl-C or SIGTERM: the cell in flight was cancelled; what is done is kept."""


def run_cell(session, store, spec, since: float, sitting: list, stop=None) -> dict:
    """Plan (baselines first), run, and describe one cell; a refusal before anything runs is a result."""
    from workbench.engine.plan import check_chain, check_files_exist, plan_runs
    from workbench.errors import WorkbenchError
    from workbench.results.compare import row_for
    try:
        check_files_exist(spec)
        check_chain(spec)
        planned = plan_runs(store, spec, since=since)
        planned[:0] = _sitting_baseline(store, spec, planned, since)
    except WorkbenchError as exc:
        return {"status": "refused", "reason": str(exc), "when": "before the run"}
    from workbench.engine.runner import run_planned
    from workbench.errors import VariantsRefused
    started = time.monotonic()
    try:
        records, _ = run_planned(session, planned, cancel=stop)
    except VariantsRefused as exc:   # refused on the loaded model, before the baseline was timed
        return {"status": "refused", "reason": str(exc), "when": "after loading, before timing"}
    sitting.extend(records)
    if records[-1].status == "cancelled":
        raise Stopped(records[-1].error)
    record = records[-1]
    out = {"run_id": record.id, "seconds": round(time.monotonic() - started, 1),
           "baselines_measured": len(records) - 1}
    if record.status != "done":
        return {**out, **_failure(store, record)}
    row = row_for(store, record, sitting)
    reports = [r for r in record.result.get("plugin_reports") or [] if r.get("plugin") != "onnx_export"
               or len(record.result["plugin_reports"]) == 1]
    unchanged = bool(reports) and all(r.get("changed") is False for r in reports)
    fidelity = record.result.get("fidelity") or {}
    out.update(
        status="no change" if unchanged else "ok", p50_ms=row["p50_ms"], baseline_id=row["baseline_id"],
        speedup=row["speedup"], speedup_ci=row["speedup_ci"], significant=row["speedup_significant"],
        runtime_baseline_id=row.get("runtime_baseline_id"), runtime_speedup=row.get("runtime_speedup"),
        runtime_speedup_ci=row.get("runtime_speedup_ci"), verdict=row["verdict"]["text"],
        top1_agreement=fidelity.get("top1_agreement"), cosine=fidelity.get("cosine"),
        size_bytes=row["size_bytes"], size_ratio=row["size_ratio"], layers=layers_changed(reports),
        summary="; ".join(r.get("summary") or "" for r in reports), notes=record.result.get("notes") or [],
        contended=bool((record.result.get("contention") or {}).get("contended")))
    if unchanged:
        out["reason"] = "; ".join(r.get("summary") or "" for r in reports)
    return out


def _sitting_baseline(store, spec, planned: list, since: float) -> list:
    """[the plain model] when the plan reuses a baseline stored before this sitting: a table whose
    ratios come from baselines measured hours apart, under other loads, is not one table."""
    from workbench.engine.plan import baseline_spec, native_runtime
    from workbench.results.compare import planned_baseline
    from workbench.worker.conditions import default_threads
    if not spec.plugins or any(not p.plugins for p in planned):
        return []
    plain = baseline_spec(spec)
    fresh = planned_baseline(store, plain, native_runtime(spec), spec.threads or default_threads(), since=since)
    return [] if fresh is not None else [plain]


def _failure(store, record) -> dict:
    """A run that did not finish: refused by a plugin once it saw the model (a PluginError it raised
    itself), or crashed (any other error, or a plugin's own exception wrapped as 'plugin X failed')."""
    errors = store.events(record.id, "error")
    kind = errors[-1].get("kind") if errors else None
    phases = store.events(record.id, "phase")
    phase = phases[-1].get("phase") if phases else None
    message = record.error or record.status
    refused = kind == "PluginError" and not message.startswith("plugin ")
    return {"status": "refused" if refused else "failed", "reason": message, "error_kind": kind, "phase": phase,
            "when": "when the plugin saw the model" if refused else f"during {phase or 'the run'}"}


def layers_changed(reports: list[dict]) -> str | None:
    """"N of M layers" from the plugin reports (quantize says both; others say what they changed)."""
    parts = []
    for report in reports:
        extra = report.get("extra") or {}
        done = extra.get("layers_quantized", extra.get("layers_pruned", len(report.get("layers_changed") or [])))
        total = extra.get("layers_total")
        if extra.get("pairs_fused") is not None:
            parts.append(f"{extra['pairs_fused']} Conv+BN pairs folded")
        elif total:
            parts.append(f"{done} of {total} layers")
        elif done:
            parts.append(f"{done} layers")
    return "; ".join(parts) or None


# -- the sweep ------------------------------------------------------------------------------------
def chains_for(args) -> list[list[str]]:
    chains = SMOKE_CHAINS if args.smoke else CPU_CHAINS + (CUDA_CHAINS if args.device.startswith("cuda") else [])
    unique = list(dict.fromkeys(tuple(c) for c in chains))
    return [list(c) for c in unique if not args.methods or any(m in " → ".join(c) for m in args.methods)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size_group = parser.add_mutually_exclusive_group()
    size_group.add_argument("--quick", action="store_true", help="smaller configs (the default)")
    size_group.add_argument("--full", action="store_true", help="the published configurations at 224 px / 128 tokens")
    parser.add_argument("--only", type=lambda s: s.split(","), help=f"architectures: {', '.join(ARCHS)}")
    parser.add_argument("--formats", type=lambda s: s.split(","), help=f"formats: {', '.join(FORMATS)}")
    parser.add_argument("--methods", type=lambda s: s.split(","), help="keep chains containing any of these texts")
    parser.add_argument("--rerun", type=lambda s: s.split(","), default=[],
                        help="statuses to measure again (ok, no change, refused, failed, unavailable; 'all')")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int)
    parser.add_argument("--work", help="model files and the results store (default: the user cache folder)")
    parser.add_argument("--render", action="store_true", help=f"only write {DOC_PATH.name} from the JSON")
    add_smoke_arguments(parser)
    args = parser.parse_args()
    size = "smoke" if args.smoke else "full" if args.full else "quick"
    name = "model_zoo_full" if size == "full" else "model_zoo"
    out_folder = output_dir(args, name)
    path = out_folder / f"{name}.json"
    doc = (out_folder / DOC_PATH.name) if (args.smoke or out_folder != RESULTS_DIR) else DOC_PATH
    data = json.loads(path.read_text()) if path.is_file() and not args.smoke else {}
    cells: dict[str, dict] = {_key(c): c for c in data.get("cells", [])}
    if args.render:
        render_doc(data, doc)
        print(f"wrote {doc}")
        return 0
    work = Path(args.work or os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workbench-model-zoo" / size
    if args.smoke:
        work = out_folder / "work"
    archs = ["lstm"] if args.smoke else (args.only or list(ARCHS))
    formats = ("state_dict",) if args.smoke else tuple(args.formats or FORMATS)
    unknown = [a for a in archs if a not in ARCHS] + [f for f in formats if f not in FORMATS]
    if unknown:
        parser.error(f"unknown architecture or format: {', '.join(unknown)}")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    from workbench.engine.session import Session
    from workbench.results.store import ResultsStore
    store = ResultsStore(work / "runs.sqlite")
    session = Session(store)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    since, sitting, touched = time.time(), [], set()
    chains = chains_for(args)
    settings = {"size": size, "threads": args.threads, "device": args.device, "image": IMAGE[size],
                **SETTINGS[size], **({"iters": args.iters} if args.iters else {})}
    print(f"{len(archs)} architectures × {len(formats)} formats × {len(chains)} chains; work folder {work}",
          file=sys.stderr, flush=True)
    for arch in archs:
        files = model_files(arch, size, work / arch, formats)
        for fmt in formats:
            for chain in chains:
                key = _key({"arch": arch, "format": fmt, "chain": chain})
                old = cells.get(key)
                if old and old.get("size") == size and not _wanted(old, args.rerun):
                    continue
                cell = {"arch": arch, "title": ARCHS[arch].title, "format": fmt, "chain": chain, "size": size,
                        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
                if "unavailable" in files[fmt]:
                    cell.update(status="unavailable", reason=files[fmt]["unavailable"])
                else:
                    spec = cell_spec(arch, size, fmt, files, chain, args)
                    print(f"… {spec.label}", file=sys.stderr, flush=True)
                    try:
                        cell.update(run_cell(session, store, spec, since, sitting, stop))
                    except Stopped:
                        print("stopped: the cells done so far are kept", file=sys.stderr)
                        store.close()
                        return 1
                cells[key] = cell
                touched.add(key)
                print(f"  {cell['status']}: {_brief(cell)}", file=sys.stderr, flush=True)
                _write(path, settings, cells, touched)
    store.close()
    _write(path, settings, cells, touched)
    render_doc(json.loads(path.read_text()), doc)
    print(f"wrote {path} and {doc}")
    if args.smoke:
        check_smoke(path, doc)
    return 0


def _key(cell: dict) -> str:
    return f"{cell['arch']}|{cell['format']}|{' → '.join(cell['chain'])}"


def _wanted(cell: dict, rerun: list[str]) -> bool:
    return "all" in rerun or cell.get("status") in rerun


def _brief(cell: dict) -> str:
    if cell.get("speedup") is not None:
        return f"{cell['speedup']:.2f}× ({cell.get('verdict')})"
    return (cell.get("reason") or "")[:160]


def _write(path: Path, settings: dict, cells: dict, touched: set[str]) -> None:
    """Write the cells, merged with what another invocation wrote meanwhile (two sweeps over other
    architectures can share the file): the cells measured here (``touched``) win."""
    import fcntl
    import hashlib
    import tempfile
    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"workbench-model-zoo-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = json.loads(path.read_text()).get("cells", []) if path.is_file() else []
        merged = {_key(c): c for c in on_disk}
        merged.update({k: cells[k] for k in touched})
        cells.update({k: v for k, v in merged.items() if k not in touched})
        order = {a: i for i, a in enumerate(ARCHS)}
        rows = sorted(merged.values(), key=lambda c: (order.get(c["arch"], 99), FORMATS.index(c["format"])))
        payload = {"machine": machine(), "settings": settings, "cells": rows}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=str))
        tmp.replace(path)


def check_smoke(path: Path, doc: Path) -> None:
    """The LSTM's int8 cell ran with a speed-up against its baseline; int4 was refused up front on a
    CPU; nothing crashed; the page names them."""
    data = load_json(path, ["machine", "settings", "cells"])
    cells = {_key(c): c for c in data["cells"]}
    smoke_require(len(cells) == 2, f"{len(cells)} cells, expected 2")
    int8 = cells["lstm|state_dict|quantize:method=dynamic_int8"]
    smoke_require(int8["status"] in ("ok", "no change"), f"int8 cell: {int8['status']} ({int8.get('reason')})")
    smoke_require(int8["speedup"] and int8["speedup"] > 0 and int8["baseline_id"], f"int8 cell: {int8}")
    refused = cells["lstm|state_dict|quantize:method=int4"]
    smoke_require(refused["status"] == "refused" and refused["when"] == "before the run", f"int4 cell: {refused}")
    smoke_require(all(c["status"] != "failed" for c in cells.values()),
                  "a cell crashed: " + "; ".join(c.get("reason", "") for c in cells.values() if c["status"] == "failed"))
    text = doc.read_text(encoding="utf-8")
    smoke_require("LSTM" in text and "refused" in text, f"{doc} does not show the cells")
    smoke_passed(f"{path}: {len(cells)} cells (ran, refused up front), {doc.name} rendered")


if __name__ == "__main__":
    sys.exit(main())
