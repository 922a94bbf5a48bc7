"""Imports flow one way: each layer of the package imports only its own package and the layers before it."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stl10_lightning"
# In the order the README's project tree gives; a layer may import the ones above it in this list.
LAYERS = [
    {"common"},
    {"data"},
    {"models", "losses"},
    {"optim", "monitoring"},
    {"runs"},
    {"stages"},
    {"settings"},
    {"launch"},
    {"train"},
    {"report", "predict"},  # both read finished runs; neither imports the other
    {"study"},
]


def _layer(part: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if part in names)


def _imported_parts(source: Path) -> set[str]:
    """The top-level parts of stl10_lightning that `source` imports (`stl10_lightning.data.x` -> data)."""
    parts = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stl10_lightning"):
            names = node.module.split(".")[1:2] or [alias.name for alias in node.names]
            parts.update(names)
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("stl10_lightning."))
    return parts


def test_every_module_is_in_a_layer():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert modules | packages == set().union(*LAYERS)


def test_imports_flow_one_way():
    backwards = []
    for source in PACKAGE.rglob("*.py"):
        own = source.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for part in _imported_parts(source) - {own}:
            if _layer(part) >= _layer(own):
                backwards.append(f"{source.relative_to(PACKAGE)} imports {part}")
    assert not backwards, backwards


@pytest.mark.parametrize("module", ["stl10_lightning.data.prepare", "stl10_lightning.data.synthetic"])
def test_commands_that_only_convert_files_start_without_torch(module):
    """stl10-prepare and the synthetic generator answer, and refuse bad input, in a fraction of a second:
    torch alone takes seconds to import, Lightning seconds more."""
    heavy = ("torch", "pytorch_lightning", "lightning_fabric", "torchvision", "kornia")
    probe = f"import sys, {module}; print(*[name for name in {heavy!r} if name in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []
