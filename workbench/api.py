"""Workbench from Python: measure, compare, list and report runs, as the CLI does, as objects.

    import workbench
    run = workbench.bench("demo:digits-cnn", ["fuse:method=conv_bn"], iters=200, threads=1)
    run                                   # in Jupyter: latency, speed-up vs its baseline, fidelity
    print(workbench.compare([run.baseline, run]))
    workbench.runs(limit=20).to_pandas()
    workbench.report([run.baseline, run], "report.html")

Every run is stored in the results database (``db``; default ``$WORKBENCH_DB`` or the per-user data
dir, the same one the CLI and the GUI use). Importing this module imports neither torch nor Qt:
models load in a worker process.
"""
from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import format as fmt
from .results.compare import (baseline_for, compare_runs, comparison_row, comparison_table, row_for,
                               runtime_baseline_for)
from .errors import SpecError
from .engine.plan import check_chain, check_files_exist, plan_runs
from .spec import InputSpec, PluginStep, RunSpec
from .results.stats import NOISE_RULE
from .results.store import ResultsStore, RunRecord

__all__ = ["bench", "compare", "runs", "report", "Run", "RunList", "Comparison"]

# RunSpec fields that bench() takes as its own arguments rather than as run settings.
_NOT_SETTINGS = ("model", "plugins")


# -- bench ------------------------------------------------------------------------------------------
def bench(model: str | Path, plugins: str | PluginStep | Iterable[str | PluginStep] = (), *,
          db: str | Path | None = None, baseline: bool = True,
          on_event: Callable[[dict], None] | None = None, **run_settings: Any) -> "Run":
    """Measure ``model`` (a file or ``"demo:NAME"``), optimized by ``plugins`` in order; return the run.

    ``plugins``: ``"quantize:method=dynamic_int8"`` strings (the CLI's ``--plugin`` syntax) or
    :class:`PluginStep` objects. ``run_settings`` are :class:`RunSpec` fields (``threads``, ``device``,
    ``iters``, ``duration_s``, ``batch``, ``data``, ``runtime``, ``inputs`` as ``"1x3x224x224:float32"``
    strings or :class:`InputSpec`, ...). Everything is validated, the plugin chain included, before
    anything runs. With plugins and no stored baseline, the plain model is measured first
    (``baseline=False`` skips that). ``on_event`` receives the worker's event dicts as they arrive.

    A run that fails is returned with ``status == "failed"`` and its ``error``; Ctrl-C cancels the
    current run (stored as ``"cancelled"``) and starts no further one.
    """
    spec = _make_spec(model, plugins, run_settings)
    check_chain(spec)
    store = ResultsStore(db)
    store.settle_orphaned_runs()
    from .engine.session import Session   # imported here: only a bench needs the process machinery
    session = Session(store)
    from .engine.runner import run_planned
    records, _ = run_planned(session, plan_runs(store, spec, baseline=baseline), lambda _spec: on_event)
    return Run(records[-1], store, selection=records)


def _make_spec(model: str | Path, plugins: Any, settings: dict[str, Any]) -> RunSpec:
    known = {f.name for f in dataclasses.fields(RunSpec)} - set(_NOT_SETTINGS)
    unknown = sorted(set(settings) - known)
    if unknown:
        raise SpecError(f"unknown run setting(s) {', '.join(unknown)}; valid settings: {', '.join(sorted(known))}")
    settings = dict(settings)
    if "inputs" in settings:
        settings["inputs"] = [_input_spec(i) for i in _as_list(settings["inputs"])]
    spec = RunSpec(model=str(model), plugins=[_plugin_step(p) for p in _as_list(plugins)], **settings)
    spec.validate()
    check_files_exist(spec)
    return spec


def _as_list(value: Any) -> list:
    """One item or several: a lone string (or spec object) is a list of one."""
    if value is None:
        return []
    if isinstance(value, (str, PluginStep, InputSpec, Mapping)):
        return [value]
    return list(value)


def _plugin_step(value: Any) -> PluginStep:
    if isinstance(value, PluginStep):
        return value
    if isinstance(value, str):
        return PluginStep.parse(value)
    if isinstance(value, Mapping):
        return PluginStep(name=value["name"], params=dict(value.get("params") or {}))
    raise SpecError(f"bad plugin {value!r}: give 'name:key=value,...' or a PluginStep")


def _input_spec(value: Any) -> InputSpec:
    if isinstance(value, InputSpec):
        value.validate()
        return value
    if isinstance(value, str):
        return InputSpec.parse(value)
    if isinstance(value, Mapping):
        spec = InputSpec(**value)
        spec.validate()
        return spec
    raise SpecError(f"bad input {value!r}: give '[name=]1x3x224x224:float32' or an InputSpec")


