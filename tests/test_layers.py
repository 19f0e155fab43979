"""The layers of DESIGN.md: imports point down only (widgets > magics > lab > mesh)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nuropb_lab"
# what each layer may not import (the layers above it)
FORBIDDEN = {
    "mesh": {
        "lab",
        "magics",
        "magic_args",
        "magic_complete",
        "widgets",
        "demo",
        "IPython",
        "ipywidgets",
        "pandas",
    },
    "lab": {"magics", "magic_args", "magic_complete", "widgets", "demo", "IPython", "ipywidgets"},
    "widgets": {"magics", "magic_args", "magic_complete", "demo"},
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
