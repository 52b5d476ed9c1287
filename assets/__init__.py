"""The bundled demo models and their data, installed as package data of ``workbench.assets``.

This folder is the repo's ``assets/``; ``pyproject.toml`` maps it into the package so a wheel
carries it. Find files through ``workbench.models.demos.assets_dir()``, never by a path relative
to the source tree. ``python -m workbench.assets.make_demos`` rebuilds them.
"""
