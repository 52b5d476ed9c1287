"""The desktop GUI (PySide6 + pyqtgraph): the only Qt code in Workbench.

Entry point: ``workbench.gui.app.main`` (``workbench`` with no arguments). The GUI process never
imports torch: models are loaded, optimized and measured in the worker process.
"""
from __future__ import annotations

import sys


def _immortalize_singletons() -> bool:
    """Work around PySide6/shiboken6 6.12.0 on CPython < 3.12.

    Those wheels return ``None``/``True``/``False`` without taking a new reference (correct on
    3.12+, where PEP 683 made them immortal). On 3.11 every such call - every Qt method returning
    ``void`` - drops one reference to ``None``, and after a few thousand calls Python aborts with
    "Fatal Python error: none_dealloc" (a GUI does that within seconds). We give these singletons
    the effectively-infinite reference count 3.12 gives them; they are never deallocated anyway.
    Returns whether the workaround was applied.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    try:
        from importlib.metadata import version
        major, minor = (int(p) for p in version("shiboken6").split(".")[:2])
    except Exception:
        return False
    if (major, minor) < (6, 12):
        return False
    import ctypes
    reserve = 1 << 60
    for obj in (None, True, False, Ellipsis, NotImplemented):
        refcount = ctypes.c_ssize_t.from_address(id(obj))
        if refcount.value < reserve // 2:
            refcount.value += reserve
    return True


SINGLETONS_IMMORTALIZED = _immortalize_singletons()
