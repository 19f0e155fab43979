"""The layers of docs/DESIGN.md: imports point down only (widgets > magics > lab > mesh), and
no module of the package imports itself through others (``python tests/test_layers.py``
lists the cycles)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nuropb_lab"
# what each layer may not import (the layers above it)
FORBIDDEN = {
    "mesh": {
        "lab",
        "magics",
        "widgets",
        "demo",
        "IPython",
        "ipywidgets",
        "pandas",
    },
    "lab": {"magics", "widgets", "demo", "IPython", "ipywidgets"},
    "widgets": {"magics", "demo"},
}


def imported_modules(path: Path) -> set[str]:
    """Top names of the modules ``path`` imports, package-relative ones by their layer."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                names.add(module.split(".")[0])
                if module.startswith("nuropb_lab."):
                    names.add(module.split(".")[1])
                continue
            # relative: resolve against the file's package
            parts = list(path.relative_to(PACKAGE).parent.parts)
            base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            target = [*base, *module.split(".")] if module else base
            if target:
                names.add(target[0])
            else:  # "from .. import x": the names are modules of the package
                names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(layer: str) -> None:
    offences = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN[layer]
        if bad:
            offences.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not offences, "\n".join(offences)


# being removed where the AMQP wire code moves into one package (issue 21, item 1)
def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports: every import
    statement (module level, in a function, for type checking only), and the packages on the
    way that importing them runs (their ``__init__``), below those ``name`` is in already."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            module = ".".join([*base, node.module or ""]).strip(".") if node.level else node.module
            targets = [module or "", *(f"{module}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            for step in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
                if step in known and step != name and not name.startswith(step + "."):
                    found.add(step)
    return found


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Each set of the package's modules that import one another (Tarjan's strongly connected
    components)."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {name: module_imports(path, name, set(paths)) for name, path in paths.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "modules that import one another:\n" + "\n".join(map(str, cycles))


def test_the_cycle_finder_sees_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from .sub.c import x\n",  # runs sub/__init__.py first
        "sub/__init__.py": "from .d import y\n",
        "sub/c.py": "",
        "sub/d.py": "def f():\n    from ..b import z\n",  # in a function
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
        "e.py": "import pkg.b\n",  # a leaf: imports, imported by none
    }
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    assert import_cycles(tmp_path / "pkg") == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.d"]]


if __name__ == "__main__":
    found = import_cycles()
    print("\n".join(map(str, found)) or "no import cycles")
    sys.exit(1 if found else 0)
