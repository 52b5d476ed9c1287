"""Sweeps: a grid over run settings and plugin parameters, planned in full before anything runs.

``--grid batch=1,8,32 --grid prune.amount=0.1,0.5`` is expanded into points (the Cartesian product,
first axis slowest); each point is a ``RunSpec`` checked like any run (``RunSpec.validate``,
``plan.check_chain``), and every invalid point is reported before the first one runs. The baselines
the points are compared with come first (``plan.plan_runs``: a stored baseline of the same work is
reused; with ``--repeat`` >= 3 or ``--all-combinations`` they are measured in the sweep, as often as
the points). With ``--repeat N`` the points run in N rounds, every point once per round, so slow
drift of the machine falls on all of them alike. The plan is stored with the sweep
(``results.sweeps``): ``--resume ID`` runs only what has not finished.

Axes: run settings (``SETTING_AXES``), plugin parameters ``PLUGIN.PARAM`` (the plugin is appended to
the chain when the chain lacks it), and on a GPU ``power_limit`` (W) / ``sm_clock`` (MHz), applied
through NVML around each point (``telemetry.gpu_control``).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import PluginError, SpecError, WorkbenchError
from ..results import sweeps as sweep_store
from ..results.repeat_stats import MIN_PROCESSES
from ..results.store import ResultsStore
from ..spec import RunSpec, device_kind
from ..telemetry.gpu_control import GPU_AXES
from .executors import PointOutcome, PointTask
from .plan import check_chain, check_files_exist, pair_plan, plan_runs

# Run settings a grid can sweep, with the type of their values (RunSpec fields of the same name).
SETTING_AXES: dict[str, type] = {"batch": int, "threads": int, "seq_len": int, "prompt_len": int, "gen_len": int,
                                 "dtype": str, "runtime": str, "device": str, "scenario": str}
MAX_POINTS_WITHOUT_YES = 1000
PLAN_VERSION = 1


@dataclass
class Axis:
    name: str           # "batch", "prune.amount", "power_limit"
    kind: str           # "setting" | "plugin" | "gpu"
    values: list

    @property
    def plugin(self) -> str | None:
        return self.name.split(".", 1)[0] if self.kind == "plugin" else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _axis_kinds_hint() -> str:
    return (f"a run setting ({', '.join(SETTING_AXES)}), a GPU axis ({', '.join(GPU_AXES)}) or a plugin "
            "parameter PLUGIN.PARAM (e.g. prune.amount; see `workbench plugins`)")


def _typed(name: str, kind: str, text: str, param: Any = None) -> Any:
    if kind == "plugin":
        plugin, pname = name.split(".", 1)
        try:
            return param.parse(text, plugin)
        except PluginError as exc:
            raise SpecError(f"--grid {name}: {exc}") from None
    want = SETTING_AXES.get(name) or (float if name == "power_limit" else int)
    try:
        value = want(text)
    except ValueError:
        noun = "an integer" if want is int else "a number" if want is float else "text"
        raise SpecError(f"--grid {name}: {text!r} is not {noun}") from None
    if want is float and not (math.isfinite(value) and value > 0):
        raise SpecError(f"--grid {name}: {text!r} must be a positive number of {GPU_AXES[name]}")
    return value


def parse_axis(text: str) -> Axis:
    """``NAME=V1,V2,...`` -> an ``Axis`` with typed values; ``SpecError`` for an unknown axis, an
    empty list or a value given twice."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SpecError(f"bad --grid {text!r}: expected NAME=V1,V2,... (e.g. batch=1,8,32)")
    param = None
    if name in SETTING_AXES:
        kind = "setting"
    elif name in GPU_AXES:
        kind = "gpu"
    elif "." in name:
        kind = "plugin"
        param = _plugin_param(name)
    else:
        raise SpecError(f"--grid {name}: {name!r} is not {_axis_kinds_hint()}")
    texts = [t.strip() for t in rest.split(",")]
    if not any(texts):
        raise SpecError(f"--grid {name}= has no values: give a comma list like {name}=V1,V2")
    if not all(texts):
        raise SpecError(f"--grid {text!r} has an empty value (two commas, or one at an end)")
    values = [_typed(name, kind, t, param) for t in texts]
    seen: list = []
    for t, v in zip(texts, values):
        if v in seen:
            raise SpecError(f"--grid {name} lists {t} twice: each value once")
        seen.append(v)
    return Axis(name, kind, values)


