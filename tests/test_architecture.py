"""The library stays plain PyTorch: Ray and MLflow only in mikgnn/distributed and pipelines/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mikgnn"
FORBIDDEN = {"ray", "mlflow"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


LIBRARY = [p for p in PACKAGE.rglob("*.py") if "distributed" not in p.parts]


@pytest.mark.parametrize("path", LIBRARY, ids=[str(p.relative_to(PACKAGE)) for p in LIBRARY])
def test_library_module_does_not_import_ray_or_mlflow(path):
    assert not _imports(path) & FORBIDDEN


def test_data_layer_does_not_import_torch_nn():
    for path in list((PACKAGE / "datasets").rglob("*.py")) + list((PACKAGE / "preprocess").rglob("*.py")):
        assert "torch" not in _imports(path), path
