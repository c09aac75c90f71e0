"""The package's shape: no import cycle inside tfvae (imports inside functions included), no
module over 800 lines, and the import-linter contracts of pyproject.toml."""

import glob
import os
import shutil
import subprocess
import sys

import grimp
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 800


def _cycle(graph, modules):
    """One import cycle among ``modules`` as a list of names, or None."""
    state = {}  # module -> 1 while on the DFS stack, 2 when done

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if target not in modules:
                continue
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[module] = 2
        return None

    for module in sorted(modules):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_import_cycle_inside_tfvae():
    graph = grimp.build_graph("tfvae", include_external_packages=False)
    modules = {m for m in graph.modules if m.startswith("tfvae")}
    # A package imports its submodules (its __init__ re-exports them): not a cycle of design.
    for module in list(modules):
        for target in graph.find_modules_directly_imported_by(module):
            if target.startswith(module + "."):
                graph.remove_import(importer=module, imported=target)
    cycle = _cycle(graph, modules)
    assert cycle is None, " -> ".join(cycle)


def test_no_module_over_800_lines():
    too_long = {}
    for path in glob.glob(os.path.join(REPO, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, REPO)
        if rel.startswith((".venv", "build")):
            continue
        with open(path) as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            too_long[rel] = n
    assert not too_long, too_long


@pytest.mark.skipif(
    shutil.which("lint-imports", path=os.path.dirname(sys.executable)) is None,
    reason="import-linter is not installed (pip install -e '.[test]')",
)
def test_import_contracts_are_kept():
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    done = subprocess.run([lint], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]
