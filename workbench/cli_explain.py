"""``workbench profile`` and ``workbench layers``: why a run is as fast and as faithful as it is.

``profile RUN [--vs RUN_A] [--trace FILE]`` shows a ``--profile`` run's per-op table, or which ops
make it faster or slower than RUN_A, in a sentence. ``layers RUN [--scan [PLUGIN]]`` shows each
layer's output drift and weight error against the unoptimized model (computed in a worker when the
run did not store it), or scans a plugin one layer at a time and suggests which layers to skip.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import time
from pathlib import Path

from . import format as fmt
from .cli_args import UsageError
from .cli_output import Output, Progress, open_store, output
from .errors import RunCancelled, WorkbenchError
from .spec import PluginStep

EXIT_OK, EXIT_FAILED = 0, 1
NO_LAYERS_ONNX = ("its model is ONNX, whose layers run inside ONNX Runtime where no forward hook reaches them "
                  "(per-node outputs would need the nodes' outputs added as extra graph outputs, not done yet); "
                  "run the same chain on the torch model (without onnx_export, --runtime torch) to compare layers")




def _done_run(store, run_id: int):
    run = store.get_run(run_id)
    if run.status != "done":
        raise UsageError(f"run #{run_id} is {run.status}: only a finished run can be explained")
    return run


def _command(spec: dict, *extra: str) -> str:
    from .report.command import spec_to_argv
    argv, _ = spec_to_argv(spec)
    return shlex.join(argv + [e for e in extra if e not in argv])


def _name(run) -> str:
    return f"run #{run.id} ({run.chain})"


# -- profile -------------------------------------------------------------------------------------------
def _profile_of(run) -> dict:
    from .results.explain import stored_profile
    profile = stored_profile(run)
    if profile is None:
        raise UsageError(f"run #{run.id} has no per-op profile; record one (after timing, never timed) with: "
                         f"{_command(run.spec, '--profile')}")
    if profile.get("error"):
        raise WorkbenchError(f"run #{run.id}'s profile failed: {profile['error']}")
    return profile


def cmd_profile(args: argparse.Namespace) -> int:
    from .results.profile_diff import check_comparable
    out = output(args)
    store = open_store(args)
    run = _done_run(store, args.run_id)
    profile = _profile_of(run)
    if args.vs is None:
        trace = _copy_trace(run, profile, args.trace) if args.trace else None
        if args.json_out:
            out.json({"run": run.id, "profile": profile, "trace": trace})
            return EXIT_OK
        out.text(_profile_text(run, profile, args.top))
        if trace:
            out.text(f"trace     copied to {trace} (open it in https://ui.perfetto.dev or chrome://tracing)")
        return EXIT_OK
    base = _done_run(store, args.vs)
    notes = check_comparable(base, run)        # before anything is written or printed
    base_profile = _profile_of(base)
    trace = _copy_trace(run, profile, args.trace) if args.trace else None
    return _show_diff(args, out, base, run, base_profile, profile, notes, trace)


def _show_diff(args: argparse.Namespace, out: Output, base, run, base_profile: dict, profile: dict,
               notes: list[str], trace: str | None) -> int:
    from .results.profile_diff import diff_profiles, explain_diff
    diff = diff_profiles(base_profile, profile)
    sentence = explain_diff(diff, _name(base), _name(run))
    latency = {r.id: (r.latency or {}).get("median_ms") for r in (base, run)}
    if latency[base.id] and latency[run.id] and diff["change_us"] \
            and (latency[run.id] > latency[base.id]) != (diff["change_us"] > 0):
        notes.append("the timed p50 and the profile disagree on which run is faster: the profile covers a few "
                     "iterations only (and the profiler's own overhead); trust the timed figures, and profile "
                     "again on a quiet machine to see why")
    if args.json_out:
        out.json({"run": run.id, "vs": base.id, "explanation": sentence, "diff": diff, "notes": notes,
                  "timed_p50_ms": {str(k): v for k, v in latency.items()}, "trace": trace})
        return EXIT_OK
    out.text(sentence + ".")
    out.text(f"timed p50 {fmt.ms(latency[base.id])} → {fmt.ms(latency[run.id])}; profiled ops "
             f"{_us(diff['total_before_us'])} → {_us(diff['total_after_us'])} per iteration")
    for note in notes:
        out.text(f"note      {note}")
    rows = []
    for group in ("slower", "new", "faster", "gone"):
        for row in [r for r in diff["ops"] if r["group"] == group][:args.top]:
            rows.append([group, row["op"], _us(row["before_us"]), _us(row["after_us"]),
                         ("+" if row["change_us"] > 0 else "") + _us(row["change_us"]),
                         fmt.pct(row["share_of_change"], 0), f"{row['calls_before']:g} → {row['calls_after']:g}"])
    out.text(fmt.table(["group", "op", f"#{base.id}", f"#{run.id}", "change", "of change", "calls/iter"], rows)
             if rows else "no op moved by more than 1 % of the total")
    if trace:
        out.text(f"trace     copied to {trace}")
    return EXIT_OK


def _profile_text(run, profile: dict, top: int) -> str:
    lines = [f"run #{run.id}  {run.model}  {run.chain}  on {run.device}",
             f"profile   {profile.get('source')}, {profile.get('iterations')} iterations after timing "
             f"({profile.get('time_basis')} time), ops {_us(profile.get('total_us') or 0)} per iteration; "
             f"timed p50 {fmt.ms((run.latency or {}).get('median_ms'))}"]
    rows = []
    for row in (profile.get("ops") or [])[:top]:
        shapes = (row.get("shapes") or [{}])[0].get("shapes") or ""
        rows.append([row["op"], _us(row["time_us"]), fmt.pct(row.get("share")), f"{row['calls']:g}",
                     shapes if len(shapes) <= 60 else shapes[:57] + "..."])
    lines.append(fmt.table(["op", "self time/iter", "% of total", "calls/iter", "input shapes (costliest)"], rows))
    hidden = (profile.get("ops_total") or 0) - len(rows)
    if hidden > 0:
        lines.append(f"... {hidden} more ops (--top N, or --json for the stored table)")
    lines += [f"note      {n}" for n in profile.get("notes") or []]
    return "\n".join(lines)


def _copy_trace(run, profile: dict, target: str) -> str:
    source = Path(str(profile.get("trace_path") or ""))
    if not source.is_file():
        raise WorkbenchError(f"run #{run.id}'s trace file {source} is gone (deleted or moved); "
                             f"record a new profile with: {_command(run.spec, '--profile')}")
    destination = Path(target).expanduser()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    except OSError as exc:
        raise WorkbenchError(f"could not write the trace to {destination}: {exc.strerror or exc}") from None
    return str(destination)


def _us(value: float) -> str:
    return ("−" if value < 0 else "") + fmt.ms(abs(value) / 1000)


# -- layers --------------------------------------------------------------------------------------------
def cmd_layers(args: argparse.Namespace) -> int:
    out = output(args)
    store = open_store(args)
    run = _done_run(store, args.run_id)
    _check_hookable(run)
    try:
        return _scan(args, out, store, run) if args.scan is not None else _layers(args, out, store, run)
    except RunCancelled as exc:       # like a cancelled run: exit 1, nothing stored
        out.error(f"cancelled: {exc}", "cancelled")
        return EXIT_FAILED


def _layers(args: argparse.Namespace, out: Output, store, run) -> int:
    from .results.explain import save_layers, stored_layers
    report = stored_layers(store, run)
    if report is None or "rows" not in report:
        if not run.spec.get("plugins"):
            raise UsageError(f"run #{run.id} is a baseline (no plugins): its layers have nothing to be compared "
                             "with; give --scan PLUGIN to see what a plugin would cost per layer")
        if report and report.get("error"):
            out.note(f"the run's own layer comparison failed ({report['error']}); computing it again")
        out.note(f"run #{run.id} stored no layer comparison: loading its model and applying its chain again")
        report = _worker_job(args, store, run, "layers", {})["layers"]
        if "rows" not in report:
            raise WorkbenchError(report.get("error") or "the layer comparison gave no rows")
        save_layers(store, run.id, report)
    if args.json_out:
        out.json({"run": run.id, "layers": report})
        return EXIT_OK
    out.text(_layers_text(run, report, args.top))
    return EXIT_OK


def _check_hookable(run) -> None:
    steps = [s.get("name") if isinstance(s, dict) else s for s in run.spec.get("plugins") or []]
    onnx = str(run.model).lower().endswith(".onnx") or run.runtime == "onnxruntime" or "onnx_export" in steps
    if onnx:
        raise UsageError(f"cannot compare the layers of run #{run.id}: {NO_LAYERS_ONNX}")


def _layers_text(run, report: dict, top: int) -> str:
    lines = [f"run #{run.id}  {run.model}  {run.chain}  vs the unoptimized model, on {report.get('samples')} "
             f"samples ({report.get('inputs') or 'the run inputs'})"]
    rows = report.get("rows") or []
    shown = [r for r in rows if r.get("leaf") or r.get("weight")]
    worst = max(((r.get("drift") or {}).get("relative_error") or 0.0 for r in shown), default=0.0)
    table = []
    for row in shown[:top]:
        drift = row.get("drift") or {}
        if "shape_changed" in drift:
            error, cosine, bar = "shape " + "→".join("x".join(map(str, s)) for s in drift["shape_changed"]), "", ""
        else:
            rel = drift.get("relative_error")
            error, cosine = fmt.num(rel, ".2e"), fmt.num(drift.get("cosine"), ".5f")
            bar = "█" * max(1, round(12 * rel / worst)) if rel and worst else ""
        table.append([row["name"], row.get("type_after") or row["type"], error, cosine, bar, _weight_text(row.get("weight")),
                      _change(row.get("params_before"), row.get("params_after"), fmt.count),
                      _change(row.get("flops_before"), row.get("flops_after"), fmt.count)])
    lines.append(fmt.table(["layer", "type", "output rel. error", "cosine", "", "weights", "params", "FLOPs"], table))
    if len(shown) > top:
        lines.append(f"... {len(shown) - top} more layers (--top N, or --json for all)")
    summary = report.get("summary") or {}
    if summary.get("most_drift"):
        lines.append(f"most drift: {', '.join(summary['most_drift'][:3])}")
    lines.append("weights: quantized = ε_q = |w − q(w)| (mean, max) and ‖w − q(w)‖/‖w‖; pruned = ‖Δw‖/‖w‖")
    lines += [f"note      {n}" for n in report.get("notes") or []]
    return "\n".join(lines)


def _weight_text(weight: dict | None) -> str:
    if not weight:
        return ""
    kind = weight["kind"]
    if kind == "quantized":
        return (f"→{weight.get('to')}: |w−q| {weight['mean_abs']:.2g}/{weight['max_abs']:.2g}, "
                f"rel {fmt.num(weight.get('relative'), '.2%')}")
    if kind == "pruned":
        return (f"pruned {fmt.pct(weight.get('sparsity_after'), 0)} zero: ‖Δw‖/‖w‖ "
                f"{fmt.num(weight.get('relative'), '.3f')}")
    if kind == "channels removed":
        shape = "x".join(map(str, weight["shape_after"]))
        return f"channels removed →{shape}: ‖Δw‖/‖w‖ ≈{fmt.num(weight.get('relative'), '.3f')}"
    return f"changed: ‖Δw‖/‖w‖ {fmt.num(weight.get('relative'), '.3f')}"


def _change(before, after, show) -> str:
    if before is None and after is None:
        return "—"
    return show(before) if before == after else f"{show(before)} → {show(after)}"


# -- sensitivity scan ------------------------------------------------------------------------------------
def _scan_step(args: argparse.Namespace, run) -> PluginStep:
    if args.scan:
        return PluginStep.parse(args.scan)
    steps = run.spec.get("plugins") or []
    if len(steps) != 1:
        raise UsageError(f"run #{run.id} has {len(steps) or 'no'} plugin steps: name the plugin to scan, "
                         "e.g. --scan quantize:method=dynamic_int8")
    step = steps[0]
    return PluginStep(step["name"], dict(step.get("params") or {}))


def _scan(args: argparse.Namespace, out: Output, store, run) -> int:
    from .engine.plan import check_chain
    from .results.explain import save_scan
    step = _scan_step(args, run)
    spec = {**run.spec, "plugins": [{"name": step.name, "params": step.params}], "runtime": "torch", "profile": False}
    check_chain(_as_spec(spec))        # an unknown plugin or bad parameter: refused before a worker starts
    out.note(f"scanning {step} one layer at a time on run #{run.id}'s model ({run.model})")
    scan = _worker_job(args, store, run, "scan", {"plugin": {"name": step.name, "params": step.params}})["scan"]
    save_scan(store, run.id, str(step), scan)
    suggestion = scan.get("suggestion")
    command = None
    if suggestion and scan.get("how") == "skip":
        skipped = {"name": step.name, "params": {**step.params, "skip": suggestion["params"]["skip"]}}
        command = _command({**run.spec, "plugins": [skipped]})
    if args.json_out:
        out.json({"run": run.id, "step": str(step), "scan": scan, "command": command})
        return EXIT_OK
    out.text(_scan_text(run, step, scan, command, args.top))
    return EXIT_OK


def _as_spec(spec: dict):
    from .spec import RunSpec
    return RunSpec.from_dict(spec)


def _scan_text(run, step: PluginStep, scan: dict, command: str | None, top: int) -> str:
    metric = {"top1_agreement": "top-1 agreement", "token_agreement": "token agreement"}.get(scan.get("metric"),
                                                                                          "cosine")
    whole = scan.get("all_layers") or {}
    lines = [f"{step} on {run.model}, one layer at a time ({len(scan.get('layers') or [])} layers, "
             f"{scan.get('samples')} samples, {scan.get('seconds', 0):.1f} s); all layers: {metric} "
             f"{fmt.num(whole.get(scan.get('metric')), '.4f')}, output rel. error {fmt.num(whole.get('output_error'), '.2e')}"]
    by_name = {r["name"]: r for r in scan.get("layers") or []}
    rows = []
    for rank, name in enumerate((scan.get("ranking") or [])[:top], 1):
        row = by_name[name]
        fidelity = row["fidelity"]
        rows.append([str(rank), name, row["type"], fmt.num(fidelity.get(scan.get("metric")), ".4f"),
                     fmt.num(row.get("drop"), ".4f"), fmt.num(row.get("output_error"), ".2e")])
    lines.append(fmt.table(["rank", "layer", "type", metric, "drop", "output rel. error"], rows))
    suggestion = scan.get("suggestion")
    if suggestion:
        n = len(suggestion["skip"])
        lines.append(f"skip the {n} most sensitive layer{'s' if n > 1 else ''} ({', '.join(suggestion['skip'])}): "
                     f"drop {fmt.num(suggestion.get('all_layers_drop'), '.4f')} → {fmt.num(suggestion.get('drop'), '.4f')}, "
                     f"output rel. error {fmt.num(whole.get('output_error'), '.2e')} → "
                     f"{fmt.num((suggestion.get('fidelity') or {}).get('output_error'), '.2e')}, "
                     f"{suggestion.get('layers_still_optimized')} layers still optimized")
        if command:
            lines.append(f"  {command}")
    lines += [f"note      {n}" for n in scan.get("notes") or []]
    return "\n".join(lines)


# -- the worker job ------------------------------------------------------------------------------------------
def _worker_job(args: argparse.Namespace, store, run, job: str, extra: dict) -> dict:
    from .engine.session import Session
    progress = Progress(f"#{run.id} {job}", quiet=args.quiet, verbose=args.verbose)
    try:
        return Session(store).explain(job, run.id, run.spec, extra, on_event=progress, cancel=args.stop)
    finally:
        progress({"type": "run_finished", "t": time.monotonic()})
