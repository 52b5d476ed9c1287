"""The desktop GUI (PySide6 + pyqtgraph): the only Qt code in Workbench.

Entry point: ``workbench.gui.app.main`` (``workbench`` with no arguments). The GUI process never
imports torch: models are loaded, optimized and measured in the worker process.

    app.py          QApplication, theme, exception hooks, main()
    main_window.py  the docks and their layout, menus, settings, opening models, report export
    bridge.py       the one door into the core: opens the results store; runs the job queue
                    (engine.queue), inspection, reports and the GPU probe off the GUI thread
    run_control.py  docks -> RunSpec -> queued runs (engine.plan), job events -> docks
    docks/          Model, Plugins (+ parameter forms), Run, Log
    live/           the Live dock: series.py (data, no Qt), plots.py, widgets.py
    results/        the Results dock: columns, table, charts, pane (table beside charts)
    errors.py, plot_style.py, recent_files.py, help_dialogs.py
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
