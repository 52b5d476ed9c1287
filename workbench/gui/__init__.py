"""The desktop GUI (PySide6 + pyqtgraph): the only Qt code in Workbench.

Entry point: ``workbench.gui.app.main`` (``workbench`` with no arguments). The GUI process never
imports torch: models are loaded, optimized and measured in the worker process.
"""
