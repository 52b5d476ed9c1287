"""``workbench`` command line: the GUI's every action, headless.

Exit codes: 0 ok, 1 the run failed (or was cancelled), 2 bad usage/input. Errors are one line;
``--debug`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from . import format as fmt
from .errors import SpecError, WorkbenchError
from .spec import PRESETS, InputSpec, PluginStep, RunSpec
from .stats import NOISE_RULE

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(WorkbenchError):
    """Bad command-line usage: exit code 2."""


# -- argument parsing ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=(
        "Optimize neural networks and measure them rigorously. Without a command, opens the GUI."))
    parser.add_argument("--db", help="results database (default: per-user data dir; env WORKBENCH_DB)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("gui", help="open the desktop application (the default)")

    bench = sub.add_parser("bench", help="measure a model (optionally optimized by plugins)")
    bench.add_argument("model", help="model file (.onnx, .pt2, .pt/.pth TorchScript or state_dict, .safetensors) or demo:NAME")
    bench.add_argument("--factory", help="package.module:callable that builds the module for a state_dict")
    bench.add_argument("--trust-pickle", action="store_true",
                       help="allow loading a fully pickled model (executes code from the file!)")
    bench.add_argument("--plugin", "-p", action="append", default=[], metavar="NAME[:k=v,...]",
                       help="add an optimization step (repeatable, applied in order); see `workbench plugins`")
    bench.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnxruntime"])
    bench.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    bench.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    bench.add_argument("--batch", type=int, help="batch size (replaces the first dimension of every input)")
    bench.add_argument("--threads", type=int, help="intra-op CPU threads (default: library default, recorded)")
    bench.add_argument("--input", action="append", default=[], metavar="[NAME=]SHAPE:DTYPE",
                       help="input spec such as 1x3x224x224:float32 (repeat for several inputs)")
    bench.add_argument("--data", help=".npz with x_test[, y_test, x_train, y_train] for fidelity/calibration")
    bench.add_argument("--iters", type=int, help=f"minimum timed iterations (default {PRESETS['quick']['iters']})")
    bench.add_argument("--duration", type=float, help=f"minimum timed seconds (default {PRESETS['quick']['duration_s']:g})")
    bench.add_argument("--rigorous", action="store_true",
                       help="rigorous preset: >= 1000 iterations and >= 10 s, longer warm-up")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--timeout", type=float, default=1800.0, help="kill the run after this many seconds")
    bench.add_argument("--telemetry-hz", type=float, default=10.0, help="telemetry sampling rate (0.5-100 Hz)")
    bench.add_argument("--label", help="a name for this run")
    bench.add_argument("--save-model", help="save the optimized model (.pt TorchScript, .pt2, or .onnx)")
    bench.add_argument("--no-baseline", action="store_true",
                       help="with plugins: do not run the plain model first when no baseline is stored")
    bench.add_argument("--json", dest="json_out", metavar="FILE", help="also write the full run record as JSON ('-' = stdout)")

    runs = sub.add_parser("runs", help="list stored runs")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="full details of one run")
    show.add_argument("run_id", type=int)
    show.add_argument("--json", action="store_true")

    compare = sub.add_parser("compare", help="side-by-side table with ratios vs the baseline")
    compare.add_argument("run_ids", type=int, nargs="+")
    compare.add_argument("--json", action="store_true")

    report = sub.add_parser("report", help="export runs as a report (.html, .pdf, .csv, .json)")
    report.add_argument("run_ids", type=int, nargs="+")
    report.add_argument("-o", "--output", required=True, help="output file; the suffix picks the format")
    report.add_argument("--criterion", default="p50", help=_criterion_help())

    plugins = sub.add_parser("plugins", help="list optimization plugins and their parameters")
    plugins.add_argument("--json", action="store_true")

    inspect = sub.add_parser("inspect", help="describe a model (parameters, size, FLOPs, inputs, layers)")
    inspect.add_argument("model")
    inspect.add_argument("--factory")
    inspect.add_argument("--trust-pickle", action="store_true")
    inspect.add_argument("--input", action="append", default=[])
    inspect.add_argument("--json", action="store_true")

    rename = sub.add_parser("rename", help="name a run")
    rename.add_argument("run_id", type=int)
    rename.add_argument("name")
    tag = sub.add_parser("tag", help="set a run's tags")
    tag.add_argument("run_id", type=int)
    tag.add_argument("tags", nargs="*")
    delete = sub.add_parser("delete", help="delete runs and their data")
    delete.add_argument("run_ids", type=int, nargs="+")
    return parser


def _criterion_help() -> str:
    try:
        from .report import CRITERION_HELP
        return CRITERION_HELP.replace("%", "%%")
    except ImportError:
        return "how the best variant is chosen (default: fastest p50 with top-1 agreement >= 99%%)"


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    spec = RunSpec(model=args.model, factory=args.factory, trust_pickle=args.trust_pickle,
                   plugins=[PluginStep.parse(p) for p in args.plugin], runtime=args.runtime,
                   device=args.device, dtype=args.dtype, batch=args.batch, threads=args.threads,
                   inputs=[InputSpec.parse(i) for i in args.input], data=args.data, seed=args.seed,
                   timeout_s=args.timeout, telemetry_hz=args.telemetry_hz, label=args.label,
                   save_model=args.save_model)
    if args.rigorous:
        spec.apply_preset("rigorous")
    if args.iters is not None:
        spec.iters = args.iters
    if args.duration is not None:
        spec.duration_s = args.duration
    spec.validate()
    if not spec.is_demo and not Path(spec.model).expanduser().exists():
        raise UsageError(f"model file not found: {spec.model}")
    return spec


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """One status line on stderr (redrawn on a TTY; phase changes only when piped)."""

    PHASES = ("load", "reference", "optimize", "save", "prepare", "cold", "warmup", "measure", "fidelity")

    def __init__(self, label: str, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.label = label
        self.phase = ""
        self.measured = 0
        self.last_draw = 0.0
        self.recent: list[int] = []

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "phase" and event["phase"] != self.phase:
            self.phase = event["phase"]
            if not self.tty:
                message = event.get("message") or ""
                print(f"[{self.label}] {self.phase}{': ' + message if message else ''}", file=self.stream, flush=True)
            self.draw(force=True)
        elif kind == "latency_batch" and event["phase"] == "measure":
            self.measured += len(event["values_ns"])
            self.recent = (self.recent + event["values_ns"])[-200:]
            self.draw()
        elif kind == "progress" and event.get("message"):
            self.draw(message=event["message"], fraction=event.get("fraction"))
        elif kind == "train":
            message = f"epoch {event.get('epoch')} step {event.get('step')} loss {event.get('loss', 0):.4f}"
            self.draw(message=message)
        elif kind == "run_finished" and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def draw(self, force: bool = False, message: str = "", fraction: float | None = None) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        text = f"[{self.label}] {self.phase:<9}"
        if fraction is not None:
            filled = int(20 * min(1.0, fraction))
            text += " " + "█" * filled + "░" * (20 - filled) + f" {100 * fraction:3.0f}%"
        if self.phase == "measure" and self.recent:
            median = sorted(self.recent)[len(self.recent) // 2] / 1e6
            text += f" {self.measured} iters, median {fmt.ms(median)}"
        if message:
            text += " " + message
        self.stream.write("\r\033[K" + text[:150])
        self.stream.flush()


# -- commands ------------------------------------------------------------------------------------
def open_store(args: argparse.Namespace):
    from .store import ResultsStore
    return ResultsStore(args.db)


def cmd_bench(args: argparse.Namespace) -> int:
    from .compare import baseline_for, comparison_row
    from .plugins import build_chain
    from .session import Session

    spec = spec_from_args(args)
    if spec.plugins:   # validate the chain before anything runs (no torch needed)
        build_chain(spec.plugins, spec.model_format, spec.device, spec.runtime)
    store = open_store(args)
    store.mark_stale_running()
    session = Session(store)
    records = []
    if spec.plugins and not args.no_baseline:
        probe = _probe_record(store, spec)
        if baseline_for(store, probe) is None:
            print(f"no stored baseline for {spec.model} on {spec.device}: measuring it first", file=sys.stderr)
            base = RunSpec.from_dict({**spec.to_dict(), "plugins": [], "label": None, "save_model": None})
            records.append(_run_one(session, base))
    records.append(_run_one(session, spec))
    run = records[-1]
    baseline = baseline_for(store, run, records)
    print(render_run(run, comparison_row(run, baseline) if run.status == "done" else None))
    if args.json_out:
        payload = json.dumps({**run.to_dict(), "comparison": comparison_row(run, baseline)}, indent=2, default=str)
        if args.json_out == "-":
            print(payload)
        else:
            Path(args.json_out).write_text(payload)
    return EXIT_OK if all(r.status == "done" for r in records) else EXIT_FAILED


def _probe_record(store, spec: RunSpec):
    from .store import RunRecord
    return RunRecord(-1, time.time(), None, "running", None, [], spec.model, spec.describe_chain(),
                     spec.resolved_runtime(), spec.device, spec.batch, spec.to_dict(), {}, {}, None, None)


def _run_one(session, spec: RunSpec):
    label = spec.label or spec.describe_chain()
    progress = Progress(label)
    cancel = threading.Event()
    return session.run(spec, on_event=progress, cancel=cancel)


def render_run(run, row: dict | None) -> str:
    lines = [f"run #{run.id}  {run.model}  [{run.chain}]  {run.runtime} on {run.device}  → {run.status}"]
    if run.status != "done":
        lines.append(f"  reason: {run.error}")
        return "\n".join(lines)
    r = run.result
    lat = r["latency"]
    lines.append(f"  latency   median {fmt.ms(lat['median_ms'])} (95% CI {fmt.ci(lat['median_ci_ms'])}, "
                 f"IQR {fmt.ms(lat['iqr_ms'])}), mean {fmt.ms(lat['mean_ms'])} ± {fmt.ms(lat['std_ms'])}")
    lines.append(f"            min {fmt.ms(lat['min_ms'])}  p90 {fmt.ms(lat['p90_ms'])}  p95 {fmt.ms(lat['p95_ms'])}  "
                 f"p99 {fmt.ms(lat['p99_ms'])}  max {fmt.ms(lat['max_ms'])}  (n={lat['n']}, batch {lat['batch']})")
    lines.append(f"  throughput {lat['throughput_per_s']:.1f} samples/s   cold first call {fmt.ms(r['cold_ms'])}   "
                 f"threads {r['threads']}")
    tel = r.get("telemetry") or {}
    mem = r.get("device_memory") or {}
    lines.append(f"  memory    host peak RSS {fmt.nbytes(tel.get('host_peak_rss_bytes'))}"
                 + (f", torch peak allocated {fmt.nbytes(mem['torch_peak_allocated_bytes'])}"
                    f" / reserved {fmt.nbytes(mem['torch_peak_reserved_bytes'])}" if mem else "")
                 + (f", GPU process {fmt.nbytes(tel.get('gpu_proc_mem_peak_bytes'))}"
                    f", GPU device {fmt.nbytes(tel.get('gpu_mem_used_peak_bytes'))}"
                    if tel.get("gpu_mem_used_peak_bytes") is not None else ""))
    energy = r.get("energy") or {}
    status = r.get("telemetry_status") or {}
    if energy.get("joules_per_inference") is not None:
        lines.append(f"  power     mean {fmt.num(tel.get('gpu_power_mean_w'), '.1f', ' W')}, energy "
                     f"{energy['joules_per_inference'] * 1e3:.3f} mJ/inference ({energy['method']})")
    else:
        lines.append(f"  power     not measured: NVML {status.get('nvml', 'not sampled')}")
    fid = r["fidelity"]
    lines.append(f"  fidelity  cosine {fid['cosine']:.6f}, max |err| {fid['max_abs_error']:.3g}, top-1 agreement "
                 f"{fmt.pct(fid['top1_agreement'])}, accuracy {fmt.pct(fid['accuracy'])} "
                 f"({fid['samples']} samples, {r['fidelity_inputs']})")
    for rep in r.get("plugin_reports") or []:
        lines.append(f"  plugin    {rep['plugin']}: {rep['summary']} ({rep['seconds']:.2f} s)")
    if row and row.get("speedup") is not None:
        sig = "" if row["speedup_significant"] else "  (inside the noise)"
        lines.append(f"  vs #{row['baseline_id']}   speed-up {fmt.ratio(row['speedup'])} "
                     f"[{row['speedup_ci'][0]:.2f}, {row['speedup_ci'][1]:.2f}]{sig}, size {fmt.ratio(row['size_ratio'])}")
    for text in (lat.get("warnings") or []) + r.get("notes", []) + r.get("flags", []):
        lines.append(f"  note      {text}")
    for text in status.get("warnings") or []:
        lines.append(f"  warning   {text}")
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args)
    runs = store.list_runs(limit=args.limit)
    if args.json:
        print(json.dumps([_run_summary(r) for r in runs], indent=2))
        return EXIT_OK
    if not runs:
        print(f"no runs stored in {store.path} yet; try: workbench bench demo:digits-cnn")
        return EXIT_OK
    rows = []
    for r in runs:
        lat = r.latency or {}
        rows.append([str(r.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)), r.status,
                     r.name or "", r.model, r.chain, f"{r.runtime}/{r.device}", fmt.ms(lat.get("median_ms")),
                     fmt.ms(lat.get("p99_ms")), fmt.num(lat.get("throughput_per_s"), ".1f")])
    print(fmt.table(["id", "created", "status", "name", "model", "chain", "runtime/device", "p50", "p99", "samples/s"], rows))
    return EXIT_OK


def _run_summary(r) -> dict:
    lat = r.latency or {}
    return {"id": r.id, "created_at": r.created_at, "status": r.status, "name": r.name, "tags": r.tags,
            "model": r.model, "chain": r.chain, "runtime": r.runtime, "device": r.device,
            "median_ms": lat.get("median_ms"), "p99_ms": lat.get("p99_ms"),
            "throughput_per_s": lat.get("throughput_per_s"), "error": r.error}


def cmd_show(args: argparse.Namespace) -> int:
    from .compare import baseline_for, comparison_row
    store = open_store(args)
    run = store.get_run(args.run_id)
    row = comparison_row(run, baseline_for(store, run)) if run.status == "done" else None
    if args.json:
        print(json.dumps({**run.to_dict(), "comparison": row}, indent=2, default=str))
        return EXIT_OK
    print(render_run(run, row))
    env = run.environment
    host = env.get("host", {})
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    print(f"  env       python {env.get('python')}, {env.get('platform')}")
    print(f"            CPU {host.get('cpu_model', '?')} ({host.get('cpu_logical_cores', '?')} logical cores)")
    print(f"            {packages}")
    gpu = env.get("gpu") or {}
    if gpu:
        print(f"            GPU: NVML {gpu.get('nvml')}, driver {gpu.get('driver_version')}, CUDA driver "
              f"{gpu.get('cuda_driver_version')}, {', '.join(g.get('name', '?') for g in gpu.get('gpus', []))}")
    print(f"  spec      {json.dumps(run.spec, sort_keys=True)}")
    print(f"  stored    {len(store.latencies(run.id))} latencies, {len(store.samples(run.id))} telemetry samples")
    if run.error_detail:
        print("  details:\n" + "\n".join("    " + line for line in run.error_detail.splitlines()[-20:]))
    return EXIT_OK if run.status == "done" else EXIT_FAILED


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs
    store = open_store(args)
    rows = compare_runs(store, args.run_ids)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    table = []
    for row in rows:
        speed = "baseline" if row["baseline_id"] is None and row["chain"] == "baseline" else (
            "—" if row["speedup"] is None else
            f"{row['speedup']:.2f}× [{row['speedup_ci'][0]:.2f}-{row['speedup_ci'][1]:.2f}]"
            + ("" if row["speedup_significant"] else " ~"))
        table.append([str(row["id"]), row["chain"][:48], row["status"], row["device"] or "",
                      fmt.ms(row["p50_ms"]), fmt.ms(row["p99_ms"]), fmt.num(row["throughput"], ".1f"), speed,
                      fmt.nbytes(row["size_bytes"]), fmt.ratio(row["size_ratio"]), fmt.pct(row["top1_agreement"]),
                      fmt.pct(row["accuracy"]),
                      fmt.num(None if row["energy_j_per_inference"] is None else row["energy_j_per_inference"] * 1e3, ".3f", " mJ")])
    print(fmt.table(["id", "chain", "status", "device", "p50", "p99", "samples/s", "speed-up [95% CI]", "size",
                     "size ratio", "top-1 agree", "accuracy", "energy/inf"], table))
    if any(r["speedup_significant"] is False for r in rows):
        print(f"~ = inside the noise: {NOISE_RULE}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    try:
        from .report import write_report
    except ImportError:
        raise WorkbenchError("reports are not available in this build yet") from None
    store = open_store(args)
    path = write_report(store, args.run_ids, args.output, criterion=args.criterion)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import discover_plugins
    registry = discover_plugins()
    if args.json:
        print(json.dumps({name: (info.cls.describe() if info.ok else {"name": name, "error": info.error})
                          for name, info in registry.items()}, indent=2))
        return EXIT_OK
    for name, info in registry.items():
        if not info.ok:
            print(f"{name}  [failed to load from {info.source}: {info.error}]\n")
            continue
        d = info.cls.describe()
        print(f"{name} — {d['summary']}")
        print(f"  formats: {', '.join(d['accepts'])} → {d['produces'] or 'same'};  devices: {', '.join(d['devices'])};  from {info.source}")
        for p in d["params"]:
            extra = f" choices: {'|'.join(p['choices'])}" if p.get("choices") else (
                f" range {info.cls.params_schema[[q.name for q in info.cls.params_schema].index(p['name'])].range_text()}"
                if p["minimum"] is not None or p["maximum"] is not None else "")
            print(f"    {p['name']} ({p['type']}, default {p['default']!r}){extra}: {p['help']}")
        print()
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .session import Session
    spec = RunSpec(model=args.model, factory=args.factory, trust_pickle=args.trust_pickle,
                   inputs=[InputSpec.parse(i) for i in args.input])
    spec.validate()
    info = Session(open_store(args)).inspect(spec)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['source']}  ({info['format']})")
    print(f"  parameters {fmt.count(info['parameters'])}, size {fmt.nbytes(info['bytes'])}, FLOPs/forward "
          f"{fmt.count(info['flops'])}")
    print(f"  inputs     {', '.join(str(InputSpec(**i)) for i in info['inputs']) or 'not declared (give --input)'}")
    print(f"  layers     {', '.join(f'{k}×{v}' for k, v in sorted(info['layer_counts'].items(), key=lambda kv: -kv[1]))}")
    for note in info.get("notes", []):
        print(f"  note       {note}")
    return EXIT_OK


def cmd_rename(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.get_run(args.run_id)
    store.rename_run(args.run_id, args.name)
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.get_run(args.run_id)
    store.set_tags(args.run_id, args.tags)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    store = open_store(args)
    for run_id in args.run_ids:
        store.get_run(run_id)
        store.delete_run(run_id)
    print(f"deleted {len(args.run_ids)} run(s)")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:
        raise WorkbenchError(f"the GUI cannot start: {exc}. Headless use: workbench bench demo:digits-cnn") from None
    return gui_main(db=args.db)


COMMANDS = {"bench": cmd_bench, "runs": cmd_runs, "show": cmd_show, "compare": cmd_compare, "report": cmd_report,
            "plugins": cmd_plugins, "inspect": cmd_inspect, "rename": cmd_rename, "tag": cmd_tag,
            "delete": cmd_delete, "gui": cmd_gui, None: cmd_gui}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, SpecError) as exc:
        _error(args, exc)
        return EXIT_USAGE
    except WorkbenchError as exc:
        _error(args, exc)   # raised before any run started: bad input
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            raise
        print(f"workbench: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


def _error(args: argparse.Namespace, exc: BaseException) -> None:
    if args.debug:
        import traceback
        traceback.print_exc()
    print(f"workbench: error: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
