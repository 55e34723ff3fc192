"""The compute core is Qt- and napari-free, and its modules import without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import napari_corrtomo.core as core

CORE = Path(core.__file__).parent
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def _modules() -> dict[str, Path]:
    out = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["napari_corrtomo", *parts])] = path
    return out


def test_importing_the_core_loads_no_gui_toolkit():
    names = sorted(_modules())
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Core modules ``name`` imports at module level (what runs when it is imported)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rsplit(".", 1)[0]
    edges = set()
    for node in ast.parse(path.read_text()).body:  # module level only
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                edges.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            edges |= {a.name for a in node.names if a.name in modules}
    return {e for e in edges if e in modules and e != name}


def test_core_modules_have_no_import_cycle():
    modules = _modules()
    graph = {n: _edges(n, p, modules) for n, p in modules.items()}
    # a submodule's edge to its own parent package is Python's package initialisation
    # (the parent is already importing), not a cycle between modules
    for n in graph:
        graph[n] = {e for e in graph[n] if not n.startswith(e + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for e in sorted(graph[n]):
            if state.get(e) == 1:
                cycles.append(stack[stack.index(e):] + [e])
            elif e not in state:
                visit(e, stack + [e])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert cycles == [], cycles


def test_no_core_import_hides_inside_a_function():
    """Imports of the package's own modules stay at module level (a cycle cannot hide)."""
    hidden = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (
                            inner.level or (inner.module or "").startswith("napari_corrtomo")):
                        hidden.append(f"{name}:{inner.lineno}")
    assert hidden == []