def _plugin_param(name: str) -> Any:
    from ..plugin_api import discover_plugins
    plugin, pname = name.split(".", 1)
    info = discover_plugins().get(plugin)
    if info is None:
        raise SpecError(f"--grid {name}: {plugin!r} is no plugin, so {name!r} is not {_axis_kinds_hint()}")
    if info.cls is None:
        raise SpecError(f"--grid {name}: plugin {plugin!r} failed to load: {info.error}")
    schema = {p.name: p for p in info.cls.params_schema}
    if pname not in schema:
        raise SpecError(f"--grid {name}: {plugin} has no parameter {pname!r} (its parameters: "
                        f"{', '.join(schema) or 'none'})")
    return schema[pname]


def parse_grid(texts: list[str]) -> list[Axis]:
    axes = [parse_axis(t) for t in texts or []]
    names = [a.name for a in axes]
    for name in names:
        if names.count(name) > 1:
            raise SpecError(f"--grid {name} is given twice: put all its values in one --grid {name}=...")
    return axes


def describe_values(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


# -- expansion ----------------------------------------------------------------------------------------
def _apply(base: dict, axes: list[Axis], combo: tuple) -> tuple[dict, dict]:
    data = json.loads(json.dumps(base))      # a deep copy
    gpu = {}
    for axis, value in zip(axes, combo):
        if axis.kind == "setting":
            data[axis.name] = value
        elif axis.kind == "gpu":
            gpu[axis.name] = value
        else:
            plugin, pname = axis.name.split(".", 1)
            steps = [s for s in data["plugins"] if s["name"] == plugin]
            if len(steps) > 1:
                raise SpecError(f"--grid {axis.name}: {plugin} appears {len(steps)} times in the chain; "
                                "a plugin axis needs it once")
            if steps:
                steps[0]["params"][pname] = value
            else:
                data["plugins"].append({"name": plugin, "params": {pname: value}})
    return data, gpu


def _subsets(steps: list[dict]) -> list[list[dict]]:
    """Every non-empty sub-chain, steps in the chain's order: a full factorial design, so each
    plugin's effect can be averaged over the others' presence."""
    return [[steps[i] for i in chosen] for size in range(1, len(steps) + 1)
            for chosen in itertools.combinations(range(len(steps)), size)]


def _grid_size(axes: list[Axis]) -> int:
    return math.prod(len(a.values) for a in axes) if axes else 1


def expand(base: RunSpec, axes: list[Axis], all_combinations: bool = False) -> list[dict]:
    """The grid's points in order (first axis slowest): ``{"values", "spec", "gpu", "combo"}``."""
    points = []
    for combo in itertools.product(*[a.values for a in axes]):
        data, gpu = _apply(base.to_dict(), axes, combo)
        values = {a.name: v for a, v in zip(axes, combo)}
        if not all_combinations:
            points.append({"values": values, "spec": data, "gpu": gpu, "combo": None})
            continue
        for subset in _subsets(data["plugins"]):
            points.append({"values": values, "spec": {**data, "plugins": subset}, "gpu": gpu,
                           "combo": [s["name"] for s in subset]})
    return points


def _point_error(point: dict) -> str | None:
    try:
        spec = RunSpec.from_dict(point["spec"])
        check_chain(spec)
        if point["gpu"] and device_kind(spec.device) != "cuda":
            raise SpecError(f"{', '.join(point['gpu'])} needs a GPU run (--device cuda), not {spec.device}")
    except WorkbenchError as exc:
        return str(exc)
    return None


def _describe_point(point: dict) -> str:
    text = describe_values(point["values"])
    if point.get("combo") is not None:
        text = f"{text}, " if text else ""
        text += "chain: " + " → ".join(point["combo"])
    return text or "the run as given"


def _key(spec: dict, gpu: dict) -> str:
    return json.dumps({"spec": {**spec, "label": None}, "gpu": gpu}, sort_keys=True)


def plan_sweep(store: ResultsStore, base: RunSpec, grid: list[str], *, repeat: int = 1,
               all_combinations: bool = False, yes: bool = False, check_gpu: bool = True,
               nvml_module: Any = None) -> dict:
    """The whole sweep, checked: raises ``SpecError`` (nothing runs) for a bad axis, a grid of more
    than ``MAX_POINTS_WITHOUT_YES`` points without ``yes``, or any invalid point (all named)."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise SpecError(f"--repeat must be an integer >= 1, got {repeat!r}")
    if base.save_model:
        raise SpecError("a sweep does not save models (every point would write the same file): drop --save-model, "
                        "then save the point you want with `workbench bench ... --save-model`")
    axes = parse_grid(grid)
    if not axes and not all_combinations:
        raise SpecError("a sweep needs at least one --grid NAME=V1,V2,... (or --all-combinations with plugins)")
    if all_combinations:
        if not base.plugins:
            raise SpecError("--all-combinations needs plugins (-p NAME:...) to combine")
        if any(a.kind == "plugin" for a in axes):
            raise SpecError("--all-combinations with a plugin-parameter axis is not supported: sweep the parameter, "
                            "or compare the combinations, in separate sweeps")
    combos = (2 ** len(base.plugins) - 1) if all_combinations else 1
    count = _grid_size(axes) * combos
    if count > MAX_POINTS_WITHOUT_YES and not yes:
        sizes = " × ".join(str(len(a.values)) for a in axes) + (f" × {combos} combinations" if combos > 1 else "")
        raise SpecError(f"the grid has {count} points ({sizes}), more than {MAX_POINTS_WITHOUT_YES}: "
                        f"pass --yes to run them all ({count * repeat} runs with --repeat {repeat})")
    check_files_exist(base)
    grid_points, skipped, errors = expand(base, axes, all_combinations), [], []
    for i, p in enumerate(list(grid_points)):
        error = _point_error(p)
        if error is None:
            continue
        if p["combo"] is not None and len(p["combo"]) < len(base.plugins):
            # a sub-chain that cannot run (a step needs what an earlier one makes): left out, like
            # plan.combinations_plan does, rather than failing the others
            skipped.append(f"{_describe_point(p)}: {error}")
            grid_points.remove(p)
        else:
            errors.append(f"point {i + 1} ({_describe_point(p)}): {error}")
    if errors:
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise SpecError(f"{len(errors)} of {len(grid_points)} sweep points are invalid, nothing was run: "
                        + "; ".join(errors[:3]) + more)
    if check_gpu:
        _check_gpu_axes(grid_points, nvml_module)
    force = repeat >= MIN_PROCESSES or all_combinations or any(a.kind == "gpu" for a in axes)
    plan = _with_baselines(store, base, axes, grid_points, repeat, all_combinations, force)
    plan["skipped"] = skipped
    return plan


def _check_gpu_axes(points: list[dict], nvml_module: Any) -> None:
    from ..telemetry.gpu_control import check_gpu_axes, nvml_index_for_device
    by_device: dict[str, dict[str, list]] = {}
    for p in points:
        for name, value in p["gpu"].items():
            values = by_device.setdefault(p["spec"]["device"], {}).setdefault(name, [])
            if value not in values:
                values.append(value)
    for device, values in by_device.items():
        check_gpu_axes(values, nvml_index_for_device(device, nvml_module), nvml_module)


def _with_baselines(store: ResultsStore, base: RunSpec, axes: list[Axis], grid_points: list[dict], repeat: int,
                    all_combinations: bool, force: bool) -> dict:
    since = time.time()
    settings = {a.name for a in axes if a.kind != "plugin"}     # what a baseline shares with its points
    references: dict[str, dict] = {}
    measured = {_key(p["spec"], p["gpu"]) for p in grid_points}   # a reference the grid measures anyway
    planned = []
    for point in grid_points:
        spec = RunSpec.from_dict(point["spec"])
        if force and spec.plugins:
            extra = pair_plan(spec)[:-1]      # measured in this sweep, whatever the store holds
        else:
            extra = plan_runs(store, spec, since=since)[:-1]
        baseline = None
        for ref in extra:
            key = _key(ref.to_dict(), point["gpu"])
            if key not in references and key not in measured:
                references[key] = {"role": "baseline", "spec": ref.to_dict(),
                                   "values": {k: v for k, v in point["values"].items() if k in settings},
                                   "gpu": dict(point["gpu"]),
                                   "combo": [s.name for s in ref.plugins] if all_combinations else None}
            if not ref.plugins:
                baseline = key
        planned.append((point, baseline))
    ordered = list(references.values())
    index_of = {key: i for i, key in enumerate(references)}
    for point, baseline in planned:
        ordered.append({**point, "role": "point", "baseline": index_of.get(baseline)})
    for i, p in enumerate(ordered):
        p["index"] = i
        p.setdefault("baseline", None)
    return {"version": PLAN_VERSION, "base_spec": base.to_dict(), "axes": [a.to_dict() for a in axes],
            "repeat": repeat, "all_combinations": all_combinations, "grid_points": len(grid_points),
            "points": ordered}


# -- running -------------------------------------------------------------------------------------------
def point_label(sweep_id: int, point: dict) -> str:
    what = _describe_point(point) if point["role"] == "point" else "baseline" + (
        f" ({describe_values(point['values'])})" if point["values"] else "")
    return f"sweep {sweep_id} · {what}"


def pending_tasks(sweep: sweep_store.SweepRecord) -> list[PointTask]:
    """What is left to run, in order: round by round (``--repeat``), baselines first in each round."""
    finished = {(p.point, p.repeat) for p in sweep.points if p.status == "done"}
    plan = sweep.plan
    compared = {}       # baseline index -> the specs of the points compared with it
    for p in plan["points"]:
        if p["role"] == "point" and p.get("baseline") is not None:
            compared.setdefault(p["baseline"], []).append(p["spec"])
    return [PointTask(sweep.id, p["index"], r, p["spec"], p.get("gpu") or {}, point_label(sweep.id, p),
                      compared.get(p["index"], []) if p["role"] == "baseline" else [])
            for r in range(plan["repeat"]) for p in plan["points"] if (p["index"], r) not in finished]


def create(store: ResultsStore, plan: dict, name: str | None = None) -> int:
    return sweep_store.create_sweep(store, plan["base_spec"]["model"], plan, name)


def run_sweep(store: ResultsStore, sweep_id: int, executor: Any, cancel: threading.Event | None = None,
              on_point: Callable[[PointTask, PointOutcome], None] | None = None) -> sweep_store.SweepRecord:
    """Run what is left of sweep ``sweep_id`` on ``executor``; a failed point is recorded with its
    reason and the sweep goes on; a stop (``cancel``) leaves the sweep ``interrupted``, resumable."""
    cancel = cancel or threading.Event()
    tasks = pending_tasks(sweep_store.get_sweep(store, sweep_id))
    executor.check(tasks)

    def started(task: PointTask) -> None:
        sweep_store.update_point(store, sweep_id, task.point, task.repeat, "running")

    def done(task: PointTask, outcome: PointOutcome) -> None:
        sweep_store.update_point(store, sweep_id, task.point, task.repeat, outcome.status, run_id=outcome.run_id,
                                 error=outcome.error, node=outcome.node, attempts=outcome.attempts)
        if on_point is not None:
            on_point(task, outcome)

    try:
        executor.run(tasks, started, done, cancel)
    except BaseException:
        sweep_store.finish_sweep(store, sweep_id, "interrupted", "stopped by an error; resume it with --resume")
        raise
    record = sweep_store.get_sweep(store, sweep_id)
    left = [p for p in record.points if p.status in ("pending", "running", "cancelled")]
    if cancel.is_set() or left:
        for p in record.points:
            if p.status == "running":
                sweep_store.update_point(store, sweep_id, p.point, p.repeat, "pending")
        why = getattr(cancel, "reason", None) or "stopped"
        sweep_store.finish_sweep(store, sweep_id, "interrupted", f"{why}; {len(left)} run(s) left: "
                                 f"resume with `workbench sweep --resume {sweep_id}`")
    else:
        sweep_store.finish_sweep(store, sweep_id, "done")
    return sweep_store.get_sweep(store, sweep_id)


def claim_for_resume(store: ResultsStore, sweep_id: int) -> sweep_store.SweepRecord:
    """Take over an interrupted sweep; refuses one still running elsewhere or one with nothing left."""
    sweep = sweep_store.get_sweep(store, sweep_id)
    if sweep.status == "running":
        raise SpecError(f"sweep {sweep_id} is still running in another process; wait for it, or stop it first")
    if sweep.status == "unreadable":
        raise SpecError(sweep.error or f"sweep {sweep_id} cannot be read")
    if not pending_tasks(sweep):
        raise SpecError(f"sweep {sweep_id} has nothing left to run: all its points finished "
                        f"(`workbench show-sweep {sweep_id}`)")
    sweep_store.claim_sweep(store, sweep_id)
    return sweep_store.get_sweep(store, sweep_id)
