"""Plugins are found through the ``workbench.plugins`` entry-point group; the first-party ones in
``plugins/`` are registered exactly like a third-party package's would be. A plugin that fails to
import is recorded with its error (the GUI greys it out), never fatal."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from ..errors import PluginError
from .api import Plugin

ENTRY_POINT_GROUP = "workbench.plugins"


@dataclass
class PluginInfo:
    """A discovered plugin, or the error that stopped it from loading (shown greyed out)."""

    name: str
    cls: type[Plugin] | None
    source: str                                    # distribution name or "builtin"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.cls is not None


_registry: dict[str, PluginInfo] | None = None


def discover_plugins(refresh: bool = False) -> dict[str, PluginInfo]:
    """Load every ``workbench.plugins`` entry point on its own; a broken one is recorded, not fatal."""
    global _registry
    if _registry is not None and not refresh:
        return _registry
    found: dict[str, PluginInfo] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = ep.dist.name if getattr(ep, "dist", None) else "unknown"
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Plugin)):
                raise TypeError(f"{ep.value} is not a workbench.plugins.Plugin subclass")
            if cls.name != ep.name:
                raise TypeError(f"entry point {ep.name!r} points at plugin named {cls.name!r}")
            found[ep.name] = PluginInfo(ep.name, cls, source)
        except Exception as exc:  # a third-party plugin must never take the app down
            found[ep.name] = PluginInfo(ep.name, None, source, f"{type(exc).__name__}: {exc}")
    for cls in _builtin_plugins():
        found.setdefault(cls.name, PluginInfo(cls.name, cls, "builtin"))
    _registry = dict(sorted(found.items()))
    return _registry


def _builtin_plugins() -> list[type[Plugin]]:
    # The torch -> ONNX export step is part of the core because chain validation inserts it.
    from .onnx_export import OnnxExport
    return [OnnxExport]


def get_plugin_class(name: str) -> type[Plugin]:
    registry = discover_plugins()
    info = registry.get(name)
    if info is None:
        available = ", ".join(n for n, i in registry.items() if i.ok) or "none installed"
        raise PluginError(f"unknown plugin {name!r}; available: {available}")
    if info.cls is None:
        raise PluginError(f"plugin {name!r} failed to load: {info.error}")
    return info.cls


