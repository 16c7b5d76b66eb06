"""The seams of the code base, checked on the import graph (parsed with ``ast``, every
import statement, module level and inside functions):

* the torch-free library (the ``proc_ml/`` folder) never imports torch, the training side
  (``proc_ml.trainers``) or the exporters (``proc_ml.exporters``); only ``proc_ml/commands/``
  composes them;
* no module imports the ``trainers``/``exporters`` folders as top-level packages (they are
  installed as ``proc_ml.trainers`` and ``proc_ml.exporters``);
* no import cycle between modules;
* the DCC code (``hda_scripts/``, ``blender_addon/``) stays on the torch-free side.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folders and the package each is installed as (pyproject.toml package-dir).
PACKAGES = {"proc_ml": "proc_ml", "trainers": "proc_ml.trainers", "exporters": "proc_ml.exporters"}
TORCH_SIDE = ("torch", "proc_ml.trainers", "proc_ml.exporters", "onnx", "onnxscript")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    package = PACKAGES[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _modules() -> dict[str, Path]:
    found = {}
    for folder in PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imports(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every import in ``path``;
    ``from X import name`` counts as X.name when that is a module, else X. Imports under
    ``if TYPE_CHECKING:`` are skipped (they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    out = []

    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                continue
            if isinstance(child, ast.Import):
                out.extend((alias.name, child.lineno, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, module, is_package)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    out.append((full if full in MODULES else base, child.lineno, top))
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, nested)

    visit(tree, True)
    return out


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph(top_only: bool) -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = set()
        for name, _, top in _imports(path, module):
            if top_only and not top:
                continue
            while name and name not in MODULES:     # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def _is_torch_free_library(path: Path) -> bool:
    rel = path.relative_to(REPO)
    return rel.parts[0] == "proc_ml" and rel.parts[1] != "commands"


def test_the_torch_free_library_never_imports_the_training_side():
    offending = []
    for module, path in MODULES.items():
        if not _is_torch_free_library(path):
            continue
        for name, line, _ in _imports(path, module):
            if any(name == side or name.startswith(side + ".") for side in TORCH_SIDE):
                offending.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offending, "\n".join(offending)
    assert len([m for m, p in MODULES.items() if _is_torch_free_library(p)]) > 60


def _dcc_sources() -> list[Path]:
    """Python run inside the DCCs: the SOP scripts, the HDAs' Python sections, the add-on."""
    hda_python = [p for p in sorted((REPO / "houdini" / "otls").rglob("*"))
                  if p.name in ("PythonCook", "PythonModule", "OnCreated", "OnLoaded")]
    return (sorted((REPO / "hda_scripts").glob("*.py")) + hda_python
            + sorted((REPO / "blender_addon").rglob("*.py")))


def test_dcc_code_stays_torch_free():
    offending = []
    assert any(p.name == "PythonCook" for p in _dcc_sources())
    for path in _dcc_sources():
        for name, line, _ in _imports(path, "dcc_script"):
            if any(name == side or name.startswith(side + ".") for side in TORCH_SIDE):
                offending.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offending, "\n".join(offending)


def test_exporters_and_trainers_are_only_imported_inside_the_project_namespace():
    offending = []
    scripts = [p for folder in ("tests", "benchmarks", "scripts") for p in sorted((REPO / folder).rglob("*.py"))]
    for path in [*MODULES.values(), *scripts, *_dcc_sources()]:
        module = _module_name(path) if path.relative_to(REPO).parts[0] in PACKAGES else "script"
        for name, line, _ in _imports(path, module):
            if name.split(".")[0] in ("trainers", "exporters"):
                offending.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offending, "\n".join(offending)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


@pytest.mark.parametrize("top_only", [True, False], ids=["module-level", "all-imports"])
def test_no_import_cycles(top_only):
    graph = _graph(top_only)
    # a package's __init__ re-exporting its own submodules is not a cycle of the design
    for module in graph:
        graph[module] = {t for t in graph[module]
                         if not (MODULES[module].name == "__init__.py" and t.startswith(module + "."))}
    assert _cycles(graph) == []


def test_the_graph_sees_real_imports():
    # guards the checks above against passing because the parser saw nothing
    graph = _graph(top_only=False)
    assert "proc_ml.runtime.session" in graph["proc_ml.runtime.parts"]
    assert "proc_ml.registry" in graph["proc_ml.trainers.loop"]
    assert "proc_ml.trainers" in graph["proc_ml.commands.train"] or \
        any(t.startswith("proc_ml.trainers") for t in graph["proc_ml.commands.train"])
