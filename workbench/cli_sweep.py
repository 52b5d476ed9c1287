"""``workbench sweep``, ``sweeps``, ``show-sweep`` and ``report --sweep``: grids of runs, here or on Ray.

``sweep MODEL --grid AXIS=V1,V2 ... [--repeat N] [--executor ray --address A]`` plans every point
first (``engine.sweep.plan_sweep``: nothing runs when a point is invalid), runs them (baselines
first, round by round), and shows the analysis (``results.sweep_analysis``). Ctrl-C stops after the
run in flight is stored as cancelled; ``sweep --resume ID`` runs what is left.
"""
from __future__ import annotations

import argparse
import time

from .cli_args import UsageError, spec_from_args
from .cli_output import Output, Progress, open_store, output

EXIT_OK, EXIT_FAILED = 0, 1




def _analysis(store, sweep_id: int, args: argparse.Namespace) -> dict:
    from .results.sweep_analysis import analyze_sweep
    from .results.sweeps import get_sweep
    from .results.verdict import DEFAULT_MIN_FIDELITY
    return analyze_sweep(store, get_sweep(store, sweep_id), getattr(args, "latency_budget", None),
                         getattr(args, "min_fidelity", DEFAULT_MIN_FIDELITY))


def cmd_sweep(args: argparse.Namespace) -> int:
    from .engine.executors import make_executor
    from .engine.sweep import claim_for_resume, create, pending_tasks, plan_sweep, run_sweep
    from .results.sweep_analysis import parse_latency_budget
    from .results.sweeps import SweepRecord
    from .telemetry.gpu_control import restore_leftover_settings

    out = output(args)
    parse_latency_budget(args.latency_budget)          # a bad budget is refused before anything runs
    for line in restore_leftover_settings():           # GPU settings a killed sweep left here (one file check)
        out.note(line)
    store = open_store(args)
    if args.resume is not None:
        if args.model or args.grid:
            raise UsageError("--resume continues a stored sweep with its own model and grid: drop MODEL and --grid")
        sweep = claim_for_resume(store, args.resume)
        plan, sweep_id = sweep.plan, sweep.id
    else:
        if not args.model:
            raise UsageError("give a model and at least one --grid NAME=V1,V2,... (or --resume ID)")
        plan = plan_sweep(store, spec_from_args(args), args.grid, repeat=args.repeat,
                          all_combinations=args.all_combinations, yes=args.yes, check_gpu=args.executor == "local")
        sweep_id = None
        for reason in plan["skipped"]:
            out.note(f"skipped {reason}")
    executor = make_executor(args.executor, store, address=args.address, require=args.require,
                             cpus_per_point=args.cpus_per_point, notify=out.note,
                             progress=lambda task: Progress(task.label, quiet=args.quiet, verbose=args.verbose))
    preview = SweepRecord(0, 0.0, None, "running", None, plan["base_spec"]["model"], plan, None)
    executor.check(pending_tasks(preview))     # e.g. no Ray node offers a GPU: refused before the sweep is stored
    if sweep_id is None:
        sweep_id = create(store, plan, args.name)
    total = plan["repeat"] * len(plan["points"])
    baselines = sum(p["role"] == "baseline" for p in plan["points"])
    out.note(f"sweep {sweep_id}: {plan['grid_points']} point(s)" + (f" + {baselines} baseline(s)" if baselines else "")
             + f" × {plan['repeat']} repeat(s) = {total} run(s), {executor.describe()}")
    finished = [0]
    started = time.monotonic()

    def on_point(task, outcome) -> None:
        finished[0] += 1
        tail = "" if outcome.status == "done" else f": {outcome.error}"
        out.note(f"[{finished[0]}] {task.label} (repeat {task.repeat + 1}): {outcome.status}"
                 + (f" on node {outcome.node[:12]}" if args.executor == "ray" and outcome.node else "") + tail)

    record = run_sweep(store, sweep_id, executor, args.stop, on_point)
    out.note(f"sweep {sweep_id} {record.status} after {time.monotonic() - started:.0f} s")
    analysis = _analysis(store, sweep_id, args)
    _show(out, args, analysis)
    counts = record.counts()
    return EXIT_OK if record.status == "done" and not counts["failed"] else EXIT_FAILED


def _show(out: Output, args: argparse.Namespace, analysis: dict) -> None:
    from .report.sweep import clean, render_sweep_text
    out.text(render_sweep_text(analysis))     # on stderr when stdout carries the JSON
    if args.json_out:
        out.json(clean(analysis))


def cmd_sweeps(args: argparse.Namespace) -> int:
    from . import format as fmt
    from .results.sweeps import list_sweeps
    out = output(args)
    store = open_store(args)
    sweeps = list_sweeps(store, limit=args.limit)
    if args.json_out:
        out.json([{**{k: v for k, v in s.to_dict().items() if k not in ("plan", "points")},
                   "axes": s.plan.get("axes"), "repeat": s.plan.get("repeat")} for s in sweeps])
        return EXIT_OK
    if not sweeps:
        out.text(f"no sweeps stored in {store.path} yet; try: workbench sweep demo:digits-cnn --grid batch=1,8,32")
        return EXIT_OK
    rows = []
    for s in sweeps:
        counts = s.counts()
        axes = " × ".join(f"{a['name']}[{len(a['values'])}]" for a in s.plan.get("axes") or []) or "combinations"
        rows.append([str(s.id), time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)), s.status,
                     s.name or "", s.model, axes, str(s.plan.get("repeat", 1)),
                     f"{counts['done']}/{len(s.points)}", str(counts["failed"]) if counts["failed"] else ""])
    out.text(fmt.table(["id", "created", "status", "name", "model", "axes", "repeat", "done", "failed"], rows))
    return EXIT_OK


def cmd_show_sweep(args: argparse.Namespace) -> int:
    out = output(args)
    analysis = _analysis(open_store(args), args.sweep_id, args)
    _show(out, args, analysis)
    return EXIT_OK


def cmd_report_sweep(args: argparse.Namespace) -> int:
    """``workbench report --sweep ID -o sweep.html|.csv|.json``."""
    from .report.sweep import write_sweep_report
    if args.run_ids:
        raise UsageError("give either run ids or --sweep ID, not both")
    out = output(args)
    store = open_store(args)
    path = write_sweep_report(store, _analysis(store, args.sweep, args), args.output, criterion=args.criterion)
    if args.json_out:
        out.json({"path": str(path), "sweep": args.sweep})
    else:
        out.text(f"wrote {path}")
    return EXIT_OK


COMMANDS = {"sweep": cmd_sweep, "sweeps": cmd_sweeps, "show-sweep": cmd_show_sweep}
__all__ = ["COMMANDS", "cmd_report_sweep", "cmd_show_sweep", "cmd_sweep", "cmd_sweeps"]