# -- one run ----------------------------------------------------------------------------------------
class Run:
    """A stored run: its record, its per-iteration latencies and how it compares with its baseline."""

    def __init__(self, record: RunRecord, store: ResultsStore, selection: list[RunRecord] | None = None) -> None:
        self.record = record
        self._store = store
        self._selection = list(selection or [record])   # runs measured together: baseline candidates first
        self._baseline: RunRecord | None = None
        self._baseline_known = False

    # record fields
    id = property(lambda self: self.record.id)
    status = property(lambda self: self.record.status)
    model = property(lambda self: self.record.model)
    chain = property(lambda self: self.record.chain)
    name = property(lambda self: self.record.name)
    error = property(lambda self: self.record.error)
    spec = property(lambda self: self.record.spec)

    @property
    def result(self) -> dict:
        """The stored result: latency statistics, fidelity, telemetry, plugin reports (``{}`` if it failed)."""
        return self.record.result

    @property
    def generation(self) -> dict | None:
        """A generate run's figures: ``ttft_ms``, ``prefill`` and ``decode_token`` statistics,
        ``decode_tokens_per_s``, ``e2e_tokens_per_s``, ``kv_cache_bytes``, ... (None for a forward run)."""
        return (self.record.result or {}).get("generation")

    @property
    def lm_fidelity(self) -> dict | None:
        """A causal LM's fidelity on held-out text: ``perplexity``, ``reference_perplexity``,
        ``perplexity_delta_pct``, ``next_token_agreement``, ``kl_divergence``, ``continuation_agreement``."""
        return (self.record.result or {}).get("lm_fidelity")

    @property
    def latencies(self):
        """The measure phase's per-iteration latencies in nanoseconds, as stored (numpy int64 array)."""
        import numpy as np
        return np.asarray(self._store.latencies(self.id), dtype=np.int64)

    @property
    def baseline(self) -> "Run | None":
        """The plain-model run this one is compared with (``None`` for a baseline or when none is stored)."""
        record = self._baseline_record()
        return None if record is None else Run(record, self._store)

    @property
    def comparison(self) -> dict[str, Any]:
        """The row ``workbench compare`` shows for this run (speed-up with its CI, fidelity, size)."""
        return comparison_row(self.record, self._baseline_record(),
                              runtime_baseline=runtime_baseline_for(self._store, self.record, self._selection))

    def _baseline_record(self) -> RunRecord | None:
        if not self._baseline_known:
            self._baseline = baseline_for(self._store, self.record, self._selection)
            self._baseline_known = True
        return self._baseline

    def to_dict(self) -> dict[str, Any]:
        """The full record plus its comparison row (what ``workbench bench --json`` writes)."""
        return {**self.record.to_dict(), "comparison": self.comparison}

    def __repr__(self) -> str:
        head = f"Run(#{self.id} {self.model} [{self.chain}] {self.status}"
        if self.status != "done":
            return f"{head}: {self.error})"
        row = self.comparison
        text = f"{head}, p50 {fmt.ms(row['p50_ms'])}"
        if row["speedup"] is not None:
            low, high = row["speedup_ci"]
            text += f", {fmt.ratio(row['speedup'])} [{low:.2f}, {high:.2f}] vs #{row['baseline_id']}"
        if row.get("next_token_agreement") is not None:
            if row.get("ttft_ms") is not None:
                text += f", TTFT {fmt.ms(row['ttft_ms'])}, decode {fmt.num(row['decode_tok_s'], '.1f')} tokens/s"
            return text + (f", perplexity {fmt.num(row['perplexity'], '.4g')}, next-token agreement "
                           f"{fmt.pct(row['next_token_agreement'])})")
        return text + f", top-1 agreement {fmt.pct(row['top1_agreement'])})"

    def _repr_html_(self) -> str:
        row = self.comparison if self.status == "done" else None
        title = (f"<b>Run #{self.id}</b> {_e(self.model)} · {_e(self.chain)} · "
                 f"{_e(self.record.runtime or '')} on {_e(self.record.device or '')} · <b>{_e(self.status)}</b>")
        if row is None:
            return f"<div>{title}<br>reason: {_e(self.error or 'unknown')}</div>"
        latency = self.result.get("latency") or {}
        cells = [("latency", f"median {fmt.ms(row['p50_ms'])} (95% CI {fmt.ci(row['p50_ci_ms'])}), "
                             f"IQR {fmt.ms(row['iqr_ms'])}, n={row['n']}, batch {row['batch']}"),
                 ("throughput", f"{fmt.num(row['throughput'], '.1f')} samples/s"),
                 ("speed-up", _speedup_html(row)),
                 ("fidelity", _fidelity_html(row, self.result.get("fidelity") or {})),
                 ("verdict", _verdict_html(row)),
                 ("size", f"{fmt.nbytes(row['size_bytes'])} ({fmt.ratio(row['size_ratio'])} of the baseline)"
                          if row["size_ratio"] is not None else fmt.nbytes(row["size_bytes"]))]
        notes = (latency.get("warnings") or []) + list(row["flags"])
        body = "".join(f"<tr><th style='text-align:left'>{name}</th><td style='text-align:left'>{value}</td></tr>"
                       for name, value in cells)
        body += "".join(f"<tr><th style='text-align:left'>note</th><td style='text-align:left'>{_e(n)}</td></tr>"
                        for n in notes)
        return f"<div>{title}<table>{body}</table></div>"


