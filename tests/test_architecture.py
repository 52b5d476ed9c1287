"""The architecture holds: the import-linter contracts in pyproject.toml are kept, no module imports
itself in a cycle, no source file grows past 600 lines, and the parent side never pays for torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def test_import_linter_contracts_are_kept():
    from importlinter.cli import lint_imports
    # Returns the exit code; the report (which contract broke, through which imports) is printed.
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0, (
        "an import-linter contract is broken: run `lint-imports` for the details")


def _first_party_graph():
    import grimp
    return grimp.build_graph("workbench", "workbench_plugins")


def test_no_import_cycles():
    graph = _first_party_graph()
    adjacency = {m: {i for i in graph.find_modules_directly_imported_by(m)
                     if i.startswith(("workbench.", "workbench_plugins"))} for m in graph.modules}
    cycles = _strongly_connected(adjacency)
    assert not cycles, f"import cycles: {cycles}"


def _strongly_connected(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in adjacency:
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("folder", ["workbench", "plugins"])
def test_no_source_file_over_600_lines(folder):
    too_long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
                if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"split these (one module owns one thing): {too_long}"


def test_the_parent_side_never_imports_torch():
    """The CLI, the engine, the store, the plugin surface and the report never load torch at
    import: the GUI process imports them and must start without it (models live in the worker)."""
    code = ("import sys, workbench, workbench.cli, workbench.api, workbench.engine.session, workbench.engine.plan, "
            "workbench.results.store, workbench.results.compare, workbench.plugin_api, workbench.report, "
            "workbench.models.loaders, workbench.worker.conditions, workbench.telemetry.sampler; "
            "loaded = [m for m in ('torch', 'onnxruntime') if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
