"""Which runs a bench request needs: the baseline-first rule shared by the CLI and the Python API.

A speed-up means nothing without the plain model measured under the same conditions, so a
request with plugins runs the plain model first when the store holds no baseline for it.
"Same conditions" is ``compare.baseline_for``'s rule, the one the comparison tables use.
"""
from __future__ import annotations

from ..results.compare import baseline_for_spec
from ..spec import RunSpec
from ..results.store import ResultsStore

__all__ = ["baseline_spec", "check_chain", "needs_baseline", "plan_runs"]


def check_chain(spec: RunSpec) -> None:
    """Validate ``spec``'s plugin chain before anything runs (no torch import); raises ``PluginError``."""
    if spec.plugins:
        from ..plugin_api import build_chain
        build_chain(spec.plugins, spec.model_format, spec.device, spec.runtime)


def baseline_spec(spec: RunSpec) -> RunSpec:
    """The plain-model twin of ``spec``: same model and settings, no plugins, label or saved model."""
    return RunSpec.from_dict({**spec.to_dict(), "plugins": [], "label": None, "save_model": None})


def needs_baseline(store: ResultsStore, spec: RunSpec) -> bool:
    """True when ``spec`` has plugins and ``store`` holds no baseline its results could be compared with."""
    return bool(spec.plugins) and baseline_for_spec(store, spec) is None


def plan_runs(store: ResultsStore, spec: RunSpec, baseline: bool = True) -> list[RunSpec]:
    """The specs to run, in order: ``[baseline_spec(spec), spec]`` when a baseline is missing, else ``[spec]``.

    ``baseline=False`` (the CLI's ``--no-baseline``) never adds the plain run.
    """
    if baseline and needs_baseline(store, spec):
        return [baseline_spec(spec), spec]
    return [spec]
