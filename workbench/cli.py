"""``workbench`` command line: the GUI's every action, headless.

Exit codes: 0 ok, 1 the run failed (or was cancelled), 2 bad usage/input. Errors are one line;
``--debug`` shows tracebacks. ``--json -`` makes stdout JSON only, errors included.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from . import format as fmt
from .cli_args import UsageError, build_parser, spec_from_args, with_default_command
from .engine.plan import check_files_exist, check_model_source
from .cli_output import Output, Progress, open_store, output, render_run
from .cli_explain import cmd_layers, cmd_profile
from .cli_sweep import COMMANDS as SWEEP_COMMANDS, cmd_report_sweep
from .errors import SpecError, WorkbenchError
from .spec import InputSpec, RunSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class StopRequest(threading.Event):
    """Set when the user or the system asks the CLI to stop (Ctrl-C, SIGTERM from `timeout` or a
    closing terminal, SIGHUP). The run in flight is then cancelled cleanly and stored as cancelled."""

    reason: str | None = None


class stop_on_signals:
    """While a command runs: the first SIGINT/SIGTERM/SIGHUP sets ``stop``, so the session
    cancels the worker and stores what was measured; a second one interrupts at once."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.reason = f"cancelled: workbench received {signal.Signals(signum).name}"
        self.stop.set()

    def __enter__(self) -> "stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# -- commands ------------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from .engine.plan import check_chain, combinations_plan, plan_note, plan_runs
    from .plugin_api import chain_warnings
    from .engine.runner import run_planned
    from .engine.session import Session
    from .results.compare import comparison_table, row_for

    out = output(args)
    spec = spec_from_args(args)
    check_files_exist(spec)
    check_chain(spec)          # before anything runs (no torch needed)
    for warning in chain_warnings(spec.plugins, spec.model_format, spec.device, spec.runtime, spec.batch):
        out.note(f"warning: {warning}")
    if args.all_combinations and args.no_baseline:
        raise UsageError("--all-combinations always measures the baseline; drop --no-baseline")
    store = open_store(args)
    session = Session(store)
    if args.all_combinations:
        planned, skipped = combinations_plan(spec)
        for reason in skipped:
            out.note(f"skipped {reason}")
    else:
        planned = plan_runs(store, spec, baseline=not args.no_baseline)
        if plan_note(spec, planned):
            out.note(plan_note(spec, planned))
    records, refused = run_planned(session, planned, lambda s: _progress(s, args), args.stop,
                                   require_last=not args.all_combinations)
    for reason in refused:
        out.note(f"skipped {reason}")
    rows = [row_for(store, r, records, args.min_fidelity) for r in records]
    if args.all_combinations:
        out.text(comparison_table(rows))
        contributions = plugin_contributions(records, rows)
        for line in contributions_text(contributions):
            out.text(line)
    else:
        out.text(render_run(records[-1], rows[-1] if records[-1].status == "done" else None))
    if args.json_out:
        payloads = []
        for run, row in zip(records, rows):
            payload = {**run.to_dict(), "comparison": row}
            if run.status != "done":
                payload.update(error=run.error, kind=f"run_{run.status}")
            payloads.append(payload)
        out.json({"runs": payloads, "contributions": contributions} if args.all_combinations else payloads[-1])
    return EXIT_OK if all(r.status == "done" for r in records) else EXIT_FAILED


def plugin_contributions(records: list, rows: list[dict]) -> list[dict]:
    """Each plugin's effect in an --all-combinations plan: with it vs without it, averaged over the
    measured combinations of the others (``results.sweep_analysis.contributions``, the sweep's rule)."""
    from .results.sweep_analysis import contributions
    entries = []
    for run, row in zip(records, rows):
        if run.status != "done":
            continue
        combo = [step["name"] for step in run.spec.get("plugins") or []]
        fidelity = row.get("next_token_agreement") or row.get("top1_agreement") or row.get("cosine")
        entries.append({"values": {}, "combo": combo, "role": "variant" if combo else "baseline",
                        "speedup": row.get("speedup"), "fidelity": fidelity})
    return contributions(entries)


def contributions_text(contributions: list[dict]) -> list[str]:
    lines = []
    for c in contributions:
        if c["speedup_factor"] is None:
            continue
        fidelity = "" if c["fidelity_delta"] is None else f", fidelity {100 * c['fidelity_delta']:+.1f} pts"
        lines.append(f"contribution of {c['plugin']}: {c['speedup_factor']:.2f}× speed{fidelity} "
                     f"(with vs without it, over {c['pairs']} pair{'s' if c['pairs'] != 1 else ''})")
    return lines


def _progress(spec: RunSpec, args: argparse.Namespace) -> Progress:
    return Progress(spec.label or spec.describe_chain(), quiet=args.quiet, verbose=args.verbose)


