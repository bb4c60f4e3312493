"""The package's layering: no module of ``cap`` imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cap"
#: Each sub-package's layer; a module may import from its own layer's package or lower ones.
LAYERS = {
    "utils": 0,
    "metrics": 1,
    "detectors": 2,
    "data": 2,
    "backbones": 3,
    "evaluation": 4,
    "reporting": 5,
    "workflow": 6,
    "cli": 7,
}


def imported_packages(path: Path) -> set[str]:
    """The ``cap`` sub-packages a module imports (``cap`` itself for the root)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "cap":
                packages.add(parts[1] if len(parts) > 1 else "cap")
    return packages


def test_the_top_level_holds_the_layers_only():
    entries = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == {*LAYERS, "__init__", "py.typed"}


#: Every module of a layer (``cap/__init__.py``, the lazy public API, belongs to none).
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.glob("*/**/*.py"))


def test_a_module_importing_upwards_is_caught():
    assert LAYERS["detectors"] < LAYERS["evaluation"]
    assert "evaluation" in imported_packages(PACKAGE / "workflow" / "steps" / "evaluate.py")


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_from_a_higher_layer(module):
    own = module.split("/")[0]
    above = {
        pkg for pkg in imported_packages(PACKAGE / module) if LAYERS.get(pkg, -1) > LAYERS[own]
    }
    assert not above, f"cap/{module} (layer {own}) imports from {sorted(above)}"


def test_planning_imports_no_torch():
    """Snakemake builds the plan at every invocation (and in each local job's process):
    its imports, the backbone and dataset registries included, stay without torch (and
    without onnxruntime, which the torch backbones' runtime option names)."""
    import subprocess
    import sys

    code = (
        "import sys, cap.workflow, cap.backbones, cap.data; "
        "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'onnx', 'onnxruntime') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
