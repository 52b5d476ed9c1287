"""Packaging and dependencies: the demo assets are package data found through importlib.resources,
pyproject ships all of them, the training-only and test-only libraries stay out of the runtime
dependencies, and the quantization backend quiets its libraries without touching global logging.

(``.ci/run`` builds the wheel and runs the demos from a fresh venv; that is too slow for a unit test.)
"""
from __future__ import annotations

import ast
import fnmatch
import logging
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path

import pytest

from workbench.models import demos

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")   # Python >= 3.11
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _asset_files() -> list[str]:
    """Every asset file, as a path relative to assets/ (tiny-lm/config.json)."""
    root = REPO / "assets"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc"))


def _shipped(name: str, pattern: str) -> bool:
    """setuptools' package-data glob: ``*`` never crosses a folder."""
    return name.count("/") == pattern.count("/") and fnmatch.fnmatch(name, pattern)


def test_assets_resolve_through_importlib_resources(monkeypatch):
    monkeypatch.delenv(demos.ASSETS_ENV, raising=False)
    package = resources.files(demos.ASSETS_PACKAGE)
    for name in demos.demo_names():
        entry = demos.get_demo(name)
        assert package.joinpath(entry.weights).is_file(), entry.weights
        assert package.joinpath(entry.data).is_file(), entry.data
    assert package.joinpath(demos.METRICS_FILE).is_file()
    assert package.joinpath("make_demos.py").is_file()
    assert demos.assets_dir() == package
    assert demos.demo_metrics("digits-cnn")["test_accuracy"] > 0.9


def test_pyproject_ships_every_asset_in_the_package():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert "workbench.assets" in setuptools["packages"]
    assert setuptools["package-dir"]["workbench.assets"] == "assets"
    globs = setuptools["package-data"]["workbench.assets"]
    files = _asset_files()
    assert files, "no assets in the repo"
    for name in files:
        assert any(_shipped(name, pattern) for pattern in globs), f"{name} would not be in the wheel"
    for name in demos.demo_names():
        assert {demos.get_demo(name).weights, demos.get_demo(name).data} <= set(files)


def test_make_demos_without_scikit_learn_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None\n"   # makes `import sklearn` fail, as when absent
            "from workbench.assets import make_demos\n"
            f"sys.exit(make_demos.main(['--out', {str(tmp_path / 'out')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    message = [line for line in proc.stderr.splitlines() if "scikit-learn" in line]
    assert len(message) == 1 and "pip install 'workbench[demos]'" in message[0]
    assert not (tmp_path / "out").exists(), "nothing is written before the check"


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for text in requirements:
        name = text.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip().lower())
    return names


def test_runtime_dependencies_leave_out_training_and_test_libraries():
    project = PYPROJECT["project"]
    runtime = _requirement_names(project["dependencies"])
    assert not runtime & {"superqt", "jsonschema", "scikit-learn"}
    extras = project["optional-dependencies"]
    assert "jsonschema" in _requirement_names(extras["test"])
    assert "scikit-learn" in _requirement_names(extras["demos"])
    assert "pandas" in _requirement_names(extras["pandas"])
    for library in ("torchao", "torch-pruning", "onnxruntime"):
        pinned = [r for r in project["dependencies"] if _requirement_names([r]) == {library}]
        assert pinned and "<" in pinned[0], f"{library} needs a tested upper bound: {pinned}"


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_installed_code_imports_no_optional_library():
    """Only make_demos (the demos extra) may import sklearn; nothing installed imports jsonschema or superqt."""
    sources = [p for folder in ("workbench", "plugins", "assets") for p in (REPO / folder).rglob("*.py")]
    offenders = {}
    for path in sources:
        allowed = {"sklearn"} if path.name == "make_demos.py" else set()
        found = _imported_top_level_modules(path) & ({"sklearn", "jsonschema", "superqt"} - allowed)
        if found:
            offenders[str(path.relative_to(REPO))] = sorted(found)
    assert not offenders


def test_quant_backend_quiets_only_its_libraries_and_only_during_the_call(caplog):
    from workbench_plugins._quant_backend import _quiet

    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    level, filters = root.level, list(root.filters)
    library = logging.getLogger("onnxruntime.quantization.preprocess")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _quiet():
            assert root.level == level                   # records are filtered, never re-levelled
            library.warning("library hint")              # dropped: the library's chatter
            library.error("library error")               # kept: errors always pass
            logging.getLogger("myapp").info("app info")  # kept: not a quantization library
            warnings.warn("inside the call", DeprecationWarning)
        warnings.warn("after the call", DeprecationWarning)
    messages = [record.getMessage() for record in caplog.records]
    assert "library hint" not in messages and {"library error", "app info"} <= set(messages)
    assert [str(w.message) for w in caught] == ["after the call"]
    assert root.level == level and root.filters == filters and not library.filters