def cmd_runs(args: argparse.Namespace) -> int:
    out = output(args)
    store = open_store(args)
    runs = store.list_runs(limit=args.limit)
    if args.json_out:
        out.json([_run_summary(r) for r in runs])
        return EXIT_OK
    if not runs:
        out.text(f"no runs stored in {store.path} yet; try: workbench bench demo:digits-cnn")
        return EXIT_OK
    rows = []
    for r in runs:
        lat = r.latency or {}
        rows.append([str(r.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)), r.status,
                     r.name or "", r.model, r.chain, f"{r.runtime}/{r.device}", fmt.ms(lat.get("median_ms")),
                     fmt.ms(lat.get("p99_ms")), fmt.num(lat.get("throughput_per_s"), ".1f")])
    out.text(fmt.table(["id", "created", "status", "name", "model", "chain", "runtime/device", "p50", "p99",
                        "samples/s"], rows))
    return EXIT_OK


def _run_summary(r) -> dict:
    lat = r.latency or {}
    return {"id": r.id, "created_at": r.created_at, "status": r.status, "name": r.name, "tags": r.tags,
            "model": r.model, "chain": r.chain, "runtime": r.runtime, "device": r.device,
            "median_ms": lat.get("median_ms"), "p99_ms": lat.get("p99_ms"),
            "throughput_per_s": lat.get("throughput_per_s"), "error": r.error}


def cmd_show(args: argparse.Namespace) -> int:
    from .results.compare import row_for
    out = output(args)
    store = open_store(args)
    run = store.get_run(args.run_id)
    row = row_for(store, run, None, args.min_fidelity) if run.status == "done" else None
    if args.json_out:
        out.json({**run.to_dict(), "comparison": row})
        return EXIT_OK if run.status == "done" else EXIT_FAILED
    lines = [render_run(run, row)]
    env = run.environment
    host = env.get("host", {})
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    lines.append(f"  env       python {env.get('python')}, {env.get('platform')}")
    lines.append(f"            CPU {host.get('cpu_model', '?')} ({host.get('cpu_logical_cores', '?')} logical cores)")
    lines.append(f"            {packages}")
    gpu = env.get("gpu") or {}
    if gpu:
        lines.append(f"            GPU: NVML {gpu.get('nvml')}, driver {gpu.get('driver_version')}, CUDA driver "
                     f"{gpu.get('cuda_driver_version')}, {', '.join(g.get('name', '?') for g in gpu.get('gpus', []))}")
    lines.append(f"  spec      {json.dumps(run.spec, sort_keys=True)}")
    lines.append(f"  stored    {len(store.latencies(run.id))} latencies, {len(store.samples(run.id))} telemetry samples")
    if run.error_detail:
        lines.append("  details:\n" + "\n".join("    " + line for line in run.error_detail.splitlines()[-20:]))
    out.text("\n".join(lines))
    return EXIT_OK if run.status == "done" else EXIT_FAILED


def cmd_compare(args: argparse.Namespace) -> int:
    from .results.compare import compare_runs, comparison_table
    out = output(args)
    rows = compare_runs(open_store(args), args.run_ids, args.min_fidelity)
    if args.json_out:
        out.json(rows)
        return EXIT_OK
    out.text(comparison_table(rows))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    if getattr(args, "sweep", None) is not None:
        return cmd_report_sweep(args)      # cli_sweep (issue 16)
    if not args.run_ids:
        raise UsageError("give the run ids to report (or --sweep ID)")
    out = output(args)
    path = write_report(open_store(args), args.run_ids, args.output, criterion=args.criterion)
    if args.json_out:
        out.json({"path": str(path), "runs": args.run_ids})
    else:
        out.text(f"wrote {path}")
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugin_api import discover_plugins
    out = output(args)
    registry = discover_plugins()
    if args.json_out:
        out.json({name: (info.cls.describe() if info.ok else {"name": name, "error": info.error})
                  for name, info in registry.items()})
        return EXIT_OK
    for name, info in registry.items():
        if not info.ok:
            out.text(f"{name}  [failed to load from {info.source}: {info.error}]\n")
            continue
        d = info.cls.describe()
        out.text(f"{name} — {d['summary']}")
        out.text(f"  formats: {', '.join(d['accepts'])} → {d['produces'] or 'same'};  devices: "
                 f"{', '.join(d['devices'])};  from {info.source}")
        for p in d["params"]:
            extra = f" choices: {'|'.join(p['choices'])}" if p.get("choices") else (
                f" range {info.cls.params_schema[[q.name for q in info.cls.params_schema].index(p['name'])].range_text()}"
                if p["minimum"] is not None or p["maximum"] is not None else "")
            only = f" [{d['method_param']}={'|'.join(p['methods'])} only]" if p.get("methods") else ""
            out.text(f"    {p['name']} ({p['type']}, default {p['default']!r}){extra}{only}: {p['help']}")
        needs = {m: devs for m, devs in (d.get("method_devices") or {}).items() if list(devs) != list(d["devices"])}
        if needs:
            out.text("  device-bound: " + ", ".join(f"{m} needs {'/'.join(devs)}" for m, devs in needs.items()))
        out.text()
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .engine.session import Session
    out = output(args)
    check_model_source(args.model)
    spec = RunSpec(model=args.model, factory=args.factory, trust_pickle=args.trust_pickle,
                   inputs=[InputSpec.parse(i) for i in args.input], trust_remote_code=args.trust_remote_code,
                   task=args.task)
    spec.validate()
    info = Session(open_store(args)).inspect(spec, cancel=args.stop)
    if args.json_out:
        out.json(info)
        return EXIT_OK
    out.text(f"{info['source']}  ({info['format']})")
    if info.get("hf"):
        out.text(f"  model      {info['hf']['summary']}")
    flops = fmt.count(info["flops"])
    if info.get("flops_partial"):
        flops = f">= {flops} (partial: {', '.join(info.get('flops_uncounted') or [])} not counted)"
    batch = f" at batch {info['flops_batch']}" if info.get("flops_batch") else ""
    out.text(f"  parameters {fmt.count(info['parameters'])}, size {fmt.nbytes(info['bytes'])}, FLOPs per forward"
             f"{batch} {flops}")
    out.text(f"  inputs     {', '.join(str(InputSpec(**i)) for i in info['inputs']) or 'not declared (give --input)'}")
    out.text(f"  layers     {', '.join(f'{k}×{v}' for k, v in sorted(info['layer_counts'].items(), key=lambda kv: -kv[1]))}")
    for note in info.get("notes", []):
        out.text(f"  note       {note}")
    return EXIT_OK


