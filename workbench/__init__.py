"""Workbench core: load, optimize, measure, store and compare neural-network variants (no Qt here).

The Python API (see README, "Python API")::

    import workbench
    run = workbench.bench("demo:digits-cnn", ["fuse:method=conv_bn"], threads=1)
    print(workbench.compare([run.baseline, run]))

``import workbench`` stays light (no torch, no Qt, no numpy): the GUI process imports this package
and must never load torch, so the API and the version are loaded on first use.

``workbench.compare`` and ``workbench.report`` are the API functions, although modules of the same
names exist: import those modules' contents with ``from workbench.results.compare import ...``.
"""
import sys
import types

__all__ = ["__version__", "bench", "compare", "runs", "report", "Run", "RunList", "Comparison"]

_API_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    if name in _API_NAMES:
        from . import api
        return getattr(api, name)
    if name == "__version__":
        global __version__
        __version__ = _installed_version()
        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps ``workbench.compare`` / ``workbench.report`` the API functions once their modules load.

    Importing a submodule sets it as an attribute of its package; for the two names the API
    shares with a module, that would replace the function, so the package declines it (the
    module stays importable through ``sys.modules``, as every ``from .compare import`` does).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _API_NAMES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _installed_version() -> str:
    """pyproject.toml's version, read from the installed package metadata (its one source of truth)."""
    from importlib import metadata
    try:
        return metadata.version("workbench")
    except metadata.PackageNotFoundError:   # a source tree that was never pip-installed
        return "0+unknown"
