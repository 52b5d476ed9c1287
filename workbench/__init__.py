"""Workbench core: load, optimize, measure, store and compare neural-network variants (no Qt here)."""
__version__ = "0.1.0"