def _e(text: Any) -> str:
    return html.escape(str(text))


# The core's verdict levels, coloured as every face colours them.
_VERDICT_COLOURS = {"win": "#1a7f37", "loss": "#cf222e", "failed": "#cf222e"}


def _verdict_html(row: dict) -> str:
    verdict = row["verdict"]
    colour = _VERDICT_COLOURS.get(verdict["level"])
    text = _e(verdict["text"])
    return f"<b style='color:{colour}'>{text}</b>" if colour else text


def _speedup_html(row: dict) -> str:
    # The project's rule: a speed-up is never shown without its fidelity cost, so the HTML always
    # puts this cell directly above the fidelity row.
    if row["speedup"] is None:
        return "baseline (no plugins)" if row["chain"] == "baseline" else "— (no baseline stored)"
    low, high = row["speedup_ci"]
    text = f"<b>{fmt.ratio(row['speedup'])}</b> [95% CI {low:.2f}, {high:.2f}] vs run #{row['baseline_id']}"
    if not row["speedup_significant"]:
        text += f" — inside the noise ({_e(NOISE_RULE)})"
    return text


def _fidelity_html(row: dict, fidelity: dict) -> str:
    parts = [f"top-1 agreement {fmt.pct(row['top1_agreement'])}", f"accuracy {fmt.pct(row['accuracy'])}"]
    if row["cosine"] is not None:
        parts.append(f"cosine {row['cosine']:.6f}")
    if row["max_abs_error"] is not None:
        parts.append(f"max |err| {row['max_abs_error']:.3g}")
    if fidelity.get("samples"):
        parts.append(f"{fidelity['samples']} samples vs the unoptimized model")
    return ", ".join(parts)


# -- many runs ------------------------------------------------------------------------------------
class Comparison:
    """Runs side by side against their baselines; ``str()`` is the ``workbench compare`` table."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __str__(self) -> str:
        return comparison_table(self.rows)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre>{_e(str(self))}</pre>"

    def to_pandas(self):
        """One row per run (the ``rows`` dicts) as a pandas DataFrame (needs ``workbench[pandas]``)."""
        return _pandas().DataFrame(self.rows)


class RunList(list):
    """Stored runs, newest first (a ``list`` of :class:`Run`)."""

    def compare(self) -> Comparison:
        return compare(self)

    def to_pandas(self):
        """One row per run: the comparison columns plus ``created_at`` (needs ``workbench[pandas]``)."""
        pd = _pandas()
        records = [run.record for run in self]
        rows = []
        for run in self:
            row = row_for(run._store, run.record, records)
            rows.append({"created_at": pd.Timestamp(run.record.created_at, unit="s", tz="UTC"), **row})
        return pd.DataFrame(rows)


def runs(db: str | Path | None = None, limit: int | None = None, status: str | None = None) -> RunList:
    """The stored runs, newest first (``status``: only "done", "failed", "cancelled" or "running")."""
    store = ResultsStore(db)
    store.settle_orphaned_runs()       # a run whose process died is listed as failed, not running
    return RunList(Run(record, store) for record in store.list_runs(limit=limit, status=status))


def compare(runs: Iterable[Run | RunRecord | int], *, db: str | Path | None = None) -> Comparison:
    """Compare runs (:class:`Run` objects, or run ids in ``db``) against their baselines."""
    store, ids = _store_and_ids(runs, db)
    return Comparison(compare_runs(store, ids))


def report(runs: Iterable[Run | RunRecord | int], path: str | Path, criterion: str = "p50", *,
           db: str | Path | None = None) -> Path:
    """Write the report of ``runs`` to ``path`` (.html, .pdf, .csv or .json, from the suffix); return its path.

    ``criterion`` picks the best variant as ``workbench report --criterion`` does.
    """
    from .report import write_report
    store, ids = _store_and_ids(runs, db)
    return write_report(store, ids, path, criterion=criterion)


def _store_and_ids(items: Iterable[Run | RunRecord | int], db: str | Path | None) -> tuple[ResultsStore, list[int]]:
    items = list(items)
    if not items:
        raise SpecError("no runs given")
    stores = {item._store.path.resolve(): item._store for item in items if isinstance(item, Run)}
    if db is not None:
        stores.setdefault(Path(db).expanduser().resolve(), None)
    if len(stores) > 1:
        raise SpecError(f"these runs come from different results databases ({', '.join(map(str, stores))}); "
                        "compare runs of one database")
    store = next(iter(stores.values()), None) or ResultsStore(db)
    ids = []
    for item in items:
        if isinstance(item, (Run, RunRecord)):
            ids.append(item.id)
        elif isinstance(item, int) and not isinstance(item, bool):
            ids.append(item)
        else:
            raise SpecError(f"bad run {item!r}: give a Run or a run id")
    for run_id in ids:
        store.get_run(run_id)   # an unknown id is one clear error, before any work
    return store, ids


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'workbench[pandas]'") from None
    return pandas