def _edit_command(change):
    """rename / tag / delete: act on stored runs, confirm in text or JSON."""
    def command(args: argparse.Namespace) -> int:
        store = open_store(args)
        ids = getattr(args, "run_ids", None) or [args.run_id]
        for run_id in ids:
            store.get_run(run_id)      # a missing id is a usage error before anything changes
        message = change(store, args, ids)
        out = output(args)
        if args.json_out:
            out.json({"ok": True, "runs": ids})
        elif message:
            out.text(message)
        return EXIT_OK
    return command


def _delete(store, args: argparse.Namespace, ids: list[int]) -> str:
    for run_id in ids:
        store.delete_run(run_id)
    return f"deleted {len(ids)} run(s)"


cmd_rename = _edit_command(lambda store, args, ids: store.rename_run(args.run_id, args.name))
cmd_tag = _edit_command(lambda store, args, ids: store.set_tags(args.run_id, args.tags))
cmd_delete = _edit_command(_delete)


def cmd_gui(args: argparse.Namespace) -> int:
    model = getattr(args, "model", None)
    if model:
        check_model_source(model)      # a bad path: the CLI's one-line error, exit 2, no window
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:
        raise WorkbenchError(f"the GUI cannot start: {exc}. Headless use: workbench bench demo:digits-cnn") from None
    return gui_main(db=args.db, open_model=model)


COMMANDS = {"bench": cmd_bench, "runs": cmd_runs, "show": cmd_show, "compare": cmd_compare, "report": cmd_report,
            "plugins": cmd_plugins, "inspect": cmd_inspect, "rename": cmd_rename, "tag": cmd_tag,
            "delete": cmd_delete, "gui": cmd_gui, None: cmd_gui,
            "profile": cmd_profile, "layers": cmd_layers,     # cli_explain (issue 15)
            **SWEEP_COMMANDS}                                  # cli_sweep (issue 16)


def main(argv: list[str] | None = None) -> int:
    stop = StopRequest()
    with stop_on_signals(stop):      # first: a signal during start-up is a clean stop too
        parser = build_parser()
        args = parser.parse_args(with_default_command(list(sys.argv[1:] if argv is None else argv)))
        _configure_logging(args)
        args.stop = stop
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    try:
        if args.stop.is_set():
            raise KeyboardInterrupt
        return COMMANDS[args.command](args)
    except (UsageError, SpecError) as exc:
        _error(args, exc, "usage")
        return EXIT_USAGE
    except WorkbenchError as exc:
        _error(args, exc, type(exc).__name__)   # raised before any run started: bad input
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error(args, "interrupted", "interrupted")
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line unless --debug
        if args.debug:
            raise
        _error(args, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", "internal")
        return EXIT_FAILED


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING - 10 * min(2, args.verbose) if not args.quiet else logging.ERROR
    logging.basicConfig(level=level, format="workbench: %(levelname)s: %(message)s", stream=sys.stderr)


def _error(args: argparse.Namespace, exc: BaseException | str, kind: str) -> None:
    if args.debug and isinstance(exc, BaseException):
        import traceback
        traceback.print_exc()
    Output(args.json_out).error(str(exc), kind)


if __name__ == "__main__":
    sys.exit(main())
